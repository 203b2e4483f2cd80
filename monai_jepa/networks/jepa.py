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
"""The masked-latent-prediction model: a token encoder and its predictor in one module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn as nn

__all__ = ["MaskedLatentModel", "MaskedLatentOutput"]


class MaskedLatentOutput(NamedTuple):
    """The tensors of one mask: ``pred`` and ``targets`` ``(B, K_t, D)`` and ``context_pooled`` ``(B, D)``."""

    pred: torch.Tensor
    targets: torch.Tensor
    context_pooled: torch.Tensor


class MaskedLatentModel(nn.Module):
    """Encoder + predictor of masked latent prediction, held in one module.

    One module lets ``DistributedDataParallel`` wrap (and synchronise) both networks in a single forward pass, and
    lets a checkpoint's ``"model"`` entry hold both (the encoder's weights under the ``"encoder."`` prefix, see
    :func:`monai_jepa.networks.load_pretrained_encoder`).

    :py:meth:`forward` encodes the full input once (the targets are its tokens at ``target_idx``, unless
    ``target_tokens`` from a teacher are given), then, for each mask, encodes the context tokens only and predicts the
    target embeddings from them. This is :func:`monai_jepa.losses.masked_latent_step` without the loss.

    Args:
        encoder: token encoder with ``forward(x, indices=None) -> (tokens (B, N, D), pooled (B, D))``, such as
            :py:class:`~monai_jepa.networks.JEPAViT`.
        predictor: ``forward(context_tokens, context_idx, target_idx) -> (B, K_t, D)``, such as
            :py:class:`~monai_jepa.networks.JEPAPredictor`.

    Example::

        >>> enc = JEPAViT(1, img_size=16, patch_size=4, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=2,
        ...               num_heads=3)
        >>> model = MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, 48, predictor_dim=48, depth=1, num_heads=3))
        >>> ctx, tgt = MultiBlockMaskGenerator(enc.grid_size, seed=0)(batch_size=2)
        >>> (out,) = model(torch.randn(2, 1, 16, 16), ctx, tgt)  # out.pred, out.targets: (2, K_t, 48)
    """

    def __init__(self, encoder: nn.Module, predictor: nn.Module) -> None:
        super().__init__()
        if not isinstance(encoder, nn.Module) or not isinstance(predictor, nn.Module):
            raise ValueError(
                f"encoder and predictor must be nn.Modules, got {type(encoder).__name__} and "
                f"{type(predictor).__name__}."
            )
        self.encoder = encoder
        self.predictor = predictor

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled encoder embedding of ``x`` ``(B, C, *S)`` -> ``(B, D)`` (for probes and feature extraction)."""
        return self.encoder(x)[1]

    def forward(
        self,
        images: torch.Tensor,
        context_idx: torch.Tensor | Sequence[torch.Tensor],
        target_idx: torch.Tensor | Sequence[torch.Tensor],
        target_tokens: torch.Tensor | None = None,
    ) -> list[MaskedLatentOutput]:
        """
        Args:
            images: input batch ``(B, C, *spatial)``.
            context_idx: ``(B, K_c)`` token indices seen by the encoder, or a sequence of them (one per mask).
            target_idx: ``(B, K_t)`` token indices to predict, or a sequence of them matching ``context_idx``.
            target_tokens: optional ``(B, N, D)`` tokens of the full input to take the targets from (e.g. from an
                :py:class:`~monai_jepa.losses.EMATeacher`); None encodes ``images`` with the encoder, with gradient.

        Returns:
            one :py:class:`MaskedLatentOutput` per mask.
        """
        contexts = [context_idx] if isinstance(context_idx, torch.Tensor) else list(context_idx)
        targets_idx = [target_idx] if isinstance(target_idx, torch.Tensor) else list(target_idx)
        if not contexts or len(contexts) != len(targets_idx):
            raise ValueError(
                f"context_idx and target_idx must be tensors or sequences of the same non-zero length, got "
                f"{len(contexts)} and {len(targets_idx)} masks."
            )
        tokens = self.encoder(images)[0] if target_tokens is None else target_tokens
        if tokens.ndim != 3 or tokens.shape[0] != images.shape[0]:
            raise ValueError(f"target tokens must have shape (B={images.shape[0]}, N, D), got {tuple(tokens.shape)}.")
        outputs = []
        for ctx, tgt in zip(contexts, targets_idx):
            index = tgt.long().to(tokens.device).unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            targets = torch.gather(tokens, 1, index)
            context_tokens, context_pooled = self.encoder(images, indices=ctx)
            outputs.append(MaskedLatentOutput(self.predictor(context_tokens, ctx, tgt), targets, context_pooled))
        return outputs
