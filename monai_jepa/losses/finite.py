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
"""``FiniteLoss``: a loss computed in float32 that stops training on a non-finite value."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["FiniteLoss"]


class FiniteLoss:
    """Compute ``loss(pred.float(), target)`` and raise before any backward pass or optimiser step when the value is
    NaN or infinite.

    The ``loss_function`` of a MONAI ``SupervisedTrainer`` whose network runs under bf16 autocast
    (:class:`~monai_jepa.inferers.AutocastInferer`): the logits are cast to float32 first. Ignite's ``TerminateOnNan``
    acts after the iteration, when the optimiser has already stepped on the bad loss; this wrapper raises inside it.

    Args:
        loss: the loss, ``(pred, target) -> scalar``.
        name: what the loss is, named in the error.

    Raises:
        FloatingPointError: ``"non-finite <name> loss at step <k>"`` (``k`` counts the calls from 0).

    Example::

        >>> loss = FiniteLoss(DiceCELoss(to_onehot_y=True, softmax=True), "segmentation")
    """

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], name: str = "training") -> None:
        self.loss, self.name, self.step = loss, name, 0

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The float32 loss value; raises ``FloatingPointError`` when it is not finite."""
        value = self.loss(pred.float(), target)
        if not torch.isfinite(value):
            raise FloatingPointError(f"non-finite {self.name} loss at step {self.step}.")
        self.step += 1
        return value
