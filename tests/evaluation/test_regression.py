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
"""Ridge regression probes: metrics, the closed form against scikit-learn, penalty choice, fraction sweeps and the
written report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from monai_jepa.evaluation import evaluate_regression, regression_fraction_sweep, regression_metrics, ridge_probe


def _linear_data(n: int, d: int = 8, noise: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 5.0, d)  # features of different scales
    w = rng.normal(size=d)
    return x, x @ w + 50.0 + noise * rng.normal(size=n)


def test_regression_metrics_values():
    m = regression_metrics([1.0, 2.0, 5.0], [1.0, 3.0, 3.0])
    assert m["mae"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["r2"] == pytest.approx(1 - 5 / (2 * (2 / 3) ** 2 + (4 / 3) ** 2))
    assert math.isnan(regression_metrics([1.0, 2.0], [3.0, 3.0])["r2"])  # constant targets: R^2 undefined
    with pytest.raises(ValueError, match="one length"):
        regression_metrics([1.0], [1.0, 2.0])


def test_ridge_matches_sklearn_and_recovers_a_linear_relation():
    sklearn = pytest.importorskip("sklearn.linear_model")
    x, y = _linear_data(120)
    out = ridge_probe(x[:80], y[:80], x[80:], y[80:], default_alpha=3.0)
    mean, std = x[:80].mean(0), x[:80].std(0) + 1e-6
    ref = sklearn.Ridge(alpha=3.0).fit((x[:80] - mean) / std, y[:80]).predict((x[80:] - mean) / std)
    assert np.allclose(out["predictions"], ref, atol=1e-8) and out["alpha"] == 3.0
    assert out["r2"] > 0.99 and out["mae"] < 0.5
    bad = y[:80].copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="`train_y` contains NaN"):
        ridge_probe(x[:80], bad, x[80:], y[80:])
    with pytest.raises(ValueError, match="`train_x` must be a non-empty feature matrix"):
        ridge_probe(x[:80, 0], y[:80], x[80:], y[80:])


def test_penalty_chosen_on_validation():
    x, y = _linear_data(60, d=40, noise=3.0, seed=1)  # few samples, many features: a large penalty pays
    out = ridge_probe(x[:20], y[:20], x[40:], y[40:], val_x=x[20:40], val_y=y[20:40], alpha_grid=(1e-6, 10.0, 1e6))
    errors = {a: ridge_probe(x[:20], y[:20], x[20:40], y[20:40], default_alpha=a)["rmse"] for a in (1e-6, 10.0, 1e6)}
    assert out["alpha"] == min(errors, key=errors.get)


def test_fraction_sweep_records():
    x, y = _linear_data(100, noise=1.0)
    records = regression_fraction_sweep(torch.as_tensor(x[:80]), y[:80], x[80:], y[80:], fractions=(0.05, 0.5, 1.0),
                                        seeds=(0, 1, 2))  # fmt: skip
    assert [r["n_labels"] for r in records] == [4, 40, 80]
    assert records[0]["seeds"] == [0, 1, 2] and records[2]["seeds"] == [0] and records[2]["mae_std"] == 0.0
    assert records[0]["mae_std"] > 0 and records[2]["mae"] < records[0]["mae"]  # more labels, smaller error
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        regression_fraction_sweep(x[:80], y[:80], x[80:], y[80:], fractions=(0.0,))
    with pytest.raises(ValueError, match="min_labels"):
        regression_fraction_sweep(x[:1], y[:1], x[80:], y[80:])


def test_evaluate_regression_writes_report(tmp_path):
    """A network whose features carry the value beats one whose features are noise; both rows are reported."""
    torch.manual_seed(0)
    values = torch.linspace(0.0, 10.0, 60)
    images = torch.stack([v * torch.ones(1, 4, 4) for v in values]) + 0.01 * torch.randn(60, 1, 4, 4)
    informative = nn.Sequential(nn.Flatten(), nn.Linear(16, 6))
    noise = nn.Sequential(nn.Flatten(), nn.Linear(16, 6))
    noise.forward = lambda x: torch.randn(len(x), 6)  # type: ignore[method-assign]
    records = evaluate_regression(
        {"pretrained": informative, "random_init": noise}, images[:40], images[50:], values[:40].tolist(),
        values[50:].tolist(), tmp_path, val_data=images[40:50], val_targets=values[40:50].tolist(), target_name="EF",
        fractions=(0.25, 1.0), seeds=(0, 1),
    )  # fmt: skip
    full = {r["method"]: r for r in records if r["label_fraction"] == 1.0}
    assert full["pretrained"]["r2"] > 0.99 and full["random_init"]["r2"] < 0.5
    saved = json.loads((tmp_path / "eval" / "regression_metrics.json").read_text())
    assert len(saved) == 4 and {"commit", "command", "machine", "date"} <= set(saved[0])
    report = (tmp_path / "eval" / "regression_report.md").read_text()
    assert "`EF`" in report and "| pretrained |" in report and "| random_init |" in report
    with pytest.raises(ValueError, match="'EF' needs at least 2 training and 1 test values, got 1 and 20"):
        evaluate_regression({"p": informative}, images[:1], images[40:], [0.0], values[40:].tolist(), tmp_path,
                            target_name="EF")  # fmt: skip
