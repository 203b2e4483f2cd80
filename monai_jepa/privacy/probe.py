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
"""A linear probe trained with DP-SGD on frozen features: the differentially private counterpart of
:func:`~monai_jepa.evaluation.linear_probe`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.utils import look_up_option
from torch.utils.data import DataLoader, TensorDataset

from monai_jepa.evaluation.metrics import TASKS, classification_metrics, labels_to_numpy, num_outputs_for_task
from monai_jepa.evaluation.probes import infer_num_classes
from monai_jepa.privacy.dp import DPConfig, DPTraining, prepare_dp_model

__all__ = ["dp_linear_probe", "fit_dp_linear"]


def _loss(logits: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "binary":
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, y.float())
    return F.cross_entropy(logits, y.long())


def _as_features(x: Any, mean: Any, std: Any, normalize: bool) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(x.shape)}.")
    if mean is not None:
        x = x - torch.as_tensor(np.asarray(mean), dtype=torch.float32)
    if std is not None:
        x = x / torch.as_tensor(np.asarray(std), dtype=torch.float32)
    return F.normalize(x, dim=1) if normalize else x


def fit_dp_linear(
    train_x: Any,
    train_y: Any,
    task: str,
    dp: DPConfig | Mapping[str, Any],
    num_classes: int | None = None,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 2.0,
    momentum: float = 0.9,
    feature_mean: Any = None,
    feature_std: Any = None,
    normalize: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a linear layer ``(N, D) -> (N, K)`` on features with DP-SGD (SGD with momentum, constant learning rate,
    Poisson batches of expected size ``batch_size``, per-record clipping and Gaussian noise; see
    :class:`~monai_jepa.privacy.DPTraining`).

    Each feature vector is scaled to unit L2 norm (``normalize``): a per-record operation, so it needs no statistic
    of the private data, and it makes the learning rate and clipping norm independent of the encoder's feature
    scale. Optional ``feature_mean`` / ``feature_std`` shift and scale the features first; they must not be computed
    from the private training records (they would leak outside the guarantee): take them from public data.

    Args:
        train_x: features ``(N, D)``.
        train_y: labels ``(N,)`` (binary, multiclass, ordinal) or ``(N, K)`` (multilabel).
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        dp: the DP settings (:class:`~monai_jepa.privacy.DPConfig` or its dict).
        num_classes: number of classes (default: inferred from the labels).
        epochs: passes over the data (in expectation); with ``target_epsilon`` the noise is calibrated to them.
        batch_size: expected batch size.
        lr: learning rate.
        momentum: SGD momentum.
        feature_mean: optional shift ``(D,)`` of the features.
        feature_std: optional scale ``(D,)`` of the features.
        normalize: scale each feature vector to unit L2 norm (after the optional shift and scale).
        seed: seed of the initialisation, the batch sampling and the noise.

    Returns:
        dict with ``weight`` ``(K, D)`` and ``bias`` ``(K,)`` (float32 tensors, for the transformed features),
        ``num_outputs``, and the privacy report (``epsilon``, ``delta``, ``noise_multiplier``, ``sample_rate``,
        ``steps``, ...).
    """
    task = look_up_option(task, TASKS)
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}.")
    x = _as_features(train_x, feature_mean, feature_std, normalize)
    y_np = labels_to_numpy(train_y, task)
    if len(y_np) != len(x):
        raise ValueError(f"train_x holds {len(x)} records but train_y {len(y_np)}.")
    n_out = num_outputs_for_task(task, infer_num_classes(task, y_np, num_classes=num_classes))
    y = torch.as_tensor(y_np.astype(np.float32 if task in ("binary", "multilabel") else np.int64))

    torch.manual_seed(seed)
    model, _ = prepare_dp_model(nn.Linear(x.shape[1], n_out))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    training = DPTraining(dp, num_samples=len(x))
    loader = DataLoader(TensorDataset(x, y), batch_size=min(int(batch_size), len(x)))
    model, optimizer, loader = training.make_private(model, optimizer, loader, epochs=int(epochs), seed=seed)
    model.train()
    for _ in range(int(epochs)):
        for xb, yb in loader:
            optimizer.zero_grad(set_to_none=True)
            if len(xb) == 0:  # an empty Poisson batch
                training.noise_step(optimizer)
                continue
            _loss(model(xb), yb, task).backward()
            optimizer.step()
    linear = model._module if hasattr(model, "_module") else model
    return {
        "weight": linear.weight.detach().clone(),
        "bias": linear.bias.detach().clone(),
        "num_outputs": n_out,
        **training.report(),
    }


def dp_linear_probe(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    task: str,
    dp: DPConfig | Mapping[str, Any],
    num_classes: int | None = None,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 2.0,
    momentum: float = 0.9,
    feature_mean: Any = None,
    feature_std: Any = None,
    normalize: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit :func:`fit_dp_linear` on the training features and score the test features.

    Args:
        train_x: training features ``(N, D)``.
        train_y: training labels.
        test_x: test features ``(M, D)``.
        test_y: test labels.
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        dp: the DP settings.
        num_classes, epochs, batch_size, lr, momentum, feature_mean, feature_std, normalize, seed: see
            :func:`fit_dp_linear`.

    Returns:
        dict with the test ``scores`` and metrics (``acc``, ``auc``, ...), the privacy report (``epsilon``,
        ``delta``, ``noise_multiplier``, ``steps``, ...), ``n_labels``, ``epochs``, ``lr``, ``batch_size``, ``seed``
        and ``seconds``.

    Example::

        >>> res = dp_linear_probe(f_tr, y_tr, f_te, y_te, "binary", {"target_epsilon": 3.0}, epochs=20)
        >>> res["auc"], res["epsilon"], res["delta"]
    """
    start = time.perf_counter()
    task = look_up_option(task, TASKS)
    fit = fit_dp_linear(
        train_x,
        train_y,
        task,
        dp,
        num_classes,
        epochs,
        batch_size,
        lr,
        momentum,
        feature_mean,
        feature_std,
        normalize,
        seed,
    )
    weight, bias = fit.pop("weight"), fit.pop("bias")
    fit.pop("num_outputs")
    with torch.no_grad():
        logits = _as_features(test_x, feature_mean, feature_std, normalize) @ weight.T + bias
    if task == "binary":
        scores = torch.sigmoid(logits[:, 0])
    elif task == "multilabel":
        scores = torch.sigmoid(logits)
    else:
        scores = logits.softmax(dim=1)
    scores_np = scores.double().numpy()
    return {
        "scores": scores_np,
        **classification_metrics(scores_np, labels_to_numpy(test_y, task), task),
        **fit,
        "n_labels": len(labels_to_numpy(train_y, task)),
        "epochs": int(epochs),
        "lr": lr,
        "batch_size": int(batch_size),
        "seed": seed,
        "seconds": time.perf_counter() - start,
    }
