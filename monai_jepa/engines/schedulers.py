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

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["warmup_cosine"]


def warmup_cosine(optimizer: Optimizer, warmup_steps: int, total_steps: int, final_lr_ratio: float = 1e-3) -> LambdaLR:
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

    Args:
        optimizer: the optimizer whose parameter groups are scheduled.
        warmup_steps: number of warmup steps ``W >= 0``.
        total_steps: total number of steps ``T > W``.
        final_lr_ratio: final learning rate as a fraction of the base rate, in ``[0, 1]`` (default 1e-3).

    Returns:
        the ``LambdaLR`` scheduler.

    Example::

        >>> opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
        >>> sched = warmup_cosine(opt, warmup_steps=500, total_steps=10_000)
    """
    if int(warmup_steps) != warmup_steps or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}.")
    if int(total_steps) != total_steps or total_steps <= warmup_steps:
        raise ValueError(f"total_steps must be an integer > warmup_steps={warmup_steps}, got {total_steps!r}.")
    if not 0.0 <= final_lr_ratio <= 1.0:
        raise ValueError(f"final_lr_ratio must lie in [0, 1], got {final_lr_ratio!r}.")
    warmup, decay, ratio = int(warmup_steps), max(1, int(total_steps) - 1 - int(warmup_steps)), float(final_lr_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / decay)
        return ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
