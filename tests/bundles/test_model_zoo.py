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
"""The MONAI Model Zoo's checks, offline, for every bundle under ``bundles/`` (a new bundle is picked up by itself).

Metadata against the Zoo's schema (``meta_schema_20240725.json``, the MONAI Model Zoo's metadata schema, kept here so
that no download happens), the files the Zoo requires, 4-space JSON, ``verify_net_in_out`` and ``ckpt_export`` in
TorchScript script mode (what the Zoo's CI runs) with the exported network giving the eager network's output, and
the released weights: ``models/model.pt`` at most 25 MB, its SHA-256 in ``large_files.yml`` and in the metadata,
MONAI's ``download_large_files`` satisfied without a download, the weights loaded by the bundle's own config when
no training output exists, and exported. A bundle without released weights must say why (``NO_WEIGHTS``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.bundles._repo import bundle_env

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).with_name("meta_schema_20240725.json")
BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())
# bundles whose network_def TorchScript cannot script, with the reason given in their README (exported by tracing)
SCRIPT_EXCLUDED = {"cine_vjepa": "forward hooks"}
# bundles that ship no trained weights, with the reason given in their README
NO_WEIGHTS = {"brats_vjepa": "BraTS"}
RELEASED = [b for b in BUNDLES if b not in NO_WEIGHTS]


def _bundle(name: str) -> Path:
    return REPO / "bundles" / name


@pytest.mark.parametrize("name", BUNDLES)
def test_required_files_and_json_format(name):
    root = _bundle(name)
    for rel in ("configs/metadata.json", "configs/train.json", "docs/README.md", "docs/data_license.txt", "LICENSE"):
        assert (root / rel).is_file(), f"{name}: {rel} is missing"
    assert (root / "configs" / "inference.json").is_file()
    for path in sorted((root / "configs").glob("*.json")):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=4) + "\n", f"{path} is not 4-space JSON"
    assert (root / "LICENSE").read_text() == (REPO / "LICENSE").read_text()


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_against_the_zoo_schema(name, tmp_path):
    from monai.bundle import verify_metadata

    meta_file = _bundle(name) / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    assert meta["schema"].endswith("/" + SCHEMA.name)
    schema = tmp_path / SCHEMA.name
    shutil.copy(SCHEMA, schema)  # present: verify_metadata does not download it
    verify_metadata(meta_file=str(meta_file), filepath=str(schema))
    assert meta["version"] in meta["changelog"] and list(meta["changelog"])[0] == meta["version"]
    broken = dict(meta)
    del broken["network_data_format"]
    bad_file = tmp_path / "metadata.json"
    bad_file.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="network_data_format"):  # the check has teeth
        verify_metadata(meta_file=str(bad_file), filepath=str(schema))


def _export(name: str, ckpt_file: Path, ts_file: Path, overrides: dict) -> torch.jit.ScriptModule:
    """``ckpt_export`` as the Zoo's CI runs it: script mode, or tracing for the bundles in SCRIPT_EXCLUDED."""
    from monai.bundle import ckpt_export

    root = _bundle(name)
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    kw = {}
    if name in SCRIPT_EXCLUDED:
        assert SCRIPT_EXCLUDED[name] in (root / "docs" / "README.md").read_text()
        image = meta["network_data_format"]["inputs"]["image"]
        kw = {"use_trace": True, "input_shape": [1, image["num_channels"], *image["spatial_shape"]]}
    ckpt_export(net_id="network_def", filepath=str(ts_file), ckpt_file=str(ckpt_file),
                meta_file=str(root / "configs" / "metadata.json"), config_file=str(root / "configs" / "inference.json"),
                **kw, **overrides)  # fmt: skip
    return torch.jit.load(str(ts_file))


def _input(name: str, batch: int = 1) -> torch.Tensor:
    image = json.loads((_bundle(name) / "configs" / "metadata.json").read_text())["network_data_format"]["inputs"][
        "image"
    ]
    return torch.rand(batch, image["num_channels"], *[s if isinstance(s, int) else 32 for s in image["spatial_shape"]])


@pytest.mark.parametrize("name", BUNDLES)
def test_verify_net_in_out(name):
    cfg = _bundle(name) / "configs"
    cmd = [sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def", "--meta_file",
           str(cfg / "metadata.json"), "--config_file", str(cfg / "inference.json"), "--device", "cpu"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=bundle_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "verified with no error" in proc.stdout + proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("name", BUNDLES)
def test_ckpt_export_in_script_mode(name, tmp_path):
    from monai.bundle import ConfigParser

    cfg, root = _bundle(name) / "configs" / "inference.json", _bundle(name)
    overrides = {"bundle_root": str(root), "output_dir": str(tmp_path / "out")}
    parser = ConfigParser()
    parser.read_config(str(cfg))
    parser.update(overrides)
    net = parser.get_parsed_content("network_def").eval()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    exported = _export(name, tmp_path / "model.pt", tmp_path / "model.ts", overrides)
    assert isinstance(exported, torch.jit.ScriptModule)
    x = _input(name)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", BUNDLES)
def test_released_weights_or_a_stated_reason(name):
    root = _bundle(name)
    if name in NO_WEIGHTS:
        assert not (root / "models" / "model.pt").exists()
        readme = (root / "docs" / "README.md").read_text()
        assert "no released weights" in readme.lower() and NO_WEIGHTS[name] in readme
        return
    from monai_jepa.utils.release import sha256_file

    weights = root / "models" / "model.pt"
    assert weights.is_file(), f"{name}: models/model.pt is missing (release it, or list the bundle in NO_WEIGHTS)"
    assert weights.stat().st_size <= 25e6
    record = json.loads((root / "configs" / "metadata.json").read_text())["released_weights"]
    digest = sha256_file(weights)
    assert record["sha256"] == digest and record["size_bytes"] == weights.stat().st_size
    assert record["data"] and record["command"] and record["budget"]
    assert f'hash_val: "{digest}"' in (root / "large_files.yml").read_text()
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load((root / "large_files.yml").read_text())["large_files"][0]["path"] == "models/model.pt"
    from monai.bundle import download_large_files

    download_large_files(bundle_path=str(root))  # the file is there with the right hash: nothing is downloaded


@pytest.mark.parametrize("name", RELEASED)
def test_released_weights_load_in_inference_and_export(name, tmp_path):
    from ignite.engine import Engine
    from monai.bundle import ConfigParser

    root = _bundle(name)
    cfg = root / "configs" / "inference.json"
    overrides = {"bundle_root": str(root), "output_dir": str(tmp_path / "no_training_output")}
    parser = ConfigParser()
    parser.read_config(str(cfg))
    parser.update(overrides)
    assert Path(parser.get_parsed_content("checkpoint")) == root / "models" / "model.pt"
    net = parser.get_parsed_content("network_def").eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loader = parser.get_parsed_content("checkpointloader", instantiate=True)
    loader.load_dict = {"model": net}
    loader(Engine(lambda e, b: None))
    released = torch.load(root / "models" / "model.pt", weights_only=True)
    assert set(net.state_dict()) <= set(released)  # the released file may also hold training-only parts
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, released[k].to(v.dtype))
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    exported = _export(name, root / "models" / "model.pt", tmp_path / "model.ts", overrides)
    x = _input(name, batch=2)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net(x), rtol=1e-4, atol=1e-4)
