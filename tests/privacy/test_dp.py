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
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("opacus")
from opacus.accountants import PRVAccountant, RDPAccountant  # noqa: E402
from opacus.accountants.utils import get_noise_multiplier  # noqa: E402

from monai_jepa.privacy import DPConfig, DPTraining, compute_epsilon, default_delta, prepare_dp_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 1)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def _train(seed, noise_multiplier=1.0, steps_epochs=2, n=32, batch_size=8):
    g = torch.Generator().manual_seed(123)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 2, (n,), generator=g).float()
    torch.manual_seed(seed)
    model, _ = prepare_dp_model(nn.Linear(5, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    dp = DPTraining({"noise_multiplier": noise_multiplier}, num_samples=n)
    model, opt, loader = dp.make_private(model, opt, DataLoader(TensorDataset(x, y), batch_size=batch_size), seed=seed)
    for _ in range(steps_epochs):
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(model(xb)[:, 0], yb).backward()
            opt.step()
    return model._module.weight.detach().clone(), dp


def test_config_errors():
    for kwargs, match in [
        ({}, "exactly one"),
        ({"target_epsilon": 1.0, "noise_multiplier": 1.0}, "exactly one"),
        ({"target_epsilon": 0.0}, "target_epsilon must be positive"),
        ({"target_epsilon": -1.0}, "target_epsilon must be positive"),
        ({"target_epsilon": math.inf}, "finite"),
        ({"noise_multiplier": 0.0}, "noise_multiplier must be positive"),
        ({"target_epsilon": 1.0, "delta": 1.0}, "delta must lie in"),
        ({"target_epsilon": 1.0, "delta": 0.0}, "delta must lie in"),
        ({"target_epsilon": 1.0, "max_grad_norm": 0.0}, "max_grad_norm"),
    ]:
        with pytest.raises(ValueError, match=match):
            DPConfig(**kwargs)
    with pytest.raises(ValueError, match="accountant"):
        DPConfig(target_epsilon=1.0, accountant="moments")
    with pytest.raises(ValueError, match=r"unknown DP setting\(s\) \['epsilon'\]"):
        DPConfig.from_value({"epsilon": 3.0})
    with pytest.raises(ValueError, match="must be a dict"):
        DPConfig.from_value(3.0)
    assert DPConfig.from_value(None) is None
    cfg = DPConfig.from_value({"target_epsilon": 3, "accountant": "PRV"})
    assert cfg.accountant == "prv" and DPConfig.from_value(cfg) is cfg


def test_delta_rule():
    assert default_delta(1000) == pytest.approx(1e-4)
    assert DPConfig(target_epsilon=1.0).resolve_delta(4708) == pytest.approx(1 / 47080)
    assert DPConfig(target_epsilon=1.0, delta=1e-6).resolve_delta(100) == 1e-6
    with pytest.raises(ValueError, match="below 1 / N"):
        DPConfig(target_epsilon=1.0, delta=0.01).resolve_delta(100)
    with pytest.raises(ValueError, match="positive integer"):
        default_delta(0)


def test_prepare_replaces_trainable_batchnorm_only():
    torch.manual_seed(0)
    net = ConvBN()
    conv_weight = net.conv.weight.detach().clone()
    fixed, changes = prepare_dp_model(net)
    assert isinstance(fixed.bn, nn.GroupNorm) and fixed.bn.num_groups == 4 and fixed.bn.num_channels == 4
    assert changes == ["bn: BatchNorm2d(4) -> GroupNorm(4 groups, 4 channels)"]
    torch.testing.assert_close(fixed.conv.weight, conv_weight)  # other weights are kept
    assert fixed(torch.randn(2, 1, 6, 6)).shape == (2, 1)
    frozen = ConvBN()
    for p in [*frozen.conv.parameters(), *frozen.bn.parameters()]:
        p.requires_grad_(False)
    kept, changes = prepare_dp_model(frozen)  # a frozen encoder keeps its BatchNorm
    assert isinstance(kept.bn, nn.BatchNorm2d) and changes == []


def test_epsilon_equals_opacus_accountants():
    nm, q, steps, delta = 1.1, 0.01, 500, 1e-5
    rdp = RDPAccountant()
    rdp.history = [(nm, q, steps)]
    assert compute_epsilon(nm, q, steps, delta) == pytest.approx(rdp.get_epsilon(delta=delta), rel=1e-12)
    prv = PRVAccountant()
    prv.history = [(nm, q, steps)]
    assert compute_epsilon(nm, q, steps, delta, "prv") == pytest.approx(prv.get_epsilon(delta=delta), rel=1e-6)
    assert compute_epsilon(nm, q, 0, delta) == 0.0
    assert compute_epsilon(nm, q, 2 * steps, delta) > compute_epsilon(nm, q, steps, delta)
    with pytest.raises(ValueError, match="sample_rate"):
        compute_epsilon(nm, 0.0, steps, delta)


def test_target_epsilon_is_reached_and_reported():
    n, batch, epochs = 64, 8, 3
    x, y = torch.randn(n, 5), torch.randint(0, 2, (n,)).float()
    model, _ = prepare_dp_model(nn.Linear(5, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    dp = DPTraining(DPConfig(target_epsilon=2.0), num_samples=n)
    model, opt, loader = dp.make_private(model, opt, DataLoader(TensorDataset(x, y), batch_size=batch), epochs=epochs)
    q, delta = batch / n, 1 / (10 * n)
    expected = get_noise_multiplier(target_epsilon=2.0, target_delta=delta, sample_rate=q, epochs=epochs)
    assert dp.noise_multiplier == pytest.approx(expected) and dp.sample_rate == pytest.approx(q)
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(model(xb)[:, 0], yb).backward()
            opt.step()
    report = dp.report()
    assert report["steps"] == epochs * n // batch and report["delta"] == pytest.approx(delta)
    assert report["epsilon"] == pytest.approx(compute_epsilon(expected, q, report["steps"], delta), rel=1e-12)
    assert 1.95 <= report["epsilon"] <= 2.0  # calibrated to the target (Opacus's tolerance is 0.01)
    assert report["accountant"] == "rdp" and report["max_grad_norm"] == 1.0 and report["num_samples"] == n


def test_seeded_and_clipped():
    a, dp = _train(seed=0)
    b, _ = _train(seed=0)
    c, _ = _train(seed=1)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert dp.steps == 8 and dp.epsilon() > 0
    # without noise, one step moves the weights by at most lr * max_grad_norm * (batch / expected batch)
    torch.manual_seed(0)
    model, _ = prepare_dp_model(nn.Linear(3, 1, bias=False))
    start = model.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    dp = DPTraining({"noise_multiplier": 1e-9, "max_grad_norm": 0.1}, num_samples=16)
    x = 1e3 * torch.ones(16, 3)  # huge per-sample gradients
    model, opt, loader = dp.make_private(model, opt, DataLoader(TensorDataset(x), batch_size=16))
    (xb,) = next(iter(loader))
    (model(xb) ** 2).mean().backward()
    opt.step()
    assert (model._module.weight - start).norm() <= 0.1 * len(xb) / 16 + 1e-6


def test_make_private_errors():
    loader = DataLoader(TensorDataset(torch.randn(10, 2)), batch_size=5)
    net = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="planned number of epochs"):
        DPTraining({"target_epsilon": 1.0}, 10).make_private(net, torch.optim.SGD(net.parameters(), lr=1), loader)
    with pytest.raises(ValueError, match="holds 10 records"):
        DPTraining({"noise_multiplier": 1.0}, 20).make_private(net, torch.optim.SGD(net.parameters(), lr=1), loader)
    with pytest.raises(ValueError, match="needs DP settings"):
        DPTraining(None, 10)


def test_prepare_reports_what_cannot_be_fixed(monkeypatch):
    import monai_jepa.privacy.dp as dp_module

    class Validator:  # a module that Opacus can neither train privately nor replace
        validate = staticmethod(lambda module, strict=False: ["ToyLayer is not supported"])
        fix = staticmethod(lambda module: module)

    monkeypatch.setattr(dp_module, "ModuleValidator", Validator)
    with pytest.raises(ValueError, match="cannot be trained with DP-SGD: ToyLayer is not supported"):
        prepare_dp_model(nn.Linear(2, 1))


def test_missing_opacus_names_the_extra():
    code = (
        "import sys; sys.modules['opacus'] = None\n"
        "from monai_jepa.privacy import DPTraining\n"
        "try:\n    DPTraining({'target_epsilon': 1.0}, 10)\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "pip install 'monai_jepa[privacy]'" in out.stdout, out.stderr[-2000:]
