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
"""Learning-rate schedules stepped once per iteration."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["warmup_cosine"]


def warmup_cosine(
    optimizer: Optimizer,
    warmup_steps: int,
    total_steps: int,
    final_lr_ratio: float = 1e-3,
    time_limit_minutes: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LambdaLR:
    """Linear warmup followed by a cosine decay, as a ``LambdaLR`` stepped once per iteration.

    With base learning rate ``lr``, ``W = warmup_steps`` and ``T = total_steps``, the rate used at step ``s``
    (0-based, the number of ``scheduler.step()`` calls so far) is:

        - ``lr * (s + 1) / (W + 1)`` for ``s < W`` (linear warmup);
        - ``lr * (r + (1 - r) * (1 + cos(pi * (s - W) / (T - 1 - W))) / 2)`` for ``W <= s < T``, with
          ``r = final_lr_ratio``: exactly ``lr`` at ``s = W`` and exactly ``lr * r`` at the last step ``s = T - 1``
          (when ``T > W + 1``);
        - ``lr * r`` afterwards.

    Use with MONAI's ``LrScheduleHandler(scheduler, epoch_level=False)``; ``total_steps`` then counts iterations
    (``max_epochs * len(train_data_loader)``).

    Time budget: with ``time_limit_minutes`` the decay follows whichever runs out first, the steps or the wall-clock
    budget: the cosine progress is ``max((s - W) / (T - 1 - W), (t - t_W) / (budget - t_W))``, where ``t`` is the
    time since the scheduler was created and ``t_W`` the time at which the warmup ended. A run stopped by
    the trainers' ``time_limit_minutes`` then ends at the final rate instead of being cut mid-decay, whatever the
    speed of the machine, so the same config suits a laptop and a GPU server. The rate then depends on the
    wall-clock time, so two such runs are not bit-identical; leave it ``None`` for reproducible step-based runs.

    Why not ``monai.optimizers.WarmupCosineSchedule``: it decays over a fixed number of steps only (no wall-clock
    budget), towards an absolute ``end_lr`` shared by all parameter groups rather than a fraction of each group's
    rate (groups with per-prefix learning-rate factors keep their ratio here).

    Args:
        optimizer: the optimizer whose parameter groups are scheduled.
        warmup_steps: number of warmup steps ``W >= 0``.
        total_steps: total number of steps ``T > W``.
        final_lr_ratio: final learning rate as a fraction of the base rate, in ``[0, 1]`` (default 1e-3).
        time_limit_minutes: optional wall-clock budget of the run, in minutes (> 0), see above; pass the trainer's
            ``time_limit_minutes``.
        clock: the time source in seconds (for tests).

    Returns:
        the ``LambdaLR`` scheduler.

    Example::

        >>> opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
        >>> sched = warmup_cosine(opt, warmup_steps=500, total_steps=10_000)
        >>> sched = warmup_cosine(opt, 100, 1_000_000, time_limit_minutes=15)  # decays over 15 minutes
    """
    if int(warmup_steps) != warmup_steps or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}.")
    if int(total_steps) != total_steps or total_steps <= warmup_steps:
        raise ValueError(f"total_steps must be an integer > warmup_steps={warmup_steps}, got {total_steps!r}.")
    if not 0.0 <= final_lr_ratio <= 1.0:
        raise ValueError(f"final_lr_ratio must lie in [0, 1], got {final_lr_ratio!r}.")
    if time_limit_minutes is not None and not time_limit_minutes > 0:
        raise ValueError(f"time_limit_minutes must be None or > 0, got {time_limit_minutes!r}.")
    warmup, decay, ratio = int(warmup_steps), max(1, int(total_steps) - 1 - int(warmup_steps)), float(final_lr_ratio)
    budget = None if time_limit_minutes is None else 60.0 * float(time_limit_minutes)
    marks: dict[str, float] = {}

    def time_progress(step: int) -> float:
        if budget is None:
            return 0.0
        now = clock()
        start = marks.setdefault("start", now)
        end_of_warmup = marks.setdefault("warmup", now) if step >= warmup else now
        return (now - end_of_warmup) / max(budget - (end_of_warmup - start), 1e-9)

    def factor(step: int) -> float:
        elapsed = time_progress(step)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, max((step - warmup) / decay, elapsed))
        return ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
