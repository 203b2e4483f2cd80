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
import torch.nn as nn
import torch.nn.functional as F
from ignite.engine import Events
from monai.handlers import LrScheduleHandler
from torch.utils.data import DataLoader

from monai_jepa.engines import (
    OUTPUT_KEYS,
    JEPACheckpointer,
    LeJEPATrainer,
    NonFiniteGradientError,
    NonFiniteLossError,
    warmup_cosine,
)
from monai_jepa.losses import LeJEPALoss
from monai_jepa.transforms import BatchMultiView


class MeanLoss(torch.nn.Module):
    """Stand-in loss that is a mean over samples (so accumulation is exact): a prediction term and a penalty along
    one fixed direction. Records the dtype it is given."""

    def __init__(self, dim: int = 3):
        super().__init__()
        self.register_buffer("direction", F.normalize(torch.arange(1.0, dim + 1), dim=0))
        self.dtypes: list[torch.dtype] = []

    def compute_terms(self, global_views, local_views=None):
        self.dtypes.append(global_views.dtype)
        views = global_views if local_views is None else torch.cat([global_views, local_views])
        pred = (views - global_views.mean(0)).square().mean()
        sig = (views @ self.direction).square().mean()
        return {"loss": 0.9 * pred + 0.1 * sig, "pred": pred, "sigreg": sig}


def _net(dims: int = 2, bn: bool = False) -> torch.nn.Module:
    conv, pool = (
        (torch.nn.Conv2d, torch.nn.AdaptiveAvgPool2d) if dims == 2 else (torch.nn.Conv3d, torch.nn.AdaptiveAvgPool3d)
    )
    bn_layer = ([torch.nn.BatchNorm2d(4)] if dims == 2 else [torch.nn.BatchNorm3d(4)]) if bn else []
    return torch.nn.Sequential(
        conv(1, 4, 1), *bn_layer, torch.nn.ReLU(), pool(2), torch.nn.Flatten(), torch.nn.Linear(4 * 2**dims, 3)
    )


def _batches(n: int, batch: int, seed: int = 0) -> list[dict]:
    """View-major batches: image_global (2, B, 1, 4, 4), image_local (2, B, 1, 2, 2)."""
    g = torch.Generator().manual_seed(seed)
    glob, loc = torch.randn(2, n, 1, 4, 4, generator=g), torch.randn(2, n, 1, 2, 2, generator=g)
    return [{"image_global": glob[:, i : i + batch], "image_local": loc[:, i : i + batch]} for i in range(0, n, batch)]


def _trainer(data, net=None, loss=None, lr=0.5, **kwargs) -> LeJEPATrainer:
    net = _net() if net is None else net
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    kwargs.setdefault("amp", False)  # exact fp32 comparisons; the bf16 default has its own test
    return LeJEPATrainer(
        "cpu", kwargs.pop("max_epochs", 1), data, net, opt, MeanLoss() if loss is None else loss, **kwargs
    )


def _record(trainer) -> list[dict]:
    outputs: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(e.state.output))
    return outputs


def test_short_run_decreases_loss():
    torch.manual_seed(0)
    data = [{"image": torch.rand(1, 16, 16)} for _ in range(32)]
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 4),
    )
    trainer = LeJEPATrainer(
        "cpu",
        8,
        DataLoader(data, batch_size=16, shuffle=True),
        net,
        torch.optim.Adam(net.parameters(), lr=1e-2),
        LeJEPALoss(num_slices=64, lamb=0.1),
        seed=0,
        views_fn=BatchMultiView(num_global=2, num_local=2, global_size=12, local_size=8),
    )
    outputs = _record(trainer)
    trainer.run()
    losses = [o["loss"] for o in outputs]
    assert len(losses) == 16 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3
    # every output is a dict of floats with the documented keys
    assert all(set(o) == set(OUTPUT_KEYS) and all(isinstance(v, float) for v in o.values()) for o in outputs)
    assert all(0.0 < o["effective_rank"] <= 4.0 and 0.0 <= o["embedding_std"] <= 1.0 for o in outputs)


def test_gradient_accumulation_equals_larger_batch():
    torch.manual_seed(0)
    init = _net().state_dict()
    small, big = _net(), _net()
    small.load_state_dict(init)
    big.load_state_dict(init)
    t_small = _trainer(_batches(8, 2), small, accumulation_steps=2)  # 4 iterations -> 2 optimizer steps
    out_small = _record(t_small)
    first = {}
    t_small.add_event_handler(
        Events.ITERATION_COMPLETED(once=1),
        lambda e: first.update({k: v.clone() for k, v in small.state_dict().items()}),
    )
    t_small.run()
    t_big = _trainer(_batches(8, 4), big)  # 2 iterations -> 2 optimizer steps
    t_big.run()
    for k, v in init.items():
        assert torch.equal(first[k], v)  # no step after the first micro-batch
        torch.testing.assert_close(small.state_dict()[k], big.state_dict()[k], rtol=1e-5, atol=1e-6)
        assert not torch.equal(small.state_dict()[k], v)
    # the reported loss is not divided by accumulation_steps
    fresh = _net()
    fresh.load_state_dict(init)
    t_plain = _trainer(_batches(8, 2)[:1], fresh)
    out_plain = _record(t_plain)
    t_plain.run()
    assert out_small[0]["loss"] == out_plain[0]["loss"]


def test_accumulation_flushes_at_epoch_end():
    trainer = _trainer(_batches(6, 2), accumulation_steps=2, max_epochs=2)  # 3 iterations per epoch
    steps = []
    trainer.optimizer.register_step_post_hook(lambda *_: steps.append(trainer.state.iteration))
    trainer.run()
    assert steps == [2, 3, 5, 6]


def test_bf16_autocast_runs_with_fp32_loss():
    net = _net(bn=True)
    out_dtypes = []
    net.register_forward_hook(lambda m, i, o: out_dtypes.append(o.dtype))
    loss = MeanLoss()
    trainer = _trainer(_batches(4, 2), net, loss, amp=True, amp_dtype="bfloat16")
    outputs = _record(trainer)
    trainer.run()
    assert out_dtypes == [torch.bfloat16] * 4  # global and local passes, 2 iterations
    assert loss.dtypes == [torch.float32] * 2
    assert all(math.isfinite(o["loss"]) for o in outputs) and trainer.scaler is None
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.parametrize("dims, fmt", [(2, torch.channels_last), (3, torch.channels_last_3d)])
def test_channels_last(dims, fmt):
    conv, pool = (
        (torch.nn.Conv2d, torch.nn.AdaptiveAvgPool2d) if dims == 2 else (torch.nn.Conv3d, torch.nn.AdaptiveAvgPool3d)
    )
    net = torch.nn.Sequential(conv(2, 4, 3, padding=1), pool(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    assert not net[0].weight.is_contiguous(memory_format=fmt)
    formats = []
    net.register_forward_pre_hook(lambda m, i: formats.append(i[0].is_contiguous(memory_format=fmt)))
    data = [{"image_global": torch.rand(2, 2, 2, *(4,) * dims)}]  # (G, B, C, *spatial) with C = 2
    assert not data[0]["image_global"][0].is_contiguous(memory_format=fmt)
    _trainer(data, net, channels_last=True).run()
    assert formats == [True] and net[0].weight.is_contiguous(memory_format=fmt)


def test_non_finite_loss_stops_before_the_step_and_keeps_checkpoint(tmp_path):
    data = _batches(8, 2)
    data[2]["image_global"][0, 0, 0, 0, 0] = float("nan")  # iteration 3
    ck = JEPACheckpointer(tmp_path, save_interval=1, n_saved=None)
    trainer = _trainer(data, train_handlers=[ck])
    snapshot = {}
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED(once=2),
        lambda e: snapshot.update({k: v.clone() for k, v in e.network.state_dict().items()}),
    )
    with pytest.raises(NonFiniteLossError, match=r"iteration 3 \(epoch 1\): loss=nan, pred=nan, sigreg=nan") as err:
        trainer.run()
    assert (
        isinstance(err.value, FloatingPointError) and err.value.iteration == 3 and math.isnan(err.value.terms["loss"])
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint_00000001.pt",
        "checkpoint_00000002.pt",
        "checkpoint_latest.txt",
    ]
    saved = torch.load(tmp_path / "checkpoint_00000002.pt", weights_only=True)
    for k, v in trainer.network.state_dict().items():
        assert torch.equal(saved["model"][k], snapshot[k]) and torch.equal(v, snapshot[k])  # no step was taken


def test_non_finite_gradient_stops_before_the_step():
    trainer = _trainer(_batches(4, 2))
    param = next(trainer.network.parameters())
    calls = []
    param.register_hook(lambda g: g * float("inf") if calls.append(1) or len(calls) == 2 else g)  # iteration 2
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED(once=1), lambda e: setattr(e.state, "after_one", param.detach().clone())
    )
    with pytest.raises(NonFiniteGradientError, match=r"iteration 2 \(epoch 1\) with a finite loss, in ") as err:
        trainer.run()
    assert err.value.iteration == 2 and err.value.names and isinstance(err.value, FloatingPointError)
    assert torch.equal(param.detach(), trainer.state.after_one)  # no step was taken on the bad gradient


def test_output_lr_and_health_interval():
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=2, total_steps=6, final_lr_ratio=0.1)
    trainer = LeJEPATrainer(
        "cpu",
        1,
        _batches(12, 2),
        net,
        opt,
        MeanLoss(),
        health_interval=3,
        train_handlers=[LrScheduleHandler(sched, print_lr=False, epoch_level=False)],
    )
    outputs = _record(trainer)
    trainer.run()
    assert [o["lr"] for o in outputs] == pytest.approx(
        [1 / 3, 2 / 3, 1.0, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 3)), 0.1 + 0.9 * 0.25, 0.1]
    )
    ranks = [o["effective_rank"] for o in outputs]
    assert ranks[0] == ranks[1] == ranks[2] and ranks[3] == ranks[4] == ranks[5] and ranks[0] != ranks[3]


def test_views_fn_receives_images_on_device():
    seen = []

    def views_fn(images):
        seen.append(tuple(images.shape))
        return images.unsqueeze(0).repeat(2, 1, 1, 1, 1), None

    data = [{"image": torch.rand(3, 1, 4, 4), "label": torch.zeros(3)}]
    loss = MeanLoss()
    outputs = _record(t := _trainer(data, loss=loss, views_fn=views_fn))
    t.run()
    assert seen == [(3, 1, 4, 4)] and outputs[0]["pred"] == 0.0  # identical global views, no local views


def test_errors():
    with pytest.raises(ValueError, match="accumulation_steps"):
        _trainer(_batches(2, 2), accumulation_steps=0)
    with pytest.raises(ValueError, match="bfloat16"):
        _trainer(_batches(2, 2), amp_dtype="float64")
    with pytest.raises(ValueError, match="time_limit_minutes"):
        _trainer(_batches(2, 2), time_limit_minutes=0)
    with pytest.raises(ValueError, match="image_global"):
        _trainer([{"image": torch.rand(2, 1, 4, 4)}]).run()
    with pytest.raises(ValueError, match=r"projections \(N, D\)"):
        _trainer(_batches(2, 2), net=torch.nn.Conv2d(1, 3, 1)).run()
    with pytest.raises(ValueError, match="same batch size"):
        _trainer([{"image_global": torch.rand(2, 2, 1, 4, 4), "image_local": torch.rand(2, 3, 1, 2, 2)}]).run()


def test_plain_tensor_drops_metatensor_metadata():
    from monai.data import MetaTensor

    from monai_jepa.engines import plain_tensor

    meta = MetaTensor(torch.arange(6.0).reshape(1, 6), affine=torch.eye(4) * 2)
    out = plain_tensor(meta)
    assert type(out) is torch.Tensor and torch.equal(out, torch.arange(6.0).reshape(1, 6))
    assert type(plain_tensor([1.0, 2.0])) is torch.Tensor


def test_stock_terminate_on_nan_lets_the_step_run_on_the_bad_loss():
    """Why the trainer checks the loss itself: Ignite's TerminateOnNan acts after the optimizer step, so the weights
    are already NaN when it stops the run (this trainer raises before the step, see the test above)."""
    from ignite.handlers import TerminateOnNan
    from monai.engines import SupervisedTrainer

    torch.manual_seed(0)
    net = nn.Linear(2, 1)
    data = [{"image": torch.tensor([[float("nan"), 1.0]]), "label": torch.zeros(1, 1)}] * 3
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    trainer = SupervisedTrainer("cpu", 1, data, net, opt, nn.MSELoss(), decollate=False)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan(output_transform=lambda out: out["loss"]))
    trainer.run()
    assert trainer.state.iteration == 1 and torch.isnan(net.weight).all()


def test_time_limit_takes_fractions_of_a_second_and_stock_time_limit_does_not():
    from ignite.handlers import TimeLimit

    with pytest.raises(TypeError):
        TimeLimit(limit_sec=0.5)  # whole seconds only
    trainer = _trainer(_batches(16, 2), max_epochs=50, time_limit_minutes=1e-6)  # 60 microseconds
    trainer.run()
    assert trainer.state.iteration == 1  # terminated after the first iteration, not after 400
