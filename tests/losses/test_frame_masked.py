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
"""FrameMaskedLoss: only the labelled frames count, and they count exactly as the 2D loss on them."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from monai_jepa.losses import FrameMaskedLoss


def test_equals_the_2d_loss_on_the_labelled_frames_and_ignores_the_rest():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 3, 5, 4, 4, generator=g, requires_grad=True)
    target = torch.zeros(2, 2, 5, 4, 4)
    target[:, 0] = torch.randint(0, 3, (2, 5, 4, 4), generator=g).float()
    target[0, 1, 1] = target[1, 1, 3] = target[1, 1, 4] = 1.0  # frames (0,1), (1,3), (1,4) are labelled
    inner = DiceCELoss(to_onehot_y=True, softmax=True)
    value = FrameMaskedLoss(inner)(pred, target)
    frames = torch.stack([pred[0, :, 1], pred[1, :, 3], pred[1, :, 4]])
    labels = torch.stack([target[0, :1, 1], target[1, :1, 3], target[1, :1, 4]])
    assert torch.allclose(value, inner(frames, labels))
    value.backward()
    grad_per_frame = pred.grad.abs().sum(dim=(1, 3, 4))  # (B, T)
    assert torch.equal(grad_per_frame > 0, target[:, 1].amax(dim=(-1, -2)) > 0)


def test_bad_shapes_and_unlabelled_batches_are_errors():
    loss = FrameMaskedLoss(DiceCELoss(to_onehot_y=True, softmax=True))
    with pytest.raises(ValueError, match=r"\(B, 2, T, H, W\)"):
        loss(torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 1, 3, 4, 4))
    with pytest.raises(ValueError, match="same grid"):
        loss(torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 2, 3, 4, 5))
    with pytest.raises(ValueError, match="no labelled frame"):
        loss(torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 2, 3, 4, 4))
