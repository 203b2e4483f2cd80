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
from monai.networks.nets import UNETR

from monai_jepa.engines import atomic_torch_save
from monai_jepa.networks import (
    JEPAPredictor,
    JEPASegmenter,
    JEPAViT,
    MaskedLatentModel,
    build_pretrained,
    load_pretrained_encoder,
    unetr_from_jepa_vit,
)


def _vit(spatial_dims=2, patch=16, layers=12, img=32, **kwargs) -> JEPAViT:
    torch.manual_seed(0)
    return JEPAViT(1, img_size=img, patch_size=patch, spatial_dims=spatial_dims, hidden_size=48, mlp_dim=96,
                   num_layers=layers, num_heads=3, **kwargs)  # fmt: skip


def test_unetr_weight_copy():
    vit = _vit(qkv_bias=True, pooling="cls")
    net, copied, skipped = unetr_from_jepa_vit(vit, 1, 2, img_size=32, feature_size=8, return_keys=True)
    assert isinstance(net, UNETR)
    dst = net.state_dict()
    transferred = [k for k in vit.state_dict() if k != "cls_token"]
    for k in transferred:
        assert f"vit.{k}" in copied
        assert torch.equal(dst[f"vit.{k}"], vit.state_dict()[k]), k
    assert all(not k.startswith("vit.") or "cross_attn" in k for k in skipped)
    assert net.vit.blocks[0].attn.num_heads == 3
    assert "cls_token" not in dst and net(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_unetr_from_state_dict_resamples_position_embeddings():
    vit = _vit()
    with pytest.raises(ValueError, match="num_heads"):
        unetr_from_jepa_vit(vit.state_dict(), 1, 2, img_size=32)
    # same tokens from the pretrained ViT and from UNETR's copy (the sincos table lands in the learnable one)
    net = unetr_from_jepa_vit(vit.state_dict(), 1, 2, img_size=32, num_heads=3, feature_size=8).eval()
    x = torch.randn(1, 1, 32, 32)
    assert torch.allclose(net.vit(x)[0], vit.eval()(x)[0], atol=1e-5)
    net = unetr_from_jepa_vit(vit.state_dict(), 1, 2, img_size=64, num_heads=3, feature_size=8)
    assert net.vit.patch_embedding.position_embeddings.shape == (1, 16, 48)
    assert torch.equal(net.vit.blocks[11].mlp.linear2.weight, vit.blocks[11].mlp.linear2.weight)


def test_unetr_mismatched_config_raises():
    with pytest.raises(ValueError, match="patch_size 16"):
        unetr_from_jepa_vit(_vit(patch=8), 1, 2, img_size=32)
    with pytest.raises(ValueError, match="12 transformer blocks"):
        unetr_from_jepa_vit(_vit(layers=2), 1, 2, img_size=32)
    with pytest.raises(ValueError, match="in_channels=3"):
        unetr_from_jepa_vit(_vit(), 3, 2, img_size=32)
    state = _vit().state_dict()
    state["blocks.0.mlp.linear1.weight"] = torch.zeros(95, 48)  # one tensor that cannot transfer
    with pytest.raises(ValueError, match="did not transfer"):
        unetr_from_jepa_vit(state, 1, 2, img_size=32, num_heads=3)


@pytest.mark.parametrize(
    "spatial_dims, img, patch, shape",
    [(2, 16, 4, (2, 1, 16, 16)), (2, 16, 8, (1, 1, 32, 16)), (3, (4, 16, 16), (2, 8, 8), (1, 1, 4, 16, 16))],
)
def test_segmenter_shapes_and_gradients(spatial_dims, img, patch, shape):
    vit = _vit(spatial_dims, patch=patch, layers=2, img=img)
    net = JEPASegmenter(vit, out_channels=3, feature_size=4)
    y = net(torch.randn(*shape))
    assert y.shape == (shape[0], 3, *shape[2:])
    y.square().mean().backward()
    assert vit.patch_embedding.patch_embeddings.weight.grad.abs().sum() > 0
    assert vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_segmenter_layers_and_freeze():
    vit = _vit(patch=4, layers=4, img=16)
    net = JEPASegmenter(vit, out_channels=2, feature_size=4, freeze_encoder=True)
    assert net.feature_layers == [1, 2, 3, 4]
    maps = net.hidden_states(torch.randn(2, 1, 16, 16))
    assert [m.shape for m in maps] == [torch.Size([2, 48, 4, 4])] * 4
    # the last map is the encoder's output tokens
    x = torch.randn(2, 1, 16, 16)
    assert torch.allclose(net.hidden_states(x)[-1].flatten(2).transpose(1, 2), vit(x)[0], atol=1e-6)
    assert all(not p.requires_grad for p in vit.parameters())
    with pytest.raises(ValueError, match="feature_layers"):
        JEPASegmenter(vit, 2, feature_layers=[3, 2])
    with pytest.raises(ValueError, match="feature_layers"):
        JEPASegmenter(vit, 2, feature_layers=[5])


def test_load_pretrained_encoder(tmp_path):
    vit = _vit(patch=4, layers=2, img=16)
    model = MaskedLatentModel(vit, JEPAPredictor(vit.grid_size, 48, predictor_dim=48, depth=1, num_heads=3))
    path = tmp_path / "checkpoint_00000010.pt"
    atomic_torch_save({"model": model.state_dict(), "engine": {"iteration": 10}}, path)
    torch.manual_seed(1)
    fresh = JEPAViT(1, img_size=16, patch_size=4, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=2, num_heads=3)
    assert load_pretrained_encoder(path, fresh) is fresh
    for k, v in vit.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_pretrained_encoder(tmp_path / "missing.pt", fresh)
    with pytest.raises(RuntimeError, match="no entries with prefix 'backbone.'"):
        load_pretrained_encoder(path, fresh, prefix="backbone.")
    deeper = JEPAViT(
        1, img_size=16, patch_size=4, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=3, num_heads=3
    )
    with pytest.raises(RuntimeError, match=r"(?s)checkpoint_00000010\.pt.*blocks\.2"):
        load_pretrained_encoder(path, deeper)


def test_segmenter_factories_build_fresh_pretrained_encoders(tmp_path):
    # what `"_mode_": "callable"` makes of the bundle's network definitions: factories without arguments
    from functools import partial

    vit = _vit(patch=4, layers=2, img=16)
    path = tmp_path / "encoder.pt"
    atomic_torch_save({"model": {f"encoder.{k}": v for k, v in vit.state_dict().items()}}, path)
    vit_def = partial(_vit, patch=4, layers=2, img=16)
    pretrained = partial(JEPASegmenter, encoder=partial(build_pretrained, vit_def, path), out_channels=2)
    a, b = pretrained(), pretrained()
    assert a.encoder is not b.encoder  # one encoder per call
    for k, v in vit.state_dict().items():
        assert torch.equal(a.encoder.state_dict()[k], v) and torch.equal(b.encoder.state_dict()[k], v), k
    with torch.no_grad():
        a.encoder.blocks[0].mlp.linear1.weight.add_(1.0)  # training one leaves the other as loaded
    assert torch.equal(b.encoder.blocks[0].mlp.linear1.weight, vit.blocks[0].mlp.linear1.weight)
    assert a(torch.rand(1, 1, 16, 16)).shape == (1, 2, 16, 16)
    with pytest.raises(RuntimeError, match="no entries with prefix 'net.'"):
        build_pretrained(vit_def, path, prefix="net.")
