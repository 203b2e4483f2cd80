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
"""Fitting a linear probe on frozen features into a :class:`~monai_jepa.networks.ProbeHead` that inference can use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from monai.utils import look_up_option, optional_import

from monai_jepa.evaluation.features import extract_features
from monai_jepa.evaluation.metrics import TASKS, labels_to_numpy
from monai_jepa.evaluation.probes import linear_probe
from monai_jepa.networks.probe_head import ProbeHead
from monai_jepa.utils.module import require_package

LogisticRegression, _ = optional_import("sklearn.linear_model", name="LogisticRegression")

__all__ = ["fit_probe_head"]


def fit_probe_head(
    model: nn.Module,
    train_data: Any,
    task: str,
    val_data: Any = None,
    class_names: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    amp: bool = False,
    max_iter: int = 1000,
    seed: int = 0,
) -> ProbeHead:
    """Fit the linear probe of :func:`monai_jepa.evaluation.linear_probe` on frozen features and return it as a head.

    Features ``(N, D)`` are standardised with the training statistics; the L2 logistic regression's ``C`` is chosen
    on ``val_data`` (validation AUC) when given, else ``C = 1``; the final probe is fitted on ``train_data``. Classes
    that the training labels never show get a zero weight row and a bias of -30 (multi-label columns that are always
    or never positive: +30 or -30).

    Args:
        model: the pretrained network (``model.embed`` gives the features).
        train_data: labelled training data (a dataset of ``{"image", "label"}`` dicts or an ``(images, labels)`` pair).
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        val_data: optional labelled validation data for the choice of ``C``.
        class_names: names of the classes (default ``"0"``, ``"1"``, ...).
        device: device of the feature extraction.
        batch_size: feature-extraction batch size.
        amp: bf16 autocast during feature extraction.
        max_iter: L-BFGS iterations.
        seed: random state of the solver.

    Returns:
        the fitted :class:`~monai_jepa.networks.ProbeHead` (on the CPU): weight ``(K, D)``, ``K = 1`` for binary tasks.

    Raises:
        ValueError: when ``train_data`` carries no labels.

    Example::

        head = fit_probe_head(model, train_ds, "binary", val_data=val_ds)
        head.to_file("outputs/models/probe_head.pt")
    """
    task = look_up_option(task, TASKS)
    require_package("sklearn", "monai_jepa.evaluation.fit_probe_head", "logistic regression")  # before the features
    train_x, train_y = extract_features(model, train_data, device, batch_size, amp)
    if train_y is None:
        raise ValueError("`train_data` carries no labels: a probe head needs labelled training data.")
    x, y = train_x.numpy().astype(np.float64), labels_to_numpy(train_y, task)
    c = 1.0
    if val_data is not None:
        val_x, val_y = extract_features(model, val_data, device, batch_size, amp)
        if val_y is not None:
            c = float(linear_probe(x, y, val_x.numpy(), val_y, task, val_x=val_x.numpy(), val_y=val_y, seed=seed)["C"])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / std

    def fit(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(xs, target)
        return clf.coef_, clf.intercept_, clf.classes_

    big = 30.0  # logit of a class that the training labels never (or always) show
    if task == "multilabel":
        weights, biases = [], []
        for k in range(y.shape[1]):
            if y[:, k].min() == y[:, k].max():
                weights.append(np.zeros(x.shape[1]))
                biases.append(big if y[0, k] else -big)
            else:
                w, b, _ = fit(y[:, k])
                weights.append(w[0])
                biases.append(b[0])
        weight, bias = np.stack(weights), np.asarray(biases)
    else:
        w, b, classes = fit(y)
        if task == "binary":
            weight, bias = w, b
        else:
            if len(classes) == 2:  # sklearn returns one logit z for two classes: softmax([-z/2, z/2]) = sigmoid(z)
                w, b = np.concatenate([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
            num = max(int(y.max()) + 1, len(class_names or ()), len(classes))
            weight, bias = np.zeros((num, x.shape[1])), np.full(num, -big)
            weight[classes], bias[classes] = w, b
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return ProbeHead(as_t(mean), as_t(std), as_t(weight), as_t(bias), task, class_names)
