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

import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn

import monai_jepa.evaluation.finetune as finetune_module
from monai_jepa.evaluation import ClassifierHead, EncoderClassifier, fine_tune, load_network_state
from monai_jepa.networks import ConvEncoder, LeJEPAModel, Projector


class TinyEncoder(nn.Module):
    """(tokens, pooled) encoder with one convolution and BatchNorm."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.embed_dim = 8

    def forward(self, x):
        tokens = torch.relu(self.norm(self.conv(x))).flatten(2).transpose(1, 2)
        return tokens, tokens.mean(1)


def bright_dark(n, seed, num_classes=2, size=8):
    """Class c images have mean intensity about c / num_classes + 0.25: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = 0.5 * torch.rand(n, 1, size, size, generator=g) + y.view(-1, 1, 1, 1) / num_classes
    return x, y


def test_encoder_classifier_shapes():
    torch.manual_seed(0)
    conv = ConvEncoder(2, 1, "resnet10", conv1_t_size=3, conv1_t_stride=1, no_max_pool=True, widen_factor=0.125)
    x = torch.rand(3, 1, 16, 16)
    for encoder in (conv, LeJEPAModel(conv, Projector(conv.embed_dim, 16, 4))):
        net = EncoderClassifier(encoder, num_outputs=5).eval()
        assert net.embed_dim == 64 and net(x).shape == (3, 5) and net.embed(x).shape == (3, 64)
        torch.testing.assert_close(net(x), net.head(conv(x)[1]))  # head on the pooled encoder features
    flat = EncoderClassifier(nn.Sequential(nn.Flatten(), nn.Linear(256, 7)), num_outputs=2, embed_dim=7)
    assert flat(x).shape == (3, 2)
    with pytest.raises(ValueError, match="embed_dim"):
        EncoderClassifier(nn.Flatten(), num_outputs=2)
    assert ClassifierHead(4, 3, dropout=0.5)(torch.zeros(2, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="positive"):
        ClassifierHead(0, 3)


def test_load_network_state_accepts_a_full_lejepa_state():
    torch.manual_seed(0)
    model = LeJEPAModel(TinyEncoder(), Projector(8, 16, 4))
    encoder = TinyEncoder()
    load_network_state(encoder, model.state_dict())  # 'encoder.*' entries, projector ignored
    torch.testing.assert_close(encoder.conv.weight, model.encoder.conv.weight)
    with pytest.raises(ValueError, match=r"checkpoint 'x.pt' do not fit TinyEncoder: missing keys \['conv.bias'"):
        load_network_state(encoder, {"conv.weight": encoder.conv.weight}, "checkpoint 'x.pt'")


def test_fine_tune_learns_and_reports_budget():
    out = fine_tune(
        TinyEncoder,
        bright_dark(40, 0),
        bright_dark(20, 1),
        bright_dark(40, 2),
        "binary",
        max_epochs=4,
        batch_size=8,
        lr=1e-2,
    )
    assert out["auc"] > 0.95
    assert out["scores"].shape == (40,)
    assert out["epochs"] == 4 and out["planned_epochs"] == 4 and out["steps"] == 4 * 5 and out["stopped_by"] == "epochs"
    assert 1 <= out["best_epoch"] <= 4 and out["val_score"] > 0.9
    assert out["n_labels"] == 40 and out["pretrained"] is False and out["max_minutes"] is None
    assert out["seconds"] >= out["train_seconds"] > 0


def test_fine_tune_is_seeded():
    args = (TinyEncoder, bright_dark(16, 0), None, bright_dark(16, 2), "binary")
    a = fine_tune(*args, max_epochs=1, batch_size=4, seed=3)
    b = fine_tune(*args, max_epochs=1, batch_size=4, seed=3)
    c = fine_tune(*args, max_epochs=1, batch_size=4, seed=4)
    np.testing.assert_array_equal(a["scores"], b["scores"])
    assert not np.allclose(a["scores"], c["scores"])
    assert a["val_score"] is None and a["best_epoch"] == 1  # no validation data: the last state is tested


def test_pretrained_state_is_the_starting_point():
    built = []

    def factory():
        built.append(TinyEncoder())
        return built[-1]

    torch.manual_seed(123)
    pretrained = TinyEncoder()
    kwargs = dict(max_epochs=1, batch_size=8, lr=1e-12, weight_decay=0.0, flip_dims=())
    data = bright_dark(16, 0)
    torch.manual_seed(0)
    fresh = {k: v.clone() for k, v in TinyEncoder().state_dict().items()}  # what factory() draws under seed 0
    out = fine_tune(factory, data, None, data, "binary", pretrained_state=pretrained.state_dict(), **kwargs)
    assert out["pretrained"] is True
    torch.testing.assert_close(built[-1].conv.weight, pretrained.conv.weight)  # lr ~ 0: weights stay put
    fine_tune(factory, data, None, data, "binary", pretrained_state=None, **kwargs)
    torch.testing.assert_close(built[-1].conv.weight, fresh["conv.weight"])  # scratch: the seeded random init
    with pytest.raises(ValueError, match="pretrained_state do not fit"):
        fine_tune(factory, data, None, data, "binary", pretrained_state={"w": torch.zeros(1)}, **kwargs)


def test_time_budget(monkeypatch):
    data = bright_dark(16, 0)
    out = fine_tune(TinyEncoder, data, data, data, "binary", max_minutes=1e-5, batch_size=8)
    assert out["epochs"] == 1 and out["planned_epochs"] == 1 and out["stopped_by"] == "time"
    out = fine_tune(TinyEncoder, data, data, data, "binary", max_epochs=50, max_minutes=1e-5, batch_size=8)
    assert out["epochs"] == 1 and out["planned_epochs"] == 50 and out["stopped_by"] == "time"
    # a fake clock advancing 10 s per reading: epoch 1 takes 10 s, so a 1-minute budget plans 6 epochs
    clock = itertools.count(0.0, 10.0)
    monkeypatch.setattr(finetune_module.time, "perf_counter", lambda: next(clock))
    out = fine_tune(TinyEncoder, data, None, data, "binary", max_minutes=1.0, batch_size=8)
    assert out["planned_epochs"] == 6 and out["epochs"] == 6 and out["steps"] == 12 and out["stopped_by"] == "time"


def test_multiclass_and_multilabel_outputs():
    x, y = bright_dark(24, 0, num_classes=3)
    out = fine_tune(TinyEncoder, (x, y), None, (x, y), "multiclass", max_epochs=1, batch_size=8)
    assert out["scores"].shape == (24, 3)
    np.testing.assert_allclose(out["scores"].sum(1), 1.0, atol=1e-6)
    ordinal = fine_tune(TinyEncoder, (x, y), None, (x, y), "ordinal", max_epochs=1, batch_size=8, num_classes=4)
    assert ordinal["scores"].shape == (24, 4) and "qwk" in ordinal
    multi = torch.stack([y == 0, y == 2], dim=1).long()
    out = fine_tune(TinyEncoder, (x, multi), None, (x, multi), "multilabel", max_epochs=1, batch_size=8)
    assert out["scores"].shape == (24, 2) and len(out["per_class_auc"]) == 2
    assert ((out["scores"] >= 0) & (out["scores"] <= 1)).all()


def test_fine_tune_argument_errors():
    data = bright_dark(8, 0)
    with pytest.raises(ValueError, match="needs a budget"):
        fine_tune(TinyEncoder, data, None, data, "binary")
    with pytest.raises(ValueError, match="max_epochs"):
        fine_tune(TinyEncoder, data, None, data, "binary", max_epochs=0)
    with pytest.raises(ValueError, match="max_minutes"):
        fine_tune(TinyEncoder, data, None, data, "binary", max_minutes=-1)
    with pytest.raises(ValueError, match="spatial axes"):
        fine_tune(TinyEncoder, data, None, data, "binary", max_epochs=1, flip_dims=(1,))


def test_fine_tune_stops_before_the_step_on_a_non_finite_loss(monkeypatch):
    x, y = bright_dark(16, 0)
    x[5, 0, 0, 0] = float("nan")  # in the first batch of 16: the very first loss is NaN
    built = []

    def factory():
        built.append(TinyEncoder())
        return built[-1]

    torch.manual_seed(0)
    before = {k: v.clone() for k, v in TinyEncoder().state_dict().items()}
    with pytest.raises(FloatingPointError, match="non-finite fine-tuning loss at step 0"):
        fine_tune(factory, (x, y), None, (x, y), "binary", max_epochs=2, batch_size=16, seed=0, flip_dims=())
    after = built[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in ("conv.weight", "conv.bias"))  # no optimiser step ran


def test_fine_tune_time_budget_sets_the_schedule_after_the_first_epoch(monkeypatch):
    """Time budget only: the first epoch is timed (stubbed clock: 1 s per epoch) and the cosine spans the epochs
    that fit the budget; the run ends with the planned epochs and reports the budget."""
    clock = iter(float(t) for t in range(10**6))
    monkeypatch.setattr(finetune_module.time, "perf_counter", lambda: next(clock))
    x, y = bright_dark(32, 0)
    out = fine_tune(TinyEncoder, (x, y), None, (x, y), "binary", max_minutes=0.5, batch_size=8)
    assert out["stopped_by"] == "time"
    assert out["planned_epochs"] >= 2 and out["epochs"] <= out["planned_epochs"]
    assert out["steps"] == out["epochs"] * 4


def test_fine_tune_with_dp_sgd():
    pytest.importorskip("opacus")
    from monai_jepa.privacy import compute_epsilon

    args = (TinyEncoder, bright_dark(32, 0), bright_dark(16, 1), bright_dark(16, 2), "binary")
    a = fine_tune(*args, max_epochs=2, batch_size=8, seed=0, dp={"target_epsilon": 5.0})
    b = fine_tune(*args, max_epochs=2, batch_size=8, seed=0, dp={"target_epsilon": 5.0})
    np.testing.assert_array_equal(a["scores"], b["scores"])  # seeded: batches, noise and initialisation
    assert a["dp_changes"] == ["encoder.norm: BatchNorm2d(8) -> GroupNorm(8 groups, 8 channels)"]
    assert a["delta"] == pytest.approx(1 / 320) and a["sample_rate"] == 0.25 and a["steps"] == 2 * 4
    assert 4.9 <= a["epsilon"] <= 5.0
    assert a["epsilon"] == pytest.approx(compute_epsilon(a["noise_multiplier"], 0.25, 8, 1 / 320), rel=1e-12)
    fixed = fine_tune(*args, max_epochs=1, batch_size=8, dp={"noise_multiplier": 2.0, "accountant": "prv"})
    assert fixed["noise_multiplier"] == 2.0 and fixed["accountant"] == "prv" and fixed["epsilon"] > 0
    with pytest.raises(ValueError, match="target_epsilon needs max_epochs"):
        fine_tune(*args, max_minutes=1, dp={"target_epsilon": 5.0})
    with pytest.raises(ValueError, match="target_epsilon must be positive"):
        fine_tune(*args, max_epochs=1, dp={"target_epsilon": 0})


def test_dp_fine_tune_takes_noise_only_steps_on_empty_batches(monkeypatch):
    pytest.importorskip("opacus")
    from monai_jepa.privacy import DPTraining

    calls = []
    original = DPTraining.noise_step
    monkeypatch.setattr(DPTraining, "noise_step", staticmethod(lambda opt: calls.append(1) or original(opt)))
    args = (TinyEncoder, bright_dark(12, 0), None, bright_dark(8, 2), "binary")
    out = fine_tune(*args, max_epochs=1, batch_size=1, flip_dims=(), dp={"noise_multiplier": 1.0, "delta": 1e-3})
    assert calls and out["steps"] == 12  # expected batch of one record: some batches are empty
