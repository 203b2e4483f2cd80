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
"""The LeJEPA multi-view objective."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from monai_jepa.losses.sigreg import SIGReg

__all__ = ["LeJEPALoss"]


def _check_lamb(lamb: float) -> float:
    """The trade-off ``lamb`` as a float, checked to lie in [0, 1]."""
    if not 0.0 <= lamb <= 1.0:
        raise ValueError(f"lamb must lie in [0, 1], got {lamb}.")
    return float(lamb)


def _as_views(views: torch.Tensor | Sequence[torch.Tensor], name: str) -> torch.Tensor:
    """Stack a sequence of (N, K) projections, or check a (V, N, K) tensor."""
    if not isinstance(views, torch.Tensor):
        views = torch.stack(list(views))
    if views.ndim != 3 or views.shape[0] == 0:
        raise ValueError(
            f"{name} must be a (V, N, K) tensor or a non-empty sequence of (N, K), got {tuple(views.shape)}."
        )
    return views


class LeJEPALoss(nn.Module):
    """LeJEPA: predict the centre of the global views from every view, regularised by SIGReg.

    With projections ``z_v`` (N, K) of V views of the same N images, of which the first G are global views:

        mu = (1 / G) sum_{v < G} z_v
        L_pred = (1 / V) sum_v mean_{i, k} (mu_ik - z_v,ik)^2
        L = (1 - lambda) L_pred + lambda * (1 / V) sum_v SIGReg(z_v)

    ``L_pred`` AVERAGES over the K embedding dimensions (and over samples and views); summing instead would multiply
    it by K and change the meaning of ``lamb``. SIGReg is applied to every view, local ones included, with one set of
    random directions per call. No stop-gradient, no teacher: the gradient flows through ``mu`` too.

    Args:
        lamb: trade-off ``lambda`` in [0, 1] (default 0.05).
        num_slices: random directions per SIGReg call (default 1024).
        num_knots: SIGReg integration knots (default 17).
        t_max: SIGReg integration half-width (default 5).
        seed: seed of SIGReg's direction generator.
        distributed: evaluate SIGReg over the global batch when torch.distributed is initialised.

    Example::

        >>> loss_fn = LeJEPALoss(lamb=0.05)
        >>> global_z, local_z = torch.randn(2, 64, 32), torch.randn(6, 64, 32)  # (V, N, K)
        >>> loss = loss_fn(global_z, local_z)
        >>> terms = loss_fn.compute_terms(global_z, local_z)  # {"loss", "pred", "sigreg"}
    """

    def __init__(
        self,
        lamb: float = 0.05,
        num_slices: int = 1024,
        num_knots: int = 17,
        t_max: float = 5.0,
        seed: int = 0,
        distributed: bool = True,
    ) -> None:
        super().__init__()
        self.lamb = _check_lamb(lamb)
        self.sigreg = SIGReg(num_slices, num_knots, t_max, seed, distributed)

    def compute_terms(
        self,
        global_views: torch.Tensor | Sequence[torch.Tensor],
        local_views: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            global_views: projections of the G global views, (G, N, K) or a sequence of (N, K).
            local_views: projections of the L local views, (L, N, K), a sequence of (N, K), or None.

        Returns:
            ``{"loss": L, "pred": L_pred, "sigreg": mean SIGReg}``, fp32 scalars.
        """
        g = _as_views(global_views, "global_views").float()
        views = g
        if local_views is not None and len(local_views) > 0:
            local = _as_views(local_views, "local_views").float()
            if local.shape[1:] != g.shape[1:]:
                raise ValueError(
                    f"local_views must be (L, {g.shape[1]}, {g.shape[2]}) like global_views, got {tuple(local.shape)}."
                )
            views = torch.cat([g, local])
        pred = (views - g.mean(0)).square().mean()
        sigreg = self.sigreg(views)
        return {"loss": (1.0 - self.lamb) * pred + self.lamb * sigreg, "pred": pred, "sigreg": sigreg}

    def forward(
        self,
        global_views: torch.Tensor | Sequence[torch.Tensor],
        local_views: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The total loss, see :meth:`compute_terms`."""
        return self.compute_terms(global_views, local_views)["loss"]
