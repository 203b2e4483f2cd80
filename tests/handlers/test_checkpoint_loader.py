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

import pytest
import torch
from ignite.engine import Engine

from monai_jepa.handlers import CheckedCheckpointLoader
from monai_jepa.utils.fileio import CheckpointReadError


def _run(path, net):
    engine = Engine(lambda e, b: None)
    CheckedCheckpointLoader(load_path=str(path), load_dict={"model": net}).attach(engine)
    engine.run([0], max_epochs=1)


def test_loads_like_monai_and_errors_name_the_file(tmp_path):
    torch.manual_seed(0)
    trained, fresh = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    torch.save(trained.state_dict(), tmp_path / "model.pt")  # a bare state dict, as models/model.pt
    _run(tmp_path / "model.pt", fresh)
    assert torch.equal(fresh.weight, trained.weight) and torch.equal(fresh.bias, trained.bias)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointReadError, match=r"'.*empty.pt' is empty \(0 bytes\)"):
        _run(tmp_path / "empty.pt", fresh)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        _run(tmp_path / "missing.pt", fresh)
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match=r"checkpoint file '.*other.pt' does not fit the network"):
        _run(tmp_path / "other.pt", fresh)


def _run_ignoring(path, net, prefixes):
    engine = Engine(lambda e, b: None)
    CheckedCheckpointLoader(load_path=str(path), load_dict={"model": net}, ignore_prefixes=prefixes).attach(engine)
    engine.run([0], max_epochs=1)


def test_ignore_prefixes_loads_a_training_checkpoint_into_the_encoder_only(tmp_path):
    torch.manual_seed(0)
    full = torch.nn.ModuleDict({"encoder": torch.nn.Linear(3, 2), "projector": torch.nn.Linear(2, 4)})
    encoder_only = torch.nn.ModuleDict({"encoder": torch.nn.Linear(3, 2)})
    for name, payload in (("plain.pt", full.state_dict()), ("wrapped.pt", {"model": full.state_dict()})):
        torch.save(payload, tmp_path / name)
        fresh = torch.nn.ModuleDict({"encoder": torch.nn.Linear(3, 2)})
        _run_ignoring(tmp_path / name, fresh, ["projector."])
        assert torch.equal(fresh["encoder"].weight, full["encoder"].weight)
    # without the prefix the projector entries are unexpected: still an error naming the file
    with pytest.raises(RuntimeError, match=r"'.*plain.pt' does not fit the network(.|\n)*projector"):
        _run_ignoring(tmp_path / "plain.pt", encoder_only, ["other."])
    # a missing encoder entry is an error too (the load stays strict)
    torch.save({"projector.weight": torch.zeros(4, 2)}, tmp_path / "head.pt")
    with pytest.raises(RuntimeError, match=r"'.*head.pt' does not fit the network(.|\n)*encoder.weight"):
        _run_ignoring(tmp_path / "head.pt", encoder_only, ["projector."])
    with pytest.raises(ValueError, match="exactly one network"):
        CheckedCheckpointLoader(load_path="x.pt", load_dict={"a": full, "b": full}, ignore_prefixes=["p."])
