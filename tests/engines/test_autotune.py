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

import logging

import pytest
import torch
from ignite.engine import Events

from monai_jepa.engines import (
    LeJEPATrainer,
    MaskedLatentTrainer,
    choose_step_settings,
    settings_label,
    step_candidates,
)
from monai_jepa.engines.autotune import DEFAULT_CANDIDATES
from monai_jepa.losses import EMATeacher, LeJEPALoss, MaskedLatentLoss
from monai_jepa.networks import JEPAPredictor, JEPAViT, MaskedLatentModel
from monai_jepa.transforms import BatchMultiView, MultiBlockMaskGenerator

LABELS = ["fp32+contiguous", "fp32+channels_last", "bf16+contiguous", "bf16+channels_last"]


class FakeClock:
    """A clock that advances by ``costs[label of the current setting]`` at every reading, so a timed step (one reading
    before, one after) lasts exactly the cost of the setting in force when it ends."""

    def __init__(self, costs: dict, current) -> None:
        self.costs, self.current, self.now, self.readings = costs, current, 0.0, 0

    def __call__(self) -> float:
        self.readings += 1
        self.now += self.costs[settings_label(self.current())]
        return self.now


# ---------------------------------------------------------------------------------------------- choose_step_settings
def test_default_candidates_and_labels():
    assert [settings_label(c) for c in DEFAULT_CANDIDATES] == LABELS
    assert [settings_label(c) for c in step_candidates("cpu", "auto", "auto")] == LABELS
    assert [settings_label(c) for c in step_candidates("cpu", True, "auto")] == LABELS[2:]
    assert [settings_label(c) for c in step_candidates("cpu", "auto", False)] == ["fp32+contiguous", "bf16+contiguous"]
    assert step_candidates("cpu", "auto", True, amp_dtype="float16")[1] == {
        "amp": True,
        "amp_dtype": "float16",
        "channels_last": True,
    }
    with pytest.raises(ValueError, match="amp must be True, False or 'auto'"):
        step_candidates("cpu", "fast", True)
    with pytest.raises(ValueError, match="amp_dtype"):
        step_candidates("cpu", "auto", True, amp_dtype="float8")


def test_chooses_the_fastest_and_logs_every_timing(caplog):
    costs = dict(zip(LABELS, [0.20, 0.38, 0.11, 0.21]))  # channels_last slower, bf16 faster
    current: dict = {}
    calls: list[str] = []

    def step(settings):
        current.update(settings)
        calls.append(settings_label(settings))

    clock = FakeClock(costs, lambda: current)
    with caplog.at_level(logging.INFO, logger="probe"):
        best = choose_step_settings(step, warmup=2, repeats=3, timer=clock, logger=logging.getLogger("probe"))
    assert best["label"] == "bf16+contiguous"
    assert (best["amp"], best["amp_dtype"], best["channels_last"]) == (True, "bfloat16", False)
    assert best["seconds"] == pytest.approx(costs)
    assert best["failed"] == {} and (best["warmup"], best["repeats"]) == (2, 3)
    assert calls == [label for label in LABELS for _ in range(5)]  # 2 warm-up + 3 timed steps each, in order
    assert clock.readings == 2 * 3 * len(LABELS)  # warm-up steps are not timed
    lines = [r.getMessage() for r in caplog.records if r.name == "probe"]
    assert len(lines) == 1
    assert lines[0] == (
        "Step settings probe (median of 3 timed steps after 2 warm-up, per setting): fp32+contiguous 0.2 s, "
        "fp32+channels_last 0.38 s, bf16+contiguous 0.11 s, bf16+channels_last 0.21 s -> chosen: bf16+contiguous "
        "(1.82x vs fp32+contiguous)."
    )


def test_median_ties_and_failed_candidates(caplog):
    # (start, end) pairs of the fp32 candidates, then the start readings of the two failing steps
    times = iter([0.0, 5.0, 5.0, 6.0, 6.0, 6.1, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 7.0, 8.0])

    def step(settings):
        if settings["amp"]:
            raise RuntimeError("no bf16 kernel")

    with caplog.at_level(logging.INFO):
        best = choose_step_settings(step, warmup=0, repeats=3, timer=lambda: next(times))
    # fp32+contiguous: 5, 1, 0.1 -> median 1; fp32+channels_last: 1, 1, 1 -> median 1: the tie goes to the first
    assert best["seconds"] == pytest.approx({"fp32+contiguous": 1.0, "fp32+channels_last": 1.0})
    assert best["label"] == "fp32+contiguous"
    assert best["failed"] == {
        "bf16+contiguous": "RuntimeError: no bf16 kernel",
        "bf16+channels_last": "RuntimeError: no bf16 kernel",
    }
    assert "bf16+contiguous failed (RuntimeError: no bf16 kernel)" in caplog.text
    assert "-> chosen: fp32+contiguous." in caplog.text

    def broken(settings):
        raise ValueError("bad batch")

    with pytest.raises(RuntimeError, match="every candidate step setting failed") as err:
        choose_step_settings(broken, candidates=DEFAULT_CANDIDATES[:2])
    assert isinstance(err.value.__cause__, ValueError)
    with pytest.raises(ValueError, match="at least one"):
        choose_step_settings(step, candidates=[])
    with pytest.raises(ValueError, match="repeats"):
        choose_step_settings(step, repeats=0)


def test_real_clock_returns_a_candidate():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    x = torch.randn(4, 1, 8, 8)

    def step(settings):
        xx = x.contiguous(memory_format=torch.channels_last) if settings["channels_last"] else x
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings["amp"]):
            loss = net(xx).float().square().mean()
        loss.backward()

    best = choose_step_settings(step, repeats=1)
    assert best["label"] in LABELS and set(best["seconds"]) == set(LABELS)
    assert all(v > 0 for v in best["seconds"].values())


# ---------------------------------------------------------------------------------------------- LeJEPATrainer
def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 8),
    )


def _settings_in_force(trainer) -> dict:
    """The setting the trainer is running with (what the fake clock charges for)."""
    return {"amp": trainer.amp, "amp_dtype": "bfloat16", "channels_last": trainer.channels_last}


def _data() -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [{"image": torch.rand(6, 1, 16, 16, generator=g)} for _ in range(3)]


def _lejepa_trainer(costs: dict | None = None, **kwargs) -> LeJEPATrainer:
    net = _net()
    box: dict = {}
    if costs is not None:
        clock = FakeClock(costs, lambda: _settings_in_force(box["t"]))
        kwargs["autotune_kwargs"] = {"timer": clock, **kwargs.get("autotune_kwargs", {})}
    trainer = LeJEPATrainer(
        "cpu", 2, _data(), net, torch.optim.AdamW(net.parameters(), lr=1e-2), LeJEPALoss(lamb=0.2, num_slices=32),
        views_fn=BatchMultiView(2, 2, global_size=(16, 16), local_size=(8, 8), seed=3), seed=5, **kwargs,
    )  # fmt: skip
    box["t"] = trainer
    return trainer


def _run(trainer) -> list[dict]:
    out: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: out.append(dict(e.state.output)))
    trainer.run()
    return out


def _snapshot(trainer) -> dict:
    return {
        "network": {k: v.clone() for k, v in trainer.network.state_dict().items()},
        "loss": {k: v.clone() for k, v in trainer.loss_function.state_dict().items()},
        "optimizer_state": dict(trainer.optimizer.state),
        "torch_rng": torch.get_rng_state(),
        "views_rng": trainer.views_fn.generator.get_state(),
        "grads": [p.grad for p in trainer.network.parameters()],
    }


@pytest.mark.parametrize("chosen", ["fp32+contiguous", "fp32+channels_last"])
def test_auto_gives_the_run_of_the_chosen_settings(chosen, caplog):
    # fake step times: fp32 fastest; channels_last slower (first case) or faster (second case)
    times = [0.2, 0.5, 0.25, 0.4] if chosen == "fp32+contiguous" else [0.3, 0.2, 0.25, 0.4]
    costs = dict(zip(LABELS, times))
    auto = _lejepa_trainer(costs, amp="auto", channels_last="auto")
    assert auto.state.step_settings["source"] == "probe pending"
    with caplog.at_level(logging.INFO):
        auto_out = _run(auto)
    settings = auto.state.step_settings
    assert settings["label"] == chosen and settings["source"] == "probe"
    assert (settings["amp"], settings["amp_dtype"]) == (False, None)
    assert settings["channels_last"] == (chosen == "fp32+channels_last")
    assert settings["seconds"] == pytest.approx(costs)
    assert (auto.amp, auto.channels_last) == (False, settings["channels_last"])
    probe_lines = [r.getMessage() for r in caplog.records if "Step settings probe" in r.getMessage()]
    assert len(probe_lines) == 1 and f"-> chosen: {chosen}" in probe_lines[0]
    assert all(label in probe_lines[0] for label in LABELS)
    fmt = torch.channels_last if settings["channels_last"] else torch.contiguous_format
    assert auto.network[3].weight.stride() == torch.empty(4, 4, 3, 3).contiguous(memory_format=fmt).stride()

    explicit = _lejepa_trainer(amp=False, channels_last=settings["channels_last"])
    assert explicit.state.step_settings == {
        "amp": False,
        "amp_dtype": None,
        "channels_last": settings["channels_last"],
        "label": chosen,
        "source": "given",
    }
    explicit_out = _run(explicit)
    assert len(auto_out) == len(explicit_out) == 6
    assert auto_out == explicit_out  # exact: same losses, SIGReg, health metrics at every iteration
    assert auto_out[0]["loss"] > 0 and auto_out[-1]["loss"] != auto_out[0]["loss"]
    for (k, a), b in zip(auto.network.state_dict().items(), explicit.network.state_dict().values()):
        assert torch.equal(a, b), k
    assert int(auto.loss_function.sigreg.step) == int(explicit.loss_function.sigreg.step) == 6


def test_probe_leaves_no_trace():
    costs = dict(zip(LABELS, [0.3, 0.5, 0.1, 0.4]))
    trainer = _lejepa_trainer(costs, amp="auto", channels_last="auto", autotune_kwargs={"repeats": 2})
    calls = []
    trainer.network.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    before, after = {}, {}
    trainer.add_event_handler(Events.EPOCH_STARTED(once=1), lambda e: before.update(_snapshot(e)))  # after the reseed
    # attached after construction: runs after the probe, before the first optimizer step
    trainer.add_event_handler(Events.ITERATION_STARTED(once=1), lambda e: after.update(_snapshot(e), n=len(calls)))
    _run(trainer)
    assert after["n"] == len(LABELS) * (1 + 2) * 2  # (warm-up + timed) passes x (global, local) per candidate
    assert calls[:2] == [(12, 1, 16, 16), (12, 1, 8, 8)]
    for k, v in before["network"].items():  # weights and BatchNorm statistics
        assert torch.equal(v, after["network"][k]), k
    assert before["network"]["1.num_batches_tracked"].item() == 0
    assert torch.equal(before["loss"]["sigreg.step"], after["loss"]["sigreg.step"])
    assert after["optimizer_state"] == {} and all(g is None for g in after["grads"])
    assert torch.equal(before["torch_rng"], after["torch_rng"])
    assert torch.equal(before["views_rng"], after["views_rng"])
    assert trainer.state.step_settings["label"] == "bf16+contiguous"
    assert trainer.amp and trainer.amp_dtype == torch.bfloat16 and not trainer.channels_last
    assert trainer.scaler is None
    assert trainer.state.iteration == 6 and int(trainer.loss_function.sigreg.step) == 6


def test_auto_for_one_argument_only():
    costs = dict(zip(LABELS, [0.3, 0.5, 0.1, 0.4]))
    trainer = _lejepa_trainer(costs, amp=False, channels_last="auto")
    trainer.state.max_epochs = 1
    _run(trainer)
    settings = trainer.state.step_settings
    assert set(settings["seconds"]) == {"fp32+contiguous", "fp32+channels_last"}
    assert settings["label"] == "fp32+contiguous" and not trainer.amp


def test_explicit_settings_do_not_probe_and_errors():
    trainer = _lejepa_trainer(amp=False, channels_last=True)
    calls = []
    trainer.network.register_forward_hook(lambda m, i, o: calls.append(1))
    trainer.state.max_epochs = 1
    _run(trainer)
    assert len(calls) == 3 * 2  # the 3 iterations only
    assert trainer.state.step_settings["source"] == "given"
    assert trainer.network[3].weight.stride() == (36, 1, 12, 4)  # channels_last (4, 4, 3, 3)
    with pytest.raises(ValueError, match="channels_last must be True, False or 'auto'"):
        _lejepa_trainer(channels_last="yes")
    with pytest.raises(ValueError, match="autotune_kwargs"):
        _lejepa_trainer(amp="auto", autotune_kwargs={"repeat": 2})
    net = _net()
    with pytest.raises(ValueError, match="iteration_update"):
        LeJEPATrainer("cpu", 1, _data(), net, torch.optim.SGD(net.parameters(), lr=0.1), LeJEPALoss(),
                      iteration_update=lambda e, b: {}, amp="auto")  # fmt: skip


# ---------------------------------------------------------------------------------------------- MaskedLatentTrainer
def _masked_trainer(costs: dict | None = None, **kwargs) -> MaskedLatentTrainer:
    torch.manual_seed(0)
    enc = JEPAViT(1, img_size=(16, 16), patch_size=4, spatial_dims=2, hidden_size=24, mlp_dim=48, num_layers=1,
                  num_heads=2)  # fmt: skip
    model = MaskedLatentModel(enc, JEPAPredictor(enc.grid_size, 24, predictor_dim=24, depth=1, num_heads=2))
    teacher = EMATeacher(model.encoder, momentum=0.9)
    box: dict = {}
    if costs is not None:
        clock = FakeClock(costs, lambda: _settings_in_force(box["t"]))
        kwargs["autotune_kwargs"] = {"timer": clock}
    g = torch.Generator().manual_seed(2)
    data = [{"image": torch.randn(4, 1, 16, 16, generator=g)} for _ in range(2)]
    trainer = MaskedLatentTrainer(
        device="cpu", max_epochs=1, train_data_loader=data, network=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        loss_function=MaskedLatentLoss(lamb=0.1, num_slices=16),
        mask_fn=MultiBlockMaskGenerator(enc.grid_size, seed=0), teacher=teacher, seed=0, **kwargs,
    )  # fmt: skip
    box["t"] = trainer
    return trainer


def test_masked_trainer_auto_equals_explicit():
    costs = dict(zip(LABELS, [0.2, 0.3, 0.25, 0.4]))  # fp32 NCHW fastest
    auto = _masked_trainer(costs, amp="auto", channels_last="auto")
    auto_out = _run(auto)
    assert auto.state.step_settings["label"] == "fp32+contiguous"
    explicit = _masked_trainer(amp=False, channels_last=False)
    explicit_out = _run(explicit)
    assert len(auto_out) == 2 and auto_out == explicit_out
    for a, b in zip(auto.teacher.state_dict().values(), explicit.teacher.state_dict().values()):
        assert torch.equal(a, b)
    assert int(auto.teacher.step) == 2
