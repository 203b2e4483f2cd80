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
"""SIGReg: Sketched Isotropic Gaussian Regularization (LeJEPA, Balestriero & LeCun 2025).

For embeddings ``Z`` (N x K) and random unit directions ``a_m``, the slices ``u_m = Z a_m`` are compared with N(0, 1)
by the Epps-Pulley statistic

    EP_m = N * integral over t of [ (mean_i cos(t u_mi) - exp(-t^2/2))^2 + (mean_i sin(t u_mi))^2 ] exp(-t^2/2) dt,

evaluated with the trapezoid rule on ``num_knots`` evenly spaced knots on [-t_max, t_max]. SIGReg is the mean of
``EP_m`` over the slices. Its value for Gaussian embeddings is not 0 but about sqrt(2 pi) - sqrt(2 pi / 3) = 1.06
(the expected value of the N-scaled statistic under the null), and it grows with N for any other distribution.

Exactness and speed:
    * the integrand is even in t, so only the non-negative knots are evaluated (with doubled weights) and the knot at
      t = 0 is skipped (its integrand is exactly 0);
    * the knots are evenly spaced, ``t_k = t_0 + k dt``, so ``exp(i t_k u) = exp(i t_0 u) exp(i dt u)^k``: two
      cos/sin evaluations per element instead of one per knot, and the backward pass sums the per-knot terms with
      Horner's scheme on the same rotation; both passes update one buffer in place and, on one CPU thread, run in
      cache-sized blocks of slices (the statistic is memory-bound; see :class:`_ECFSums`);
    * the whole statistic is computed in fp32, with autocast disabled;
    * in a distributed run the per-knot sums are all-reduced with an autograd-aware sum, so every rank computes the
      statistic of the global batch and, after DDP's gradient averaging, the gradient of the global batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from monai_jepa.utils.dist import all_reduce_sum, broadcast_int, get_world_size, is_dist

__all__ = ["epps_pulley", "sigreg_knots", "SIGReg"]


def sigreg_knots(num_knots: int = 17, t_max: float = 5.0) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """The non-negative, non-zero knots of the symmetric trapezoid grid and their quadrature weights.

    Args:
        num_knots: number of knots of the full grid on [-t_max, t_max] (>= 2).
        t_max: half-width of the integration interval (> 0).

    Returns:
        ``(t0, dt, weights, gauss)``: the first positive knot ``t0`` used, the knot spacing ``dt``, the weights
        ``w_k`` (n,) and the N(0, 1) characteristic function ``exp(-t_k^2/2)`` (n,) at the knots ``t_k = t0 + k dt``,
        both float64. ``w_k`` is the trapezoid weight (doubled for the mirrored negative knot) times the window
        ``exp(-t_k^2/2)``, so the integral of an even function ``f`` times the window is ``sum_k w_k f(t_k)``.
    """
    if int(num_knots) != num_knots or num_knots < 2:
        raise ValueError(f"num_knots must be an integer >= 2, got {num_knots}.")
    if not t_max > 0:
        raise ValueError(f"t_max must be > 0, got {t_max}.")
    num_knots = int(num_knots)
    dt = 2.0 * t_max / (num_knots - 1)
    n = num_knots // 2  # positive knots; with an odd count the knot t = 0 is skipped (its integrand is 0)
    t0 = dt if num_knots % 2 else dt / 2
    t = t0 + dt * torch.arange(n, dtype=torch.float64)
    trapezoid = torch.full((n,), 2.0 * dt, dtype=torch.float64)
    trapezoid[-1] = dt  # the end knots +-t_max carry half weight each
    gauss = torch.exp(-0.5 * t**2)
    return t0, dt, trapezoid * gauss, gauss


def _unit_complex(x: torch.Tensor) -> torch.Tensor:
    """exp(i x) (faster than torch.polar on CPU)."""
    return torch.complex(torch.cos(x), torch.sin(x))


_BLOCK_ELEMENTS = 1 << 17
"""Target size of a column block on a single CPU thread: 2^17 elements of a complex64 working tensor (1 MiB)."""
_MIN_BLOCK_COLUMNS = 64


def _column_blocks(u: torch.Tensor) -> list[slice]:
    """Column (slice) blocks of ``u`` (..., N, M) processed through all knots at a time.

    With one CPU thread the blocks are small enough for the working tensors to stay in cache while the recurrence
    runs through the knots (about 1 MiB per tensor, at least 64 columns so that the Python loop stays short). With
    several threads, and on other devices, one block: every elementwise operation is a parallel region, and on a
    loaded machine each region can wait for a descheduled thread, so that the time grows with their number (with 2
    threads on 2 CPUs busy with other jobs, 8 blocks took a median 2.7 s for the benchmark workload of
    ``benchmarks/sigreg_speed.py``, against 0.24 s unblocked; 52 ms against 151 ms on one thread).
    """
    m = u.shape[-1]
    if u.device.type != "cpu" or torch.get_num_threads() > 1:
        return [slice(0, m)]
    rows = max(1, u.numel() // max(m, 1))
    width = min(m, max(_MIN_BLOCK_COLUMNS, _BLOCK_ELEMENTS // rows))
    return [slice(i, min(i + width, m)) for i in range(0, m, width)]


class _ECFSums(torch.autograd.Function):
    """Sums over samples of ``cos(t_k u)`` and ``sin(t_k u)`` for ``t_k = t0 + k dt``, k < n.

    Forward: ``exp(i t_k u) = exp(i t0 u) r^k`` with ``r = exp(i dt u)``, one in-place complex multiply per knot.
    Backward: ``dL/du = Re(exp(i t0 u) * sum_k H_k r^k)`` with ``H_k = t_k (dL/dB_k + i dL/dA_k)``, the polynomial
    evaluated by Horner's scheme, again one in-place complex multiply-add per knot.

    The statistic is memory-bound: the recurrence updates one buffer in place (no temporary per knot) and, on one CPU
    thread, both passes run block by block over the slices (:func:`_column_blocks`), so the working set stays in
    cache. The backward pass recomputes ``r`` from the saved ``u`` (one cos/sin pair per element) instead of saving two
    complex tensors, four times the size of ``u``.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, t0: float, dt: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        sums = torch.empty(*u.shape[:-2], n, u.shape[-1], dtype=torch.complex64, device=u.device)
        for cols in _column_blocks(u):
            ub = u[..., cols]
            rot = _unit_complex(ub * dt)
            z = rot.clone() if t0 == dt else _unit_complex(ub * t0)
            torch.sum(z, -2, out=sums[..., 0, cols])
            for k in range(1, n):
                z.mul_(rot)
                torch.sum(z, -2, out=sums[..., k, cols])
        ctx.save_for_backward(u)
        ctx.knots = (t0, dt, n)
        return sums.real.contiguous(), sums.imag.contiguous()

    @staticmethod
    def backward(ctx, grad_cos: torch.Tensor, grad_sin: torch.Tensor):
        (u,) = ctx.saved_tensors
        t0, dt, n = ctx.knots
        t = t0 + dt * torch.arange(n, dtype=grad_cos.dtype, device=grad_cos.device)
        h = torch.complex(grad_sin, grad_cos) * t[:, None]  # (..., n, M)
        grad = torch.empty_like(u)
        for cols in _column_blocks(u):
            ub, hb = u[..., cols], h[..., cols]
            rot = _unit_complex(ub * dt)
            coef = hb.unsqueeze(-2)  # (..., n, 1, cols)
            if n == 1:
                poly = coef[..., 0, :, :].expand_as(rot)
            else:
                poly = torch.addcmul(coef[..., n - 2, :, :], coef[..., n - 1, :, :], rot)
                for k in range(n - 3, -1, -1):
                    torch.addcmul(coef[..., k, :, :], poly, rot, out=poly)  # in place: one pass per knot
            first = rot if t0 == dt else _unit_complex(ub * t0)
            grad[..., cols] = (first * poly).real
        return grad, None, None, None


def epps_pulley(u: torch.Tensor, num_knots: int = 17, t_max: float = 5.0, distributed: bool = True) -> torch.Tensor:
    """N-scaled Epps-Pulley statistic of each column of ``u`` against N(0, 1).

    Args:
        u: projections (N, M) (or (*B, N, M)): N samples of M one-dimensional slices.
        num_knots: trapezoid knots on [-t_max, t_max] (default 17).
        t_max: integration half-width (default 5).
        distributed: when torch.distributed is initialised, compute the statistic of the batch concatenated over all
            ranks (autograd-aware all-reduce of the per-knot sums); N is then the global sample count.

    Returns:
        the statistic of every slice, (M,) (or (*B, M)), fp32.

    Example::

        >>> u = torch.randn(512, 1024)
        >>> epps_pulley(u).mean()  # about 1.06 for Gaussian samples
    """
    if u.ndim < 2:
        raise ValueError(f"u must have shape (N, M) or (*B, N, M), got {tuple(u.shape)}.")
    if u.shape[-2] < 1:
        raise ValueError("u must hold at least one sample (dimension -2 is empty).")
    t0, dt, weights, gauss = sigreg_knots(num_knots, t_max)
    with torch.autocast(device_type=u.device.type, enabled=False):
        u = u.float()
        cos_sum, sin_sum = _ECFSums.apply(u, t0, dt, weights.numel())
        n = u.new_tensor(float(u.shape[-2]))
        if distributed and is_dist():
            cos_sum, sin_sum = all_reduce_sum(cos_sum), all_reduce_sum(sin_sum)
            n = all_reduce_sum(n)
        w = weights.to(u)[:, None]
        g = gauss.to(u)[:, None]
        return n * (w * ((cos_sum / n - g) ** 2 + (sin_sum / n) ** 2)).sum(-2)


class SIGReg(nn.Module):
    """Sketched Isotropic Gaussian Regularization on embeddings.

    Every call draws ``num_slices`` fresh random unit directions, projects the embeddings on them and returns the mean
    Epps-Pulley statistic (see :func:`epps_pulley`). The directions come from a counter-based generator: call ``i``
    uses a seed derived from ``(seed, step)``, and ``step`` is a buffer, so runs are reproducible, checkpoints resume
    the same sequence, and in a distributed run every rank draws the same directions (the seed and step are broadcast
    from rank 0 on the first call).

    Args:
        num_slices: number of random directions M per call (default 1024).
        num_knots: trapezoid knots on [-t_max, t_max] (default 17).
        t_max: integration half-width (default 5).
        seed: base seed of the direction generator.
        distributed: evaluate the statistic over the global batch when torch.distributed is initialised.

    Example::

        >>> sigreg = SIGReg(num_slices=256, seed=0)
        >>> loss = sigreg(torch.randn(512, 128))  # about 1.06
        >>> loss = sigreg(torch.randn(8, 256, 128))  # (V, N, K): mean over views, one set of directions
    """

    def __init__(
        self,
        num_slices: int = 1024,
        num_knots: int = 17,
        t_max: float = 5.0,
        seed: int = 0,
        distributed: bool = True,
    ) -> None:
        super().__init__()
        if int(num_slices) != num_slices or num_slices < 1:
            raise ValueError(f"num_slices must be a positive integer, got {num_slices}.")
        sigreg_knots(num_knots, t_max)  # validates
        self.num_slices = int(num_slices)
        self.num_knots = int(num_knots)
        self.t_max = float(t_max)
        self.seed = int(seed)
        self.distributed = distributed
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self._synced = False

    def sample_directions(self, dim: int, step: int | None = None) -> torch.Tensor:
        """The unit directions (dim, num_slices) used at ``step`` (default: the current step), on the CPU, fp32."""
        step = int(self.step) if step is None else int(step)
        state = np.random.SeedSequence([self.seed & 0xFFFFFFFF, step]).generate_state(2, dtype=np.uint32)
        gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        a = torch.randn(dim, self.num_slices, generator=gen)
        return a / a.norm(dim=0, keepdim=True)

    def _sync_generator(self) -> None:
        if self._synced or not (self.distributed and is_dist()) or get_world_size() == 1:
            return
        self.seed, step = broadcast_int([self.seed, int(self.step)])
        self.step.fill_(step)
        self._synced = True

    def forward(self, z: torch.Tensor, directions: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            z: embeddings (N, K), or (V, N, K) for V views sharing the same directions.
            directions: optional fixed directions (K, M) with unit-norm columns; when given, no directions are drawn
                and the step counter does not advance.

        Returns:
            scalar fp32 tensor: the mean statistic over slices (and views).
        """
        if z.ndim not in (2, 3):
            raise ValueError(f"z must have shape (N, K) or (V, N, K), got {tuple(z.shape)}.")
        dim = z.shape[-1]
        if directions is None:
            self._sync_generator()
            directions = self.sample_directions(dim)
            self.step += 1
        elif directions.ndim != 2 or directions.shape[0] != dim:
            raise ValueError(f"directions must have shape (K={dim}, M), got {tuple(directions.shape)}.")
        with torch.autocast(device_type=z.device.type, enabled=False):
            u = z.float() @ directions.to(device=z.device, dtype=torch.float32)
            return epps_pulley(u, self.num_knots, self.t_max, self.distributed).mean()

    def extra_repr(self) -> str:
        return f"num_slices={self.num_slices}, num_knots={self.num_knots}, t_max={self.t_max}, seed={self.seed}"
