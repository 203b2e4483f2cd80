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
