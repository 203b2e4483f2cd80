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

from monai_jepa.networks import ConvEncoder


@pytest.mark.parametrize(
    "spatial_dims,arch,size,kwargs,grid,embed_dim",
    [
        (2, "resnet18", 64, {}, (2, 2), 512),  # ImageNet stem: 32x downsampling
        (2, "resnet10", 32, {"conv1_t_size": 3, "conv1_t_stride": 1, "no_max_pool": True}, (4, 4), 512),  # 8x
        (2, "resnet50", 64, {}, (2, 2), 2048),
        (3, "resnet10", 32, {}, (1, 1, 1), 512),
        (2, "resnet34", 32, {}, (1, 1), 512),
        (3, "resnet10", 16, {"conv1_t_size": 3, "conv1_t_stride": 1, "no_max_pool": True}, (2, 2, 2), 512),
    ],
)
def test_shapes_and_embed_dim(spatial_dims, arch, size, kwargs, grid, embed_dim):
    torch.manual_seed(0)
    enc = ConvEncoder(spatial_dims=spatial_dims, in_channels=2, arch=arch, **kwargs).eval()
    assert enc.embed_dim == embed_dim
    tokens, pooled = enc(torch.randn(2, 2, *(size,) * spatial_dims))
    assert tokens.shape == (2, math.prod(grid), embed_dim) and pooled.shape == (2, embed_dim)
    torch.testing.assert_close(pooled, tokens.mean(dim=1))
    assert (tokens >= 0).all() and tokens.max() > 0  # last block ends with a ReLU


def test_tokens_are_the_flattened_last_feature_map():
    torch.manual_seed(0)
    enc = ConvEncoder(spatial_dims=2, in_channels=1, arch="resnet10").eval()
    x = torch.randn(1, 1, 96, 64)
    r = enc.resnet
    fmap = r.layer4(r.layer3(r.layer2(r.layer1(r.maxpool(r.act(r.bn1(r.conv1(x))))))))
    tokens, pooled = enc(x)
    assert fmap.shape == (1, 512, 3, 2)
    torch.testing.assert_close(tokens[0, 3], fmap[0, :, 1, 1])  # row-major: token index h * w_size + w
    # pooled equals MONAI ResNet's own global-average-pooled output (no classification head)
    torch.testing.assert_close(pooled, r(x))


@pytest.mark.parametrize("spatial_dims,fmt", [(2, torch.channels_last), (3, torch.channels_last_3d)])
def test_channels_last_matches_contiguous(spatial_dims, fmt):
    torch.manual_seed(0)
    enc = ConvEncoder(spatial_dims=spatial_dims, in_channels=3, arch="resnet10").eval()
    x = torch.randn(2, 3, *(32,) * spatial_dims)
    tokens, pooled = enc(x)
    enc_cl = enc.to(memory_format=fmt)
    tokens_cl, pooled_cl = enc_cl(x.contiguous(memory_format=fmt))
    torch.testing.assert_close(tokens_cl, tokens, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pooled_cl, pooled, atol=1e-4, rtol=1e-4)


def test_kaiming_initialisation_kept():
    torch.manual_seed(0)
    conv1 = ConvEncoder(spatial_dims=2, in_channels=1, arch="resnet18").resnet.conv1
    fan_out = conv1.out_channels * math.prod(conv1.kernel_size)
    assert conv1.kernel_size == (7, 7) and conv1.stride == (2, 2)
    assert abs(conv1.weight.std().item() / math.sqrt(2.0 / fan_out) - 1.0) < 0.1


def test_invalid_arguments():
    with pytest.raises(ValueError, match="resnet152"):
        ConvEncoder(arch="resnet152")
    with pytest.raises(ValueError, match="spatial_dims"):
        ConvEncoder(spatial_dims=1)
    with pytest.raises(ValueError, match="num_classes"):
        ConvEncoder(num_classes=10)
    enc = ConvEncoder(spatial_dims=2, in_channels=1, arch="resnet10")
    with pytest.raises(ValueError, match=r"\(B, 1, \*, \*\)"):
        enc(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="spatial_dims=2"):
        enc(torch.zeros(2, 1, 8, 32, 32))
