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
"""A segmentation loss on the labelled frames of a clip only (cine labels exist on a few frames, e.g. ED and ES)."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["FrameMaskedLoss"]


class FrameMaskedLoss(nn.Module):
    """Apply a 2D segmentation loss to the labelled frames of 2D+t predictions.

    The target carries its own frame mask (as written by :class:`~monai_jepa.transforms.LoadFrameLabelsd`): channel
    0 holds the class indices, channel 1 is 1 on the labelled frames and 0 elsewhere. The labelled frames of every
    clip are gathered into one batch of 2D images and passed to ``loss``, so unlabelled frames add nothing.

    Args:
        loss: a MONAI segmentation loss on ``(N, C, H, W)`` logits and ``(N, 1, H, W)`` class indices, e.g.
            ``DiceCELoss(to_onehot_y=True, softmax=True)``.

    Example::

        >>> loss = FrameMaskedLoss(DiceCELoss(to_onehot_y=True, softmax=True))
        >>> value = loss(logits, target)  # (B, C, T, H, W), (B, 2, T, H, W)
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: logits ``(B, C, T, H, W)``.
            target: ``(B, 2, T, H, W)``: class indices and the labelled-frame mask.

        Raises:
            ValueError: mismatched shapes, or no labelled frame in the batch.
        """
        if pred.ndim != 5 or target.ndim != 5 or target.shape[1] != 2 or pred.shape[2:] != target.shape[2:]:
            raise ValueError(
                f"FrameMaskedLoss expects pred (B, C, T, H, W) and target (B, 2, T, H, W) on the same grid, got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}."
            )
        labelled = target[:, 1].flatten(2).amax(-1) > 0  # (B, T)
        if not bool(labelled.any()):
            raise ValueError("FrameMaskedLoss: no labelled frame in the batch (target channel 1 is 0 everywhere).")
        logits = pred.transpose(1, 2)[labelled]  # (N, C, H, W)
        labels = target[:, :1].transpose(1, 2)[labelled]  # (N, 1, H, W)
        return self.loss(logits, labels)
