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
"""``AutocastInferer``: a network forward under bf16 autocast on any device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import SimpleInferer

__all__ = ["AutocastInferer"]


class AutocastInferer(SimpleInferer):
    """Run the network under bf16 autocast on any device (MONAI's trainers autocast on CUDA only).

    Used as the ``inferer`` of a MONAI ``SupervisedTrainer`` to train in bf16 on the CPU as well as the GPU; the
    outputs keep the autocast dtype, so the loss should cast them to float32 (see
    :class:`~monai_jepa.losses.FiniteLoss`).

    Args:
        device: the device of the forward pass (its type picks the autocast backend).
        amp: autocast in bf16; ``False`` runs the network as it is.

    Example::

        >>> inferer = AutocastInferer("cpu", amp=True)
        >>> logits = inferer(torch.randn(2, 1, 32, 32), net)  # bf16 logits
    """

    def __init__(self, device: str | torch.device = "cpu", amp: bool = True) -> None:
        super().__init__()
        self.device, self.amp = torch.device(device), bool(amp)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        """``network(inputs, *args, **kwargs)``, autocast in bf16 when ``amp``."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return network(inputs, *args, **kwargs)
