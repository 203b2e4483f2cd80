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

from monai_jepa.evaluation import fit_probe_head
from monai_jepa.networks import ProbeHead


class _Flat(torch.nn.Module):
    """A stand-in encoder: ``embed`` flattens the image, ``forward`` returns a projection."""

    def embed(self, x):
        return x.flatten(1)

    def forward(self, x):
        return x.flatten(1)[:, :1]


def _separable(n: int, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = torch.randn(n, 1, 2, 2, generator=g) * 0.3
    x[:, 0, 0, 0] += 2.0 * y
    return x, y


def test_fit_probe_head_binary_and_multiclass(tmp_path):
    x, y = _separable(60, 2, 0)
    head = fit_probe_head(_Flat(), (x, y), "binary", val_data=_separable(20, 2, 1), class_names=["no", "yes"])
    assert isinstance(head, ProbeHead) and head.linear.weight.shape == (1, 4)
    assert torch.allclose(head.mean, x.flatten(1).mean(0), atol=1e-6)
    p = head(x.flatten(1))
    assert p.shape == (60, 1) and ((p[:, 0] > 0.5).long() == y).float().mean() > 0.95
    loaded = ProbeHead.from_file(head.to_file(tmp_path / "probe.pt"))
    assert torch.equal(loaded(x.flatten(1)), p) and loaded.class_names == ["no", "yes"]
    x3, y3 = _separable(90, 3, 2)
    head3 = fit_probe_head(_Flat(), (x3, y3), "multiclass")
    p3 = head3(x3.flatten(1))
    assert p3.shape == (90, 3) and torch.allclose(p3.sum(1), torch.ones(90))
    assert (p3.argmax(1) == y3).float().mean() > 0.9


def test_classes_absent_from_training_get_no_probability():
    x, y = _separable(40, 2, 3)
    head = fit_probe_head(_Flat(), (x, y), "multiclass", class_names=["a", "b", "c"])
    p = head(x.flatten(1))
    assert p.shape == (40, 3) and float(p[:, 2].max()) < 1e-9  # bias -30 and zero weights for class "c"
    assert ((p[:, 1] > p[:, 0]).long() == y).float().mean() > 0.95
    ym = torch.stack([y, torch.ones_like(y)], dim=1)  # second label always positive
    multi = fit_probe_head(_Flat(), (x, ym), "multilabel")
    pm = multi(x.flatten(1))
    assert torch.equal(multi.linear.weight[1], torch.zeros(4)) and float(pm[:, 1].min()) > 1 - 1e-9


def test_unlabelled_training_data_raises():
    with pytest.raises(ValueError, match="carries no labels"):
        fit_probe_head(_Flat(), torch.rand(8, 1, 2, 2), "binary")
