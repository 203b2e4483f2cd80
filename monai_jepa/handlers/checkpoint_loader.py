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

from typing import TYPE_CHECKING

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

    Example::

        {"_target_": "monai_jepa.handlers.CheckedCheckpointLoader", "load_path": "@checkpoint",
         "load_dict": {"model": "@network"}}
    """

    def __call__(self, engine: Engine) -> None:
        load_checkpoint_file(self.load_path)
        try:
            super().__call__(engine)
        except (RuntimeError, KeyError) as e:
            raise RuntimeError(f"checkpoint file '{self.load_path}' does not fit the network: {e}") from e
