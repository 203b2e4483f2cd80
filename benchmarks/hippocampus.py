# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""MSD Task04 Hippocampus: self-supervised pretraining on the pool's images, then segmentation fine-tuning at
5 / 10 / 20 / 200 labelled volumes against the same architecture from random init and a MONAI UNet from scratch.

Split: the case ids sorted, the last 60 are the test set, the first 200 the training pool, the labelled subsets are
the first 5, 10, 20 and 200 of the pool. Volumes are z-scored on non-zero voxels and padded to 48 x 64 x 48 (RAS,
1 mm). Every fine-tuning run has the same budget in optimiser steps (``--ft_steps``), batch 2, DiceCE, AdamW.

    python -m benchmarks.hippocampus pretrain --objective sigreg --steps 1200
    python -m benchmarks.hippocampus segment --encoder benchmarks/results/hippocampus/encoder_sigreg.pt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from monai.networks.nets import UNet
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, NormalizeIntensityd, Orientationd, SpatialPadd

from benchmarks._common import RESULTS, provenance
from benchmarks._pretrain3d import OBJECTIVES, build_encoder, pretrain
from monai_jepa.evaluation import segmentation_label_sweep
from monai_jepa.networks import JEPASegmenter, load_pretrained_encoder
from monai_jepa.utils.fileio import atomic_write_text

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "msd_task04_hippocampus"
OUT = RESULTS / "hippocampus"
SIZE = (48, 64, 48)
CLASSES = ("anterior", "posterior")


def load_split(data: Path = DATA) -> tuple[list[dict], list[dict]]:
    """(pool of 200, test of 60) items ``{"image": (1, 48, 64, 48), "label": (1, 48, 64, 48), "id"}``."""
    files = sorted((data / "imagesTr").glob("hippocampus_*.nii.gz"))
    if len(files) != 260:
        raise FileNotFoundError(f"expected 260 images in {data / 'imagesTr'}, found {len(files)}.")
    load = Compose([
        LoadImaged(("image", "label"), image_only=True), EnsureChannelFirstd(("image", "label")),
        Orientationd(("image", "label"), axcodes="RAS"), NormalizeIntensityd("image", nonzero=True),
        SpatialPadd(("image", "label"), SIZE),
    ])  # fmt: skip
    items = []
    for f in files:
        d = load({"image": str(f), "label": str(data / "labelsTr" / f.name)})
        if tuple(d["image"].shape[1:]) != SIZE:
            raise ValueError(f"{f}: padded shape {tuple(d['image'].shape)} is not {SIZE}.")
        items.append({"image": d["image"].as_tensor().float(), "label": d["label"].as_tensor().to(torch.uint8),
                      "id": f.name.split(".")[0]})  # fmt: skip
    return items[:200], items[200:]


def build_unet(out_channels: int = 3) -> UNet:
    """The MONAI UNet of every CNN row: 16-32-64-128 channels, strides 2, 2 residual units (1.2 M parameters)."""
    return UNet(3, 1, out_channels, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2)


def encoder_kwargs(args) -> dict:
    return {"patch_size": args.patch, "hidden": args.hidden, "layers": args.layers, "heads": args.heads}


def cmd_pretrain(args) -> None:
    pool, _ = load_split()
    images = torch.stack([i["image"] for i in pool])
    t0 = time.perf_counter()
    enc, history = pretrain(images, args.objective, args.steps, encoder_kwargs(args), batch_size=args.batch_size,
                            lr=args.lr, lamb=args.lamb, seed=args.seed, log_every=args.log_every,
                            view_kwargs={"num_global": 2, "num_local": 4, "global_size": SIZE,
                                         "local_size": (24, 32, 24), "global_scale": (0.3, 1.0),
                                         "local_scale": (0.05, 0.3), "flip_prob": (0.5, 0.0, 0.0)},
                            flip_axes=(0,))  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"encoder_{args.tag or args.objective}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save({"encoder": enc.state_dict(), "encoder_kwargs": encoder_kwargs(args), "img_size": SIZE}, tmp)
    tmp.replace(path)
    payload = {"objective": args.objective, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
               "lamb": args.lamb, "encoder": encoder_kwargs(args), "seconds": time.perf_counter() - t0,
               "history": history, "provenance": provenance()}  # fmt: skip
    atomic_write_text(OUT / f"pretrain_{args.tag or args.objective}.json", json.dumps(payload, indent=4) + "\n")
    print(f"saved {path} ({payload['seconds']:.0f} s)")


def cmd_pretrain_cnn(args) -> None:
    """Pretrain the UNet of the CNN rows on the 200 pool images (no labels) with the library's engine.

    ``--objective jepa``: masked latent prediction of the UNet's encoder features at strides 8 and 4
    (:class:`MaskedConvEncoder` + :class:`JEPAPredictor`, :class:`MaskedLatentLoss` with SIGReg, no EMA);
    ``--objective mae``: masked reconstruction of per-patch normalised voxels by the whole UNet
    (:class:`MaskedReconstructionModel`, MAE's loss). Both: the same masks (4 blocks of 15-20 % of the 6 x 8 x 6 token
    grid, context = the rest), AdamW, warmup + cosine, bf16 autocast, :class:`MaskedLatentTrainer` with a
    :class:`JEPACheckpointer` (the checkpoint's ``encoder.net.`` entries are the UNet).
    """
    from ignite.engine import Events
    from monai.data import DataLoader, Dataset
    from monai.handlers import LrScheduleHandler
    from monai.transforms import RandFlipd, RandScaleIntensityd, RandShiftIntensityd

    from monai_jepa.engines import JEPACheckpointer, MaskedLatentTrainer, warmup_cosine
    from monai_jepa.losses import MaskedLatentLoss
    from monai_jepa.networks import JEPAPredictor, MaskedConvEncoder, MaskedLatentModel, MaskedReconstructionModel
    from monai_jepa.transforms import MultiBlockMaskGenerator

    torch.manual_seed(args.seed)
    pool, _ = load_split()
    aug = Compose([RandFlipd("image", prob=0.5, spatial_axis=0), RandScaleIntensityd("image", factors=0.1, prob=0.5),
                   RandShiftIntensityd("image", offsets=0.1, prob=0.5)])  # fmt: skip
    aug.set_random_state(args.seed)
    loader = DataLoader(Dataset([{"image": i["image"]} for i in pool], aug), batch_size=args.batch_size,
                        shuffle=True, drop_last=True, num_workers=0)  # fmt: skip
    enc = MaskedConvEncoder(build_unet(), SIZE)
    if args.objective == "jepa":
        pred = JEPAPredictor(enc.grid_size, enc.embed_dim, args.predictor_dim, depth=args.predictor_depth, num_heads=6)
        model, loss = MaskedLatentModel(enc, pred), MaskedLatentLoss(lamb=args.lamb, seed=args.seed)
    else:
        model, loss = MaskedReconstructionModel(enc), MaskedLatentLoss(lamb=0.0, loss="l2", seed=args.seed)
    masks = MultiBlockMaskGenerator(enc.grid_size, num_blocks=4, block_scale=(0.15, 0.2), seed=args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    epochs = -(-args.steps // len(loader))
    sched = warmup_cosine(opt, warmup_steps=max(1, args.steps // 20), total_steps=epochs * len(loader))
    tag = args.tag or f"unet_{args.objective}"
    ckpt_dir = Path(args.ckpt_dir) / tag
    history: list[dict] = []
    trainer = MaskedLatentTrainer(
        device="cpu", max_epochs=epochs, train_data_loader=loader, network=model, optimizer=opt, loss_function=loss,
        mask_fn=masks, amp=True, channels_last=False, seed=args.seed, health_interval=args.log_every,
        train_handlers=[LrScheduleHandler(sched, print_lr=False, epoch_level=False),
                        JEPACheckpointer(str(ckpt_dir), save_interval=500, resume_from="auto")],
    )  # fmt: skip
    t0 = time.perf_counter()

    @trainer.on(Events.ITERATION_COMPLETED(every=args.log_every))
    def _log(engine):
        out = {k: v for k, v in engine.state.output.items() if isinstance(v, float)}
        history.append({"iteration": engine.state.iteration, "seconds": time.perf_counter() - t0, **out})
        print(f"it {engine.state.iteration}: " + ", ".join(f"{k}={v:.4g}" for k, v in out.items()), flush=True)

    trainer.run()
    final = sorted(ckpt_dir.glob("*.pt"))[-1]
    payload = {"objective": args.objective, "network": "MONAI UNet 16-32-64-128, strides 2, 2 residual units",
               "steps": trainer.state.iteration, "epochs": epochs, "batch_size": args.batch_size, "lr": args.lr,
               "lamb": args.lamb if args.objective == "jepa" else 0.0, "seconds": time.perf_counter() - t0,
               "checkpoint": str(final), "history": history, "provenance": provenance()}  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT / f"pretrain_{tag}.json", json.dumps(payload, indent=4) + "\n")
    print(f"saved {final} ({payload['seconds']:.0f} s)")


def cmd_segment(args) -> None:
    pool, test = load_split()
    ekw = encoder_kwargs(args)
    factories = {}
    for spec in args.encoders:
        name, path = spec.split("=", 1) if "=" in spec else (Path(spec).stem.replace("encoder_", "jepa_"), spec)
        state = torch.load(path, map_location="cpu", weights_only=True)
        kw = state["encoder_kwargs"]

        def make(state=state, kw=kw):
            enc = build_encoder(1, SIZE, **kw)
            enc.load_state_dict(state["encoder"])
            return JEPASegmenter(enc, out_channels=3, feature_size=args.feature_size)

        factories[name] = make
    for spec in args.unet_init:
        name, path = spec.split("=", 1)

        def make_unet(path=path):
            return load_pretrained_encoder(path, build_unet(), prefix="encoder.net.")

        factories[name] = make_unet
    if "random" in args.baselines:
        factories["jepa_random_init"] = lambda: JEPASegmenter(
            build_encoder(1, SIZE, **ekw), 3, feature_size=args.feature_size
        )
    if "unet" in args.baselines:
        factories["unet_scratch"] = build_unet
    counts = [int(c) for c in args.counts]
    budget = lambda n: args.ft_steps if n <= 20 else args.ft_steps_all  # noqa: E731
    records = []
    for seed in args.seeds if args.seeds else [args.seed]:
        records += segmentation_label_sweep(
            factories, pool, test, counts, num_classes=3, steps=budget, seed=seed,
            evaluate_kwargs={"class_names": CLASSES, "amp": args.amp}, batch_size=args.batch_size,
            learning_rate=args.lr, flip_axes=(0,), amp=args.amp, lr_scales={"encoder.": args.encoder_lr_scale},
        )  # fmt: skip
        _write_segment(args, records, factories, counts, ekw)


def _write_segment(args, records, factories, counts, ekw) -> None:
    records = [{k: v for k, v in r.items() if k != "dice_per_case"} for r in records]
    OUT.mkdir(parents=True, exist_ok=True)
    payload = {"records": records, "methods": list(factories), "unet_init": args.unet_init, "ft_steps": args.ft_steps, "ft_steps_all": args.ft_steps_all,
               "batch_size": args.batch_size, "lr": args.lr, "encoders": args.encoders,
               "random_init_encoder": ekw, "counts": counts,
               "encoder_lr_scale": args.encoder_lr_scale,
               "provenance": provenance()}  # fmt: skip
    atomic_write_text(OUT / f"segment_{args.tag}.json", json.dumps(payload, indent=4) + "\n")


def cmd_report(args) -> None:
    """Merge the ``segment_*.json`` and ``pretrain_*.json`` results into ``results.md``."""
    records = []
    for path in sorted(OUT.glob("segment_*.json")):
        payload = json.loads(path.read_text())
        records += [dict(r, source=path.name, command=payload["provenance"]["command"]) for r in payload["records"]]
    table = {(r["method"], r["num_labelled"]): r for r in records}
    methods = list(dict.fromkeys(r["method"] for r in records))
    counts = sorted({r["num_labelled"] for r in records})
    lines = ["# MSD Task04 Hippocampus: segmentation after self-supervised pretraining", "",
             "Test set: the last 60 case ids (sorted); pool: the first 200; labelled subsets: the first n of the pool.",
             "Mean Dice over anterior and posterior hippocampus on the 60 test volumes (HD95 in mm in brackets).", "",
             "| method | " + " | ".join(f"n={c}" for c in counts) + " |", "|---|" + "---:|" * len(counts)]  # fmt: skip
    for m in methods:
        cells = []
        for c in counts:
            r = table.get((m, c))
            cells.append("" if r is None else f"{r['dice']:.3f} ({r['hd95']:.2f})" if r["hd95"] is not None else
                         f"{r['dice']:.3f}")  # fmt: skip
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Budget of every run (steps, batch, wall seconds on the machine below, with other jobs running):", "",
              "| method | n | steps | batch | train s | Dice anterior | Dice posterior | source |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in records:
        d = r["dice_per_class"]
        lines.append(f"| {r['method']} | {r['num_labelled']} | {r['steps']} | 2 | {r['train_seconds']:.0f} | "
                     f"{d['anterior']:.3f} | {d['posterior']:.3f} | {r['source']} |")  # fmt: skip
    lines += ["", "## Pretraining runs", "", "| objective | steps | seconds | final loss | SIGReg (pooled) | "
              "eff. rank pooled | eff. rank tokens |", "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for path in sorted(OUT.glob("pretrain_*.json")):
        p = json.loads(path.read_text())
        h = p["history"][-1]
        lines.append(
            f"| {p['objective']} | {p['steps']} | {p['seconds']:.0f} | {h['loss']:.4f} | "
            f"{h['sigreg_pooled']:.2f} | {h['eff_rank_pooled']:.1f} | {h['eff_rank_tokens']:.1f} |"
        )
    lines += ["", "Commands: see `commands.md`; every JSON file holds its command, commit, machine and date."]
    atomic_write_text(OUT / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("report")
    c = sub.add_parser("pretrain_cnn")
    c.add_argument("--objective", choices=("jepa", "mae"), default="jepa")
    c.add_argument("--steps", type=int, default=2400)
    c.add_argument("--batch_size", type=int, default=8)
    c.add_argument("--lr", type=float, default=1e-3)
    c.add_argument("--lamb", type=float, default=0.05)
    c.add_argument("--predictor_dim", type=int, default=192)
    c.add_argument("--predictor_depth", type=int, default=4)
    c.add_argument("--log_every", type=int, default=50)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--tag", default="")
    c.add_argument("--ckpt_dir", default="outputs/hippocampus", help="checkpoints (kept out of the repository)")
    for name in ("pretrain", "segment"):
        s = sub.add_parser(name)
        s.add_argument("--patch", type=int, default=8)
        s.add_argument("--hidden", type=int, default=96)
        s.add_argument("--layers", type=int, default=4)
        s.add_argument("--heads", type=int, default=4)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--tag", default="")
    s = sub.choices["pretrain"]
    s.add_argument("--objective", choices=OBJECTIVES, default="sigreg")
    s.add_argument("--steps", type=int, default=1200)
    s.add_argument("--batch_size", type=int, default=8)
    s.add_argument("--lr", type=float, default=5e-4)
    s.add_argument("--lamb", type=float, default=0.05)
    s.add_argument("--log_every", type=int, default=50)
    s = sub.choices["segment"]
    s.add_argument("--encoders", nargs="*", default=[], help="[name=]path of pretrained encoders")
    s.add_argument("--unet_init", nargs="*", default=[], help="name=checkpoint of a pretrained MaskedConvEncoder UNet")
    s.add_argument("--seeds", nargs="*", type=int, default=[], help="seeds of the sweep (default: --seed)")
    s.add_argument("--baselines", nargs="*", default=["random", "unet"])
    s.add_argument("--counts", nargs="+", default=[5, 10, 20, 200])
    s.add_argument("--ft_steps", type=int, default=800, help="optimiser steps per run with at most 20 labels")
    s.add_argument("--ft_steps_all", type=int, default=1600, help="optimiser steps per run with more than 20 labels")
    s.add_argument("--batch_size", type=int, default=2)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--feature_size", type=int, default=16)
    s.add_argument("--amp", action="store_true")
    s.add_argument("--encoder_lr_scale", type=float, default=1.0, help="learning-rate factor of the ViT encoder")
    args = p.parse_args()
    {"pretrain": cmd_pretrain, "pretrain_cnn": cmd_pretrain_cnn, "segment": cmd_segment, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
