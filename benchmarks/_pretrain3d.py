# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Pretraining of the 3D benchmarks on in-memory volumes with the library's engines, with collapse indicators (SIGReg
value, effective rank, embedding std of 64 fixed volumes) logged over training:

- :func:`pretrain_masked_cnn`: a MONAI segmentation CNN seen through :class:`~monai_jepa.networks.MaskedConvEncoder`,
  masked latent prediction (``jepa``) or masked reconstruction (``mae``), on
  :class:`~monai_jepa.engines.MaskedLatentTrainer`;
- :func:`pretrain`: a JEPAViT with one of three objectives: ``sigreg`` (masked latent prediction, targets from the
  same encoder on the full input, SIGReg, no EMA, no stop-gradient) and ``ema`` (the V-JEPA baseline: targets from an
  EMA teacher, no SIGReg in the loss) on :class:`~monai_jepa.engines.MaskedLatentTrainer`, ``lejepa`` (LeJEPA
  multi-view on 3D crops) on :class:`~monai_jepa.engines.LeJEPATrainer`;
- :func:`pretrain_recon_contrast`: the peer from MONAI's self-supervised tutorial (inpainting of coarse dropout /
  shuffle plus a contrastive term) on MONAI's ``SupervisedTrainer``.

Every run covers ``steps`` optimiser steps rounded up to whole epochs, with AdamW and a warmup-cosine schedule.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from monai_jepa.engines import warmup_cosine
from monai_jepa.losses import EMATeacher, LeJEPALoss, MaskedLatentLoss
from monai_jepa.networks import JEPAPredictor, JEPAViT, LeJEPAModel, MaskedLatentModel, Projector
from monai_jepa.transforms import BatchMultiView, MultiBlockMaskGenerator
from monai_jepa.utils import effective_rank, embedding_std

__all__ = [
    "CNN_OBJECTIVES",
    "OBJECTIVES",
    "build_encoder",
    "pretrain",
    "pretrain_masked_cnn",
    "pretrain_recon_contrast",
]

OBJECTIVES = ("sigreg", "ema", "lejepa")
CNN_OBJECTIVES = ("jepa", "mae")


def build_encoder(in_channels: int, img_size, patch_size, hidden: int, layers: int, heads: int) -> JEPAViT:
    return JEPAViT(in_channels, img_size=img_size, patch_size=patch_size, spatial_dims=3, hidden_size=hidden,
                   mlp_dim=4 * hidden, num_layers=layers, num_heads=heads)  # fmt: skip


@torch.no_grad()
def _indicators(encoder: torch.nn.Module, probe: torch.Tensor, sigreg) -> dict[str, float]:
    was = encoder.training
    encoder.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = [encoder(probe[i : i + 16]) for i in range(0, len(probe), 16)]
        tokens, pooled = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    encoder.train(was)
    pooled, tokens = pooled.float(), tokens.float().flatten(0, 1)
    return {
        "eff_rank_pooled": effective_rank(pooled),
        "eff_rank_tokens": effective_rank(
            tokens[torch.randperm(tokens.shape[0], generator=torch.Generator().manual_seed(0))[:2048]]
        ),
        "std_pooled": embedding_std(pooled),
        "sigreg_pooled": float(sigreg(pooled)),
    }


def _train(
    images: torch.Tensor,
    encoder: torch.nn.Module,
    network: torch.nn.Module,
    loss: Any,
    trainer_cls: type,
    steps: int,
    ckpt_dir: str | None,
    batch_size: int,
    lr: float,
    seed: int,
    log_every: int,
    flip_axes: tuple[int, ...],
    warmup_fraction: float,
    intensity_jitter: bool,
    save_dict: dict[str, Any] | None = None,
    **trainer_kwargs: Any,
) -> tuple[list[dict[str, float]], int]:
    """Run ``trainer_cls`` (a :class:`~monai_jepa.engines.LeJEPATrainer` or subclass) on ``images``; returns the
    indicator history and the number of iterations."""
    from ignite.engine import Events
    from monai.data import DataLoader, Dataset
    from monai.handlers import LrScheduleHandler
    from monai.transforms import Compose, RandFlipd, RandScaleIntensityd, RandShiftIntensityd

    from monai_jepa.engines import JEPACheckpointer

    torch.manual_seed(seed)
    jitter = [RandScaleIntensityd("image", factors=0.1, prob=0.5), RandShiftIntensityd("image", offsets=0.1, prob=0.5)]
    aug = Compose(
        [RandFlipd("image", prob=0.5, spatial_axis=a) for a in flip_axes] + (jitter if intensity_jitter else [])
    )
    aug.set_random_state(seed)
    loader = DataLoader(Dataset([{"image": x} for x in images], aug), batch_size=batch_size, shuffle=True,
                        drop_last=True, num_workers=0)  # fmt: skip
    opt = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=0.05)
    epochs = -(-steps // len(loader))
    sched = warmup_cosine(opt, warmup_steps=max(1, int(steps * warmup_fraction)), total_steps=epochs * len(loader))
    handlers: list[Any] = [LrScheduleHandler(sched, print_lr=False, epoch_level=False)]
    if ckpt_dir is not None:
        handlers.append(JEPACheckpointer(ckpt_dir, save_dict=save_dict, save_interval=500, resume_from="auto"))
    trainer = trainer_cls(
        device="cpu", max_epochs=epochs, train_data_loader=loader, network=network, optimizer=opt, loss_function=loss,
        amp=True, channels_last=False, seed=seed, health_interval=log_every, train_handlers=handlers, **trainer_kwargs,
    )  # fmt: skip
    probe = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[:64]]
    history: list[dict[str, float]] = []
    start = time.perf_counter()

    @trainer.on(Events.ITERATION_COMPLETED(every=log_every))
    def _log(engine) -> None:
        rec = {"iteration": engine.state.iteration, "seconds": time.perf_counter() - start}
        rec.update({k: v for k, v in engine.state.output.items() if k in ("loss", "pred", "sigreg", "lr")})
        rec.update(_indicators(encoder, probe, loss.sigreg))
        history.append(rec)
        print(" ".join(f"{k}={v:.4g}" for k, v in rec.items()), flush=True)

    trainer.run()
    return history, trainer.state.iteration


def pretrain(
    images: torch.Tensor,
    objective: str,
    steps: int,
    encoder_kwargs: dict[str, Any],
    batch_size: int = 8,
    lr: float = 5e-4,
    lamb: float = 0.05,
    seed: int = 0,
    log_every: int = 50,
    mask_kwargs: dict[str, Any] | None = None,
    view_kwargs: dict[str, Any] | None = None,
    flip_axes: tuple[int, ...] = (0,),
    ckpt_dir: str | None = None,
) -> tuple[JEPAViT, list[dict[str, float]]]:
    """Pretrain a :class:`~monai_jepa.networks.JEPAViT` on ``images`` ``(N, C, *S)`` for ``steps`` AdamW steps
    (rounded up to whole epochs; 10 % warmup, bf16 autocast, random flips along ``flip_axes``) with the library's
    trainers: ``sigreg`` / ``ema`` through :class:`~monai_jepa.engines.MaskedLatentTrainer` (a narrow
    :class:`~monai_jepa.networks.JEPAPredictor` of depth 2, multi-block masks; ``ema`` with an
    :class:`~monai_jepa.losses.EMATeacher` 0.996 -> 1 and no SIGReg in the loss), ``lejepa`` through
    :class:`~monai_jepa.engines.LeJEPATrainer` (:class:`~monai_jepa.transforms.BatchMultiView` crops, a projector
    to 64 dimensions). Checkpoints go to ``ckpt_dir`` when given.

    Returns:
        the trained encoder and the indicator history.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}.")
    from monai_jepa.engines import LeJEPATrainer, MaskedLatentTrainer

    torch.manual_seed(seed)
    encoder = build_encoder(images.shape[1], tuple(images.shape[2:]), **encoder_kwargs)
    dim = encoder.embed_dim
    extra: dict[str, Any] = {}
    if objective == "lejepa":
        network, loss, trainer_cls = (
            LeJEPAModel(encoder, Projector(dim, 4 * dim, 64)),
            LeJEPALoss(lamb=lamb),
            LeJEPATrainer,
        )
        extra["views_fn"] = BatchMultiView(seed=seed, **(view_kwargs or {}))
    else:
        pred = JEPAPredictor(encoder.grid_size, dim, predictor_dim=dim, depth=2, num_heads=encoder_kwargs["heads"])
        network, trainer_cls = MaskedLatentModel(encoder, pred), MaskedLatentTrainer
        loss = MaskedLatentLoss(lamb=lamb if objective == "sigreg" else 0.0, seed=seed)
        extra["mask_fn"] = MultiBlockMaskGenerator(encoder.grid_size, seed=seed, **(mask_kwargs or {}))
        if objective == "ema":
            extra["teacher"] = EMATeacher(encoder, momentum=0.996, final_momentum=1.0, total_steps=steps)
            extra["save_dict"] = {"teacher": extra["teacher"]}
    history, _ = _train(images, encoder, network, loss, trainer_cls, steps, ckpt_dir, batch_size, lr, seed, log_every,
                        flip_axes, warmup_fraction=0.1, intensity_jitter=False, **extra)  # fmt: skip
    return encoder, history


def pretrain_masked_cnn(
    images: torch.Tensor,
    net: torch.nn.Module,
    objective: str,
    steps: int,
    ckpt_dir: str,
    batch_size: int = 8,
    lr: float = 1e-3,
    lamb: float = 0.05,
    seed: int = 0,
    log_every: int = 50,
    flip_axes: tuple[int, ...] = (0,),
    predictor_dim: int = 192,
    predictor_depth: int = 4,
    mask_kwargs: dict[str, Any] | None = None,
    pooling: str = "deep",
) -> tuple[torch.nn.Module, list[dict[str, float]], int]:
    """Pretrain the segmentation CNN ``net`` on ``images`` ``(N, C, *S)`` with the library's engine.

    ``objective="jepa"``: masked latent prediction of ``net``'s encoder features at two scales
    (:class:`~monai_jepa.networks.MaskedConvEncoder` + :class:`~monai_jepa.networks.JEPAPredictor`,
    :class:`~monai_jepa.losses.MaskedLatentLoss` with SIGReg, no EMA); ``"mae"``: masked reconstruction of per-patch
    normalised voxels by the whole network (:class:`~monai_jepa.networks.MaskedReconstructionModel`). Both: the same
    multi-block masks (4 blocks of 15-20 % of the token grid, context = the rest by default), flips, small intensity
    scaling / shifts, AdamW with 5 % warmup and cosine decay over ``steps`` rounded up to whole epochs, bf16 autocast,
    :class:`~monai_jepa.engines.MaskedLatentTrainer` with a :class:`~monai_jepa.engines.JEPACheckpointer` in
    ``ckpt_dir`` (resumed when it holds a checkpoint). ``pooling`` chooses the image-level embedding that SIGReg
    scores beside the tokens (``MaskedConvEncoder(pooling=...)``).

    Returns:
        the trained model (``model.encoder.net`` is ``net``), the history and the number of iterations run.
    """
    from monai_jepa.engines import MaskedLatentTrainer
    from monai_jepa.networks import MaskedConvEncoder, MaskedReconstructionModel

    if objective not in CNN_OBJECTIVES:
        raise ValueError(f"objective must be one of {CNN_OBJECTIVES}, got {objective!r}.")
    torch.manual_seed(seed)
    enc = MaskedConvEncoder(net, tuple(images.shape[2:]), pooling=pooling)
    if objective == "jepa":
        pred = JEPAPredictor(enc.grid_size, enc.embed_dim, predictor_dim, depth=predictor_depth, num_heads=6)
        model, loss = MaskedLatentModel(enc, pred), MaskedLatentLoss(lamb=lamb, seed=seed)
    else:
        model, loss = MaskedReconstructionModel(enc), MaskedLatentLoss(lamb=0.0, loss="l2", seed=seed)
    mask_kwargs = {"num_blocks": 4, "block_scale": (0.15, 0.2), **(mask_kwargs or {})}
    masks = MultiBlockMaskGenerator(enc.grid_size, seed=seed, **mask_kwargs)
    history, iterations = _train(
        images, enc, model, loss, MaskedLatentTrainer, steps, ckpt_dir, batch_size, lr, seed, log_every, flip_axes,
        warmup_fraction=0.05, intensity_jitter=True, mask_fn=masks,
    )  # fmt: skip
    return model, history, iterations


def pretrain_recon_contrast(
    images: torch.Tensor,
    net: torch.nn.Module,
    steps: int,
    ckpt_path: str,
    batch_size: int = 8,
    lr: float = 1e-3,
    temperature: float = 0.05,
    seed: int = 0,
    log_every: int = 50,
    flip_axes: tuple[int, ...] = (0,),
) -> tuple[torch.nn.Module, list[dict[str, float]], int]:
    """Pretrain ``net`` with the recipe of MONAI's self-supervised tutorial (ViTAutoEnc on BTCV), built from MONAI
    components: two corrupted copies of each volume (one of two ``RandCoarseDropoutd`` settings, then
    ``RandCoarseShuffled``), the network (``net`` followed by a 1x1 convolution to the input channels) restores the
    original from each; loss ``r + c * r`` with ``r`` the L1 error of the first restoration and ``c`` MONAI's
    ``ContrastiveLoss`` (temperature 0.05) between the two flattened restorations, as in the tutorial. The hole
    sizes are the tutorial's (for 96^3 crops) halved. Optimiser, schedule, flips, intensity jitter, batch and step
    budget are those of :func:`pretrain_masked_cnn`, so only the objective differs; MONAI's ``SupervisedTrainer``
    runs the loop (an ``iteration_update`` with bf16 autocast on the CPU).

    The weights are written atomically to ``ckpt_path`` as ``{"model": state}`` with ``net.``-prefixed entries
    (load them with ``load_pretrained_encoder(ckpt_path, net, prefix="net.")``).

    Returns:
        the trained model (``model.net`` is ``net``), the history and the number of iterations run.
    """
    from ignite.engine import Events
    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedTrainer
    from monai.handlers import LrScheduleHandler
    from monai.losses import ContrastiveLoss
    from monai.networks.layers import Conv
    from monai.transforms import (
        Compose,
        CopyItemsd,
        OneOf,
        RandCoarseDropoutd,
        RandCoarseShuffled,
        RandFlipd,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )

    from monai_jepa.utils.fileio import atomic_torch_save

    torch.manual_seed(seed)
    corrupt = [
        t
        for key in ("image", "image_2")
        for t in (
            OneOf([RandCoarseDropoutd(key, holes=6, spatial_size=3, max_spatial_size=16, dropout_holes=True, prob=1.0),
                   RandCoarseDropoutd(key, holes=6, spatial_size=10, max_spatial_size=32, dropout_holes=False,
                                      prob=1.0)]),
            RandCoarseShuffled(key, holes=10, spatial_size=4, prob=0.8),
        )
    ]  # fmt: skip
    aug = Compose(
        [RandFlipd("image", prob=0.5, spatial_axis=a) for a in flip_axes]
        + [RandScaleIntensityd("image", factors=0.1, prob=0.5), RandShiftIntensityd("image", offsets=0.1, prob=0.5)]
        + [CopyItemsd("image", times=2, names=("gt_image", "image_2"))]
        + corrupt
    )
    aug.set_random_state(seed)
    loader = DataLoader(Dataset([{"image": x} for x in images], aug), batch_size=batch_size, shuffle=True,
                        drop_last=True, num_workers=0)  # fmt: skip
    dims = images.ndim - 2
    model = torch.nn.Module()
    model.net = net
    model.head = Conv[Conv.CONV, dims](int(net.out_channels), images.shape[1], kernel_size=1)
    l1, contrast = torch.nn.L1Loss(), ContrastiveLoss(temperature=temperature)

    def loss_fn(out: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r1, r2 = out.float().chunk(2)
        recon, c = l1(r1, gt), contrast(r1.flatten(1), r2.flatten(1))
        return recon + c * recon, recon, c

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    epochs = -(-steps // len(loader))
    sched = warmup_cosine(opt, warmup_steps=max(1, steps // 20), total_steps=epochs * len(loader))

    def iteration(engine, batch) -> dict[str, float]:
        views = torch.cat([batch["image"], batch["image_2"]]).as_tensor()
        gt = batch["gt_image"].as_tensor()
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model.head(model.net(views))
        loss, recon, c = engine.loss_function(out, gt)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at iteration {engine.state.iteration}.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "recon": recon.item(), "contrastive": c.item(), "lr": opt.param_groups[0]["lr"]}

    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=epochs, train_data_loader=loader, network=model, optimizer=opt,
        loss_function=loss_fn, iteration_update=iteration,
        train_handlers=[LrScheduleHandler(sched, print_lr=False, epoch_level=False)],
    )  # fmt: skip
    history: list[dict[str, float]] = []
    start = time.perf_counter()

    @trainer.on(Events.ITERATION_COMPLETED(every=log_every))
    def _log(engine) -> None:
        rec = {"iteration": engine.state.iteration, "seconds": time.perf_counter() - start, **engine.state.output}
        history.append(rec)
        print(" ".join(f"{k}={v:.4g}" for k, v in rec.items()), flush=True)

    trainer.run()
    Path(ckpt_path).parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"model": model.state_dict()}, ckpt_path)
    return model, history, trainer.state.iteration
