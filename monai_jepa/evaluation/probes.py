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
"""Frozen-feature probes: standardised logistic regression (linear probe) and cosine-similarity weighted kNN."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.utils import look_up_option, optional_import

from monai_jepa.evaluation.metrics import TASKS, classification_metrics, labels_to_numpy
from monai_jepa.utils.module import require_package

LogisticRegression, _ = optional_import("sklearn.linear_model", name="LogisticRegression")
ConvergenceWarning, _ = optional_import("sklearn.exceptions", name="ConvergenceWarning")

__all__ = ["DEFAULT_C_GRID", "infer_num_classes", "knn_probe", "linear_probe", "standardize"]

DEFAULT_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def _features(x: Any, name: str) -> np.ndarray:
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty feature matrix (N, D), got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr


def infer_num_classes(task: str, *labels: np.ndarray | None, num_classes: int | None = None) -> int:
    """Number of classes: ``num_classes`` when given, 2 for binary, ``K`` of multi-label matrices, else max + 1."""
    task = look_up_option(task, TASKS)
    if num_classes is not None:
        return int(num_classes)
    present = [y for y in labels if y is not None and len(y)]
    if task == "binary":
        return 2
    if task == "multilabel":
        return int(present[0].shape[1])
    return max(2, int(max(y.max() for y in present)) + 1)


def standardize(
    train_x: np.ndarray, *others: np.ndarray, reference: np.ndarray | None = None, eps: float = 1e-6
) -> list[np.ndarray]:
    """Standardise feature matrices with the per-feature mean and standard deviation of ``reference``.

    Args:
        train_x: ``(N, D)`` training features.
        others: more ``(M, D)`` matrices.
        reference: ``(R, D)`` features whose statistics are used (default: ``train_x``).
        eps: added to the standard deviation (constant features map to 0).

    Returns:
        ``[train_x, *others]`` standardised.
    """
    ref = train_x if reference is None else reference
    mean, std = ref.mean(axis=0), ref.std(axis=0) + eps
    return [(x - mean) / std for x in (train_x, *others)]


def _fit_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    task: str,
    c: float,
    num_classes: int,
    max_iter: int,
    seed: int,
) -> np.ndarray:
    """Fit L2 logistic regression(s) and return the test scores in the layout of ``classification_metrics``."""
    require_package("sklearn", "monai_jepa.evaluation.linear_probe", "logistic regression")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if task == "multilabel":  # one-vs-rest: one binary regression per label
            cols = []
            for k in range(train_y.shape[1]):
                yk = train_y[:, k]
                if yk.min() == yk.max():  # a label with one value in the training set: predict that value
                    cols.append(np.full(len(test_x), float(yk[0])))
                else:
                    clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(train_x, yk)
                    cols.append(clf.predict_proba(test_x)[:, 1])
            return np.stack(cols, axis=1)
        clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(train_x, train_y)  # multinomial
    proba = clf.predict_proba(test_x)
    if task == "binary":
        return proba[:, list(clf.classes_).index(1)]
    full = np.zeros((len(test_x), num_classes))
    full[:, clf.classes_] = proba
    return full


def _selection_score(metrics: dict[str, Any]) -> float:
    auc = metrics.get("auc", math.nan)
    return auc if auc is not None and not math.isnan(auc) else metrics["acc"]


def _check_train_labels(train_y: np.ndarray, task: str) -> None:
    if task != "multilabel" and len(np.unique(train_y)) < 2:
        raise ValueError(
            f"the training labels of a {task} probe must hold at least 2 classes, got {np.unique(train_y)}."
        )


def linear_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    task: str,
    val_x: Any = None,
    val_y: Any = None,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    default_c: float = 1.0,
    max_iter: int = 1000,
    num_classes: int | None = None,
    seed: int = 0,
    norm_x: Any = None,
) -> dict[str, Any]:
    """Linear probe on frozen features: per-feature standardisation (statistics of ``train_x``, or of ``norm_x``),
    then L2-regularised logistic regression (L-BFGS; multinomial for multi-class / ordinal tasks, one-vs-rest for
    multi-label tasks).

    The inverse regularisation strength ``C`` is chosen on the validation split when given (the value of ``c_grid``
    with the best validation AUC, accuracy when the AUC is undefined), else ``default_c`` is used. The final probe
    is fitted on the training split only.

    Args:
        train_x: training features ``(N, D)``.
        train_y: training labels ``(N,)`` or ``(N, K)`` (multilabel).
        test_x: test features ``(M, D)``.
        test_y: test labels.
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        val_x: optional validation features for the choice of ``C``.
        val_y: their labels.
        c_grid: candidate values of ``C`` (used with a validation split).
        default_c: ``C`` without validation split.
        max_iter: L-BFGS iterations (convergence warnings are silenced).
        num_classes: number of classes (default: inferred from the labels).
        seed: random state of the solver.
        norm_x: features ``(R, D)`` whose mean and standard deviation standardise every split (default:
            ``train_x``). With very few labelled samples, pass all (unlabelled) training features: their statistics
            use no labels and are far more stable than those of a handful of samples.

    Returns:
        ``{"scores": test scores (numpy), "C": chosen C, **classification_metrics(...)}``.

    Example::

        >>> out = linear_probe(f_train, y_train, f_test, y_test, "binary", val_x=f_val, val_y=y_val)
        >>> out["auc"], out["C"]
    """
    task = look_up_option(task, TASKS)
    xtr, xte = _features(train_x, "train_x"), _features(test_x, "test_x")
    ytr, yte = labels_to_numpy(train_y, task), labels_to_numpy(test_y, task)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError(f"features and labels differ in length: {len(xtr)}/{len(ytr)} (train), {len(xte)}/{len(yte)}.")
    _check_train_labels(ytr, task)
    has_val = val_x is not None and val_y is not None
    yva = labels_to_numpy(val_y, task) if has_val else None
    k = infer_num_classes(task, ytr, yte, yva, num_classes=num_classes)
    ref = None if norm_x is None else _features(norm_x, "norm_x")
    if has_val and len(c_grid) > 1:
        xtr, xva, xte = standardize(xtr, _features(val_x, "val_x"), xte, reference=ref)
        best_c, best = float(c_grid[0]), -math.inf
        for c in c_grid:
            val_scores = _fit_predict(xtr, ytr, xva, task, float(c), k, max_iter, seed)
            score = _selection_score(classification_metrics(val_scores, yva, task))
            if score > best:
                best_c, best = float(c), score
    else:
        xtr, xte = standardize(xtr, xte, reference=ref)
        best_c = float(c_grid[0]) if has_val and len(c_grid) == 1 else float(default_c)
    scores = _fit_predict(xtr, ytr, xte, task, best_c, k, max_iter, seed)
    return {"scores": scores, "C": best_c, **classification_metrics(scores, yte, task)}


@torch.no_grad()
def knn_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    task: str,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> dict[str, Any]:
    """Weighted k-nearest-neighbour probe on L2-normalised frozen features.

    Each test sample takes its ``k`` most cosine-similar training samples; neighbour ``j`` votes with weight
    ``exp(s_j / temperature)``. The score of a class is the weighted share of votes for it (multi-label: the
    weighted mean of the neighbours' 0/1 label vectors; binary: the weighted share of positives).

    Args:
        train_x: training features ``(N, D)``.
        train_y: training labels ``(N,)`` or ``(N, K)`` (multilabel).
        test_x: test features ``(M, D)``.
        test_y: test labels.
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        k: number of neighbours (capped at ``N``).
        temperature: temperature of the similarity weights (> 0).
        num_classes: number of classes (default: inferred from the labels).
        chunk_size: test samples per similarity block (bounds memory).

    Returns:
        ``{"scores": test scores (numpy), "k": neighbours used, **classification_metrics(...)}``.

    Example::

        >>> out = knn_probe(f_train, y_train, f_test, y_test, "multiclass", k=20)
    """
    task = look_up_option(task, TASKS)
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    xtr = F.normalize(torch.from_numpy(_features(train_x, "train_x")).float(), dim=1)
    xte = F.normalize(torch.from_numpy(_features(test_x, "test_x")).float(), dim=1)
    ytr, yte = labels_to_numpy(train_y, task), labels_to_numpy(test_y, task)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError(f"features and labels differ in length: {len(xtr)}/{len(ytr)} (train), {len(xte)}/{len(yte)}.")
    n_cls = infer_num_classes(task, ytr, yte, num_classes=num_classes)
    if task == "multilabel":
        targets = torch.from_numpy(ytr).double()
    else:
        targets = F.one_hot(torch.from_numpy(ytr), n_cls).double()
    k = min(int(k), len(xtr))
    votes = []
    for start in range(0, len(xte), chunk_size):
        sim = xte[start : start + chunk_size] @ xtr.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = torch.exp(
            (top_sim - top_sim[:, :1]).double() / temperature
        )  # shifted by the row maximum: same ratios
        votes.append((weights.unsqueeze(-1) * targets[top_idx]).sum(1) / weights.sum(1, keepdim=True))
    scores = torch.cat(votes).clamp(0.0, 1.0).numpy()
    if task == "binary":
        scores = scores[:, 1]
    return {"scores": scores, "k": k, **classification_metrics(scores, yte, task)}
