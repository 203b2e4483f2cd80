# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Pretraining of the 3D benchmarks on in-memory volumes, with collapse indicators (SIGReg value, effective rank,
embedding std) logged over training: :func:`pretrain_masked_cnn` (a MONAI segmentation CNN, masked latent prediction
or masked reconstruction, on the library's :class:`~monai_jepa.engines.MaskedLatentTrainer`) and :func:`pretrain`
(a JEPAViT with one of three objectives, the loop of the earlier ViT results), and :func:`pretrain_recon_contrast`
(the peer from MONAI's self-supervised tutorial: inpainting of coarse dropout / shuffle plus a contrastive term, on
MONAI's ``SupervisedTrainer``):

- ``sigreg``: masked latent prediction, targets from the same encoder on the full input, SIGReg, no EMA, no
  stop-gradient (:func:`monai_jepa.losses.masked_latent_step`);
- ``ema``: the V-JEPA baseline: targets from an EMA teacher, no SIGReg in the loss (its value is still logged);
- ``lejepa``: LeJEPA multi-view on 3D crops (:class:`monai_jepa.transforms.BatchMultiView` + LeJEPALoss).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from monai_jepa.engines import warmup_cosine
from monai_jepa.losses import EMATeacher, LeJEPALoss, MaskedLatentLoss, masked_latent_step
from monai_jepa.networks import JEPAPredictor, JEPAViT, Projector
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


def pretrain(
    images: torch.Tensor,
    objective: str,
    steps: int,
    encoder_kwargs: dict[str, Any],
    batch_size: int = 8,
    lr: float = 5e-4,
    weight_decay: float = 0.05,
    lamb: float = 0.05,
    seed: int = 0,
    log_every: int = 50,
    mask_kwargs: dict[str, Any] | None = None,
    view_kwargs: dict[str, Any] | None = None,
    flip_axes: tuple[int, ...] = (0,),
) -> tuple[JEPAViT, list[dict[str, float]]]:
    """Pretrain an encoder on ``images`` ``(N, C, *S)`` for ``steps`` AdamW steps (bf16 autocast)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}.")
    torch.manual_seed(seed)
    encoder = build_encoder(images.shape[1], tuple(images.shape[2:]), **encoder_kwargs)
    dim = encoder.embed_dim
    modules: list[torch.nn.Module] = [encoder]
    teacher = None
    if objective == "lejepa":
        head = Projector(dim, hidden_dim=4 * dim, out_dim=64)
        modules.append(head)
        loss_fn = LeJEPALoss(lamb=lamb)
        views = BatchMultiView(seed=seed, **(view_kwargs or {}))
    else:
        head = JEPAPredictor(encoder.grid_size, dim, predictor_dim=dim, depth=2, num_heads=encoder_kwargs["heads"])
        modules.append(head)
        masks = MultiBlockMaskGenerator(encoder.grid_size, seed=seed, **(mask_kwargs or {}))
        if objective == "ema":
            teacher = EMATeacher(encoder, momentum=0.996, final_momentum=1.0, total_steps=steps)
            loss_fn = MaskedLatentLoss(lamb=0.0)
        else:
            loss_fn = MaskedLatentLoss(lamb=lamb)
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = warmup_cosine(opt, warmup_steps=max(1, steps // 10), total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    probe = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[:64]]
    history, order, pos, start = [], [], 0, time.perf_counter()
    for m in modules:
        m.train()
    for step in range(steps):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(images), generator=gen).tolist(), 0
        x = images[order[pos : pos + batch_size]].clone()
        pos += batch_size
        for axis in flip_axes:
            flip = torch.rand(x.shape[0], generator=gen) < 0.5
            x[flip] = x[flip].flip(axis + 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if objective == "lejepa":
                g, loc = views(x)
                zg = head(encoder(g.flatten(0, 1))[1]).float().reshape(g.shape[0], g.shape[1], -1)
                zl = None
                if loc.shape[0]:
                    zl = head(encoder(loc.flatten(0, 1))[1]).float().reshape(loc.shape[0], loc.shape[1], -1)
                terms = loss_fn.compute_terms(zg, zl)
            else:
                ctx, tgt = masks(batch_size=x.shape[0])
                terms = masked_latent_step(encoder, head, x, ctx, tgt, loss_fn, teacher=teacher)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite pretraining loss at step {step} ({objective}).")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if teacher is not None:
            teacher.update()
        if (step + 1) % log_every == 0 or step == 0 or step + 1 == steps:
            rec = {"step": step + 1, "seconds": time.perf_counter() - start}
            rec.update({k: float(v.detach()) for k, v in terms.items()})
            rec.update(_indicators(encoder, probe, loss_fn.sigreg))
            history.append(rec)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()), flush=True)
    return encoder, history


CNN_OBJECTIVES = ("jepa", "mae")


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
) -> tuple[torch.nn.Module, list[dict[str, float]], int]:
    """Pretrain the segmentation CNN ``net`` on ``images`` ``(N, C, *S)`` with the library's engine.

    ``objective="jepa"``: masked latent prediction of ``net``'s encoder features at two scales
    (:class:`~monai_jepa.networks.MaskedConvEncoder` + :class:`~monai_jepa.networks.JEPAPredictor`,
    :class:`~monai_jepa.losses.MaskedLatentLoss` with SIGReg, no EMA); ``"mae"``: masked reconstruction of per-patch
    normalised voxels by the whole network (:class:`~monai_jepa.networks.MaskedReconstructionModel`). Both: the same
    multi-block masks (4 blocks of 15-20 % of the token grid, context = the rest by default), flips, small intensity
    scaling / shifts, AdamW with 5 % warmup and cosine decay over ``steps`` rounded up to whole epochs, bf16 autocast,
    :class:`~monai_jepa.engines.MaskedLatentTrainer` with a :class:`~monai_jepa.engines.JEPACheckpointer` in
    ``ckpt_dir`` (resumed when it holds a checkpoint). Collapse indicators of 64 fixed volumes (pooled effective
    rank, std, SIGReg) are logged every ``log_every`` iterations.

    Returns:
        the trained model (``model.encoder.net`` is ``net``), the history and the number of iterations run.
    """
    from ignite.engine import Events
    from monai.data import DataLoader, Dataset
    from monai.handlers import LrScheduleHandler
    from monai.transforms import Compose, RandFlipd, RandScaleIntensityd, RandShiftIntensityd

    from monai_jepa.engines import JEPACheckpointer, MaskedLatentTrainer
    from monai_jepa.networks import MaskedConvEncoder, MaskedLatentModel, MaskedReconstructionModel

    if objective not in CNN_OBJECTIVES:
        raise ValueError(f"objective must be one of {CNN_OBJECTIVES}, got {objective!r}.")
    torch.manual_seed(seed)
    aug = Compose(
        [RandFlipd("image", prob=0.5, spatial_axis=a) for a in flip_axes]
        + [RandScaleIntensityd("image", factors=0.1, prob=0.5), RandShiftIntensityd("image", offsets=0.1, prob=0.5)]
    )
    aug.set_random_state(seed)
    loader = DataLoader(Dataset([{"image": x} for x in images], aug), batch_size=batch_size, shuffle=True,
                        drop_last=True, num_workers=0)  # fmt: skip
    enc = MaskedConvEncoder(net, tuple(images.shape[2:]))
    if objective == "jepa":
        pred = JEPAPredictor(enc.grid_size, enc.embed_dim, predictor_dim, depth=predictor_depth, num_heads=6)
        model, loss = MaskedLatentModel(enc, pred), MaskedLatentLoss(lamb=lamb, seed=seed)
    else:
        model, loss = MaskedReconstructionModel(enc), MaskedLatentLoss(lamb=0.0, loss="l2", seed=seed)
    kw = {"num_blocks": 4, "block_scale": (0.15, 0.2), **(mask_kwargs or {})}
    masks = MultiBlockMaskGenerator(enc.grid_size, seed=seed, **kw)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    epochs = -(-steps // len(loader))
    sched = warmup_cosine(opt, warmup_steps=max(1, steps // 20), total_steps=epochs * len(loader))
    trainer = MaskedLatentTrainer(
        device="cpu", max_epochs=epochs, train_data_loader=loader, network=model, optimizer=opt, loss_function=loss,
        mask_fn=masks, amp=True, channels_last=False, seed=seed, health_interval=log_every,
        train_handlers=[LrScheduleHandler(sched, print_lr=False, epoch_level=False),
                        JEPACheckpointer(ckpt_dir, save_interval=500, resume_from="auto")],
    )  # fmt: skip
    probe = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[:64]]
    history: list[dict[str, float]] = []
    start = time.perf_counter()

    @trainer.on(Events.ITERATION_COMPLETED(every=log_every))
    def _log(engine) -> None:
        rec = {"iteration": engine.state.iteration, "seconds": time.perf_counter() - start}
        rec.update({k: v for k, v in engine.state.output.items() if k in ("loss", "pred", "sigreg", "lr")})
        rec.update(_indicators(enc, probe, loss.sigreg))
        history.append(rec)
        print(" ".join(f"{k}={v:.4g}" for k, v in rec.items()), flush=True)

    trainer.run()
    return model, history, trainer.state.iteration


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
