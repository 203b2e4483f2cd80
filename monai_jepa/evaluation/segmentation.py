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
"""Segmentation protocols: fine-tuning a segmentation network on a few labelled volumes with an explicit step budget,
Dice and HD95 on held-out volumes, and a label-count sweep comparing several networks under the same budget."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.handlers import LrScheduleHandler
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import compute_dice, compute_hausdorff_distance
from monai.networks.utils import one_hot
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    Randomizable,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from monai.utils import CommonKeys as Keys

from monai_jepa.engines.schedulers import warmup_cosine
from monai_jepa.evaluation.features import autocast_context
from monai_jepa.inferers.autocast import AutocastInferer
from monai_jepa.losses.finite import FiniteLoss
from monai_jepa.utils.module import require_package

__all__ = ["evaluate_segmentation", "fine_tune_segmentation", "segmentation_augmentation", "segmentation_label_sweep"]


def segmentation_augmentation(
    prob: float = 0.5, rotate_degrees: float = 15.0, scale: float = 0.1, intensity: float = 0.1
) -> Compose:
    """
    The standard spatial and intensity augmentation of few-label 3D segmentation, for
    :func:`fine_tune_segmentation`'s ``augment``, on items ``{"image": (C, *S), "label": (1, *S)}``: a random
    rotation (each axis up to ``rotate_degrees``) and isotropic-per-axis scaling (``1 +- scale``) of image (bilinear)
    and label (nearest) together, the spatial size kept, applied with probability ``prob``; then, on the image only,
    a random intensity scaling and shift (``+- intensity``, each with probability ``prob``) and a random gamma
    (0.7 to 1.5, probability ``prob / 2``). Flips are left to ``flip_axes``, which knows the label semantics.

    Returns:
        a seeded-by-caller MONAI ``Compose`` (``set_random_state`` propagates to every random transform).
    """
    angle = float(np.deg2rad(rotate_degrees))
    return Compose(
        [
            RandAffined(
                keys=("image", "label"),
                prob=prob,
                rotate_range=(angle, angle, angle),
                scale_range=scale,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            RandScaleIntensityd(keys="image", factors=intensity, prob=prob),
            RandShiftIntensityd(keys="image", offsets=intensity, prob=prob),
            RandAdjustContrastd(keys="image", gamma=(0.7, 1.5), prob=prob / 2),
        ]
    )


def _check_items(items: Sequence[Mapping[str, Any]], name: str, need_label: bool = True) -> None:
    if len(items) == 0:
        raise ValueError(f"{name} is empty; expected a sequence of {{'image', 'label'}} items.")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or "image" not in item or (need_label and "label" not in item):
            raise ValueError(f"{name}[{i}] must be a mapping with 'image' and 'label' (C, *spatial) tensors.")
        img, lbl = item["image"], item.get("label")
        if lbl is not None and tuple(img.shape[1:]) != tuple(lbl.shape[1:]):
            raise ValueError(
                f"{name}[{i}] ({item.get('id', i)}): image {tuple(img.shape)} and label {tuple(lbl.shape)} "
                "differ in spatial size."
            )


def _batch(items: Sequence[Mapping[str, Any]], idx: Sequence[int], key: str) -> torch.Tensor:
    return torch.stack([torch.as_tensor(items[int(i)][key]) for i in idx])


def fine_tune_segmentation(
    network: nn.Module,
    train_items: Sequence[Mapping[str, Any]],
    num_classes: int,
    steps: int,
    batch_size: int = 2,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-5,
    warmup_steps: int | None = None,
    flip_axes: Sequence[int] = (),
    device: str | torch.device = "cpu",
    amp: bool = False,
    seed: int = 0,
    log_every: int = 0,
    lr_scales: Mapping[str, float] | None = None,
    augment: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """
    Train ``network`` for exactly ``steps`` optimiser steps on whole labelled volumes, with MONAI's
    ``SupervisedTrainer`` (one epoch of ``steps`` iterations) and ``LrScheduleHandler``.

    Each step draws ``batch_size`` volumes (a seeded permutation, reshuffled each pass), flips them along the
    ``flip_axes`` at random (spatial axes, 0-based; only axes along which the label semantics are symmetric), and
    minimises MONAI's ``DiceCELoss`` (softmax, one-hot targets, background included) with AdamW under a
    :func:`~monai_jepa.engines.warmup_cosine` schedule. The step budget, not the wall clock, makes runs comparable
    across machines and loads; the wall time is returned too.

    Args:
        network: maps ``(B, C, *S)`` to logits ``(B, num_classes, *S)``; trained in place.
        train_items: items ``{"image": (C, *S) float tensor, "label": (1, *S) integer label map}`` of one size.
        num_classes: number of classes including background.
        steps: number of optimiser steps (> 0).
        batch_size: volumes per step (capped at the number of items).
        learning_rate: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warmup steps (default: 5% of ``steps``).
        flip_axes: spatial axes flipped with probability 0.5 each.
        device: training device.
        amp: bf16 autocast for the forward pass (the loss is computed in float32).
        seed: seed of the data order and the flips (the network is initialised by the caller).
        log_every: print the loss every this many steps (0: never).
        lr_scales: ``{parameter-name prefix: factor}``: parameters whose name starts with a prefix train at
            ``learning_rate * factor`` (e.g. ``{"encoder.": 0.1}`` for a gentler update of a pretrained encoder; the
            first matching prefix wins); the others at ``learning_rate``. A factor of 0 freezes the parameters
            (``requires_grad`` is turned off, no gradient is computed for them): the frozen-encoder protocol, with
            the names of :func:`~monai_jepa.networks.encoder_parameter_names`.
        augment: dictionary transform applied to each drawn item ``{"image": (C, *S), "label": (1, *S)}`` before the
            flips, e.g. :func:`segmentation_augmentation`; it must keep the spatial size. A MONAI ``Randomizable``
            is seeded from ``seed``, so a run is reproducible.

    Returns:
        ``{"steps", "seconds", "final_loss" (mean of the last 10 steps), "losses" (per step), "num_labelled",
        "frozen_parameters"}``.
    """
    _check_items(train_items, "train_items")
    if steps < 1 or batch_size < 1 or num_classes < 2:
        raise ValueError(
            f"steps, batch_size must be >= 1 and num_classes >= 2, got {steps}, {batch_size}, {num_classes}."
        )
    device = torch.device(device)
    network.to(device).train()
    groups: dict[float, list[torch.nn.Parameter]] = {}
    frozen = 0
    for name, param in network.named_parameters():
        if param.requires_grad:
            factor = next((float(f) for k, f in (lr_scales or {}).items() if name.startswith(k)), 1.0)
            if factor == 0.0:
                param.requires_grad_(False)
                frozen += param.numel()
            else:
                groups.setdefault(factor, []).append(param)
    if not groups:
        raise ValueError("lr_scales freezes every parameter of the network: nothing would train.")
    param_groups = [{"params": ps, "lr": learning_rate * f} for f, ps in groups.items()]
    optimizer = torch.optim.AdamW(param_groups, lr=learning_rate, weight_decay=weight_decay)
    warmup = max(0, min(steps - 1, int(0.05 * steps) if warmup_steps is None else int(warmup_steps)))
    scheduler = warmup_cosine(optimizer, warmup_steps=warmup, total_steps=steps)
    losses: list[float] = []
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=1,
        epoch_length=steps,
        train_data_loader=_VolumeBatches(
            train_items, min(batch_size, len(train_items)), steps, flip_axes, seed, augment
        ),
        network=network,
        optimizer=optimizer,
        loss_function=FiniteLoss(DiceCELoss(to_onehot_y=True, softmax=True), "segmentation"),
        inferer=AutocastInferer(device, amp),
        optim_set_to_none=True,
        decollate=False,
        train_handlers=[LrScheduleHandler(scheduler, print_lr=False, epoch_level=False)],
    )

    @trainer.on(Events.ITERATION_COMPLETED)
    def _record(engine: SupervisedTrainer) -> None:
        losses.append(float(engine.state.output[Keys.LOSS].detach()))
        if log_every and len(losses) % log_every == 0:
            print(f"  step {len(losses)}/{steps} loss {np.mean(losses[-log_every:]):.4f}", flush=True)

    start = time.perf_counter()
    trainer.run()
    return {
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "final_loss": float(np.mean(losses[-10:])),
        "losses": losses,
        "num_labelled": len(train_items),
        "frozen_parameters": frozen,
    }


class _VolumeBatches:
    """``steps`` batches ``{"image", "label"}`` of whole volumes: a seeded permutation, reshuffled each pass, the
    optional ``augment`` transform per volume, and random flips along ``flip_axes`` (probability 0.5 per volume and
    axis), drawn from one generator."""

    def __init__(self, items, batch_size: int, steps: int, flip_axes, seed: int, augment=None) -> None:
        self.items, self.batch_size, self.steps, self.flip_axes, self.seed = items, batch_size, steps, flip_axes, seed
        self.augment = augment

    def _draw(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.augment is None:
            return _batch(self.items, idx, "image").float(), _batch(self.items, idx, "label").long()
        out = []
        for i in idx:
            item = self.items[int(i)]
            out.append(self.augment({"image": torch.as_tensor(item["image"]).float(), "label": item["label"]}))
        image = torch.stack([torch.as_tensor(o["image"]).float() for o in out])
        label = torch.stack([torch.as_tensor(o["label"]).round().long() for o in out])
        if image.shape[2:] != label.shape[2:] or label.shape[2:] != torch.as_tensor(self.items[0]["label"]).shape[1:]:
            raise ValueError(f"augment changed the spatial size to {tuple(image.shape[2:])}; it must keep it.")
        return image.as_subclass(torch.Tensor), label.as_subclass(torch.Tensor)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed)
        if isinstance(self.augment, Randomizable):
            self.augment.set_random_state(seed=self.seed)
        order: list[int] = []
        pos, bs = 0, self.batch_size
        for _ in range(self.steps):
            if pos + bs > len(order):
                order, pos = torch.randperm(len(self.items), generator=gen).tolist(), 0
            idx = order[pos : pos + bs]
            pos += bs
            x, y = self._draw(idx)
            for axis in self.flip_axes:
                flip = torch.rand(bs, generator=gen) < 0.5
                x[flip], y[flip] = x[flip].flip(axis + 1), y[flip].flip(axis + 1)
            yield {"image": x, "label": y}


@torch.no_grad()
def evaluate_segmentation(
    network: nn.Module,
    items: Sequence[Mapping[str, Any]],
    num_classes: int,
    device: str | torch.device = "cpu",
    amp: bool = False,
    batch_size: int = 4,
    roi_size: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """
    Dice and 95th-percentile Hausdorff distance of each foreground class on labelled volumes.

    The prediction is the arg-max of the logits (whole volume, or sliding windows of ``roi_size`` with 50% overlap).
    Per class and volume, Dice is 1 when both prediction and reference are empty; HD95 (in ``spacing`` units, voxels
    by default) is undefined when either is empty and is then left out of the means (``hd95_undefined`` counts
    such cases).

    Args:
        network: maps ``(B, C, *S)`` to logits ``(B, num_classes, *S)``.
        items: items ``{"image": (C, *S), "label": (1, *S)}``.
        num_classes: number of classes including background (class 0).
        device: inference device.
        amp: bf16 autocast.
        batch_size: volumes per forward pass.
        roi_size: sliding-window size; None runs whole volumes (all of one size).
        spacing: voxel spacing for HD95.
        class_names: names of the foreground classes (default ``"1", "2", ...``).

    Returns:
        ``{"dice": mean over classes and volumes, "dice_per_class": {name: mean}, "hd95": mean,
        "hd95_per_class": {name: mean}, "hd95_undefined": int, "dice_per_case": (N, K) list, "num_cases": N}``.
    """
    _check_items(items, "items")
    require_package("scipy", "monai_jepa.evaluation.evaluate_segmentation", "HD95 (MONAI's surface distances)", "eval")
    names = list(class_names) if class_names is not None else [str(k) for k in range(1, num_classes)]
    if len(names) != num_classes - 1:
        raise ValueError(f"class_names must name the {num_classes - 1} foreground classes, got {len(names)}.")
    device = torch.device(device)
    was_training = network.training
    network.to(device).eval()
    dices, hds = [], []
    for start in range(0, len(items), batch_size):
        idx = range(start, min(start + batch_size, len(items)))
        x, y = _batch(items, idx, "image").float().to(device), _batch(items, idx, "label").long().to(device)
        with autocast_context(device, amp):
            if roi_size is None:
                logits = network(x)
            else:
                logits = sliding_window_inference(x, roi_size, batch_size, network, overlap=0.5)
        pred = one_hot(logits.float().argmax(1, keepdim=True), num_classes)
        ref = one_hot(y, num_classes)
        dice = compute_dice(pred, ref, include_background=False, ignore_empty=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI warns for each empty class; counted below instead
            hd = compute_hausdorff_distance(pred, ref, include_background=False, percentile=95, spacing=spacing)
        dices.append(dice.cpu())
        hds.append(hd.cpu())
    network.train(was_training)
    dice, hd = torch.cat(dices).double(), torch.cat(hds).double()
    hd[~torch.isfinite(hd)] = float("nan")

    def nanmean(t: torch.Tensor) -> float | None:
        v = t[~torch.isnan(t)]
        return float(v.mean()) if v.numel() else None

    return {
        "dice": float(dice.mean()),
        "dice_per_class": {n: float(dice[:, k].mean()) for k, n in enumerate(names)},
        "hd95": nanmean(hd),
        "hd95_per_class": {n: nanmean(hd[:, k]) for k, n in enumerate(names)},
        "hd95_undefined": int(torch.isnan(hd).sum()),
        "dice_per_case": dice.tolist(),
        "num_cases": int(dice.shape[0]),
    }


def segmentation_label_sweep(
    network_factories: Mapping[str, Callable[[], nn.Module]],
    pool_items: Sequence[Mapping[str, Any]],
    test_items: Sequence[Mapping[str, Any]],
    label_counts: Sequence[int | None],
    num_classes: int,
    steps: int | Callable[[int], int],
    seed: int = 0,
    evaluate_kwargs: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    **train_kwargs: Any,
) -> list[dict[str, Any]]:
    """
    Fine-tune each network on the first ``n`` labelled volumes of ``pool_items`` for each ``n`` of ``label_counts``,
    with the same step budget, and test it.

    Args:
        network_factories: ``{method name: factory}``; each factory returns a fresh network (pretrained or not) and is
            called after ``torch.manual_seed(seed)``.
        pool_items: labelled pool, in the order defining the subsets (the first ``n``).
        test_items: held-out labelled volumes.
        label_counts: numbers of labelled volumes; None means the whole pool.
        num_classes: number of classes including background.
        steps: optimiser steps per run, or a function of the number of labelled volumes.
        seed: seed of the initialisation, data order and flips.
        evaluate_kwargs: extra arguments of :func:`evaluate_segmentation`.
        log: called with one line per finished run (None: silent).
        train_kwargs: extra arguments of :func:`fine_tune_segmentation`.

    Returns:
        one record per (method, count): ``{"method", "num_labelled", "steps", "train_seconds", "final_loss",
        **evaluate_segmentation results}``.
    """
    if not network_factories:
        raise ValueError("network_factories is empty.")
    records = []
    for count in label_counts:
        n = len(pool_items) if count is None else int(count)
        if not 1 <= n <= len(pool_items):
            raise ValueError(f"label count {count} is outside [1, {len(pool_items)}] (the pool size).")
        n_steps = int(steps(n) if callable(steps) else steps)
        for name, factory in network_factories.items():
            torch.manual_seed(seed)
            network = factory()
            train = fine_tune_segmentation(network, pool_items[:n], num_classes, n_steps, seed=seed, **train_kwargs)
            result = evaluate_segmentation(network, test_items, num_classes, **dict(evaluate_kwargs or {}))
            record = {"method": name, "num_labelled": n, "steps": n_steps, "seed": seed,
                      "train_seconds": train["seconds"], "final_loss": train["final_loss"],
                      "frozen_parameters": train["frozen_parameters"], **result}  # fmt: skip
            records.append(record)
            if log is not None:
                hd95 = "n/a" if record["hd95"] is None else f"{record['hd95']:.2f}"
                log(f"{name:>16s} n={n:<4d} steps={n_steps:<5d} dice={record['dice']:.4f} hd95={hd95} "
                    f"({train['seconds']:.0f} s)")  # fmt: skip
            del network
    return records
