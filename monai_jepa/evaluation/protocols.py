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
"""Low-label evaluation protocols on frozen features: stratified label subsets, few-shot episodes and label-fraction
sweeps, each summarised over seeds as mean and standard deviation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.utils import look_up_option

from monai_jepa.evaluation.metrics import TASKS, labels_to_numpy
from monai_jepa.evaluation.probes import infer_num_classes, knn_probe, linear_probe

__all__ = [
    "DEFAULT_LABEL_FRACTIONS",
    "DEFAULT_SHOTS",
    "METRIC_KEYS",
    "PROBES",
    "few_shot",
    "label_fraction_sweep",
    "stratified_subset",
    "summarize_runs",
]

DEFAULT_LABEL_FRACTIONS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
DEFAULT_SHOTS = (1, 5, 10)
PROBES = ("linear", "knn")
# metrics summarised as mean and standard deviation over seeds / episodes
METRIC_KEYS = ("acc", "auc", "qwk", "macro_auc")
_AVERAGED_KEYS = ("n_labels", "val_score", "train_seconds")


def _strata(labels: Any) -> np.ndarray:
    """One stratum per sample: the class, or for a multi-label matrix ``(N, K)`` with ``K > 1`` the first positive
    label (``K`` when there is none)."""
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim == 2 and y.shape[1] > 1:
        positive = y > 0
        return np.where(positive.any(axis=1), positive.argmax(axis=1), y.shape[1]).astype(np.int64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,), (N, 1) or (N, K), got {y.shape}.")
    return y


def stratified_subset(
    labels: Any, fraction: float | None = None, shots_per_class: int | None = None, seed: int = 0
) -> np.ndarray:
    """Indices of a seeded, stratified subset of a labelled set.

    Samples are grouped by class (multi-label matrices ``(N, K)``: by their first positive label, samples without any
    positive label forming one more group). Each group contributes ``max(1, round(fraction * group size))`` samples
    (so every class keeps at least one label) or ``min(shots_per_class, group size)`` samples, drawn without
    replacement. ``fraction=1.0`` returns every index.

    Args:
        labels: ``(N,)`` / ``(N, 1)`` class labels or an ``(N, K)`` 0/1 matrix.
        fraction: fraction of each group to keep, in ``(0, 1]``.
        shots_per_class: number of samples per group (>= 1). Give exactly one of ``fraction`` and
            ``shots_per_class``.
        seed: seed of the draw (the same arguments give the same subset).

    Returns:
        sorted int64 array of indices.

    Example::

        >>> idx = stratified_subset(train_labels, fraction=0.01, seed=0)
        >>> idx5 = stratified_subset(train_labels, shots_per_class=5, seed=3)
    """
    if (fraction is None) == (shots_per_class is None):
        raise ValueError(f"give exactly one of fraction and shots_per_class, got {fraction!r} and {shots_per_class!r}.")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}.")
    if shots_per_class is not None and (int(shots_per_class) != shots_per_class or shots_per_class < 1):
        raise ValueError(f"shots_per_class must be a positive integer, got {shots_per_class!r}.")
    strata = _strata(labels)
    if fraction == 1.0:
        return np.arange(len(strata), dtype=np.int64)
    rng = np.random.default_rng(seed)
    picked = []
    for group in np.unique(strata):
        members = np.flatnonzero(strata == group)
        if fraction is not None:
            n = max(1, int(math.floor(fraction * len(members) + 0.5)))
        else:
            n = min(int(shots_per_class), len(members))  # type: ignore[arg-type]
        picked.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _nan_std(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan


def summarize_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge the results of repeated runs (seeds, episodes) into one record.

    Metrics in :data:`METRIC_KEYS` become their mean (over the runs where they are finite) plus ``<key>_std``, the
    sample standard deviation (``ddof=1``; NaN with fewer than two finite values), when there are several runs.
    ``per_class_auc`` lists are averaged per class, ``skipped_classes`` are united, ``seconds`` are summed,
    ``n_labels``, ``val_score`` and ``train_seconds`` are averaged; any other value (e.g. the chosen ``C``) is kept
    when equal in every run and listed per run otherwise. ``scores`` are dropped.

    Args:
        runs: one dict per run (e.g. outputs of :func:`~monai_jepa.evaluation.linear_probe`).

    Returns:
        the summary dict.
    """
    if not runs:
        raise ValueError("summarize_runs needs at least one run.")
    keys = list(dict.fromkeys(k for run in runs for k in run if k != "scores"))
    out: dict[str, Any] = {}
    for key in keys:
        values = [run[key] for run in runs if key in run]
        if key == "seconds":
            out[key] = float(sum(values))
        elif key == "per_class_auc":
            table = np.array([[math.nan if v is None else v for v in row] for row in values], dtype=np.float64)
            with np.errstate(all="ignore"):
                means = [float(np.nanmean(col)) if np.isfinite(col).any() else None for col in table.T]
            out[key] = means
            if len(values) > 1:
                stds = [_nan_std(col) for col in table.T]
                out[f"{key}_std"] = [None if math.isnan(s) else s for s in stds]
        elif key == "skipped_classes":
            out[key] = sorted(set().union(*map(set, values)))
        elif all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
            arr = np.asarray(values, dtype=np.float64)
            if key in METRIC_KEYS or (key in _AVERAGED_KEYS and any(v != values[0] for v in values)):
                out[key] = float(np.mean(arr[np.isfinite(arr)])) if np.isfinite(arr).any() else math.nan
                if key in METRIC_KEYS and len(values) > 1:
                    out[f"{key}_std"] = _nan_std(arr)
            else:
                out[key] = values[0] if all(v == values[0] for v in values) else list(values)
        else:
            out[key] = values[0] if all(v == values[0] for v in values) else list(values)
    return out


def _run_probe(
    probe: str,
    train_x: torch.Tensor,
    train_y: np.ndarray,
    test_x: torch.Tensor,
    test_y: np.ndarray,
    task: str,
    seed: int,
    num_classes: int,
    val_x: Any,
    val_y: Any,
    norm_x: Any,
    linear_kwargs: Mapping[str, Any],
    knn_kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    start = time.perf_counter()
    if probe == "linear":
        out = linear_probe(
            train_x,
            train_y,
            test_x,
            test_y,
            task,
            val_x=val_x,
            val_y=val_y,
            num_classes=num_classes,
            seed=seed,
            norm_x=norm_x,
            **linear_kwargs,
        )
    else:
        out = knn_probe(train_x, train_y, test_x, test_y, task, num_classes=num_classes, **knn_kwargs)
    out["seconds"] = time.perf_counter() - start
    return out


def _prepare(
    train_x: Any, train_y: Any, test_x: Any, test_y: Any, task: str, probes: Sequence[str], num_classes: int | None
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray, str, list[str], int]:
    task = look_up_option(task, TASKS)
    probes = [look_up_option(p, PROBES) for p in probes]
    train_x, test_x = torch.as_tensor(train_x).float(), torch.as_tensor(test_x).float()
    ytr, yte = labels_to_numpy(train_y, task), labels_to_numpy(test_y, task)
    if len(train_x) != len(ytr):
        raise ValueError(f"train_x and train_y differ in length: {len(train_x)} and {len(ytr)}.")
    return train_x, ytr, test_x, yte, task, probes, infer_num_classes(task, ytr, yte, num_classes=num_classes)


def _sweep(
    subsets: Callable[[int], np.ndarray],
    seeds: Sequence[int],
    base: Mapping[str, Any],
    train_x: torch.Tensor,
    ytr: np.ndarray,
    probes: Sequence[str],
    **probe_args: Any,
) -> list[dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in probes}
    for seed in seeds:
        idx = subsets(seed)
        for probe in probes:
            out = _run_probe(probe, train_x[idx], ytr[idx], seed=seed, **probe_args)
            runs[probe].append({"n_labels": len(idx), **out})
    return [{**base, "probe": p, "seeds": list(seeds), **summarize_runs(runs[p])} for p in probes]


def few_shot(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    task: str,
    shots: Sequence[int] = DEFAULT_SHOTS,
    episodes: int = 5,
    seed: int = 0,
    probes: Sequence[str] = PROBES,
    num_classes: int | None = None,
    linear_kwargs: Mapping[str, Any] | None = None,
    knn_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Few-shot classification on frozen features: ``n`` labelled samples per class, repeated over seeded episodes.

    Episode ``e`` draws ``stratified_subset(train_y, shots_per_class=n, seed=seed + e)`` and fits each probe on it
    (the linear probe with its fixed default ``C``, no validation labels; features standardised with the statistics of
    all training features, which use no labels). The test set is the full test split.

    Args:
        train_x: training features ``(N, D)`` (the pool the shots are drawn from).
        train_y: their labels ``(N,)`` or ``(N, K)``.
        test_x: test features ``(M, D)``.
        test_y: test labels.
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        shots: labelled samples per class.
        episodes: episodes per shot count (>= 1).
        seed: seed of the first episode.
        probes: subset of ``("linear", "knn")``.
        num_classes: number of classes (default: inferred from the labels).
        linear_kwargs: extra arguments of :func:`~monai_jepa.evaluation.linear_probe` (e.g. ``default_c``).
        knn_kwargs: extra arguments of :func:`~monai_jepa.evaluation.knn_probe` (e.g. ``k``, ``temperature``).

    Returns:
        one record per (shots, probe): ``{"protocol": "few_shot", "probe", "shots", "label_fraction": None,
        "n_labels", "episodes", "seeds", "acc", "acc_std", "auc", "auc_std", ..., "seconds"}``.

    Example::

        >>> records = few_shot(f_train, y_train, f_test, y_test, "binary", shots=(1, 5, 10), episodes=5)
    """
    if int(episodes) != episodes or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}.")
    train_x, ytr, test_x, yte, task, probes, n_cls = _prepare(
        train_x, train_y, test_x, test_y, task, probes, num_classes
    )
    records = []
    for n in shots:
        base = {"protocol": "few_shot", "shots": int(n), "label_fraction": None, "episodes": int(episodes)}
        records += _sweep(
            lambda s, n=n: stratified_subset(ytr, shots_per_class=n, seed=s),
            [seed + e for e in range(episodes)],
            base,
            train_x,
            ytr,
            probes,
            test_x=test_x,
            test_y=yte,
            task=task,
            num_classes=n_cls,
            val_x=None,
            val_y=None,
            norm_x=train_x,
            linear_kwargs=dict(linear_kwargs or {}),
            knn_kwargs=dict(knn_kwargs or {}),
        )
    return records


def label_fraction_sweep(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    task: str,
    fractions: Sequence[float] = DEFAULT_LABEL_FRACTIONS,
    seeds: Sequence[int] = (0, 1, 2),
    probes: Sequence[str] = PROBES,
    val_x: Any = None,
    val_y: Any = None,
    num_classes: int | None = None,
    linear_kwargs: Mapping[str, Any] | None = None,
    knn_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Frozen-feature probes trained on stratified fractions of the training labels.

    For each fraction ``f`` and seed ``s`` the probes are fitted on ``stratified_subset(train_y, fraction=f, seed=s)``
    (every class keeps at least one label) and tested on the full test split; ``f = 1`` uses all labels in one run
    (the first seed). The linear probe chooses ``C`` on the validation split when given, and standardises with the
    statistics of all training features (which use no labels).

    Args:
        train_x: training features ``(N, D)``.
        train_y: their labels ``(N,)`` or ``(N, K)``.
        test_x: test features ``(M, D)``.
        test_y: test labels.
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        fractions: label fractions in ``(0, 1]``.
        seeds: seeds of the subsets (and of the solver).
        probes: subset of ``("linear", "knn")``.
        val_x: optional validation features for the choice of ``C``.
        val_y: their labels.
        num_classes: number of classes (default: inferred from the labels).
        linear_kwargs: extra arguments of :func:`~monai_jepa.evaluation.linear_probe`.
        knn_kwargs: extra arguments of :func:`~monai_jepa.evaluation.knn_probe`.

    Returns:
        one record per (fraction, probe): ``{"protocol": probe, "probe", "label_fraction", "shots": None, "n_labels",
        "seeds", "acc", "auc", ... (``*_std`` with several seeds), "seconds"}``.

    Example::

        >>> records = label_fraction_sweep(f_train, y_train, f_test, y_test, "binary", val_x=f_val, val_y=y_val)
    """
    if not seeds:
        raise ValueError("seeds must hold at least one seed.")
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"label fractions must lie in (0, 1], got {f!r}.")
    train_x, ytr, test_x, yte, task, probes, n_cls = _prepare(
        train_x, train_y, test_x, test_y, task, probes, num_classes
    )
    val_y = None if val_x is None or val_y is None else labels_to_numpy(val_y, task)
    val_x = None if val_y is None else torch.as_tensor(val_x).float()
    records = []
    for f in fractions:
        run_seeds = list(seeds) if f < 1.0 else [seeds[0]]
        for record in _sweep(
            lambda s, f=f: stratified_subset(ytr, fraction=f, seed=s),
            run_seeds,
            {"label_fraction": float(f), "shots": None},
            train_x,
            ytr,
            probes,
            test_x=test_x,
            test_y=yte,
            task=task,
            num_classes=n_cls,
            val_x=val_x,
            val_y=val_y,
            norm_x=train_x,
            linear_kwargs=dict(linear_kwargs or {}),
            knn_kwargs=dict(knn_kwargs or {}),
        ):
            records.append({"protocol": record["probe"], **record})
    return records
