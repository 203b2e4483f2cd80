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
"""Masked image modelling (MAE / SparK style) of a MONAI segmentation CNN: the peer of masked latent prediction."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.layers import Conv

from monai_jepa.networks.jepa import MaskedLatentOutput
from monai_jepa.networks.masked_conv import MaskedConvEncoder, masked_mean, patchify

__all__ = ["MaskedReconstructionModel"]


class MaskedReconstructionModel(nn.Module):
    """Reconstruct the pixels of the masked tokens with the whole segmentation network (encoder AND decoder).

    The encoder path sees only the context tokens (as in :class:`MaskedConvEncoder`); the network's decoder runs as
    usual and a 1x1 convolution maps its ``out_channels`` to the input channels. The outputs have the form of
    :class:`~monai_jepa.networks.MaskedLatentModel`'s, with pixel patches in place of latents: ``pred`` and ``targets``
    ``(B, K_t, C * prod(patch_size))`` at the target tokens, and the pooled deepest context features. So
    :class:`~monai_jepa.engines.MaskedLatentTrainer` trains it with
    ``MaskedLatentLoss(lamb=0, loss="l2", normalize_targets=True)``, which is MAE's loss on per-patch normalised
    pixels. Every part but the 1x1 head transfers to segmentation (``self.encoder.net``).

    Args:
        encoder: the masked view of the segmentation network.

    Example::

        >>> enc = MaskedConvEncoder(UNet(3, 1, 3, channels=(16, 32, 64), strides=(2, 2), num_res_units=1), 32)
        >>> mae = MaskedReconstructionModel(enc)
        >>> ctx, tgt = MultiBlockMaskGenerator(enc.grid_size, seed=0)(batch_size=2)
        >>> (out,) = mae(torch.randn(2, 1, 32, 32, 32), ctx, tgt)  # out.pred: (2, K_t, 64)
    """

    def __init__(self, encoder: MaskedConvEncoder) -> None:
        super().__init__()
        if not isinstance(encoder, MaskedConvEncoder):
            raise ValueError(f"encoder must be a MaskedConvEncoder, got {type(encoder).__name__}.")
        self.encoder = encoder
        out_channels = int(getattr(encoder.net, "out_channels", 0) or 0)
        if out_channels < 1:
            raise ValueError(f"could not read out_channels of {type(encoder.net).__name__}.")
        self.head = Conv[Conv.CONV, encoder.spatial_dims](out_channels, encoder.in_channels, kernel_size=1)
        self._deep: list[torch.Tensor] | None = None  # collects the deepest features while reconstructing
        encoder._stages[-1].register_forward_hook(self._keep_deepest)

    def _keep_deepest(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if self._deep is not None:
            self._deep.append(output)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled encoder embedding ``(B, pooled_dim)`` of the full input."""
        return self.encoder(x)[1]

    def reconstruct(self, images: torch.Tensor, context_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction ``(B, C, *S)`` from the context tokens, and the pooled deepest context features."""
        self.encoder._check_input(images)
        self._deep = []
        try:
            with self.encoder.masking(context_idx, images.shape[0]):
                recon = self.head(self.encoder.net(images * self.encoder._mask_at(images)))
                deep = self._deep[-1]
                vis = self.encoder._mask_at(deep)
        finally:
            self._deep = None
        return recon, masked_mean(deep, vis)

    def forward(
        self,
        images: torch.Tensor,
        context_idx: torch.Tensor | Sequence[torch.Tensor],
        target_idx: torch.Tensor | Sequence[torch.Tensor],
        target_tokens: torch.Tensor | None = None,
    ) -> list[MaskedLatentOutput]:
        """One :class:`~monai_jepa.networks.MaskedLatentOutput` of pixel patches per mask (``target_tokens`` must be
        None: the targets are the input's pixels)."""
        if target_tokens is not None:
            raise ValueError("MaskedReconstructionModel predicts pixels; it takes no target_tokens (no teacher).")
        contexts = [context_idx] if isinstance(context_idx, torch.Tensor) else list(context_idx)
        targets_idx = [target_idx] if isinstance(target_idx, torch.Tensor) else list(target_idx)
        if not contexts or len(contexts) != len(targets_idx):
            raise ValueError(f"got {len(contexts)} context and {len(targets_idx)} target index tensors.")
        pixels = patchify(images, self.encoder.patch_size)
        outputs = []
        for ctx, tgt in zip(contexts, targets_idx):
            recon, pooled = self.reconstruct(images, ctx)
            index = tgt.long().to(images.device).unsqueeze(-1).expand(-1, -1, pixels.shape[-1])
            pred = torch.gather(patchify(recon, self.encoder.patch_size), 1, index)
            outputs.append(MaskedLatentOutput(pred, torch.gather(pixels, 1, index), pooled))
        return outputs
