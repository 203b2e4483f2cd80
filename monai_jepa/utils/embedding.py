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
"""Embedding health measures: effective rank (RankMe) and the spread of L2-normalised embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["effective_rank", "embedding_std"]


def _check(z: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.ndim != 2:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"`{name}` expects embeddings of shape (N, D), got {shape}.")
    if z.shape[0] < 2 or z.shape[1] < 1:
        raise ValueError(f"`{name}` needs at least 2 embeddings of dimension >= 1, got shape {tuple(z.shape)}.")
    return z.detach().to(torch.float64)


@torch.no_grad()
def effective_rank(z: torch.Tensor, eps: float = 1e-12) -> float:
    """Effective rank (RankMe) of a batch of embeddings.

    With ``s`` the singular values of the centred embeddings and ``p = s / sum(s)``, the effective rank is
    ``exp(-sum_k p_k log p_k)``: ``D`` for isotropic embeddings (N >> D), 1 when they vary along a single
    direction, 0 when they are all equal (complete collapse). At most ``min(N - 1, D)``.

    Args:
        z: embeddings (N, D), N >= 2; computed in float64 without gradient.
        eps: singular-value sums below this count as a collapse (returns 0).

    Returns:
        the effective rank, a float in ``[0, min(N - 1, D)]``.

    Example::

        >>> effective_rank(torch.randn(4096, 8))  # ~8
        >>> effective_rank(torch.randn(100, 1) * torch.randn(1, 8))  # 1.0
    """
    z = _check(z, "effective_rank")
    s = torch.linalg.svdvals(z - z.mean(0, keepdim=True))
    total = s.sum()
    if total <= eps * max(1.0, float(z.abs().max())):
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def embedding_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the per-dimension standard deviation of the L2-normalised embeddings.

    Healthy (isotropic) embeddings of dimension D give about ``1 / sqrt(D)``; collapsed ones (all rows pointing the
    same way) give 0.

    Args:
        z: embeddings (N, D), N >= 2; computed in float64 without gradient (unbiased std over the N rows).

    Returns:
        the mean per-dimension std, a float in ``[0, 1]``.

    Example::

        >>> embedding_std(torch.randn(4096, 64))  # ~0.125 = 1 / sqrt(64)
        >>> embedding_std(torch.ones(10, 64))  # 0.0
    """
    z = _check(z, "embedding_std")
    return float(F.normalize(z, dim=1).std(dim=0).mean())
