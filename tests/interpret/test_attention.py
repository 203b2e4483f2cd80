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

from monai_jepa.interpret import ViTAttentionMap, attention_rollout, capture_attention
from monai_jepa.networks import JEPAViT


def _vit(spatial_dims=2, pooling="mean", img_size=32, patch_size=8, flash=False):
    torch.manual_seed(0)
    return JEPAViT(
        1,
        img_size=img_size,
        patch_size=patch_size,
        spatial_dims=spatial_dims,
        hidden_size=48,
        mlp_dim=96,
        num_layers=3,
        num_heads=3,
        pooling=pooling,
        use_flash_attention=flash,
    ).eval()


def test_rollout_of_identity_attention_is_identity_and_rows_sum_to_one():
    eye = torch.eye(5).expand(2, 3, 5, 5)
    torch.testing.assert_close(attention_rollout([eye, eye]), torch.eye(5).expand(2, 5, 5))
    att = torch.rand(2, 3, 5, 5).softmax(-1)
    rollout = attention_rollout([att, att.flip(-1)])
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))


def test_rollout_follows_a_token_that_every_query_attends_to():
    att = torch.zeros(1, 1, 4, 4)
    att[..., 2] = 1.0  # every query attends to token 2 only
    rollout = attention_rollout([att, att])
    # 0.5 A + 0.5 I composed twice: token 2 receives 0.75 of every other row and all of its own
    assert torch.allclose(rollout[0, :, 2], torch.tensor([0.75, 0.75, 1.0, 0.75]))
    with pytest.raises(ValueError, match="at least one"):
        attention_rollout([])


@pytest.mark.parametrize("method", ["last", "rollout"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_map_shape_sums_and_patch_constant_values_2d(method, pooling):
    vit = _vit(pooling=pooling)
    x = torch.randn(2, 1, 32, 32)
    maps = ViTAttentionMap(vit, method=method)(x)
    assert maps.shape == (2, 1, 32, 32) and maps.dtype == torch.float32
    scores = ViTAttentionMap(vit, method=method).token_scores(x)
    assert scores.shape == (2, 4, 4)
    torch.testing.assert_close(scores.flatten(1).sum(1), torch.ones(2))
    # nearest upsampling: one value per 8x8 patch, equal to the token score
    torch.testing.assert_close(maps[:, 0, ::8, ::8], scores)
    assert torch.equal(maps, ViTAttentionMap(vit, method=method)(x))  # deterministic


def test_map_3d_and_2d_plus_t_tubelets_and_linear_upsampling():
    vit = JEPAViT(
        1,
        img_size=(4, 16, 16),
        patch_size=(2, 8, 8),
        spatial_dims=3,
        hidden_size=48,
        mlp_dim=96,
        num_layers=2,
        num_heads=3,
    ).eval()
    maps = ViTAttentionMap(vit, upsample="linear")(torch.randn(1, 1, 4, 16, 16))
    assert maps.shape == (1, 1, 4, 16, 16) and torch.isfinite(maps).all() and (maps > 0).all()


def test_capture_restores_flash_attention_and_rejects_non_vit():
    vit = _vit(flash=True)
    with capture_attention(vit) as modules:
        assert all(m.save_attn and not m.use_flash_attention for m in modules)
    assert all(b.attn.use_flash_attention and not b.attn.save_attn for b in vit.blocks)
    assert ViTAttentionMap(vit)(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(TypeError, match="ViT encoder"):
        ViTAttentionMap(torch.nn.Conv2d(1, 1, 3))(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError):
        ViTAttentionMap(vit, method="grad")
