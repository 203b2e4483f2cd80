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
"""Classification metrics for binary, multi-class, ordinal and multi-label tasks (accuracy, ROC AUC, weighted kappa)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from monai.utils import look_up_option, optional_import

from monai_jepa.utils.module import require_package

roc_auc_score, _ = optional_import("sklearn.metrics", name="roc_auc_score")
cohen_kappa_score, _ = optional_import("sklearn.metrics", name="cohen_kappa_score")

__all__ = ["TASKS", "classification_metrics", "labels_to_numpy", "num_outputs_for_task"]

TASKS = ("binary", "multiclass", "ordinal", "multilabel")


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        raise ValueError(f"`{name}` must be numeric, got an object array.")
    return arr


def labels_to_numpy(labels: Any, task: str) -> np.ndarray:
    """Labels as a numpy array in the canonical layout of ``task``.

    Args:
        labels: class indices ``(N,)`` or ``(N, 1)`` (binary, multiclass, ordinal), or a 0/1 matrix ``(N, K)``
            (multilabel); tensor, array or sequence.
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.

    Returns:
        int64 array ``(N,)`` of class indices, or int64 array ``(N, K)`` of 0/1 values for ``"multilabel"``.
    """
    task = look_up_option(task, TASKS)
    y = _to_numpy(labels, "labels")
    if task == "multilabel":
        if y.ndim != 2:
            raise ValueError(f"multilabel labels must have shape (N, K), got {y.shape}.")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("multilabel labels must be 0/1 values.")
        return y.astype(np.int64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{task} labels must have shape (N,) or (N, 1), got {y.shape}.")
    if y.size and (np.any(y < 0) or np.any(y != np.round(y))):
        raise ValueError(f"{task} labels must be non-negative integer class indices.")
    return y.astype(np.int64)


def num_outputs_for_task(task: str, num_classes: int) -> int:
    """Number of logits a classifier needs: 1 for ``"binary"``, else ``num_classes``."""
    task = look_up_option(task, TASKS)
    if num_classes < 2 and task != "multilabel":
        raise ValueError(f"a {task} task needs num_classes >= 2, got {num_classes}.")
    return 1 if task == "binary" else int(num_classes)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC of a 0/1 target, NaN when only one value is present."""
    if y.min() == y.max():
        return math.nan
    return float(roc_auc_score(y, s))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def classification_metrics(scores: Any, labels: Any, task: str, from_logits: bool = False) -> dict[str, Any]:
    """Accuracy, ROC AUC and task-specific metrics of predicted scores.

    - ``"binary"``: ``acc`` (threshold 0.5) and ``auc`` (ROC AUC of the positive class).
    - ``"multiclass"``: ``acc`` (arg-max) and ``auc`` (macro average of the one-vs-rest ROC AUCs).
    - ``"ordinal"``: as ``"multiclass"`` plus ``qwk``, the quadratic weighted Cohen kappa of the arg-max prediction.
    - ``"multilabel"``: ``per_class_auc`` (a list, ``None`` for a class whose test labels all have one value),
      ``macro_auc`` (mean over the other classes), ``auc`` (= ``macro_auc``), ``skipped_classes`` (their indices)
      and ``acc``, the mean over classes of the accuracy at threshold 0.5.

    For multi-class tasks, classes absent from ``labels`` are left out of the macro AUC (listed in
    ``skipped_classes``). An AUC that cannot be computed (one label value only) is NaN.

    Args:
        scores: ``(N,)`` probability of the positive class (binary; ``(N, 1)`` and ``(N, 2)`` also accepted),
            ``(N, K)`` class probabilities (multiclass, ordinal) or ``(N, K)`` per-label probabilities (multilabel).
        labels: ``(N,)`` class indices (``(N, 1)`` accepted) or ``(N, K)`` 0/1 matrix (multilabel).
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        from_logits: ``scores`` are logits: a sigmoid (binary, multilabel) or a softmax (multiclass, ordinal) is
            applied first.

    Returns:
        dict of Python floats (and lists for ``per_class_auc`` / ``skipped_classes``).

    Example::

        >>> classification_metrics([0.1, 0.8, 0.6, 0.3], [0, 1, 0, 1], "binary")
        {'acc': 0.5, 'auc': 0.75}
    """
    task = look_up_option(task, TASKS)
    require_package("sklearn", "monai_jepa.evaluation.classification_metrics", "ROC AUC and kappa")
    y = labels_to_numpy(labels, task)
    s = _to_numpy(scores, "scores").astype(np.float64)
    if s.shape[0] != y.shape[0]:
        raise ValueError(f"scores and labels must have the same length, got {s.shape[0]} and {y.shape[0]}.")
    if y.shape[0] == 0:
        raise ValueError("classification_metrics needs at least one sample, got 0.")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values.")

    if task == "binary":
        if s.ndim == 2 and s.shape[1] == 2:
            s = _softmax(s)[:, 1] if from_logits else s[:, 1]
        else:
            s = s[:, 0] if s.ndim == 2 and s.shape[1] == 1 else s
            if s.ndim != 1:
                raise ValueError(f"binary scores must have shape (N,), (N, 1) or (N, 2), got {s.shape}.")
            s = _sigmoid(s) if from_logits else s
        if y.max() > 1:
            raise ValueError(f"binary labels must be 0 or 1, got a maximum of {y.max()}.")
        return {"acc": float(np.mean((s >= 0.5) == (y == 1))), "auc": _auc(y, s)}

    if s.ndim != 2:
        raise ValueError(f"{task} scores must have shape (N, K), got {s.shape}.")
    num_classes = s.shape[1]
    if task == "multilabel":
        if y.shape[1] != num_classes:
            raise ValueError(f"multilabel scores and labels must have the same K, got {s.shape} and {y.shape}.")
        s = _sigmoid(s) if from_logits else s
        per_class = [_auc(y[:, c], s[:, c]) for c in range(num_classes)]
        valid = [a for a in per_class if not math.isnan(a)]
        macro = float(np.mean(valid)) if valid else math.nan
        return {
            "acc": float(np.mean((s >= 0.5) == (y == 1))),
            "auc": macro,
            "macro_auc": macro,
            "per_class_auc": [None if math.isnan(a) else a for a in per_class],
            "skipped_classes": [c for c, a in enumerate(per_class) if math.isnan(a)],
        }

    if y.max() >= num_classes:
        raise ValueError(f"{task} labels must lie in [0, {num_classes}) for scores of shape {s.shape}.")
    s = _softmax(s) if from_logits else s
    pred = s.argmax(axis=1)
    per_class = [_auc((y == c).astype(np.int64), s[:, c]) for c in range(num_classes)]
    valid = [a for a in per_class if not math.isnan(a)]
    out: dict[str, Any] = {
        "acc": float(np.mean(pred == y)),
        "auc": float(np.mean(valid)) if valid else math.nan,
    }
    skipped = [c for c, a in enumerate(per_class) if math.isnan(a)]
    if skipped:
        out["skipped_classes"] = skipped
    if task == "ordinal":
        out["qwk"] = float(cohen_kappa_score(y, pred, weights="quadratic", labels=list(range(num_classes))))
    return out
