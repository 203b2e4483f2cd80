# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

import hashlib
import json

import pytest
import torch

from monai_jepa.cli import main
from monai_jepa.utils.release import release_weights, sha256_file


def _bundle(tmp_path):
    (tmp_path / "b" / "configs").mkdir(parents=True)
    (tmp_path / "b" / "configs" / "metadata.json").write_text(json.dumps({"version": "0.1.0"}, indent=4) + "\n")
    return tmp_path / "b"


def _checkpoint(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.ModuleDict({"encoder": torch.nn.BatchNorm1d(3), "projector": torch.nn.Linear(3, 2)})
    net["encoder"].weight.data.uniform_()
    torch.save({"model": net.state_dict(), "optimizer": {}}, tmp_path / "ckpt.pt")
    return net, tmp_path / "ckpt.pt"


def test_release_writes_half_precision_encoder_hash_and_metadata(tmp_path):
    bundle, (net, ckpt) = _bundle(tmp_path), _checkpoint(tmp_path)
    record = release_weights(ckpt, bundle, ["projector."], data="toy", command="train", budget="1 s")
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert set(state) == {k for k in net.state_dict() if k.startswith("encoder.")}
    assert state["encoder.weight"].dtype == torch.float16 and state["encoder.num_batches_tracked"].dtype == torch.int64
    torch.testing.assert_close(state["encoder.weight"].float(), net["encoder"].weight.data, atol=1e-3, rtol=1e-3)
    fresh = torch.nn.BatchNorm1d(3)
    fresh.load_state_dict({k[len("encoder.") :]: v for k, v in state.items()})  # into float32, strict
    assert fresh.weight.dtype == torch.float32
    digest = sha256_file(bundle / "models" / "model.pt")
    assert record["sha256"] == digest == hashlib.sha256((bundle / "models" / "model.pt").read_bytes()).hexdigest()
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert meta["released_weights"] == record and meta["version"] == "0.1.0"
    assert record["num_parameters"] == 3 + 3 + 3 + 3 and record["data"] == "toy"  # weight, bias, running stats
    assert f'hash_val: "{digest}"' in (bundle / "large_files.yml").read_text()
    yaml = pytest.importorskip("yaml")
    entry = yaml.safe_load((bundle / "large_files.yml").read_text())["large_files"][0]
    assert entry == {"path": "models/model.pt", "url": "", "hash_val": digest, "hash_type": "sha256"}


def test_release_refuses_too_large_or_empty_and_writes_nothing(tmp_path):
    bundle, (_, ckpt) = _bundle(tmp_path), _checkpoint(tmp_path)
    before = (bundle / "configs" / "metadata.json").read_text()
    with pytest.raises(ValueError, match=r"MB in float32 .* over the 1e-06 MB limit"):
        release_weights(ckpt, bundle, dtype="float32", max_mb=1e-6)
    with pytest.raises(ValueError, match="no entry of '.*ckpt.pt' is left"):
        release_weights(ckpt, bundle, ["encoder.", "projector."])
    torch.save({"model": {"a": 1}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no state dict of tensors"):
        release_weights(tmp_path / "bad.pt", bundle)
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        release_weights(ckpt, tmp_path)
    assert not (bundle / "models").exists() and not (bundle / "large_files.yml").exists()
    assert (bundle / "configs" / "metadata.json").read_text() == before


def test_release_weights_command(tmp_path, capsys):
    bundle, (_, ckpt) = _bundle(tmp_path), _checkpoint(tmp_path)
    assert (
        main(["release_weights", str(ckpt), str(bundle), "--drop_prefixes", "projector.", "--dtype", "bfloat16"]) == 0
    )
    assert "bfloat16" in capsys.readouterr().out
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert state["encoder.weight"].dtype == torch.bfloat16 and "projector.weight" not in state
