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

from monai_jepa.inferers import EmbeddingInferer
from monai_jepa.networks import build_lejepa_model


class _Flat(torch.nn.Module):
    """A stand-in encoder: ``embed`` flattens the image, ``forward`` returns a projection."""

    def embed(self, x):
        return x.flatten(1)

    def forward(self, x):
        return x.flatten(1)[:, :1]


class _Pair(torch.nn.Module):
    """A network without ``embed`` whose forward returns (tokens, pooled)."""

    def forward(self, x):
        return x.flatten(2).transpose(1, 2), x.mean(dim=(2, 3))


def test_embedding_inferer_returns_pooled_features():
    x = torch.rand(2, 1, 2, 2)
    assert torch.equal(EmbeddingInferer()(x, _Flat()), x.flatten(1))
    assert torch.equal(EmbeddingInferer()(x, torch.nn.DataParallel(_Flat())), x.flatten(1))  # unwrapped


def test_embedding_inferer_uses_the_pooled_half_of_a_pair():
    x = torch.arange(8.0).reshape(1, 2, 2, 2)
    out = EmbeddingInferer()(x, _Pair())
    assert torch.equal(out, torch.tensor([[1.5, 5.5]]))


def test_embedding_inferer_on_a_lejepa_model_gives_encoder_features():
    torch.manual_seed(0)
    net = build_lejepa_model("resnet18", 2, 1, proj_out_dim=8, conv1_t_size=3, conv1_t_stride=2, no_max_pool=True)
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        out = EmbeddingInferer()(x, net.eval())
        assert out.shape == (3, 512) and torch.allclose(out, net.embed(x))
