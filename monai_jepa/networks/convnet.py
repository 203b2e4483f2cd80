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
"""Convolutional encoder (MONAI ResNet family) with the same (tokens, pooled) output contract as the ViT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.networks.nets import resnet10, resnet18, resnet34, resnet50, resnet101
from monai.utils import look_up_option

__all__ = ["ConvEncoder", "CONV_ENCODER_ARCHS"]

CONV_ENCODER_ARCHS = {
    "resnet10": resnet10,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
}


class ConvEncoder(nn.Module):
    """
    Encoder wrapping MONAI's ResNet family (:py:func:`monai.networks.nets.resnet18` and siblings) for 2D or 3D inputs.

    The classification head is dropped; the last feature map is returned both as a sequence of tokens (one per
    spatial location, flattened in row-major order) and as its global average, so it can replace
    :py:class:`~monai_jepa.networks.JEPAViT` anywhere. MONAI's Kaiming initialisation is kept and no weights are
    downloaded.

    The defaults give the usual ImageNet stem (7x7 convolution with stride 2, then max pooling; 32x downsampling).
    For small inputs (e.g. 28-64 px) use ``conv1_t_size=3, conv1_t_stride=1, no_max_pool=True`` (8x downsampling).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        in_channels: number of input channels.
        arch: one of ``"resnet10"``, ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"``.
        conv1_t_size: kernel size of the first convolution (int or one per axis).
        conv1_t_stride: stride of the first convolution (int or one per axis).
        no_max_pool: skip the max pooling after the first convolution.
        resnet_kwargs: other arguments of :py:class:`monai.networks.nets.ResNet` (e.g. ``shortcut_type``,
            ``widen_factor``, ``act``, ``norm``).

    Attributes:
        embed_dim: channel count of the last feature map (512 for resnet10/18/34, 2048 for resnet50/101 at
            ``widen_factor=1``).

    Example::

        >>> enc = ConvEncoder(spatial_dims=2, in_channels=1, arch="resnet18")
        >>> tokens, pooled = enc(torch.randn(2, 1, 64, 64))  # (2, 4, 512), (2, 512)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        arch: str = "resnet18",
        conv1_t_size: Sequence[int] | int = 7,
        conv1_t_stride: Sequence[int] | int = 2,
        no_max_pool: bool = False,
        **resnet_kwargs: Any,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1:
            raise ValueError(f"in_channels must be positive, got {in_channels}.")
        reserved = sorted({"pretrained", "n_input_channels", "feed_forward", "num_classes"} & set(resnet_kwargs))
        if reserved:
            raise ValueError(f"ConvEncoder sets {', '.join(reserved)} itself; remove them from the arguments.")
        factory = look_up_option(arch, CONV_ENCODER_ARCHS)
        self.arch = arch
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.resnet = factory(
            pretrained=False,
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_size=conv1_t_size,
            conv1_t_stride=conv1_t_stride,
            no_max_pool=no_max_pool,
            feed_forward=False,
            **resnet_kwargs,
        )
        # after building its stages, MONAI's ResNet holds the output channel count of the last stage in ``in_planes``
        self.embed_dim: int = int(self.resnet.in_planes)
        # the expected input shape, for the error message (built here: TorchScript cannot build it in forward)
        self.shape_hint: str = f"(B, {in_channels}, {', '.join('*' * spatial_dims)})"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: input of shape ``(B, in_channels, *spatial)``.

        Returns:
            ``(tokens, pooled)``: the last feature map flattened to ``(B, h*w[*d], embed_dim)`` and its global
            average ``(B, embed_dim)``.
        """
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"input must have shape {self.shape_hint} for spatial_dims={self.spatial_dims}, got {list(x.shape)}."
            )
        net = self.resnet
        x = net.act(net.bn1(net.conv1(x)))
        if not net.no_max_pool:
            x = net.maxpool(x)
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        tokens = x.flatten(2).transpose(1, 2)
        return tokens, tokens.mean(dim=1)
