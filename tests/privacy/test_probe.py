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

import numpy as np
import pytest
import torch

pytest.importorskip("opacus")
from monai_jepa.privacy import compute_epsilon, dp_linear_probe, fit_dp_linear  # noqa: E402


def separable(n, seed, num_classes=2, dim=6):
    """Features whose class c has mean +3 on coordinate c (and a common offset): linearly separable."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = torch.randn(n, dim, generator=g) + 5.0
    x[torch.arange(n), y] += 3.0
    return x, y


def test_dp_probe_learns_and_reports_privacy():
    (x, y), (xt, yt) = separable(400, 0), separable(200, 1)
    res = dp_linear_probe(x, y, xt, yt, "binary", {"target_epsilon": 8.0}, epochs=5, batch_size=50, seed=0)
    assert res["auc"] > 0.95 and res["acc"] > 0.85 and res["scores"].shape == (200,)
    assert res["n_labels"] == 400 and res["delta"] == pytest.approx(1 / 4000) and res["sample_rate"] == 0.125
    assert res["steps"] == 5 * 8 and 7.9 <= res["epsilon"] <= 8.0
    assert res["epsilon"] == pytest.approx(
        compute_epsilon(res["noise_multiplier"], res["sample_rate"], res["steps"], res["delta"]), rel=1e-12
    )
    strict = dp_linear_probe(x, y, xt, yt, "binary", {"target_epsilon": 0.5}, epochs=5, batch_size=50, seed=0)
    assert strict["noise_multiplier"] > 2 * res["noise_multiplier"] and strict["epsilon"] <= 0.5


def test_dp_probe_is_seeded():
    (x, y), (xt, yt) = separable(100, 0), separable(50, 1)
    run = lambda seed: dp_linear_probe(x, y, xt, yt, "binary", {"noise_multiplier": 1.0}, epochs=2, seed=seed)  # noqa
    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a["scores"], b["scores"])
    assert not np.allclose(a["scores"], c["scores"])


def test_fit_shapes_per_task():
    x, y = separable(60, 0, num_classes=3)
    dp = {"noise_multiplier": 1.0, "delta": 1e-3}
    fit = fit_dp_linear(x, y, "multiclass", dp, epochs=1, batch_size=20)
    assert fit["weight"].shape == (3, 6) and fit["bias"].shape == (3,) and fit["num_outputs"] == 3
    assert fit_dp_linear(x, y, "multiclass", dp, num_classes=5, epochs=1)["weight"].shape == (5, 6)
    multi = torch.stack([y == 0, y == 1], dim=1).long()
    assert fit_dp_linear(x, multi, "multilabel", dp, epochs=1)["weight"].shape == (2, 6)
    assert fit_dp_linear(x, y % 2, "binary", dp, epochs=1)["weight"].shape == (1, 6)
    # unit-norm features: the fit does not depend on the scale of the features
    a = fit_dp_linear(x, y, "multiclass", dp, epochs=1, seed=1)["weight"]
    b = fit_dp_linear(10 * x, y, "multiclass", dp, epochs=1, seed=1)["weight"]
    torch.testing.assert_close(a, b)


def test_probe_errors():
    x, y = separable(20, 0)
    dp = {"noise_multiplier": 1.0}
    with pytest.raises(ValueError, match="epochs"):
        fit_dp_linear(x, y, "binary", dp, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        fit_dp_linear(x, y, "binary", dp, batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        fit_dp_linear(x, y, "binary", dp, lr=0.0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        fit_dp_linear(x[:, 0], y, "binary", dp)
    with pytest.raises(ValueError, match="holds 20 records but train_y 10"):
        fit_dp_linear(x, y[:10], "binary", dp)
    with pytest.raises(ValueError, match="delta must be below"):
        fit_dp_linear(x, y, "binary", {"noise_multiplier": 1.0, "delta": 0.1})


def test_empty_poisson_batches_are_noise_only_steps(monkeypatch):
    from monai_jepa.privacy import DPTraining

    calls = []
    original = DPTraining.noise_step
    monkeypatch.setattr(DPTraining, "noise_step", staticmethod(lambda opt: calls.append(1) or original(opt)))
    x, y = separable(20, 0)
    res = dp_linear_probe(x, y, x, y, "binary", {"noise_multiplier": 1.0, "delta": 1e-3}, epochs=2, batch_size=1)
    assert calls and res["steps"] == 2 * 20  # the empty batches are steps too (counted by the accountant)
