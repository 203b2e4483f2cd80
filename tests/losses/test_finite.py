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

import pytest
import torch

from monai_jepa.losses import FiniteLoss


def test_finite_loss_casts_to_float32_and_counts_steps():
    seen = []

    def mse(pred, target):
        seen.append(pred.dtype)
        return ((pred - target) ** 2).mean()

    loss = FiniteLoss(mse, "toy")
    pred, target = torch.tensor([1.0, 2.0], dtype=torch.bfloat16), torch.tensor([0.0, 0.0])
    assert loss(pred, target).item() == pytest.approx(2.5)
    assert seen == [torch.float32] and loss.step == 1


def test_finite_loss_raises_naming_the_loss_and_step():
    loss = FiniteLoss(lambda p, t: (p - t).sum(), "toy")
    loss(torch.ones(2), torch.zeros(2))
    with pytest.raises(FloatingPointError, match="non-finite toy loss at step 1"):
        loss(torch.tensor([float("inf"), 0.0]), torch.zeros(2))
