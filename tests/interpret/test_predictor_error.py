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
import torch.nn as nn
from monai.inferers import SlidingWindowInferer
from monai.networks.nets import UNet

from monai_jepa.interpret import PredictorErrorMap, region_tiles
from monai_jepa.networks import JEPAPredictor, JEPAViT, MaskedConvEncoder, MaskedLatentModel


def test_region_tiles_cover_the_grid_with_equal_regions():
    tiles = region_tiles((5, 3), (2, 2), (2, 2))
    assert tiles.shape == (6, 4)  # starts 0, 2, 3 on axis 0 and 0, 1 on axis 1
    assert set(tiles.flatten().tolist()) == set(range(15))
    assert torch.equal(region_tiles((4, 4), (2, 2), (2, 2))[0], torch.tensor([0, 1, 4, 5]))
    with pytest.raises(ValueError, match="positive"):
        region_tiles((4, 4), (0, 2), (2, 2))


class _Spy(nn.Module):
    """Encoder / predictor pair recording the context and target of each call; the prediction is 0."""

    def __init__(self, grid=(4, 4), dim=6):
        super().__init__()
        self.grid_size, self.calls = grid, []
        self.encoder, self.predictor = self, _Predictor(self)
        self.table = torch.randn(1, grid[0] * grid[1], dim)

    def forward(self, x, indices=None):
        tokens = self.table.expand(x.shape[0], -1, -1)
        if indices is None:
            return tokens, tokens.mean(1)
        return torch.gather(tokens, 1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])), tokens.mean(1)


class _Predictor(nn.Module):
    def __init__(self, spy):
        super().__init__()
        self.spy = [spy]

    def forward(self, context_tokens, context_idx, target_idx):
        self.spy[0].calls.append((context_idx.clone(), target_idx.clone()))
        return torch.zeros(*target_idx.shape, context_tokens.shape[-1])


def test_each_region_is_predicted_from_a_context_that_excludes_it():
    spy = _Spy()
    errors = PredictorErrorMap(spy, region_size=2, regions_per_batch=3, error="l2").token_errors(
        torch.zeros(1, 1, 8, 8)
    )
    targets = torch.cat([t for _, t in spy.calls])
    assert sorted(targets.flatten().tolist()) == list(range(16))
    for ctx, tgt in spy.calls:
        for c, t in zip(ctx, tgt):
            assert not set(c.tolist()) & set(t.tolist()) and len(c) + len(t) == 16
    # with a zero prediction the l2 error of a token is the mean square of its layer-normalised embedding: 1
    torch.testing.assert_close(errors, torch.ones(1, 4, 4), atol=1e-4, rtol=0)


def _vit_model():
    torch.manual_seed(0)
    enc = JEPAViT(1, img_size=32, patch_size=8, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=2, num_heads=3)
    return MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, 48, predictor_dim=48, depth=1, num_heads=3)).eval()


@pytest.mark.parametrize("error", ["l1", "l2", "cosine"])
def test_vit_error_map_shape_determinism_and_overlap_average(error):
    model, x = _vit_model(), torch.randn(2, 1, 32, 32)
    maps = PredictorErrorMap(model, region_size=2, error=error)(x)
    assert maps.shape == (2, 1, 32, 32) and (maps >= 0).all() and torch.isfinite(maps).all()
    assert torch.equal(maps, PredictorErrorMap(model, region_size=2, error=error)(x))
    # a batch gives the same maps as the samples one at a time
    torch.testing.assert_close(maps[1:], PredictorErrorMap(model, region_size=2, error=error)(x[1:]))
    overlapping = PredictorErrorMap(model, region_size=2, stride=1, error=error).token_errors(x)
    assert overlapping.shape == (2, 4, 4) and not torch.allclose(overlapping, maps[:, 0, ::8, ::8])
    # a stride larger than the region leaves row / column 1 in no region (starts 0, 2, 3): error 0 there, not NaN
    sparse = PredictorErrorMap(model, region_size=1, stride=2, error=error).token_errors(x)
    assert torch.isfinite(sparse).all() and (sparse[:, 1, :] == 0).all() and (sparse[:, :, 1] == 0).all()
    assert (sparse[:, 0, 0] > 0).all()


def test_conv_encoder_in_a_sliding_window_over_a_larger_volume():
    torch.manual_seed(0)
    enc = MaskedConvEncoder(UNet(3, 1, 2, channels=(8, 16, 32), strides=(2, 2), num_res_units=1), img_size=16)
    model = MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, enc.embed_dim, predictor_dim=48, depth=1, num_heads=3))
    mapper = PredictorErrorMap(model.eval(), region_size=2, upsample="linear")
    out = SlidingWindowInferer((16, 16, 16), sw_batch_size=2, overlap=0.5)(torch.randn(1, 1, 24, 20, 16), mapper)
    assert out.shape == (1, 1, 24, 20, 16) and torch.isfinite(out).all() and (out > 0).all()


def test_errors_name_the_problem():
    model = _vit_model()
    with pytest.raises(ValueError, match="SlidingWindowInferer"):
        PredictorErrorMap(model)(torch.randn(1, 1, 40, 40))
    with pytest.raises(ValueError, match="whole token grid"):
        PredictorErrorMap(model, region_size=4)
    with pytest.raises(TypeError, match="encoder"):
        PredictorErrorMap(nn.Linear(2, 2))
    with pytest.raises(ValueError):
        PredictorErrorMap(model, error="huber")
