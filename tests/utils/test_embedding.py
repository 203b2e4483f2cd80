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

import math

import pytest
import torch

from monai_jepa.utils.embedding import effective_rank, embedding_std


def test_effective_rank_hand_cases():
    g = torch.Generator().manual_seed(0)
    # rank 1: samples vary along one direction only
    z = torch.randn(64, 1, generator=g, dtype=torch.float64) * torch.randn(1, 16, generator=g, dtype=torch.float64) + 3
    assert effective_rank(z) == pytest.approx(1.0, abs=1e-6)
    # two orthogonal directions with equal spread: singular values equal -> exactly 2
    a = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    assert effective_rank(a) == pytest.approx(2.0, abs=1e-9)
    # unequal spread: p = (2/3, 1/3) -> exp(entropy)
    b = a * torch.tensor([2.0, 1.0, 1.0])
    entropy = -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)
    assert effective_rank(b) == pytest.approx(math.exp(entropy), abs=1e-9)
    # complete collapse (all rows equal) -> 0
    assert effective_rank(torch.full((10, 8), 0.7)) == 0.0


def test_effective_rank_isotropic_and_bounds():
    g = torch.Generator().manual_seed(1)
    assert 7.8 < effective_rank(torch.randn(4096, 8, generator=g)) <= 8.0
    # N < D: at most N - 1 after centring
    assert effective_rank(torch.randn(5, 32, generator=g)) <= 4.0 + 1e-9


def test_embedding_std_hand_cases():
    g = torch.Generator().manual_seed(2)
    assert embedding_std(torch.randn(8192, 64, generator=g)) == pytest.approx(1 / 8, rel=0.03)
    assert embedding_std(torch.ones(10, 64)) == 0.0
    # same direction, different norms: L2-normalisation makes them identical -> 0
    direction = torch.randn(1, 16, generator=g)
    assert embedding_std(torch.rand(20, 1, generator=g).add(0.5) * direction) == pytest.approx(0.0, abs=1e-7)
    # two antipodal unit vectors along axis 0: unbiased std sqrt(2) in dim 0, 0 in dim 1 -> mean sqrt(2) / 2
    z = torch.tensor([[3.0, 0.0], [-3.0, 0.0]])
    assert embedding_std(z) == pytest.approx(math.sqrt(2) / 2)


def test_inputs_are_checked_and_not_modified():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        effective_rank(torch.randn(4, 3, 2))
    with pytest.raises(ValueError, match="at least 2"):
        embedding_std(torch.randn(1, 8))
    z = torch.randn(6, 4, requires_grad=True)
    assert isinstance(effective_rank(z), float) and isinstance(embedding_std(z.half()), float)
    assert z.grad is None
