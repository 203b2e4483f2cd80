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
from torch import nn

from monai_jepa.networks import Projector


def test_default_is_lejepa_head():
    proj = Projector(512)
    linears = [m for m in proj.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 2048), (2048, 2048), (2048, 64)]
    assert [type(m) for m in proj.mlp] == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [nn.Linear]
    # hidden linears feed BatchNorm, which cancels a bias; the output layer is a plain Linear with bias
    assert linears[0].bias is None and linears[1].bias is None and linears[2].bias is not None


@pytest.mark.parametrize(
    "norm,norm_type,num_norms", [("batch", nn.BatchNorm1d, 1), ("layer", nn.LayerNorm, 1), ("none", None, 0)]
)
def test_norms_and_shapes(norm, norm_type, num_norms):
    torch.manual_seed(0)
    proj = Projector(in_dim=24, hidden_dim=32, out_dim=8, num_layers=2, norm=norm)
    norms = [m for m in proj.mlp if isinstance(m, (nn.BatchNorm1d, nn.LayerNorm))]
    assert len(norms) == num_norms and all(isinstance(m, norm_type) for m in norms)
    assert isinstance(proj.mlp[-1], nn.Linear)
    assert (proj.mlp[0].bias is None) == (norm == "batch")
    z = proj(torch.randn(5, 24))
    assert z.shape == (5, 8) and torch.isfinite(z).all()


def test_batchnorm_normalises_hidden_features():
    torch.manual_seed(0)
    proj = Projector(in_dim=16, hidden_dim=32, out_dim=4, num_layers=2).train()
    hidden = proj.mlp[:2](torch.randn(64, 16) * 10 + 3)  # Linear + BatchNorm, before ReLU
    torch.testing.assert_close(hidden.mean(0), torch.zeros(32), atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden.var(0, unbiased=False), torch.ones(32), atol=1e-3, rtol=0)


def test_single_layer_is_linear():
    proj = Projector(in_dim=10, out_dim=3, num_layers=1)
    assert len(proj.mlp) == 1 and isinstance(proj.mlp[0], nn.Linear)
    x = torch.randn(4, 10)
    torch.testing.assert_close(proj(x), x @ proj.mlp[0].weight.T + proj.mlp[0].bias)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="group"):
        Projector(8, norm="group")
    with pytest.raises(ValueError, match="num_layers"):
        Projector(8, num_layers=0)
    with pytest.raises(ValueError, match="positive"):
        Projector(8, out_dim=0)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        Projector(8, 16, 4)(torch.zeros(2, 9))
