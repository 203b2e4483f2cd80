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

from __future__ import annotations

import pytest
import torch

from monai_jepa.networks import JEPAPredictor, JEPAViT
from monai_jepa.transforms import MultiBlockMaskGenerator

CASES = {
    "2d": dict(img_size=(16, 16), patch_size=4, spatial_dims=2),
    "3d": dict(img_size=(8, 8, 8), patch_size=4, spatial_dims=3),
    "2d+t": dict(img_size=(4, 16, 16), patch_size=(2, 4, 4), spatial_dims=3),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and much faster than on several busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _predictor(grid, **kwargs) -> JEPAPredictor:
    torch.manual_seed(0)
    config = dict(embed_dim=48, predictor_dim=24, depth=2, num_heads=2)
    config.update(kwargs)
    return JEPAPredictor(grid, **config).eval()


@pytest.mark.parametrize("case", sorted(CASES))
def test_shapes_with_encoder_and_masks(case):
    encoder = JEPAViT(in_channels=1, hidden_size=48, mlp_dim=96, num_layers=1, num_heads=3, **CASES[case]).eval()
    predictor = _predictor(encoder.grid_size)
    gen = MultiBlockMaskGenerator(encoder.grid_size, num_blocks=2, block_scale=(0.1, 0.2), min_keep=2, seed=0)
    ctx, tgt = gen(batch_size=3)
    x = torch.randn(3, 1, *encoder.img_size)
    tokens, _ = encoder(x, indices=ctx)
    pred = predictor(tokens, ctx, tgt)
    assert pred.shape == (3, gen.num_target, 48) and torch.isfinite(pred).all()
    assert predictor.grid_size == encoder.grid_size and predictor.position_embeddings.shape[1] == encoder.num_tokens


def test_predictions_depend_on_target_positions():
    predictor = _predictor((4, 4))
    ctx = torch.tensor([[0, 1, 2, 3, 4, 5]])
    tokens = torch.randn(1, 6, 48)
    a = predictor(tokens, ctx, torch.tensor([[10, 11, 15]]))
    b = predictor(tokens, ctx, torch.tensor([[15, 10, 11]]))
    c = predictor(tokens, ctx, torch.tensor([[12, 13, 14]]))
    assert torch.allclose(b, a[:, [2, 0, 1]], atol=1e-5), "one prediction per target position, in target order"
    assert (a - c).abs().amax(-1).min() > 1e-3, "other positions give other predictions"
    # the same target position reads the context: other context tokens or positions change the prediction
    assert not torch.allclose(a, predictor(torch.randn(1, 6, 48), ctx, torch.tensor([[10, 11, 15]])))
    assert not torch.allclose(a, predictor(tokens, ctx + 6, torch.tensor([[10, 11, 15]])))


def test_gradients_reach_context_and_mask_token():
    predictor = _predictor((4, 4)).train()
    tokens = torch.randn(2, 5, 48, requires_grad=True)
    ctx = torch.arange(5).repeat(2, 1)
    tgt = torch.tensor([[8, 9], [14, 15]])
    predictor(tokens, ctx, tgt).square().sum().backward()
    assert tokens.grad.abs().sum() > 0 and predictor.mask_token.grad.abs().sum() > 0
    assert not predictor.position_embeddings.requires_grad, "sincos position embeddings are fixed"
    assert all(p.grad is not None for p in predictor.parameters() if p.requires_grad)


def test_learnable_positions_and_token_count():
    predictor = _predictor(16, pos_embed="learnable")
    assert predictor.position_embeddings.requires_grad and predictor.position_embeddings.shape == (1, 16, 24)
    out = predictor(torch.randn(2, 4, 48), torch.arange(4).repeat(2, 1), torch.tensor([[4, 5], [6, 7]]))
    assert out.shape == (2, 2, 48)


def test_bad_arguments():
    predictor = _predictor((4, 4))
    tokens, ctx, tgt = torch.randn(2, 3, 48), torch.arange(3).repeat(2, 1), torch.tensor([[5], [6]])
    with pytest.raises(ValueError, match="target_idx must lie"):
        predictor(tokens, ctx, tgt + 16)
    with pytest.raises(ValueError, match="context_idx must have shape"):
        predictor(tokens, ctx[:, :2], tgt)
    with pytest.raises(ValueError, match="context_tokens"):
        predictor(torch.randn(2, 3, 32), ctx, tgt)
    with pytest.raises(ValueError, match="integer"):
        predictor(tokens, ctx.float(), tgt)
    with pytest.raises(ValueError, match="divisible by 6"):
        JEPAPredictor((2, 4, 4), embed_dim=48, predictor_dim=32, num_heads=2)
    with pytest.raises(ValueError, match="learnable"):
        JEPAPredictor(16, embed_dim=48)
    with pytest.raises(ValueError, match="spatial_dims"):
        JEPAPredictor((4, 4), embed_dim=48, spatial_dims=3)
    with pytest.raises(ValueError, match="num_heads"):
        JEPAPredictor((4, 4), embed_dim=48, predictor_dim=24, num_heads=5)
