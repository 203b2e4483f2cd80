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

from monai_jepa.networks import ConvEncoder, JEPAViT, LeJEPAModel, PooledEncoder, Projector, build_lejepa_model


def test_forward_returns_projection_tensor_and_embed_pooled_features():
    torch.manual_seed(0)
    encoder = JEPAViT(1, 32, 8, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=2, num_heads=3)
    model = LeJEPAModel(encoder, Projector(48, hidden_dim=32, out_dim=16)).eval()
    x = torch.randn(3, 1, 32, 32)
    z = model(x)
    assert isinstance(z, torch.Tensor) and z.shape == (3, 16)
    h = model.embed(x)
    assert h.shape == (3, 48) and model.embed_dim == 48
    torch.testing.assert_close(h, encoder(x)[1])
    torch.testing.assert_close(z, model.projector(h))
    # a bundle's verify_net_in_out runs a single sample in eval mode
    assert model(x[:1]).shape == (1, 16)


def test_default_projector():
    model = LeJEPAModel(ConvEncoder(spatial_dims=2, in_channels=1, arch="resnet10"))
    assert isinstance(model.projector, Projector)
    assert model.projector.in_dim == 512 and model.projector.out_dim == 64


def test_encoder_without_embed_dim_rejected():
    with pytest.raises(ValueError, match="embed_dim"):
        LeJEPAModel(nn.Linear(4, 4))


@pytest.mark.parametrize(
    "kwargs,x_shape,embed_dim",
    [
        ({"encoder": "resnet10", "spatial_dims": 2, "in_channels": 3}, (2, 3, 32, 32), 512),
        ({"encoder": "resnet10", "spatial_dims": 3, "in_channels": 1, "no_max_pool": True}, (2, 1, 8, 8, 8), 512),
        (
            {
                "encoder": "vit_tiny",
                "spatial_dims": 3,
                "img_size": (4, 32, 32),
                "patch_size": (2, 16, 16),
                "num_layers": 1,
                "pooling": "cls",
            },
            (2, 1, 4, 32, 32),
            192,
        ),
    ],
)
def test_build_lejepa_model(kwargs, x_shape, embed_dim):
    torch.manual_seed(0)
    model = build_lejepa_model(proj_hidden_dim=32, proj_out_dim=8, **kwargs).train()
    x = torch.randn(*x_shape)
    z = model(x)
    assert z.shape == (2, 8) and model.embed(x).shape == (2, embed_dim)
    z.pow(2).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_build_lejepa_model_projector_options():
    model = build_lejepa_model("resnet10", proj_hidden_dim=16, proj_out_dim=4, proj_num_layers=2, proj_norm="layer")
    assert [type(m) for m in model.projector.mlp] == [nn.Linear, nn.LayerNorm, nn.ReLU, nn.Linear]
    assert model.projector.mlp[-1].out_features == 4


def test_build_lejepa_model_errors():
    with pytest.raises(ValueError, match="img_size and patch_size"):
        build_lejepa_model("vit_small", spatial_dims=2, img_size=32)
    with pytest.raises(ValueError, match="patch_size applies to ViT"):
        build_lejepa_model("resnet18", patch_size=16)
    with pytest.raises(ValueError, match="vit_huge"):
        build_lejepa_model("vit_huge")


def test_pooled_encoder_is_the_embedding_network_of_a_trained_model(tmp_path):
    torch.manual_seed(0)
    model = build_lejepa_model("resnet10", spatial_dims=2, in_channels=1).eval()
    net = PooledEncoder(build_lejepa_model("resnet10", spatial_dims=2, in_channels=1).encoder).eval()
    # the encoder.* entries of the full model are the pooled encoder's whole state dict
    encoder_only = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    assert set(net.state_dict()) == set(encoder_only) and any(k.startswith("projector.") for k in model.state_dict())
    net.load_state_dict(model.state_dict(), strict=True)  # the projector entries are left out
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model.embed(x))
    assert net(x).shape == (2, 512) and net.embed_dim == 512
    scripted = torch.jit.script(net)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))
    with pytest.raises(RuntimeError, match="Missing key"):  # the encoder load stays strict
        net.load_state_dict({k: v for k, v in encoder_only.items() if "layer4" not in k})
    with pytest.raises(ValueError, match="embed_dim"):
        PooledEncoder(nn.Linear(2, 2))


def test_pooled_encoder_token_mean_of_a_masked_conv_encoder():
    from monai.networks.nets import UNet

    from monai_jepa.networks import MaskedConvEncoder

    torch.manual_seed(0)
    enc = MaskedConvEncoder(UNet(2, 1, 2, (8, 16, 32), (2, 2), num_res_units=1), img_size=(32, 32)).eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        tokens, pooled = enc(x)
        mean = PooledEncoder(enc, token_mean=True)
        assert mean.embed_dim == enc.embed_dim and torch.equal(mean(x), tokens.mean(1))
        plain = PooledEncoder(enc)
        assert plain.embed_dim == enc.pooled_dim == pooled.shape[1] and torch.equal(plain(x), pooled)
