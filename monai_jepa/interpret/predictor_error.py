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
"""Predictor error maps: hide each region in turn, predict its latents from the rest, map the error to the image."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.utils import ensure_tuple_rep, look_up_option

__all__ = ["PredictorErrorMap", "region_tiles"]

SUPPORTED_ERRORS = ("l1", "l2", "cosine")
_UPSAMPLE = {2: "bilinear", 3: "trilinear"}


def region_tiles(grid_size: Sequence[int], region_size: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    """Token indices of the regions that :class:`PredictorErrorMap` hides one at a time.

    Regions are boxes of ``region_size`` tokens placed every ``stride`` tokens along each axis of the row-major
    ``grid_size``; the last box on an axis is moved back to end at the grid border, so all regions hold the same number
    of tokens and, with a stride no larger than the region, every token is covered.

    Returns:
        ``(R, prod(region_size))`` int64 token indices, one row per region.
    """
    grid = tuple(int(g) for g in grid_size)
    size = tuple(min(int(r), g) for r, g in zip(region_size, grid))
    step = tuple(int(s) for s in stride)
    if len(size) != len(grid) or len(step) != len(grid) or min(size + step) < 1:
        raise ValueError(
            f"region_size {tuple(region_size)} and stride {tuple(stride)} must be positive, one per grid axis {grid}."
        )
    starts = []
    for g, r, s in zip(grid, size, step):
        axis = list(range(0, g - r + 1, s))
        if axis[-1] != g - r:
            axis.append(g - r)
        starts.append(axis)
    flat = torch.arange(math.prod(grid)).reshape(grid)
    rows = []
    for corner in itertools.product(*starts):
        box = tuple(slice(c, c + r) for c, r in zip(corner, size))
        rows.append(flat[box].reshape(-1))
    return torch.stack(rows)


class PredictorErrorMap(nn.Module):
    """Where the masked-latent model cannot predict the image: the JEPA view of what departs from what it learnt.

    For each region of :func:`region_tiles`, the region's tokens are hidden from the encoder (the context is every
    other token), the predictor predicts their embeddings from the context, and the error against the encoder's
    embeddings of the full input (layer-normalised as in :class:`~monai_jepa.losses.MaskedLatentLoss`) is recorded
    per token. Tokens covered by several regions get the mean of their errors. The token errors are resampled to the
    input size, so the output is a ``(B, 1, *spatial)`` map aligned with the input; wrap the module in MONAI's
    ``SlidingWindowInferer`` to map volumes larger than the encoder's ``img_size``.

    Works with any encoder / predictor pair of :class:`~monai_jepa.networks.MaskedLatentModel`
    (:class:`~monai_jepa.networks.JEPAViT` or :class:`~monai_jepa.networks.MaskedConvEncoder` with
    :class:`~monai_jepa.networks.JEPAPredictor`), in 2D, 3D and 2D+t.

    Args:
        model: a module with ``encoder`` (``forward(x, indices=None) -> (tokens, pooled)``, attribute ``grid_size``)
            and ``predictor`` (``forward(context_tokens, context_idx, target_idx)``), e.g. ``MaskedLatentModel``.
        region_size: tokens per axis of a hidden region (an int for every axis); default 2.
        stride: region step per axis in tokens; default ``region_size`` (non-overlapping regions).
        error: ``"l1"`` (the default training loss), ``"l2"`` or ``"cosine"`` (1 - cosine similarity).
        normalize_targets: layer-normalise the target embeddings as the training loss does.
        regions_per_batch: regions encoded together per sample (memory / speed trade-off).
        upsample: ``"nearest"`` (one value per token) or ``"linear"`` (bi/trilinear).

    Example::

        >>> enc = JEPAViT(1, img_size=32, patch_size=8, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=2,
        ...               num_heads=3)
        >>> model = MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, 48, predictor_dim=48, depth=1, num_heads=3))
        >>> PredictorErrorMap(model, region_size=2)(torch.randn(1, 1, 32, 32)).shape
        torch.Size([1, 1, 32, 32])
    """

    def __init__(
        self,
        model: nn.Module,
        region_size: Sequence[int] | int = 2,
        stride: Sequence[int] | int | None = None,
        error: str = "l1",
        normalize_targets: bool = True,
        regions_per_batch: int = 16,
        upsample: str = "nearest",
    ) -> None:
        super().__init__()
        for part in ("encoder", "predictor"):
            if not isinstance(getattr(model, part, None), nn.Module):
                raise TypeError(f"model must have an `{part}` module (e.g. MaskedLatentModel), got {type(model)}.")
        grid = getattr(model.encoder, "grid_size", None)
        if grid is None:
            raise TypeError(f"the encoder ({type(model.encoder).__name__}) must expose its token `grid_size`.")
        self.model = model
        self.grid_size = tuple(int(g) for g in grid)
        dims = len(self.grid_size)
        self.region_size = ensure_tuple_rep(region_size, dims)
        self.stride = self.region_size if stride is None else ensure_tuple_rep(stride, dims)
        tiles = region_tiles(self.grid_size, self.region_size, self.stride)
        if tiles.shape[1] >= math.prod(self.grid_size):
            raise ValueError(
                f"region_size {self.region_size} covers the whole token grid {self.grid_size}: nothing is left as "
                "context; use a smaller region_size."
            )
        # the regions, their contexts and how many regions cover each token depend on the grid only: fixed here
        self.register_buffer("tiles", tiles, persistent=False)
        self.register_buffer("contexts", self._contexts(tiles), persistent=False)
        coverage = torch.zeros(math.prod(self.grid_size)).index_add_(0, tiles.reshape(-1), torch.ones(tiles.numel()))
        # a stride larger than the region leaves tokens in no region: their error stays 0 (not 0 / 0)
        self.register_buffer("coverage", coverage.clamp_min(1.0), persistent=False)
        self.error = look_up_option(error, SUPPORTED_ERRORS)
        self.normalize_targets = normalize_targets
        if regions_per_batch < 1:
            raise ValueError(f"regions_per_batch must be >= 1, got {regions_per_batch}.")
        self.regions_per_batch = int(regions_per_batch)
        self.upsample = look_up_option(upsample, ("nearest", "linear"))

    def _contexts(self, tiles: torch.Tensor) -> torch.Tensor:
        keep = torch.ones(tiles.shape[0], math.prod(self.grid_size), dtype=torch.bool, device=tiles.device)
        keep.scatter_(1, tiles, False)
        return keep.nonzero()[:, 1].reshape(tiles.shape[0], -1)

    def _error(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.error == "cosine":
            return 1.0 - F.cosine_similarity(pred, target, dim=-1)
        diff = pred - target
        return diff.abs().mean(-1) if self.error == "l1" else diff.pow(2).mean(-1)

    @torch.no_grad()
    def token_errors(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token prediction errors ``(B, *grid_size)`` of ``x`` ``(B, C, *spatial)`` at the encoder's size."""
        encoder, predictor = self.model.encoder, self.model.predictor
        tokens = encoder(x)[0].float()
        if tokens.shape[1] != math.prod(self.grid_size):
            raise ValueError(
                f"input of spatial size {tuple(x.shape[2:])} gives {tokens.shape[1]} tokens, the predictor expects "
                f"the encoder's grid {self.grid_size}; pass crops of the encoder's img_size (e.g. with "
                "SlidingWindowInferer)."
            )
        if self.normalize_targets:
            tokens = F.layer_norm(tokens, tokens.shape[-1:])
        tiles, contexts = self.tiles.to(x.device), self.contexts.to(x.device)
        total = torch.zeros(x.shape[0], tokens.shape[1], device=x.device)
        for b in range(x.shape[0]):
            for start in range(0, tiles.shape[0], self.regions_per_batch):
                tgt, ctx = (
                    tiles[start : start + self.regions_per_batch],
                    contexts[start : start + self.regions_per_batch],
                )
                images = x[b : b + 1].expand(tgt.shape[0], *x.shape[1:])
                context_tokens = encoder(images, indices=ctx)[0]
                pred = predictor(context_tokens, ctx, tgt).float()
                err = self._error(pred, tokens[b][tgt])
                total[b].index_add_(0, tgt.reshape(-1), err.reshape(-1))
        return (total / self.coverage.to(x.device)).reshape(x.shape[0], *self.grid_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input ``(B, C, *img_size)`` of the encoder.

        Returns:
            the error map ``(B, 1, *img_size)`` (float32): higher where the region was harder to predict.
        """
        errors = self.token_errors(x).unsqueeze(1)
        mode = "nearest" if self.upsample == "nearest" else _UPSAMPLE[errors.ndim - 2]
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        return F.interpolate(errors, size=tuple(x.shape[2:]), mode=mode, **kwargs)
