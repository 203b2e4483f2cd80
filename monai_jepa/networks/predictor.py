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
"""The JEPA predictor: a narrow Vision Transformer that predicts target-token embeddings from context tokens."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import TransformerBlock
from monai.networks.blocks.pos_embed_utils import build_sincos_position_embedding
from monai.networks.layers import trunc_normal_
from monai.utils import look_up_option

__all__ = ["JEPAPredictor"]

SUPPORTED_POS_EMBED = ("sincos", "learnable")


class JEPAPredictor(nn.Module):
    """
    Predictor of masked latent prediction (I-JEPA / V-JEPA): from the encoder's context tokens and the positions of
    the target tokens, predict the encoder's embeddings of the target tokens.

    The context tokens ``(B, K_c, D)`` are projected to ``predictor_dim`` and get the position embeddings of their
    grid positions (``context_idx``); one learned mask token per target position gets the position embedding of
    that position (``target_idx``). Both sets go together through ``depth`` MONAI
    :py:class:`~monai.networks.blocks.TransformerBlock` s (full attention, so the output is equivariant to the order
    of the targets), and the outputs of the mask tokens are normalised and projected back to ``D``.

    Token positions are indices into the flattened row-major token grid, as produced by the mask transforms
    (:py:class:`~monai_jepa.transforms.RandBlockMask`) and consumed by
    :py:class:`~monai_jepa.networks.JEPAViT` (``forward(x, indices=context_idx)``).

    Args:
        grid_size: token grid of the encoder (``JEPAViT.grid_size``: 2 ints, or 3 for 3D / 2D+t), or an int number
            of tokens (a 1D sequence, only with ``pos_embed="learnable"``).
        embed_dim: encoder width ``D`` (input and output dimension).
        predictor_dim: width of the predictor (default 384); with sincos position embeddings it must be divisible by
            ``2 * spatial_dims``.
        depth: number of transformer blocks (default 6).
        num_heads: attention heads; must divide ``predictor_dim`` (default 6).
        mlp_ratio: MLP hidden width relative to ``predictor_dim`` (default 4).
        spatial_dims: number of grid axes; inferred from ``grid_size`` when None, checked against it otherwise.
        pos_embed: ``"sincos"`` (fixed, as the encoder's default) or ``"learnable"``.
        dropout_rate: dropout of the attention and MLPs.
        qkv_bias: whether the query/key/value projection has a bias.
        use_flash_attention: use ``scaled_dot_product_attention`` (requires ``dropout_rate == 0``).

    Example::

        >>> encoder = JEPAViT(in_channels=1, img_size=32, patch_size=8, spatial_dims=2, hidden_size=48,
        ...                   mlp_dim=96, num_layers=2, num_heads=3)
        >>> predictor = JEPAPredictor(encoder.grid_size, embed_dim=48, predictor_dim=24, depth=2, num_heads=2)
        >>> context_idx, target_idx = torch.tensor([[0, 1, 4, 5]]), torch.tensor([[10, 11, 14, 15]])
        >>> tokens, _ = encoder(torch.randn(1, 1, 32, 32), indices=context_idx)  # (1, 4, 48)
        >>> pred = predictor(tokens, context_idx, target_idx)  # (1, 4, 48)
    """

    def __init__(
        self,
        grid_size: Sequence[int] | int,
        embed_dim: int,
        predictor_dim: int = 384,
        depth: int = 6,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        spatial_dims: int | None = None,
        pos_embed: str = "sincos",
        dropout_rate: float = 0.0,
        qkv_bias: bool = False,
        use_flash_attention: bool = False,
    ) -> None:
        super().__init__()
        pos_embed = look_up_option(pos_embed, SUPPORTED_POS_EMBED)
        if isinstance(grid_size, numbers.Integral):
            grid: tuple[int, ...] = (int(grid_size),)
        else:
            grid = tuple(int(g) for g in grid_size)
        if not grid or any(g < 1 for g in grid):
            raise ValueError(f"grid_size must be a positive int or a sequence of positive ints, got {grid_size!r}.")
        if spatial_dims is not None and spatial_dims != len(grid):
            raise ValueError(f"spatial_dims ({spatial_dims}) must equal the length of grid_size {grid}.")
        if pos_embed == "sincos" and len(grid) not in (2, 3):
            raise ValueError(
                f"sincos position embeddings need a grid_size of 2 or 3 ints, got {grid_size!r}; "
                "use pos_embed='learnable' for a token count."
            )
        if embed_dim < 1 or depth < 1 or mlp_ratio <= 0:
            raise ValueError(f"embed_dim, depth and mlp_ratio must be positive, got {embed_dim}, {depth}, {mlp_ratio}.")
        if predictor_dim < 1 or num_heads < 1 or predictor_dim % num_heads != 0:
            raise ValueError(f"predictor_dim ({predictor_dim}) must be divisible by num_heads ({num_heads}).")
        if pos_embed == "sincos" and predictor_dim % (2 * len(grid)) != 0:
            raise ValueError(
                f"predictor_dim ({predictor_dim}) must be divisible by {2 * len(grid)} for a {len(grid)}D sincos "
                "position embedding; use another predictor_dim or pos_embed='learnable'."
            )
        if use_flash_attention and dropout_rate > 0:
            raise ValueError(f"use_flash_attention requires dropout_rate=0 (got {dropout_rate}).")
        self.grid_size = grid
        self.num_tokens = math.prod(grid)
        self.embed_dim = embed_dim
        self.predictor_dim = predictor_dim

        self.embed = nn.Linear(embed_dim, predictor_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_dim))
        if pos_embed == "sincos":
            self.position_embeddings = build_sincos_position_embedding(list(grid), predictor_dim, len(grid))
        else:
            self.position_embeddings = nn.Parameter(torch.zeros(1, self.num_tokens, predictor_dim))
            trunc_normal_(self.position_embeddings, mean=0.0, std=0.02, a=-2.0, b=2.0)
        mlp_dim = int(round(predictor_dim * mlp_ratio))
        self.blocks = nn.ModuleList(
            TransformerBlock(
                predictor_dim, mlp_dim, num_heads, dropout_rate, qkv_bias, use_flash_attention=use_flash_attention
            )
            for _ in range(depth)
        )
        for block in self.blocks:
            # unused cross-attention branch (built by MONAI 1.5, not 1.6): drop it for version-independent checkpoints
            block.cross_attn = nn.Identity()
            block.norm_cross_attn.requires_grad_(False)
        self.norm = nn.LayerNorm(predictor_dim)
        self.head = nn.Linear(predictor_dim, embed_dim)
        trunc_normal_(self.mask_token, mean=0.0, std=0.02, a=-2.0, b=2.0)

    def _positions(self, idx: torch.Tensor, batch_size: int, name: str) -> torch.Tensor:
        if not isinstance(idx, torch.Tensor) or idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{name} must be an integer tensor of token indices, got {type(idx).__name__}.")
        if idx.ndim != 2 or idx.shape[0] != batch_size or idx.shape[1] < 1:
            raise ValueError(f"{name} must have shape (B={batch_size}, K) with K >= 1, got {tuple(idx.shape)}.")
        if bool(((idx < 0) | (idx >= self.num_tokens)).any()):
            raise ValueError(
                f"{name} must lie in [0, {self.num_tokens - 1}] (grid {self.grid_size}), "
                f"got min {int(idx.min())} and max {int(idx.max())}."
            )
        table = self.position_embeddings.expand(batch_size, -1, -1)
        idx = idx.long().to(table.device)
        return torch.gather(table, 1, idx.unsqueeze(-1).expand(-1, -1, self.predictor_dim))

    def forward(
        self, context_tokens: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor
    ) -> torch.Tensor:
        """
        Args:
            context_tokens: encoder outputs of the context tokens, ``(B, K_c, embed_dim)``.
            context_idx: ``(B, K_c)`` grid indices of the context tokens (the ``indices`` given to the encoder).
            target_idx: ``(B, K_t)`` grid indices of the tokens to predict.

        Returns:
            the predicted target embeddings, ``(B, K_t, embed_dim)``, in the order of ``target_idx``.
        """
        if context_tokens.ndim != 3 or context_tokens.shape[-1] != self.embed_dim:
            raise ValueError(
                f"context_tokens must have shape (B, K_c, {self.embed_dim}), got {tuple(context_tokens.shape)}."
            )
        b, k_c = context_tokens.shape[:2]
        ctx_pos = self._positions(context_idx, b, "context_idx")
        if context_idx.shape[1] != k_c:
            raise ValueError(
                f"context_idx must have shape ({b}, {k_c}) like context_tokens, got {tuple(context_idx.shape)}."
            )
        tgt_pos = self._positions(target_idx, b, "target_idx")
        x = self.embed(context_tokens) + ctx_pos
        queries = self.mask_token.expand(b, target_idx.shape[1], -1) + tgt_pos
        x = torch.cat([x, queries.to(x.dtype)], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, k_c:]))
