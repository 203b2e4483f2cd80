# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Peak memory of one masked-latent pretraining step (SIGReg objective, forward + backward + AdamW) on a batch of
4 crops of 4 x 128^3 voxels (4 MRI sequences; ``--crop`` for another crop size), for the brats_vjepa ViT encoder
family at each patch size of ``--patches``, with and without bf16 autocast and activation checkpointing.

Each configuration runs in a fresh process. On CUDA the figure is ``torch.cuda.max_memory_allocated``; on CPU it is
the growth of the process' peak resident set size (``ru_maxrss``) over its value once the model, optimiser state
and input exist (so it counts activations, gradients and workspace, not the weights).

    python -m benchmarks.memory3d
    python -m benchmarks.memory3d --crop 64 --patches 8 4   # 4^3 patches for small structures, on 64^3 crops
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from benchmarks._common import provenance, write_results

SETTINGS = [(False, False), (True, False), (True, True)]  # (bf16 autocast, activation checkpointing) per patch size


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_one(patch: int, amp: bool, ckpt: bool, hidden: int, layers: int, crop: int = 128) -> dict:
    from monai_jepa.losses import MaskedLatentLoss, masked_latent_step
    from monai_jepa.networks import JEPAPredictor, JEPAViT
    from monai_jepa.transforms import MultiBlockMaskGenerator

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    enc = JEPAViT(4, img_size=crop, patch_size=patch, spatial_dims=3, hidden_size=hidden, mlp_dim=4 * hidden,
                  num_layers=layers, num_heads=4, gradient_checkpointing=ckpt).to(device)  # fmt: skip
    pred = JEPAPredictor(enc.grid_size, hidden, predictor_dim=hidden, depth=2, num_heads=4).to(device)
    params = list(enc.parameters()) + list(pred.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    loss_fn = MaskedLatentLoss(lamb=0.05).to(device)
    masks = MultiBlockMaskGenerator(enc.grid_size, seed=0)
    x = torch.randn(4, 4, crop, crop, crop, device=device)

    def step() -> float:
        ctx, tgt = masks(batch_size=4)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = masked_latent_step(enc, pred, x, ctx.to(device), tgt.to(device), loss_fn)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    for q in params:  # create the optimiser state before measuring (ru_maxrss never decreases)
        q.grad = torch.zeros_like(q)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _rss_mib()
    t0 = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _rss_mib()
    return {"patch": patch, "crop": crop, "tokens": enc.num_tokens, "amp": amp, "checkpointing": ckpt, "hidden": hidden,
            "layers": layers, "device": device.type, "baseline_mib": base, "peak_mib": peak,
            "step_mib": peak - base, "step_seconds": time.perf_counter() - t0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--crop", type=int, default=128, help="edge of the cubic crops (4 crops of 4 channels)")
    p.add_argument("--patches", nargs="+", type=int, default=[16, 8], help="ViT patch sizes to measure")
    p.add_argument("--one", nargs=3, type=int, help=argparse.SUPPRESS)  # internal: patch amp ckpt
    args = p.parse_args()
    if args.one:
        print(
            json.dumps(run_one(args.one[0], bool(args.one[1]), bool(args.one[2]), args.hidden, args.layers, args.crop))
        )
        return
    rows = []
    for patch, (amp, ckpt) in [(p, s) for p in args.patches for s in SETTINGS]:
        cmd = [sys.executable, "-m", "benchmarks.memory3d", "--hidden", str(args.hidden), "--layers", str(args.layers),
               "--crop", str(args.crop), "--one", str(patch), str(int(amp)), str(int(ckpt))]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    md = [f"# Peak memory of one masked-latent step on 4 x (4 x {args.crop}^3) crops", "",
          f"JEPAViT hidden {args.hidden}, {args.layers} blocks, predictor depth 2; SIGReg objective; AdamW.", "",
          "| patch | tokens / crop | bf16 | act. checkpointing | step memory (MiB) | peak (MiB) | step time (s) |",
          "|---:|---:|:---:|:---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        md.append(f"| {r['patch']} | {r['tokens']} | {'yes' if r['amp'] else 'no'} | "
                  f"{'yes' if r['checkpointing'] else 'no'} | {r['step_mib']:.0f} | {r['peak_mib']:.0f} | "
                  f"{r['step_seconds']:.1f} |")  # fmt: skip
    md += ["", "Step memory: " + ("growth of `torch.cuda.max_memory_allocated` over the allocated memory before the "
           "step." if rows[0]["device"] == "cuda" else "growth of the process' peak RSS over its value before the "
           "measured step (weights, optimiser state and input excluded); each row in a fresh process.")]  # fmt: skip
    device = rows[0]["device"]
    name = f"memory3d_{device}" + ("" if args.crop == 128 else f"_crop{args.crop}")
    write_results(name, {"rows": rows, "provenance": provenance()}, "\n".join(md))


if __name__ == "__main__":
    main()
