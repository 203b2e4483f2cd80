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
"""An inferer returning the pooled encoder features of a network instead of its forward output."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from monai.inferers import Inferer

__all__ = ["EmbeddingInferer"]


class EmbeddingInferer(Inferer):
    """MONAI inferer returning pooled encoder features ``(B, D)`` instead of the network's forward output.

    Uses ``network.embed(x)`` (unwrapped from DDP) when the network has it
    (:class:`~monai_jepa.networks.LeJEPAModel`), else ``network(x)`` (a tensor, or the pooled half of a
    ``(tokens, pooled)`` pair).

    Example::

        evaluator = SupervisedEvaluator(device, loader, network, inferer=EmbeddingInferer())
    """

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        """
        Args:
            inputs: images ``(B, C, *spatial)``.
            network: the model.

        Returns:
            features ``(B, D)``.
        """
        from monai_jepa.evaluation.features import embed_batch  # imported here: the evaluation package is heavy

        return embed_batch(network, inputs)
