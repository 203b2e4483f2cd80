# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Pretraining loop of the 3D benchmarks: one JEPAViT encoder trained with one of three objectives on in-memory
volumes, with collapse indicators (SIGReg value, effective rank, embedding std) logged over training.

- ``sigreg``: masked latent prediction, targets from the same encoder on the full input, SIGReg, no EMA, no
  stop-gradient (:func:`monai_jepa.losses.masked_latent_step`);
- ``ema``: the V-JEPA baseline: targets from an EMA teacher, no SIGReg in the loss (its value is still logged);
- ``lejepa``: LeJEPA multi-view on 3D crops (:class:`monai_jepa.transforms.BatchMultiView` + LeJEPALoss).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from monai_jepa.engines import warmup_cosine
from monai_jepa.losses import EMATeacher, LeJEPALoss, MaskedLatentLoss, masked_latent_step
from monai_jepa.networks import JEPAPredictor, JEPAViT, Projector
from monai_jepa.transforms import BatchMultiView, MultiBlockMaskGenerator
from monai_jepa.utils import effective_rank, embedding_std

__all__ = ["OBJECTIVES", "build_encoder", "pretrain"]

OBJECTIVES = ("sigreg", "ema", "lejepa")


def build_encoder(in_channels: int, img_size, patch_size, hidden: int, layers: int, heads: int) -> JEPAViT:
    return JEPAViT(in_channels, img_size=img_size, patch_size=patch_size, spatial_dims=3, hidden_size=hidden,
                   mlp_dim=4 * hidden, num_layers=layers, num_heads=heads)  # fmt: skip


@torch.no_grad()
def _indicators(encoder: JEPAViT, probe: torch.Tensor, sigreg) -> dict[str, float]:
    was = encoder.training
    encoder.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens, pooled = encoder(probe)
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
