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
"""``CheckedCheckpointLoader``: MONAI's ``CheckpointLoader`` whose failures name the checkpoint file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.handlers import CheckpointLoader

from monai_jepa.utils.fileio import load_checkpoint_file

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["CheckedCheckpointLoader"]


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` (same arguments and behaviour) whose errors name the file and the reason.

    MONAI's loader reports a missing, empty or corrupt file, or weights that do not fit the network, with PyTorch's
    message alone. Here the file is first read by :func:`~monai_jepa.utils.fileio.load_checkpoint_file` (with
    ``weights_only=True``: ``FileNotFoundError`` / ``CheckpointReadError`` naming the file, its size and the reason),
    and a failure to load the weights raises a ``RuntimeError`` naming the file.

    ``ignore_prefixes`` (one network in ``load_dict`` only) drops the file's entries whose names start with one of
    them before a strict load: e.g. ``["projector."]`` loads a full training checkpoint (encoder + projector) into
    the :class:`~monai_jepa.networks.PooledEncoder` of inference, while any other missing or unexpected entry
    is still an error.

    Example::

        {"_target_": "monai_jepa.handlers.CheckedCheckpointLoader", "load_path": "@checkpoint",
         "load_dict": {"model": "@network"}, "ignore_prefixes": ["projector."]}
    """

    def __init__(self, *args: Any, ignore_prefixes: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ignore_prefixes = tuple(ignore_prefixes)
        if self.ignore_prefixes and (len(self.load_dict) != 1 or not isinstance(self.network, torch.nn.Module)):
            raise ValueError("ignore_prefixes needs load_dict to hold exactly one network.")

    @property
    def network(self) -> Any:
        return next(iter(self.load_dict.values()))

    def __call__(self, engine: Engine) -> None:
        checkpoint = load_checkpoint_file(self.load_path)
        try:
            if not self.ignore_prefixes:
                super().__call__(engine)
                return
            key = next(iter(self.load_dict))
            state = checkpoint.get(key, checkpoint) if isinstance(checkpoint, Mapping) else checkpoint
            if not isinstance(state, Mapping):
                raise KeyError(f"expected a state dict (or one under '{key}'), got {type(state).__name__}")
            kept = {k: v for k, v in state.items() if not str(k).startswith(self.ignore_prefixes)}
            self.network.load_state_dict(kept, strict=self.strict)
        except (RuntimeError, KeyError) as e:
            raise RuntimeError(f"checkpoint file '{self.load_path}' does not fit the network: {e}") from e
