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
"""Attention maps of a :py:class:`~monai_jepa.networks.JEPAViT`: last-layer attention and attention rollout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.utils import look_up_option

__all__ = ["ViTAttentionMap", "attention_rollout", "capture_attention"]

SUPPORTED_METHODS = ("last", "rollout")
SUPPORTED_HEAD_FUSION = ("mean", "max", "min")
_UPSAMPLE = {2: "bilinear", 3: "trilinear"}


@contextmanager
def capture_attention(encoder: nn.Module) -> Iterator[list[nn.Module]]:
    """Make the self-attention blocks of ``encoder`` keep their attention matrices while the context is open.

    Each MONAI ``SABlock`` in ``encoder.blocks`` stores ``att_mat`` ``(B, heads, T, T)`` (softmax weights, detached)
    on every forward pass; scaled-dot-product (flash) attention is switched off meanwhile because it does not expose
    the weights. Both settings are restored on exit.

    Yields:
        the attention modules, in block order (read ``module.att_mat`` after a forward pass).
    """
    blocks = getattr(encoder, "blocks", None)
    if blocks is None or not all(hasattr(getattr(b, "attn", None), "save_attn") for b in blocks):
        raise TypeError(
            f"{type(encoder).__name__} has no MONAI TransformerBlock `blocks` with self-attention; attention maps need "
            "a ViT encoder such as monai_jepa.networks.JEPAViT."
        )
    modules = [b.attn for b in blocks]
    saved = [(m.save_attn, m.use_flash_attention) for m in modules]
    try:
        for m in modules:
            m.save_attn, m.use_flash_attention = True, False
        yield modules
    finally:
        for m, (save, flash) in zip(modules, saved):
            m.save_attn, m.use_flash_attention = save, flash
            if hasattr(m, "att_mat") and not save:
                m.att_mat = torch.Tensor()


def _fuse_heads(att: torch.Tensor, head_fusion: str) -> torch.Tensor:
    if head_fusion == "mean":
        return att.mean(dim=1)
    return att.amax(dim=1) if head_fusion == "max" else att.amin(dim=1)


def attention_rollout(attentions: list[torch.Tensor], head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each input token flows into each output token.

    Each layer's head-fused attention ``A`` is mixed with the identity for the residual path, ``0.5 A + 0.5 I``,
    renormalised over keys, and the layers are multiplied from the first to the last.

    Args:
        attentions: per-layer attention weights ``(B, heads, T, T)``, first layer first.
        head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over heads.

    Returns:
        ``(B, T, T)``: row ``i`` holds the share of each input token in output token ``i`` (rows sum to 1).
    """
    head_fusion = look_up_option(head_fusion, SUPPORTED_HEAD_FUSION)
    if not attentions:
        raise ValueError("attentions must hold at least one layer's weights.")
    rollout = None
    for att in attentions:
        fused = _fuse_heads(att.float(), head_fusion)
        eye = torch.eye(fused.shape[-1], device=fused.device, dtype=fused.dtype)
        fused = 0.5 * fused + 0.5 * eye
        fused = fused / fused.sum(dim=-1, keepdim=True)
        rollout = fused if rollout is None else fused @ rollout
    return rollout


class ViTAttentionMap(nn.Module):
    """Map of the input regions a :py:class:`~monai_jepa.networks.JEPAViT` attends to, on the input grid.

    The map scores each patch token by its share in the pooled embedding: with ``pooling="cls"`` the class token's
    row; with ``pooling="mean"`` the mean over all query rows (the pooled embedding is the mean of the output tokens).
    ``method="last"`` reads the last layer's attention; ``"rollout"`` composes all layers
    (:func:`attention_rollout`). The token scores are normalised to sum to 1 per sample and resampled to the input
    size (nearest or linear), so 2D, 3D and 2D+t inputs all give a ``(B, 1, *spatial)`` map. The module can be
    wrapped by MONAI's ``SlidingWindowInferer`` for images larger than the encoder's ``img_size``.

    Args:
        encoder: a ViT with MONAI ``TransformerBlock`` s in ``blocks`` and ``patch_size``, ``grid_size`` and
            ``pooling`` attributes (:py:class:`~monai_jepa.networks.JEPAViT`).
        method: ``"rollout"`` (default) or ``"last"``.
        head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over heads.
        upsample: ``"nearest"`` (one value per patch) or ``"linear"`` (bi/trilinear).

    Example::

        >>> vit = JEPAViT(1, img_size=32, patch_size=8, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=2,
        ...               num_heads=3)
        >>> ViTAttentionMap(vit)(torch.randn(2, 1, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(
        self, encoder: nn.Module, method: str = "rollout", head_fusion: str = "mean", upsample: str = "nearest"
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.method = look_up_option(method, SUPPORTED_METHODS)
        self.head_fusion = look_up_option(head_fusion, SUPPORTED_HEAD_FUSION)
        self.upsample = look_up_option(upsample, ("nearest", "linear"))

    @torch.no_grad()
    def token_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token scores ``(B, *token_grid)`` of ``x`` ``(B, C, *spatial)``, summing to 1 per sample."""
        with capture_attention(self.encoder) as modules:
            self.encoder(x)
            attentions = [m.att_mat for m in modules]
        if self.method == "rollout":
            weights = attention_rollout(attentions, self.head_fusion)
        else:
            weights = _fuse_heads(attentions[-1].float(), self.head_fusion)
        has_cls = getattr(self.encoder, "pooling", "mean") == "cls"
        scores = weights[:, 0, 1:] if has_cls else weights.mean(dim=1)
        scores = scores / scores.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        grid = [s // p for s, p in zip(x.shape[2:], self.encoder.patch_size)]
        return scores.reshape(x.shape[0], *grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input ``(B, C, *spatial)`` accepted by the encoder.

        Returns:
            the attention map ``(B, 1, *spatial)`` (float32), each patch's score repeated or interpolated over it.
        """
        scores = self.token_scores(x).unsqueeze(1)
        mode = "nearest" if self.upsample == "nearest" else _UPSAMPLE[scores.ndim - 2]
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        return F.interpolate(scores, size=tuple(x.shape[2:]), mode=mode, **kwargs)
