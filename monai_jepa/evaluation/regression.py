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
"""Regression probes on frozen features: a continuous value per image or sequence (ejection fraction of a cine clip,
an age, a volume), predicted by ridge regression, with label-fraction sweeps and a report comparing encoders."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_jepa.utils.fileio import atomic_write_text

from .features import extract_features
from .probes import _features, standardize
from .protocols import DEFAULT_LABEL_FRACTIONS
from .report import json_safe, run_provenance

__all__ = [
    "DEFAULT_ALPHA_GRID",
    "regression_metrics",
    "ridge_probe",
    "regression_fraction_sweep",
    "evaluate_regression",
]

DEFAULT_ALPHA_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
_METRICS = ("mae", "rmse", "r2")


def regression_metrics(pred: Any, target: Any) -> dict[str, float]:
    """Mean absolute error, root mean squared error and coefficient of determination.

    Args:
        pred: predictions ``(N,)``.
        target: true values ``(N,)``.

    Returns:
        ``{"mae", "rmse", "r2"}``; ``r2`` is NaN when the targets do not vary (fewer than 2 distinct values).
    """
    p, y = np.asarray(pred, np.float64).reshape(-1), np.asarray(target, np.float64).reshape(-1)
    if p.shape != y.shape or not len(y):
        raise ValueError(f"predictions and targets must be non-empty and of one length, got {p.shape} and {y.shape}.")
    err = p - y
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((err**2).sum()) / total if total > 0 else math.nan
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())), "r2": r2}


def _values(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge regression on centred data (the intercept is not penalised)."""
    mean = y.mean()
    gram = x.T @ x + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ (y - mean)), float(mean)


def ridge_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    val_x: Any = None,
    val_y: Any = None,
    alpha_grid: Sequence[float] = DEFAULT_ALPHA_GRID,
    default_alpha: float = 100.0,
    norm_x: Any = None,
) -> dict[str, Any]:
    """Ridge regression on standardised frozen features.

    The penalty ``alpha`` is chosen on the validation split when given (the value of ``alpha_grid`` with the lowest
    validation RMSE), else ``default_alpha`` is used; the final probe is fitted on the training split only.

    Args:
        train_x: training features ``(N, D)``; ``train_y`` their values ``(N,)``.
        test_x: test features ``(M, D)``; ``test_y`` their values.
        val_x: optional validation features for the choice of ``alpha``; ``val_y`` their values.
        alpha_grid: candidate penalties (used with a validation split).
        default_alpha: penalty without validation split.
        norm_x: features whose mean and standard deviation standardise every split (default: ``train_x``).

    Returns:
        ``{"predictions": (M,) array, "alpha": chosen penalty, "mae", "rmse", "r2"}``.

    Example::

        >>> out = ridge_probe(f_train, ef_train, f_test, ef_test, val_x=f_val, val_y=ef_val)
        >>> out["mae"], out["alpha"]
    """
    xtr, xte = _features(train_x, "train_x"), _features(test_x, "test_x")
    ytr, yte = _values(train_y, "train_y"), _values(test_y, "test_y")
    if len(xtr) != len(ytr) or len(xte) != len(yte) or len(ytr) < 2:
        raise ValueError(f"need >= 2 training samples and features matching the values, got {xtr.shape}, "
                         f"{ytr.shape} (train) and {xte.shape}, {yte.shape} (test).")  # fmt: skip
    ref = None if norm_x is None else _features(norm_x, "norm_x")
    alpha = float(default_alpha)
    if val_x is not None and val_y is not None and len(alpha_grid) > 0:
        xtr, xva, xte = standardize(xtr, _features(val_x, "val_x"), xte, reference=ref)
        yva = _values(val_y, "val_y")
        errors = []
        for a in alpha_grid:
            w, b = _ridge(xtr, ytr, float(a))
            errors.append(regression_metrics(xva @ w + b, yva)["rmse"])
        alpha = float(alpha_grid[int(np.argmin(errors))])
    else:
        xtr, xte = standardize(xtr, xte, reference=ref)
    w, b = _ridge(xtr, ytr, alpha)
    pred = xte @ w + b
    return {"predictions": pred, "alpha": alpha, **regression_metrics(pred, yte)}


def regression_fraction_sweep(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    fractions: Sequence[float] = DEFAULT_LABEL_FRACTIONS,
    seeds: Sequence[int] = (0, 1, 2),
    val_x: Any = None,
    val_y: Any = None,
    min_labels: int = 2,
    **ridge_kwargs: Any,
) -> list[dict[str, Any]]:
    """Ridge probes fitted on random fractions of the training values, tested on the full test split.

    For each fraction ``f`` and seed ``s``, ``max(min_labels, round(f * N))`` training samples are drawn without
    replacement (seeded); ``f = 1`` uses all of them once. Features are standardised with the statistics of all
    training features (which use no values).

    Args:
        train_x, train_y, test_x, test_y: features ``(N, D)`` / ``(M, D)`` and values.
        fractions: label fractions in ``(0, 1]``.
        seeds: seeds of the draws.
        val_x, val_y: optional validation split for the choice of ``alpha``.
        min_labels: the fewest training values a probe is fitted on (>= 2).
        ridge_kwargs: other arguments of :func:`ridge_probe`.

    Returns:
        one record per fraction: ``{"protocol": "label_fraction", "probe": "ridge", "label_fraction", "n_labels",
        "seeds", "mae", "mae_std", "rmse", "rmse_std", "r2", "r2_std", "alpha"}`` (``*_std`` over seeds, 0 for one
        run).
    """
    n = len(train_y)
    if min_labels < 2 or n < min_labels:
        raise ValueError(f"need min_labels >= 2 and at least that many training values, got {min_labels} and {n}.")
    records = []
    for f in fractions:
        if not 0.0 < float(f) <= 1.0:
            raise ValueError(f"fractions must lie in (0, 1], got {f!r}.")
        count = n if f == 1.0 else max(min_labels, int(math.floor(f * n + 0.5)))
        run_seeds = [seeds[0]] if count == n else list(seeds)
        runs = []
        for seed in run_seeds:
            idx = np.arange(n) if count == n else np.sort(np.random.default_rng(seed).choice(n, count, replace=False))
            runs.append(ridge_probe(train_x[idx], np.asarray(train_y)[idx], test_x, test_y, val_x, val_y,
                                    norm_x=train_x, **ridge_kwargs))  # fmt: skip
        record: dict[str, Any] = {"protocol": "label_fraction", "probe": "ridge", "label_fraction": float(f),
                                  "n_labels": count, "seeds": run_seeds}  # fmt: skip
        for key in _METRICS:
            values = np.array([r[key] for r in runs], np.float64)
            record[key] = float(np.mean(values))
            record[f"{key}_std"] = float(np.std(values)) if len(values) > 1 else 0.0
        record["alpha"] = [r["alpha"] for r in runs] if len(runs) > 1 else runs[0]["alpha"]
        records.append(record)
    return records


def _report(records: Sequence[Mapping[str, Any]], target_name: str, sizes: Mapping[str, int]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in records))
    head = records[0] if records else {}
    fractions = sorted({r["label_fraction"] for r in records})
    lines = [
        f"# Sequence-level regression of `{target_name}` on frozen clip embeddings",
        "",
        f"Ridge probes (penalty chosen on the validation split) on random fractions of the {sizes['training']} "
        f"training clips, tested on {sizes['test']} test clips (mean +- std over seeds). Lower MAE / RMSE and higher "
        "R^2 are better. Produced by:",
        "",
        f"    {head.get('command', '')}",
        "",
        f"commit {head.get('commit', '')}, {head.get('machine', '')}, {head.get('date', '')}.",
        "",
        "| method | " + " | ".join(f"{f:g} MAE / R^2" for f in fractions) + " |",
        "|---|" + "---|" * len(fractions),
    ]
    for m in methods:
        cells = []
        for f in fractions:
            r = next((r for r in records if r["method"] == m and r["label_fraction"] == f), None)
            cells.append("-" if r is None else f"{r['mae']:.3f} +- {r['mae_std']:.3f} / {r['r2']:.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_regression(
    networks: Mapping[str, nn.Module],
    train_data: Any,
    test_data: Any,
    train_targets: Sequence[float],
    test_targets: Sequence[float],
    output_dir: str | os.PathLike,
    val_data: Any = None,
    val_targets: Sequence[float] | None = None,
    target_name: str = "target",
    fractions: Sequence[float] = DEFAULT_LABEL_FRACTIONS,
    seeds: Sequence[int] = (0, 1, 2),
    device: str | torch.device = "cpu",
    amp: bool = False,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Embed each split with each network and sweep ridge probes over label fractions; write the results.

    Args:
        networks: method name -> encoder (e.g. ``{"pretrained": ..., "random_init": ...}``: the same architecture at
            a random initialisation measures what pretraining adds).
        train_data, test_data, val_data: datasets (or anything :func:`~monai_jepa.evaluation.extract_features`
            reads) of the clips, in the order of their targets.
        train_targets, test_targets, val_targets: the value of each clip.
        output_dir: ``eval/regression_metrics.json`` and ``eval/regression_report.md`` are written there
            (atomically).
        target_name: name of the value in the report (e.g. ``"EF"``).
        fractions, seeds: label fractions and seeds of :func:`regression_fraction_sweep`.
        device, amp, batch_size: feature extraction settings.

    Returns:
        the records, each with ``"method"``, ``"target"``, ``"feature_seconds"`` and the provenance (``commit``,
        ``command``, ``machine``, ``date``).

    Raises:
        ValueError: fewer than 2 training or 1 test values.
    """
    if len(train_targets) < 2 or len(test_targets) < 1:
        raise ValueError(
            f"regressing '{target_name}' needs at least 2 training and 1 test values, got {len(train_targets)} and "
            f"{len(test_targets)}: too few items carry a value (see where the values come from, e.g. a table of them)."
        )
    provenance = run_provenance(device=device)
    sizes = {"training": len(train_targets), "test": len(test_targets)}
    records: list[dict[str, Any]] = []
    for method, network in networks.items():
        start = time.perf_counter()
        feats = {}
        for split, data in (("training", train_data), ("validation", val_data), ("test", test_data)):
            if data is not None:
                feats[split] = extract_features(network, data, device=device, batch_size=batch_size, amp=amp)[0]
        seconds = time.perf_counter() - start
        has_val = "validation" in feats and val_targets is not None and len(val_targets) > 0
        sweep = regression_fraction_sweep(
            feats["training"], np.asarray(train_targets, np.float64), feats["test"], np.asarray(test_targets),
            fractions, seeds, feats["validation"] if has_val else None, val_targets if has_val else None,
        )  # fmt: skip
        records += [
            {"method": method, "target": target_name, **r, "feature_seconds": seconds, **provenance} for r in sweep
        ]
    out = Path(output_dir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "regression_metrics.json", json.dumps(json_safe(records), indent=4) + "\n")
    atomic_write_text(out / "regression_report.md", _report(records, target_name, sizes))
    return records
