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

import math

import pytest
import torch

from monai_jepa.engines import warmup_cosine


def _lrs(warmup: int, total: int, ratio: float, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = warmup_cosine(opt, warmup, total, ratio)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_and_cosine_values():
    lrs = _lrs(warmup=4, total=11, ratio=0.01, steps=15)
    assert lrs[:4] == pytest.approx([2.0 * k / 5 for k in (1, 2, 3, 4)])  # linear warmup
    assert lrs[4] == pytest.approx(2.0)  # warmup end: the base rate
    assert lrs[7] == pytest.approx(2.0 * (0.01 + 0.99 * 0.5))  # half-way through the cosine
    assert lrs[5] == pytest.approx(2.0 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi / 6))))
    assert lrs[10] == pytest.approx(2.0 * 0.01)  # last step: final rate
    assert lrs[11:] == pytest.approx([0.02] * 4)  # stays there
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))  # monotone decay


def test_no_warmup_and_state_dict():
    lrs = _lrs(warmup=0, total=3, ratio=0.0, steps=3)
    assert lrs == pytest.approx([2.0, 1.0, 0.0])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, 2, 10)
    for _ in range(3):
        opt.step()
        sched.step()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = warmup_cosine(opt2, 2, 10)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())


@pytest.mark.parametrize(
    "args, match",
    [((-1, 10), "warmup_steps"), ((5, 5), "total_steps"), ((1.5, 10), "warmup_steps"), ((1, 10, 2.0), "final_lr")],
)
def test_invalid_arguments(args, match):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=match):
        warmup_cosine(opt, *args)


def test_time_budget_decays_by_the_deadline():
    """With a time budget the cosine follows the clock when it runs out before the steps do."""
    now = [0.0]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=2, total_steps=1_000_000, time_limit_minutes=1.0, clock=lambda: now[0])
    lrs = [opt.param_groups[0]["lr"]]
    for t in (1.0, 2.0, 32.0, 62.0, 100.0):  # warmup ends at t=2 s; 60 s budget, so 58 s of decay after warmup
        now[0] = t
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1 / 3) and lrs[1] == pytest.approx(2 / 3)
    assert lrs[2] == pytest.approx(1.0)  # first step after warmup, 0 s into the decay
    assert lrs[3] == pytest.approx(1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * 30 / 58)))
    assert lrs[4] == pytest.approx(1e-3) and lrs[5] == pytest.approx(1e-3)  # at and past the deadline


def test_time_budget_never_slows_a_step_schedule():
    """When the steps run out first the step schedule wins; an invalid budget is refused."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, 0, 3, time_limit_minutes=1e6, clock=lambda: 0.0)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="time_limit_minutes"):
        warmup_cosine(opt, 0, 3, time_limit_minutes=0)
