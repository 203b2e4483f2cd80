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
"""MLP projector that maps pooled encoder features to the space where the LeJEPA loss is computed."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.utils import look_up_option

__all__ = ["Projector"]

SUPPORTED_NORMS = ("batch", "layer", "none")


class Projector(nn.Module):
    """
    LeJEPA projector: an MLP ``in_dim -> hidden_dim -> ... -> hidden_dim -> out_dim`` with ``num_layers`` linear
    layers. Every hidden layer is Linear + norm + ReLU; the last layer is a plain Linear. The default is the LeJEPA
    head ``in_dim -> 2048 -> 2048 -> 64`` with BatchNorm (a small output dimension works best).

    Args:
        in_dim: input feature dimension (the encoder's ``embed_dim``).
        hidden_dim: width of the hidden layers.
        out_dim: projection dimension.
        num_layers: number of linear layers (1 gives a single Linear ``in_dim -> out_dim``).
        norm: norm of the hidden layers: ``"batch"`` (BatchNorm1d), ``"layer"`` (LayerNorm) or ``"none"``.
            Hidden linear layers have no bias when followed by BatchNorm, which would cancel it.

    Example::

        >>> proj = Projector(in_dim=512)
        >>> z = proj(torch.randn(8, 512))  # (8, 64)
    """

    def __init__(
        self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 64, num_layers: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        if min(in_dim, hidden_dim, out_dim) < 1:
            raise ValueError(f"in_dim, hidden_dim and out_dim must be positive, got {in_dim}, {hidden_dim}, {out_dim}.")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
        self.norm = look_up_option(norm, SUPPORTED_NORMS)
        self.in_dim = in_dim
        self.out_dim = out_dim
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim, bias=self.norm != "batch"))
            if self.norm == "batch":
                layers.append(nn.BatchNorm1d(hidden_dim))
            elif self.norm == "layer":
                layers.append(nn.LayerNorm(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: features of shape ``(B, in_dim)``.

        Returns:
            projections of shape ``(B, out_dim)``.
        """
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"input must have shape (B, {self.in_dim}), got {list(x.shape)}.")
        return self.mlp(x)
