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
"""Helpers that handlers and bundle configs call at the end of a run (as ``monai.handlers.utils`` does for MONAI)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch.nn as nn

from monai_jepa.engines.checkpoint import unwrap_network
from monai_jepa.utils.dist import get_rank
from monai_jepa.utils.fileio import atomic_torch_save

__all__ = ["save_network_weights"]

logger = logging.getLogger(__name__)


def save_network_weights(network: nn.Module, path: str | os.PathLike) -> Path | None:
    """Write ``network``'s state dict (unwrapped from DDP / ``torch.compile``) to ``path`` atomically, on rank 0 only.

    The file loads with ``torch.load(path, weights_only=True)`` into the bare network (``network_def``), as MONAI's
    ``CheckpointLoader``, ``ckpt_export`` and ``load`` expect of ``models/model.pt``. Tensors are saved on the CPU.

    Args:
        network: the trained network.
        path: destination file (its folder is created).

    Returns:
        the path written, or None on ranks other than 0.

    Example::

        "run": ["$@train#trainer.run()", "$monai_jepa.handlers.save_network_weights(@network, @model_file)"]
    """
    if get_rank() != 0:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in unwrap_network(network).state_dict().items()}
    atomic_torch_save(state, path)
    logger.info(f"saved the network weights to '{path}'.")
    return path
