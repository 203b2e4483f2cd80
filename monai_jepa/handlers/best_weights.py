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
"""Keep the weights of the best validation epoch in one file, replaced atomically."""

from __future__ import annotations

import os

import torch.nn as nn
from monai.utils import IgniteInfo, min_version, optional_import

from .utils import save_network_weights

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

__all__ = ["BestWeightsSaver"]


class BestWeightsSaver:
    """Write ``network``'s weights to ``path`` after every evaluator epoch that improves the key metric.

    Attach it to a MONAI evaluator (``SupervisedEvaluator`` with a ``key_val_metric``): the evaluator updates
    ``state.best_metric_epoch`` before this handler runs. The file is a plain state dict of the bare network, as
    ``models/model.pt`` is for ``ckpt_export`` and MONAI Label.

    Why not ``CheckpointSaver(save_key_metric=True, key_metric_filename=...)``: MONAI 1.6.1 writes it with
    ``DiskSaver(atomic=False)`` and removes the previous best before writing the new one, so a run stopped in between
    leaves no model file or a truncated one. Here the file is replaced atomically (:func:`save_network_weights`),
    on rank 0 only.

    Args:
        network: the network being trained (unwrapped from DDP / ``torch.compile`` when saved).
        path: destination file.

    Example::

        "val_handlers": [{"_target_": "monai_jepa.handlers.BestWeightsSaver", "network": "@network",
                          "path": "@model_file"}]
    """

    def __init__(self, network: nn.Module, path: str | os.PathLike) -> None:
        self.network = network
        self.path = path

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine) -> None:
        if engine.state.best_metric_epoch == engine.state.epoch:
            save_network_weights(self.network, self.path)
