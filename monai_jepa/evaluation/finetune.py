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
"""End-to-end fine-tuning of an encoder with a linear head, under an explicit epoch and / or wall-clock budget.

With ``pretrained_state=None`` the same function, network and budget give the supervised-from-scratch baseline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.handlers import LrScheduleHandler
from monai.utils import look_up_option

from monai_jepa.engines.checkpoint import unwrap_network
from monai_jepa.engines.schedulers import warmup_cosine
from monai_jepa.evaluation.features import as_data_loader, autocast_context, data_labels, embed_batch, split_batch
from monai_jepa.evaluation.metrics import TASKS, classification_metrics, labels_to_numpy, num_outputs_for_task
from monai_jepa.evaluation.probes import infer_num_classes
from monai_jepa.inferers.autocast import AutocastInferer
from monai_jepa.losses.finite import FiniteLoss

__all__ = ["ClassifierHead", "EncoderClassifier", "fine_tune", "load_network_state", "predict_scores"]


class ClassifierHead(nn.Module):
    """Linear classification head ``(B, in_dim) -> (B, num_outputs)``, with optional dropout before it.

    Args:
        in_dim: feature dimension.
        num_outputs: number of logits (1 for a binary task with a sigmoid).
        dropout: dropout probability applied to the features.
    """

    def __init__(self, in_dim: int, num_outputs: int, dropout: float = 0.0) -> None:
        super().__init__()
        if in_dim < 1 or num_outputs < 1:
            raise ValueError(f"in_dim and num_outputs must be positive, got {in_dim} and {num_outputs}.")
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_dim, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_dim)`` features -> ``(B, num_outputs)`` logits."""
        return self.fc(self.dropout(x))


class EncoderClassifier(nn.Module):
    """An encoder followed by a :py:class:`ClassifierHead` on its pooled features; ``forward`` returns one tensor
    (the logits), so it can serve as a bundle ``network_def``.

    The pooled features are ``encoder.embed(x)`` when the encoder has ``embed``
    (:py:class:`~monai_jepa.networks.LeJEPAModel`; the projector is then unused), else the pooled half of a
    ``(tokens, pooled)`` forward (:py:class:`~monai_jepa.networks.ConvEncoder`,
    :py:class:`~monai_jepa.networks.JEPAViT`) or the tensor it returns.

    Args:
        encoder: the encoder.
        num_outputs: number of logits.
        embed_dim: feature dimension (default: ``encoder.embed_dim``).
        dropout: dropout before the linear layer.

    Example::

        >>> net = EncoderClassifier(ConvEncoder(spatial_dims=2, in_channels=1, arch="resnet18"), num_outputs=3)
        >>> logits = net(torch.randn(4, 1, 64, 64))  # (4, 3)
    """

    def __init__(
        self, encoder: nn.Module, num_outputs: int, embed_dim: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        embed_dim = getattr(unwrap_network(encoder), "embed_dim", None) if embed_dim is None else embed_dim
        if not isinstance(embed_dim, int):
            raise ValueError(
                f"pass embed_dim, or use an encoder with an integer `embed_dim` attribute; got {embed_dim!r}."
            )
        self.encoder = encoder
        self.head = ClassifierHead(embed_dim, num_outputs, dropout)
        self.embed_dim = embed_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial)`` -> pooled features ``(B, embed_dim)``."""
        return embed_batch(self.encoder, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial)`` -> logits ``(B, num_outputs)``."""
        return self.head(self.embed(x))


def load_network_state(network: nn.Module, state: Mapping[str, torch.Tensor], source: str = "the given state") -> None:
    """Load ``state`` into ``network`` strictly; a full LeJEPA model state (``encoder.*`` and ``projector.*`` keys)
    also fits a bare encoder, whose weights are its ``encoder.*`` entries.

    Args:
        network: the module to fill.
        state: a state dict.
        source: what ``state`` came from (named in the error).

    Raises:
        ValueError: when the weights do not fit, listing the first missing and unexpected keys.
    """
    network = unwrap_network(network)
    try:
        network.load_state_dict(state, strict=True)
        return
    except RuntimeError as err:
        error = err
    sub = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    if sub:
        try:
            network.load_state_dict(sub, strict=True)
            return
        except RuntimeError:
            pass
    own = set(network.state_dict())
    missing, unexpected = sorted(own - set(state))[:5], sorted(set(state) - own)[:5]
    raise ValueError(
        f"the weights of {source} do not fit {type(network).__name__}: missing keys {missing}, unexpected keys "
        f"{unexpected} (first 5 of each). {error}"
    )


@torch.no_grad()
def predict_scores(
    network: nn.Module,
    data: Any,
    task: str,
    device: str | torch.device = "cpu",
    amp: bool = False,
    batch_size: int = 256,
    image_key: str = "image",
    label_key: str = "label",
    channels_last: bool = False,
) -> tuple[np.ndarray, torch.Tensor | None]:
    """Class scores of a classifier on *data* (eval mode, no gradient).

    Args:
        network: returns logits ``(B, num_outputs)``.
        data: images + labels, a dataset or a loader (see :mod:`monai_jepa.evaluation.features`).
        task: ``"binary"`` (sigmoid of the single logit), ``"multilabel"`` (sigmoid) or ``"multiclass"`` /
            ``"ordinal"`` (softmax).
        device: device of the forward passes.
        amp: bf16 autocast.
        batch_size: batch size (ignored for a loader).
        image_key: image key of dict items.
        label_key: label key of dict items.
        channels_last: feed 4D / 5D inputs in channels-last memory format.

    Returns:
        ``(scores, labels)``: numpy scores ``(N,)`` (binary) or ``(N, K)``, and the labels (``None`` without labels).
    """
    task = look_up_option(task, TASKS)
    device = torch.device(device)
    was_training = network.training
    network.eval()
    scores, labels = [], []
    try:
        for batch in as_data_loader(data, batch_size=batch_size):
            x, y = split_batch(batch, image_key, label_key)
            x = _to_device(x, device, channels_last)
            with autocast_context(device, amp):
                logits = network(x)
            logits = logits.float()
            if task == "binary":
                probs = torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else logits.softmax(1)[:, 1]
            elif task == "multilabel":
                probs = torch.sigmoid(logits)
            else:
                probs = logits.softmax(dim=1)
            scores.append(probs.cpu().double())
            if y is not None:
                labels.append(y.cpu())
    finally:
        network.train(was_training)
    return torch.cat(scores).numpy(), (torch.cat(labels) if labels else None)


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim in (4, 5):
        x = x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)
    return x


def _flip(x: torch.Tensor, dims: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """Flip each sample along each axis of ``dims`` with probability 1/2."""
    for d in dims:
        axis = d % x.ndim
        if axis < 2:
            raise ValueError(f"flip_dims must name spatial axes (>= 2 or negative) of the batch, got {d}.")
        mask = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
        x = torch.where(mask.view(-1, *(1,) * (x.ndim - 1)), x.flip(axis), x)
    return x


def _loss(logits: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    logits = logits.float()
    if task == "binary":
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.reshape(-1).float())
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, y.float())
    return F.cross_entropy(logits, y.reshape(-1).long())


def _selection_score(metrics: Mapping[str, Any]) -> float:
    auc = metrics.get("auc", math.nan)
    return float(auc) if auc is not None and not math.isnan(auc) else float(metrics["acc"])


def _restart_schedule(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, done: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``warmup_cosine`` schedule over ``total`` steps, advanced to step ``done``."""
    scheduler = warmup_cosine(optimizer, warmup_steps=warmup, total_steps=total)
    for _ in range(done):
        scheduler.step()
    return scheduler


def fine_tune(
    network_factory: Callable[[], nn.Module],
    train_data: Any,
    val_data: Any,
    test_data: Any,
    task: str,
    pretrained_state: Mapping[str, torch.Tensor] | None = None,
    num_classes: int | None = None,
    max_epochs: int | None = None,
    max_minutes: float | None = None,
    batch_size: int = 64,
    lr: float = 5e-4,
    weight_decay: float = 0.05,
    warmup_epochs: int = 1,
    flip_dims: Sequence[int] = (-1,),
    head_dropout: float = 0.0,
    device: str | torch.device = "cpu",
    amp: bool = False,
    channels_last: bool = True,
    seed: int = 0,
    image_key: str = "image",
    label_key: str = "label",
    eval_batch_size: int = 256,
    dp: Any = None,
) -> dict[str, Any]:
    """Fine-tune an encoder and a linear head end-to-end; with ``pretrained_state=None``, train from scratch.

    The network is ``network_factory()`` built after ``torch.manual_seed(seed)``, loaded with ``pretrained_state``
    (see :func:`load_network_state`) and wrapped in an :py:class:`EncoderClassifier` unless it already is one (then
    the state is loaded into its encoder). Training runs on MONAI's ``SupervisedTrainer`` (with
    :class:`~monai_jepa.inferers.AutocastInferer` for bf16 on any device, :class:`~monai_jepa.losses.FiniteLoss`,
    which stops before the optimiser step on a non-finite loss, and ``LrScheduleHandler``): AdamW,
    :func:`~monai_jepa.engines.warmup_cosine` per step (``warmup_epochs`` epochs of warmup), random flips along
    ``flip_dims``, binary cross-entropy (binary: one logit; multilabel) or cross-entropy (multiclass, ordinal),
    optional channels-last memory format. The model is evaluated on ``val_data`` after every epoch and the state
    with the best validation AUC (accuracy when the AUC is undefined) is kept in memory and tested; without
    validation data the last state is tested. No early stopping.

    The budget is explicit: ``max_epochs``, ``max_minutes`` (wall clock of training + validation), or both.
    With ``max_minutes`` only, the first epoch is timed and the schedule spans the number of epochs that fit the
    budget; with both, the schedule spans ``max_epochs`` and training stops before an epoch that would overrun the
    budget.

    With ``dp`` the training is DP-SGD (:mod:`monai_jepa.privacy`, needs ``pip install 'monai_jepa[privacy]'``):
    BatchNorm layers are replaced by GroupNorm (:func:`~monai_jepa.privacy.prepare_dp_model`; their pretrained
    statistics and affine parameters are dropped), batches are Poisson samples of expected size ``batch_size``, each
    record's gradient is clipped and noise is added; ``target_epsilon`` needs ``max_epochs``. The (epsilon, delta)
    covers the training records only, not ``val_data`` (used to pick the kept epoch) nor the pretrained weights.

    Args:
        network_factory: builds the encoder (or an ``EncoderClassifier``) at a random init, e.g.
            ``lambda: build_lejepa_model("resnet18", spatial_dims=2)``.
        train_data: training images + labels, a dataset of dicts or a loader.
        val_data: validation data, or ``None``.
        test_data: test data.
        task: ``"binary"``, ``"multiclass"``, ``"ordinal"`` or ``"multilabel"``.
        pretrained_state: encoder weights (a state dict of the factory's network), or ``None`` (from scratch).
        num_classes: number of classes (default: inferred from the training labels).
        max_epochs: epoch budget.
        max_minutes: wall-clock budget in minutes.
        batch_size: training batch size.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_epochs: epochs of linear warmup.
        flip_dims: batch axes ``(B, C, *spatial)`` flipped at random (default: the last spatial axis; ``()``: none).
        head_dropout: dropout before the linear head.
        device: training device.
        amp: bf16 autocast for the forward passes (the loss is computed in float32).
        channels_last: channels-last memory format for 4D / 5D inputs.
        seed: seed of the initialisation, the data order and the flips.
        image_key: image key of dict items.
        label_key: label key of dict items.
        eval_batch_size: batch size of validation and test passes.
        dp: DP-SGD settings, a :class:`~monai_jepa.privacy.DPConfig` or its dict (e.g. ``{"target_epsilon": 3.0}``);
            ``None``: ordinary training.

    Returns:
        dict with the test ``scores`` and metrics (``acc``, ``auc``, ...), ``val_score`` (best validation AUC),
        ``best_epoch``, ``epochs`` (completed), ``planned_epochs``, ``steps``, ``max_epochs``, ``max_minutes``,
        ``stopped_by`` (``"epochs"`` or ``"time"``), ``n_labels``, ``pretrained``, ``lr``, ``batch_size``, ``seed``,
        ``train_seconds`` and ``seconds`` (including the test pass); with ``dp`` also ``epsilon``, ``delta``,
        ``noise_multiplier``, ``sample_rate``, ``max_grad_norm``, ``target_epsilon``, ``accountant``,
        ``num_samples``, ``secure_mode`` and ``dp_changes`` (the replaced modules).

    Example::

        >>> factory = lambda: ConvEncoder(spatial_dims=2, in_channels=1, arch="resnet18")
        >>> tuned = fine_tune(factory, (x_tr, y_tr), (x_va, y_va), (x_te, y_te), "binary", state, max_epochs=20)
        >>> scratch = fine_tune(factory, (x_tr, y_tr), (x_va, y_va), (x_te, y_te), "binary", None, max_epochs=20)
    """
    task = look_up_option(task, TASKS)
    if max_epochs is None and max_minutes is None:
        raise ValueError("fine_tune needs a budget: give max_epochs, max_minutes or both.")
    if max_epochs is not None and (int(max_epochs) != max_epochs or max_epochs < 1):
        raise ValueError(f"max_epochs must be a positive integer, got {max_epochs!r}.")
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"max_minutes must be positive, got {max_minutes!r}.")
    if int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be a non-negative integer, got {warmup_epochs!r}.")
    dp_config, changes, privacy = None, [], None
    if dp is not None:
        from monai_jepa.privacy import DPConfig, DPTraining, prepare_dp_model  # optional dependency

        dp_config = DPConfig.from_value(dp)
        if dp_config.target_epsilon is not None and max_epochs is None:
            raise ValueError("DP-SGD with target_epsilon needs max_epochs (the noise is calibrated to them).")
    start = time.perf_counter()
    device = torch.device(device)
    train_labels = labels_to_numpy(data_labels(train_data, label_key), task)
    n_out = num_outputs_for_task(task, infer_num_classes(task, train_labels, num_classes=num_classes))

    torch.manual_seed(seed)
    net = network_factory()
    target = net.encoder if isinstance(net, EncoderClassifier) else net
    if pretrained_state is not None:
        load_network_state(target, pretrained_state, "pretrained_state")
    if not isinstance(net, EncoderClassifier):
        net = EncoderClassifier(net, n_out, dropout=head_dropout)
    net = net.to(device)
    if dp_config is not None:
        inner = unwrap_network(net.encoder)
        if callable(getattr(inner, "embed", None)) and isinstance(getattr(inner, "projector", None), nn.Module):
            inner.projector.requires_grad_(False)  # a LeJEPA projector: unused by the classifier, no gradient
        net, changes = prepare_dp_model(net)

    n_train = len(train_labels)
    loader = as_data_loader(
        train_data,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        drop_last=n_train > batch_size and n_train % batch_size == 1,  # no batch of one for BatchNorm
    )
    flip_gen = torch.Generator().manual_seed(seed + 1)
    steps_per_epoch = len(loader)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    train_net = net
    if dp_config is not None:  # train through the per-sample-gradient wrapper; evaluate the plain network
        privacy = DPTraining(dp_config, n_train)
        train_net, optimizer, loader = privacy.make_private(net, optimizer, loader, epochs=max_epochs, seed=seed)
    warmup = warmup_epochs * steps_per_epoch
    planned = max_epochs
    if planned is not None:
        warmup = min(warmup, planned * steps_per_epoch - 1)
        scheduler = warmup_cosine(optimizer, warmup, planned * steps_per_epoch)
    else:  # time budget only: the warmup runs first, the cosine length is set once the first epoch is timed
        scheduler = warmup_cosine(optimizer, warmup, warmup + 1)
    schedule = LrScheduleHandler(scheduler, print_lr=False, epoch_level=False)
    budget_s = None if max_minutes is None else 60.0 * max_minutes
    memory_format = {4: torch.channels_last, 5: torch.channels_last_3d}

    def prepare(batch: Any, dev: torch.device, non_blocking: bool = False, **_: Any) -> tuple[torch.Tensor, Any]:
        x, y = split_batch(batch, image_key, label_key)
        if y is None:
            raise ValueError(f"training batches carry no labels (label key '{label_key}').")
        if channels_last and x.ndim in memory_format and trainer.state.iteration == 1:
            net.to(memory_format=memory_format[x.ndim])
        x = _flip(x, flip_dims, flip_gen) if flip_dims else x
        return _to_device(x, dev, channels_last), y.to(dev)

    def dp_iteration(engine: SupervisedTrainer, batch: Any) -> Any:
        if len(split_batch(batch, image_key, label_key)[0]) == 0:  # an empty Poisson batch: a noise-only step
            optimizer.zero_grad(set_to_none=True)
            privacy.noise_step(optimizer)  # type: ignore[union-attr]
            return {}
        return engine._iteration(engine, batch)

    trainer = SupervisedTrainer(
        device=device,
        max_epochs=planned or 1,
        train_data_loader=loader,
        network=train_net,
        optimizer=optimizer,
        loss_function=FiniteLoss(partial(_loss, task=task), "fine-tuning"),
        prepare_batch=prepare,
        inferer=AutocastInferer(device, amp),
        optim_set_to_none=True,
        decollate=False,
        train_handlers=[schedule],
        iteration_update=None if privacy is None else dp_iteration,
    )
    best: dict[str, Any] = {"score": -math.inf, "epoch": 0, "state": None, "stopped_by": "epochs"}

    @trainer.on(Events.EPOCH_COMPLETED)
    def _validate_and_budget(engine: SupervisedTrainer) -> None:
        epoch = engine.state.epoch
        if val_data is not None:
            scores, labels = predict_scores(
                net, val_data, task, device, amp, eval_batch_size, image_key, label_key, channels_last
            )
            score = _selection_score(classification_metrics(scores, labels, task))
            if score > best["score"]:
                state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
                best.update(score=score, epoch=epoch, state=state)
        elapsed = time.perf_counter() - start
        if max_epochs is None and epoch == 1:  # time budget only: fix the schedule length after the first epoch
            engine.state.max_epochs = max(1, int(budget_s / elapsed))  # type: ignore[operator]
            if engine.state.max_epochs > 1:
                total = engine.state.max_epochs * steps_per_epoch
                schedule.lr_scheduler = _restart_schedule(optimizer, min(warmup, total - 1), total, steps_per_epoch)
            best["stopped_by"] = "time"
        if epoch < engine.state.max_epochs and budget_s is not None and elapsed + elapsed / epoch > budget_s:
            best["stopped_by"] = "time"
            engine.terminate()

    trainer.run()
    planned, epoch, steps = trainer.state.max_epochs, trainer.state.epoch, trainer.state.iteration
    best_score, best_epoch, best_state = best["score"], best["epoch"], best["state"]
    train_seconds = time.perf_counter() - start
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_epoch = epoch
    scores, labels = predict_scores(
        net, test_data, task, device, amp, eval_batch_size, image_key, label_key, channels_last
    )
    if labels is None:
        raise ValueError(f"test data carry no labels (label key '{label_key}').")
    dp_report = {} if privacy is None else {k: v for k, v in privacy.report().items() if k != "steps"}
    return {
        "scores": scores,
        **classification_metrics(scores, labels, task),
        "val_score": None if val_data is None else best_score,
        "best_epoch": best_epoch,
        "epochs": epoch,
        "planned_epochs": planned,
        "steps": steps,
        "max_epochs": max_epochs,
        "max_minutes": max_minutes,
        "stopped_by": best["stopped_by"],
        "n_labels": n_train,
        "pretrained": pretrained_state is not None,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "train_seconds": train_seconds,
        **({} if privacy is None else {**dp_report, "dp_changes": changes}),
        "seconds": time.perf_counter() - start,
    }
