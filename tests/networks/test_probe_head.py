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

from monai_jepa.networks import ProbeHead


def _head(task, weight, bias, class_names=None):
    d = weight.shape[1]
    return ProbeHead(torch.zeros(d), torch.ones(d), weight, bias, task, class_names)


def test_binary_and_multilabel_heads_use_sigmoid():
    head = _head("binary", torch.tensor([[2.0, 0.0]]), torch.tensor([-1.0]))
    p = head(torch.tensor([[0.5, 3.0], [0.0, 0.0]]))
    assert torch.allclose(p, torch.sigmoid(torch.tensor([[0.0], [-1.0]])))
    multi = _head("multilabel", torch.eye(2), torch.zeros(2))
    assert torch.allclose(multi(torch.tensor([[0.0, 100.0]])), torch.tensor([[0.5, 1.0]]))


def test_multiclass_head_uses_softmax_on_standardised_features():
    head = ProbeHead(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0]), torch.eye(2), torch.zeros(2), "multiclass")
    p = head(torch.tensor([[3.0, 1.0]]))  # standardised: (1, 0)
    assert torch.allclose(p, torch.softmax(torch.tensor([[1.0, 0.0]]), dim=1))
    assert head.class_names == ["0", "1"]


def test_file_round_trip_keeps_values_and_names(tmp_path):
    head = ProbeHead(torch.rand(3), torch.rand(3) + 0.5, torch.randn(2, 3), torch.randn(2), "multiclass", ["a", "b"])
    path = head.to_file(tmp_path / "sub" / "probe.pt")
    assert path == tmp_path / "sub" / "probe.pt" and sorted(p.name for p in path.parent.iterdir()) == ["probe.pt"]
    state = torch.load(path, weights_only=True)
    assert state["task"] == "multiclass" and state["class_names"] == ["a", "b"]
    loaded = ProbeHead.from_file(path)
    x = torch.randn(5, 3)
    assert torch.equal(loaded(x), head(x)) and loaded.class_names == ["a", "b"]


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="probe shapes"):
        ProbeHead(torch.zeros(4), torch.ones(4), torch.zeros(2, 3), torch.zeros(2), "multiclass")
    with pytest.raises(ValueError, match="probe shapes"):
        ProbeHead(torch.zeros(3), torch.ones(3), torch.zeros(2, 3), torch.zeros(3), "multiclass")


def test_from_file_errors_name_the_file(tmp_path):
    from monai_jepa.utils.fileio import CheckpointReadError

    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointReadError, match=r"probe head file '.*empty.pt' is empty \(0 bytes\)"):
        ProbeHead.from_file(tmp_path / "empty.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"probe head file '.*other.pt' holds \['model'\], not a head"):
        ProbeHead.from_file(tmp_path / "other.pt")
