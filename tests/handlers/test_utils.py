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

import torch

import monai_jepa.handlers.utils as handler_utils
from monai_jepa.handlers import save_network_weights


def test_save_network_weights_unwraps_and_is_loadable(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    wrapped = torch.nn.DataParallel(net)
    path = save_network_weights(wrapped, tmp_path / "models" / "model.pt")
    assert path == tmp_path / "models" / "model.pt"
    state = torch.load(path, weights_only=True)
    assert list(state) == ["0.weight", "0.bias"] and torch.equal(state["0.weight"], net[0].weight)
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 2))
    fresh.load_state_dict(state)
    x = torch.rand(4, 3)
    assert torch.equal(fresh(x), net(x))
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary file left


def test_save_network_weights_writes_on_rank_0_only(tmp_path, monkeypatch):
    monkeypatch.setattr(handler_utils, "get_rank", lambda: 1)
    assert save_network_weights(torch.nn.Linear(2, 2), tmp_path / "model.pt") is None
    assert not (tmp_path / "model.pt").exists()
