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
"""Vision Transformer encoder for 2D, 3D and 2D+t inputs that can encode a subset of tokens."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import PatchEmbeddingBlock, TransformerBlock
from monai.networks.layers import trunc_normal_
from monai.utils import look_up_option
from torch.utils.checkpoint import checkpoint

__all__ = ["JEPAViT", "JEPA_VIT_PRESETS", "vit_tiny", "vit_small", "vit_base"]

SUPPORTED_POOLING = ("mean", "cls")
SUPPORTED_POS_EMBED = ("sincos", "learnable")

JEPA_VIT_PRESETS: dict[str, dict[str, int]] = {
    "vit_tiny": {"hidden_size": 192, "num_heads": 3, "mlp_dim": 768, "num_layers": 12},
    "vit_small": {"hidden_size": 384, "num_heads": 6, "mlp_dim": 1536, "num_layers": 12},
    "vit_base": {"hidden_size": 768, "num_heads": 12, "mlp_dim": 3072, "num_layers": 12},
}


def _per_axis(value: Sequence[int] | int, spatial_dims: int, name: str) -> tuple[int, ...]:
    """Expand ``value`` to one positive int per spatial axis, or raise a ValueError naming ``name``."""
    values = (value,) * spatial_dims if isinstance(value, numbers.Integral) else tuple(value)
    if len(values) != spatial_dims:
        raise ValueError(f"{name} must be an int or a sequence of {spatial_dims} ints, got {value!r}.")
    if not all(isinstance(v, numbers.Integral) and v > 0 for v in values):
        raise ValueError(f"{name} must contain positive ints, got {value!r}.")
    return tuple(int(v) for v in values)


class JEPAViT(nn.Module):
    """
    Vision Transformer encoder for JEPA-style self-supervised learning, built on MONAI's
    :py:class:`~monai.networks.blocks.PatchEmbeddingBlock` and :py:class:`~monai.networks.blocks.TransformerBlock`.

    One code path serves 2D images (``spatial_dims=2``), 3D volumes and 2D+t sequences (``spatial_dims=3``;
    for 2D+t the time axis is the first spatial axis, input ``(B, C, T, H, W)``, and an anisotropic tubelet such as
    ``patch_size=(2, 16, 16)`` groups frames). Tokens are numbered in row-major order over the token grid
    :py:attr:`grid_size`, which is the order expected by ``indices`` in :py:meth:`forward`.

    Submodule names follow MONAI's ``ViT`` (``patch_embedding``, ``blocks``, ``norm``, ``cls_token``) so weights
    can be copied into MONAI networks that embed a ``ViT`` (e.g. ``UNETR.vit``) with
    ``monai.networks.utils.copy_model_state``.

    Args:
        in_channels: number of input channels.
        img_size: input spatial size, an int or one int per spatial axis.
        patch_size: patch (tubelet) size, an int or one int per spatial axis; must divide ``img_size`` per axis.
        spatial_dims: number of spatial dimensions, 2 or 3.
        hidden_size: token embedding dimension.
        mlp_dim: hidden dimension of the transformer MLPs.
        num_layers: number of transformer blocks.
        num_heads: number of attention heads; must divide ``hidden_size``.
        pos_embed_type: ``"sincos"`` (fixed; ``hidden_size`` must be divisible by 4 in 2D, by 6 in 3D)
            or ``"learnable"``.
        dropout_rate: dropout rate of the embeddings, attention and MLPs.
        qkv_bias: whether the query/key/value projection has a bias.
        pooling: ``"mean"`` averages the encoded tokens; ``"cls"`` prepends a learnable class token and returns it.
        gradient_checkpointing: recompute each transformer block in the backward pass instead of storing its
            activations, trading compute for memory (useful for 3D inputs). Only active when gradients are enabled.
        use_flash_attention: use ``torch.nn.functional.scaled_dot_product_attention`` in the attention blocks.
            MONAI applies attention dropout in that path even in eval mode, so it requires ``dropout_rate == 0``.

    Attributes:
        grid_size: number of tokens per spatial axis.
        num_tokens: total number of patch tokens, ``prod(grid_size)``.
        embed_dim: token and pooled feature dimension (``hidden_size``).

    Example::

        >>> net = JEPAViT(in_channels=1, img_size=32, patch_size=8, spatial_dims=2, hidden_size=48,
        ...               mlp_dim=96, num_layers=2, num_heads=3)
        >>> tokens, pooled = net(torch.randn(2, 1, 32, 32))  # (2, 16, 48), (2, 48)
        >>> keep = torch.tensor([[0, 1, 2, 3], [12, 13, 14, 15]])
        >>> tokens, pooled = net(torch.randn(2, 1, 32, 32), indices=keep)  # (2, 4, 48), (2, 48)
    """

    def __init__(
        self,
        in_channels: int,
        img_size: Sequence[int] | int,
        patch_size: Sequence[int] | int,
        spatial_dims: int = 3,
        hidden_size: int = 768,
        mlp_dim: int = 3072,
        num_layers: int = 12,
        num_heads: int = 12,
        pos_embed_type: str = "sincos",
        dropout_rate: float = 0.0,
        qkv_bias: bool = False,
        pooling: str = "mean",
        gradient_checkpointing: bool = False,
        use_flash_attention: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or num_layers < 1 or mlp_dim < 1:
            raise ValueError(
                f"in_channels, num_layers and mlp_dim must be positive, got {in_channels}, {num_layers}, {mlp_dim}."
            )
        if hidden_size < 1 or num_heads < 1 or hidden_size % num_heads != 0:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads}).")
        if not 0.0 <= dropout_rate <= 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1], got {dropout_rate}.")
        if use_flash_attention and dropout_rate > 0:
            raise ValueError(f"use_flash_attention requires dropout_rate=0 (got {dropout_rate}).")
        self.img_size = _per_axis(img_size, spatial_dims, "img_size")
        self.patch_size = _per_axis(patch_size, spatial_dims, "patch_size")
        for axis, (i, p) in enumerate(zip(self.img_size, self.patch_size)):
            if i % p != 0:
                raise ValueError(
                    f"img_size {self.img_size} must be divisible by patch_size {self.patch_size} on every axis "
                    f"(axis {axis}: {i} % {p} = {i % p})."
                )
        pos_embed_type = look_up_option(pos_embed_type, SUPPORTED_POS_EMBED)
        if pos_embed_type == "sincos" and hidden_size % (2 * spatial_dims) != 0:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by {2 * spatial_dims} for a {spatial_dims}D "
                "sincos position embedding; use another hidden_size or pos_embed_type='learnable'."
            )
        self.pooling = look_up_option(pooling, SUPPORTED_POOLING)
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.grid_size = tuple(i // p for i, p in zip(self.img_size, self.patch_size))
        self.num_tokens = math.prod(self.grid_size)
        self.embed_dim = hidden_size
        self.gradient_checkpointing = gradient_checkpointing

        self.patch_embedding = PatchEmbeddingBlock(
            in_channels=in_channels,
            img_size=self.img_size,
            patch_size=self.patch_size,
            hidden_size=hidden_size,
            num_heads=num_heads,
            proj_type="conv",
            pos_embed_type=pos_embed_type,
            dropout_rate=dropout_rate,
            spatial_dims=spatial_dims,
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(
                hidden_size, mlp_dim, num_heads, dropout_rate, qkv_bias, use_flash_attention=use_flash_attention
            )
            for _ in range(num_layers)
        )
        for block in self.blocks:
            # The cross-attention branch is never used here. MONAI 1.5 builds it anyway (1.6 uses nn.Identity):
            # drop it so checkpoints match across MONAI versions, and freeze the unused norm so every trainable
            # parameter receives a gradient (DistributedDataParallel requires it by default).
            block.cross_attn = nn.Identity()
            block.norm_cross_attn.requires_grad_(False)
        self.norm = nn.LayerNorm(hidden_size)
        self.cls_token: nn.Parameter | None = None
        if self.pooling == "cls":
            self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
            trunc_normal_(self.cls_token, mean=0.0, std=0.02, a=-2.0, b=2.0)

    def position_embeddings(self, grid_size: Sequence[int] | None = None) -> torch.Tensor:
        """
        Position embeddings of a token grid.

        Args:
            grid_size: tokens per axis; defaults to :py:attr:`grid_size`. For another grid (a smaller or larger view)
                the table is resampled (bicubic in 2D, trilinear in 3D) so the view spans the same positional range.

        Returns:
            tensor of shape ``(1, prod(grid_size), embed_dim)``, row-major over ``grid_size``.
        """
        table = self.patch_embedding.position_embeddings
        grid = self.grid_size if grid_size is None else tuple(int(g) for g in grid_size)
        if grid == self.grid_size:
            return table
        mode = "bicubic" if self.spatial_dims == 2 else "trilinear"
        table = table.transpose(1, 2).reshape(1, self.embed_dim, *self.grid_size)
        table = F.interpolate(table, size=grid, mode=mode, align_corners=False)
        return table.flatten(2).transpose(1, 2)

    def _check_input(self, x: torch.Tensor) -> None:
        spatial = tuple(x.shape[2:])
        if (
            x.ndim != self.spatial_dims + 2
            or x.shape[1] != self.in_channels
            or any(s % p != 0 for s, p in zip(spatial, self.patch_size))
        ):
            raise ValueError(
                f"input must have shape (B, {self.in_channels}, *spatial) with {self.spatial_dims} spatial axes "
                f"divisible by patch_size {self.patch_size} (e.g. img_size {self.img_size}), got {tuple(x.shape)}."
            )

    def _check_indices(self, indices: torch.Tensor, batch_size: int, num_tokens: int) -> torch.Tensor:
        if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int64, torch.int32):
            got = indices.dtype if isinstance(indices, torch.Tensor) else type(indices).__name__
            raise ValueError(
                f"indices must be an integer (int64) tensor of token indices, got {got}; "
                "convert a boolean mask to indices first (e.g. mask.nonzero())."
            )
        if indices.ndim != 2 or indices.shape[0] != batch_size or not 0 < indices.shape[1] <= num_tokens:
            raise ValueError(
                f"indices must have shape (B={batch_size}, T_keep) with 1 <= T_keep <= num_tokens={num_tokens}, "
                f"got {tuple(indices.shape)}."
            )
        if bool(((indices < 0) | (indices >= num_tokens)).any()):
            raise ValueError(
                f"indices must lie in [0, {num_tokens - 1}], "
                f"got min {int(indices.min())} and max {int(indices.max())}."
            )
        return indices.long()

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: input of shape ``(B, in_channels, *img_size)``. Other sizes divisible by ``patch_size`` (e.g. small
                local views) are accepted; their position embeddings are resampled by :py:meth:`position_embeddings`.
            indices: optional ``(B, T_keep)`` integer tensor of token indices into the flattened token grid of ``x``
                (row-major, :py:attr:`grid_size` at ``img_size``), the same count for every sample. Only these tokens
                (with their position embeddings) go through the transformer, so the output ignores the content of all
                other patches.

        Returns:
            ``(tokens, pooled)``: the normalised patch tokens ``(B, T, D)``, with ``T`` the number of patches of ``x``
            (:py:attr:`num_tokens` at ``img_size``) or ``T_keep`` when ``indices`` is given (the class token is not
            included), and the pooled feature ``(B, D)`` (the token mean or the class token, per ``pooling``).
        """
        self._check_input(x)
        embed = self.patch_embedding
        patches = embed.patch_embeddings(x)  # (B, D, *grid)
        tokens = patches.flatten(2).transpose(1, 2) + self.position_embeddings(patches.shape[2:])
        tokens = embed.dropout(tokens)
        if indices is not None:
            indices = self._check_indices(indices, x.shape[0], tokens.shape[1]).to(tokens.device)
            tokens = torch.gather(tokens, 1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
        tokens = self.norm(tokens)
        if self.cls_token is not None:
            return tokens[:, 1:], tokens[:, 0]
        return tokens, tokens.mean(dim=1)


def _preset(name: str, num_layers: int | None, kwargs: dict[str, Any]) -> JEPAViT:
    config = dict(JEPA_VIT_PRESETS[name])
    fixed = sorted(k for k in ("hidden_size", "num_heads", "mlp_dim") if k in kwargs)
    if fixed:
        raise ValueError(f"{name} fixes {', '.join(fixed)}; use JEPAViT directly to change them.")
    if num_layers is not None:
        config["num_layers"] = num_layers
    return JEPAViT(**config, **kwargs)


def vit_tiny(num_layers: int | None = None, **kwargs: Any) -> JEPAViT:
    """
    ViT-Tiny :py:class:`JEPAViT`: hidden size 192, 3 heads, MLP 768, 12 layers.

    Args:
        num_layers: optional depth override (default 12).
        kwargs: all other :py:class:`JEPAViT` arguments (``in_channels``, ``img_size``, ``patch_size``, ...).

    Example::

        >>> net = vit_tiny(in_channels=1, img_size=(16, 128, 128), patch_size=(2, 16, 16), spatial_dims=3)
    """
    return _preset("vit_tiny", num_layers, kwargs)


def vit_small(num_layers: int | None = None, **kwargs: Any) -> JEPAViT:
    """
    ViT-Small :py:class:`JEPAViT`: hidden size 384, 6 heads, MLP 1536, 12 layers.

    Args:
        num_layers: optional depth override (default 12).
        kwargs: all other :py:class:`JEPAViT` arguments (``in_channels``, ``img_size``, ``patch_size``, ...).

    Example::

        >>> net = vit_small(in_channels=3, img_size=224, patch_size=16, spatial_dims=2)
    """
    return _preset("vit_small", num_layers, kwargs)


def vit_base(num_layers: int | None = None, **kwargs: Any) -> JEPAViT:
    """
    ViT-Base :py:class:`JEPAViT`: hidden size 768, 12 heads, MLP 3072, 12 layers.

    Args:
        num_layers: optional depth override (default 12).
        kwargs: all other :py:class:`JEPAViT` arguments (``in_channels``, ``img_size``, ``patch_size``, ...).

    Example::

        >>> net = vit_base(in_channels=1, img_size=96, patch_size=16, spatial_dims=3)
    """
    return _preset("vit_base", num_layers, kwargs)
