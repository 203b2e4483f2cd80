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
"""A linear probe on frozen features as a small torch module, saved beside the weights so that inference can report
class probabilities (fitted by :func:`monai_jepa.evaluation.fit_probe_head`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from monai_jepa.utils.fileio import atomic_torch_save, load_checkpoint_file

__all__ = ["ProbeHead"]


class ProbeHead(nn.Module):
    """A linear classifier on standardised frozen features, as fitted by a linear probe.

    ``forward(features)`` returns class probabilities: sigmoid for ``"binary"`` (one column, the positive class) and
    ``"multilabel"`` tasks, softmax otherwise.

    Args:
        mean: ``(D,)`` feature mean used for standardisation.
        std: ``(D,)`` feature standard deviation.
        weight: ``(K, D)`` weights (``K = 1`` for binary tasks).
        bias: ``(K,)`` biases.
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        class_names: optional names of the output columns.

    Example::

        head = ProbeHead.from_file("outputs/models/probe_head.pt")
        probabilities = head(features)  # (B, D) -> (B, K)
    """

    def __init__(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        task: str,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if weight.ndim != 2 or weight.shape[1] != mean.numel() or bias.numel() != weight.shape[0]:
            raise ValueError(
                f"probe shapes disagree: mean {tuple(mean.shape)}, weight {tuple(weight.shape)}, bias "
                f"{tuple(bias.shape)}; expected (D,), (K, D), (K,)."
            )
        self.register_buffer("mean", mean.float().reshape(-1))
        self.register_buffer("std", std.float().reshape(-1))
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight.float())
            self.linear.bias.copy_(bias.float().reshape(-1))
        self.task = task
        self.class_names = list(class_names) if class_names is not None else [str(k) for k in range(weight.shape[0])]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """
        Args:
            features: ``(B, D)``.

        Returns:
            probabilities ``(B, K)``.
        """
        logits = self.linear((features.float() - self.mean) / self.std)
        return torch.sigmoid(logits) if self.task in ("binary", "multilabel") else torch.softmax(logits, dim=1)

    def to_file(self, path: str | os.PathLike) -> Path:
        """Save as a plain dict of tensors and strings (loads with ``weights_only=True``), atomically.

        Args:
            path: destination file (its folder is created).

        Returns:
            ``path`` as a ``Path``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(
            {
                "mean": self.mean,
                "std": self.std,
                "weight": self.linear.weight.detach(),
                "bias": self.linear.bias.detach(),
                "task": self.task,
                "class_names": self.class_names,
            },
            path,
        )
        return path

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ProbeHead:
        """Load a head written by :meth:`to_file`.

        Args:
            path: the head file.

        Returns:
            the head, on the CPU.

        Raises:
            FileNotFoundError, CheckpointReadError: the file is missing or unreadable (the message names it).
            ValueError: the file is not a probe head (its entries are named).
        """
        state = load_checkpoint_file(path, "probe head file")
        try:
            return cls(**state)
        except TypeError as e:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"probe head file '{path}' holds {keys}, not a head written by ProbeHead.to_file.") from e
