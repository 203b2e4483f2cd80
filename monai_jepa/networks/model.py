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
"""LeJEPA network: an encoder followed by a projector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.utils import look_up_option

from monai_jepa.networks.convnet import CONV_ENCODER_ARCHS, ConvEncoder
from monai_jepa.networks.projector import Projector
from monai_jepa.networks.vit import JEPA_VIT_PRESETS, vit_base, vit_small, vit_tiny

__all__ = ["LeJEPAModel", "PooledEncoder", "build_lejepa_model", "SUPPORTED_ENCODERS"]

_VIT_FACTORIES = {"vit_tiny": vit_tiny, "vit_small": vit_small, "vit_base": vit_base}
SUPPORTED_ENCODERS = (*CONV_ENCODER_ARCHS, *JEPA_VIT_PRESETS)


class LeJEPAModel(nn.Module):
    """
    Encoder + projector trained with the LeJEPA objective.

    ``forward`` returns one tensor (the projections), so the model can be a MONAI bundle ``network_def``;
    ``embed`` returns the pooled encoder features used by downstream probes.

    Args:
        encoder: a module whose forward returns ``(tokens, pooled)`` with ``pooled`` of shape ``(B, embed_dim)``
            and which has an ``embed_dim`` attribute (:py:class:`~monai_jepa.networks.JEPAViT`,
            :py:class:`~monai_jepa.networks.ConvEncoder`).
        projector: module mapping ``(B, embed_dim)`` to ``(B, out_dim)``; defaults to
            ``Projector(encoder.embed_dim)`` (``embed_dim -> 2048 -> 2048 -> 64``).

    Example::

        >>> model = LeJEPAModel(ConvEncoder(spatial_dims=2, in_channels=1), Projector(512, 256, 32))
        >>> z = model(torch.randn(4, 1, 64, 64))  # (4, 32)
        >>> h = model.embed(torch.randn(4, 1, 64, 64))  # (4, 512)
    """

    def __init__(self, encoder: nn.Module, projector: nn.Module | None = None) -> None:
        super().__init__()
        embed_dim = getattr(encoder, "embed_dim", None)
        if not isinstance(embed_dim, int):
            raise ValueError(f"encoder must have an integer `embed_dim` attribute, got {embed_dim!r}.")
        self.encoder = encoder
        self.projector = Projector(embed_dim) if projector is None else projector
        self.embed_dim = embed_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input of shape ``(B, C, *spatial)``.

        Returns:
            pooled encoder features of shape ``(B, embed_dim)``.
        """
        return self.encoder(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input of shape ``(B, C, *spatial)``.

        Returns:
            projections of shape ``(B, out_dim)``.
        """
        return self.projector(self.embed(x))


class PooledEncoder(nn.Module):
    """
    The embedding network of a trained model: ``forward`` returns one feature vector per input, the pooled output of
    an encoder whose forward returns ``(tokens, pooled)``, or with ``token_mean`` the mean of its tokens.

    Its weights are the ``encoder.*`` entries of a :py:class:`LeJEPAModel` / ``MaskedLatentModel`` state dict, so it
    is the network to release and export (TorchScript) for feature extraction, at the size of the encoder alone.
    ``load_state_dict`` takes a whole training state dict: the entries outside ``encoder.`` (projector, predictor)
    are left out, and the load of the encoder stays strict.

    Args:
        encoder: a module with ``forward(x) -> (tokens (B, N, D), pooled (B, P))`` and an integer ``embed_dim``
            attribute (``D``; ``P`` is its ``pooled_dim`` where it has one, e.g.
            :py:class:`~monai_jepa.networks.MaskedConvEncoder`, else ``D``).
        token_mean: return the mean of the tokens ``(B, D)`` instead of ``pooled``: for a
            :py:class:`~monai_jepa.networks.MaskedConvEncoder`, whose pooled output (the mean of the deepest,
            instance-normalised UNet feature map) varies little from one input to the next.

    Example::

        >>> model = build_lejepa_model("resnet18", spatial_dims=2, in_channels=1)
        >>> net = PooledEncoder(model.encoder)  # net.state_dict() keys: "encoder.*"
        >>> net(torch.randn(2, 1, 64, 64)).shape  # (2, 512)
    """

    def __init__(self, encoder: nn.Module, token_mean: bool = False) -> None:
        super().__init__()
        embed_dim = getattr(encoder, "embed_dim", None)
        if not isinstance(embed_dim, int):
            raise ValueError(f"encoder must have an integer `embed_dim` attribute, got {embed_dim!r}.")
        self.encoder = encoder
        self.token_mean = bool(token_mean)
        self.embed_dim = embed_dim if self.token_mean else int(getattr(encoder, "pooled_dim", embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input of shape ``(B, C, *spatial)``.

        Returns:
            features of shape ``(B, embed_dim)``.
        """
        tokens, pooled = self.encoder(x)
        return tokens.mean(1) if self.token_mean else pooled

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load the ``encoder.*`` entries of ``state_dict`` (e.g. a whole training model's); see ``nn.Module``."""
        kept = {k: v for k, v in state_dict.items() if k.startswith("encoder.")}
        return super().load_state_dict(kept, strict=strict, assign=assign)


def build_lejepa_model(
    encoder: str = "resnet18",
    spatial_dims: int = 2,
    in_channels: int = 1,
    img_size: Sequence[int] | int | None = None,
    patch_size: Sequence[int] | int | None = None,
    proj_hidden_dim: int = 2048,
    proj_out_dim: int = 64,
    proj_num_layers: int = 3,
    proj_norm: str = "batch",
    **encoder_kwargs: Any,
) -> LeJEPAModel:
    """
    Build a :py:class:`LeJEPAModel` from an encoder name.

    Args:
        encoder: ``"resnet10"``, ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"`` (a
            :py:class:`~monai_jepa.networks.ConvEncoder`) or ``"vit_tiny"``, ``"vit_small"``, ``"vit_base"``
            (a :py:class:`~monai_jepa.networks.JEPAViT` preset).
        spatial_dims: 2, or 3 for volumes and 2D+t.
        in_channels: number of input channels.
        img_size: input spatial size; required for ViT encoders, ignored by ResNets (which take any size).
        patch_size: patch (tubelet) size; required for ViT encoders, not accepted for ResNets.
        proj_hidden_dim: projector hidden width.
        proj_out_dim: projector output dimension.
        proj_num_layers: number of projector linear layers.
        proj_norm: projector hidden norm, ``"batch"``, ``"layer"`` or ``"none"``.
        encoder_kwargs: other arguments of the encoder (e.g. ``num_layers``, ``pooling`` and
            ``gradient_checkpointing`` for ViTs; ``conv1_t_stride`` and ``no_max_pool`` for ResNets).

    Returns:
        the model; ``model(x)`` has shape ``(B, proj_out_dim)`` and ``model.embed(x)`` ``(B, embed_dim)``.

    Example::

        >>> model = build_lejepa_model("vit_small", spatial_dims=3, in_channels=1, img_size=(16, 112, 112),
        ...                            patch_size=(2, 16, 16), num_layers=6, gradient_checkpointing=True)
    """
    encoder = look_up_option(encoder, SUPPORTED_ENCODERS)
    net: nn.Module
    if encoder in _VIT_FACTORIES:
        if img_size is None or patch_size is None:
            raise ValueError(f"encoder '{encoder}' needs img_size and patch_size, got {img_size} and {patch_size}.")
        net = _VIT_FACTORIES[encoder](
            in_channels=in_channels,
            img_size=img_size,
            patch_size=patch_size,
            spatial_dims=spatial_dims,
            **encoder_kwargs,
        )
    else:
        if patch_size is not None:
            raise ValueError(f"patch_size applies to ViT encoders only, got {patch_size} for '{encoder}'.")
        net = ConvEncoder(spatial_dims=spatial_dims, in_channels=in_channels, arch=encoder, **encoder_kwargs)
    projector = Projector(net.embed_dim, proj_hidden_dim, proj_out_dim, proj_num_layers, proj_norm)
    return LeJEPAModel(net, projector)
