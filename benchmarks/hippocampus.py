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
from benchmarks._pretrain3d import OBJECTIVES, build_encoder, pretrain, pretrain_masked_cnn, pretrain_recon_contrast
from monai_jepa.evaluation import segmentation_augmentation, segmentation_label_sweep
from monai_jepa.networks import JEPASegmenter, encoder_parameter_names, load_pretrained_encoder
from monai_jepa.networks.masked_conv import POOLING
from monai_jepa.utils.fileio import atomic_write_text

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "msd_task04_hippocampus"
OUT = RESULTS / "hippocampus"
SIZE = (48, 64, 48)
FT_STEPS, FT_STEPS_ALL = 800, 1600  # the standard fine-tuning budgets (optimiser steps): <= 20 labels, more
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
    """Pretrain the UNet of the CNN rows on the 200 pool images (no labels) with the library's engine
    (:func:`benchmarks._pretrain3d.pretrain_masked_cnn`: ``jepa`` = masked latent prediction with SIGReg, ``mae`` =
    masked reconstruction; the checkpoint's ``encoder.net.`` entries are the UNet) or, for ``tutorial``, with the
    recipe of MONAI's self-supervised tutorial on MONAI's ``SupervisedTrainer``
    (:func:`benchmarks._pretrain3d.pretrain_recon_contrast`; the checkpoint's ``net.`` entries are the UNet)."""
    pool, _ = load_split()
    tag = args.tag or f"unet_{args.objective}"
    t0 = time.perf_counter()
    images = torch.stack([i["image"] for i in pool])
    if args.objective == "tutorial":
        final = Path(args.ckpt_dir) / tag / "model.pt"
        _, history, steps = pretrain_recon_contrast(
            images, build_unet(), args.steps, str(final), batch_size=args.batch_size, lr=args.lr, seed=args.seed,
            log_every=args.log_every, flip_axes=(0,),
        )  # fmt: skip
    else:
        _, history, steps = pretrain_masked_cnn(
            images, build_unet(), args.objective, args.steps, str(Path(args.ckpt_dir) / tag),
            batch_size=args.batch_size, lr=args.lr, lamb=args.lamb, seed=args.seed, log_every=args.log_every,
            flip_axes=(0,), predictor_dim=args.predictor_dim, predictor_depth=args.predictor_depth,
            pooling=args.pooling,
        )  # fmt: skip
        final = sorted((Path(args.ckpt_dir) / tag).glob("*.pt"))[-1]
    payload = {"objective": args.objective, "network": "MONAI UNet 16-32-64-128, strides 2, 2 residual units",
               "steps": steps, "epochs": -(-args.steps // (200 // args.batch_size)), "batch_size": args.batch_size,
               "lr": args.lr, "lamb": args.lamb if args.objective == "jepa" else 0.0, "pooling": args.pooling,
               "checkpoint_prefix": "net." if args.objective == "tutorial" else "encoder.net.",
               "seconds": time.perf_counter() - t0, "checkpoint": str(final),
               "checkpoint_sha256": sha256_of(final), "history": history, "provenance": provenance()}  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT / f"pretrain_{tag}.json", json.dumps(payload, indent=4) + "\n")
    print(f"saved {final} ({payload['seconds']:.0f} s)")


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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
            if not args.unet_encoder_only:
                return load_pretrained_encoder(path, build_unet(), prefix=args.unet_prefix)
            # only the encoder path (as MONAI's tutorial transfers its ViT encoder); decoder and output at random init
            net, full = build_unet(), load_pretrained_encoder(path, build_unet(), prefix=args.unet_prefix)
            names = set(encoder_parameter_names(net))
            net.load_state_dict({k: v for k, v in full.state_dict().items() if k in names}, strict=False)
            return net

        factories[name] = make_unet
    if "random" in args.baselines:
        factories["jepa_random_init"] = lambda: JEPASegmenter(
            build_encoder(1, SIZE, **ekw), 3, feature_size=args.feature_size
        )
    if "unet" in args.baselines:
        factories["unet_scratch"] = build_unet
    counts = [int(c) for c in args.counts]
    budget = lambda n: args.ft_steps if n <= 20 else args.ft_steps_all  # noqa: E731
    lr_scales = {"encoder.": args.encoder_lr_scale}  # the ViT's encoder in JEPASegmenter
    if args.freeze_encoder:  # frozen-encoder protocol: the UNet's encoder path is not trained, the decoder is
        lr_scales = dict.fromkeys(encoder_parameter_names(build_unet()), 0.0)
        factories = {f"{name}_frozen_encoder": make for name, make in factories.items()}
    elif args.unet_encoder_lr_scale != 1.0:  # the UNet's encoder path at a fraction of the learning rate
        lr_scales = dict.fromkeys(encoder_parameter_names(build_unet()), args.unet_encoder_lr_scale)
        factories = {f"{name}_enclr{args.unet_encoder_lr_scale:g}": make for name, make in factories.items()}
    if args.augment != "flip":
        factories = {f"{name}_aug{args.augment}": make for name, make in factories.items()}
    records = []
    for seed in args.seeds if args.seeds else [args.seed]:
        records += segmentation_label_sweep(
            factories, pool, test, counts, num_classes=3, steps=budget, seed=seed,
            evaluate_kwargs={"class_names": CLASSES, "amp": args.amp}, batch_size=args.batch_size,
            learning_rate=args.lr, flip_axes=(0,), amp=args.amp, lr_scales=lr_scales,
            augment=segmentation_augmentation() if args.augment == "strong" else None,
        )  # fmt: skip
        _write_segment(args, records, factories, counts, ekw)


def _write_segment(args, records, factories, counts, ekw) -> None:
    records = [{k: v for k, v in r.items() if k != "dice_per_case"} for r in records]
    OUT.mkdir(parents=True, exist_ok=True)
    payload = {"records": records, "methods": list(factories), "unet_init": args.unet_init, "ft_steps": args.ft_steps,
               "ft_steps_all": args.ft_steps_all,
               "batch_size": args.batch_size, "lr": args.lr, "encoders": args.encoders,
               "random_init_encoder": ekw, "counts": counts,
               "encoder_lr_scale": args.encoder_lr_scale, "unet_prefix": args.unet_prefix,
               "freeze_encoder": args.freeze_encoder, "unet_encoder_lr_scale": args.unet_encoder_lr_scale,
               "unet_encoder_only": args.unet_encoder_only, "augment": args.augment,
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


def cmd_pooling_spread(args) -> None:
    """How much the pooled embedding of ``MaskedConvEncoder`` varies between test volumes, for the deepest-map and
    the token pooling, at random init and for each ``--unet_init`` checkpoint: the mean over dimensions of the
    per-dimension std of the L2-normalised embeddings (``monai_jepa.utils.embedding_std``; about ``1 / sqrt(D)`` for
    isotropic embeddings). Written to ``pooling_spread.json``."""
    from monai_jepa.networks import MaskedConvEncoder
    from monai_jepa.utils import embedding_std

    _, test = load_split()
    x = torch.stack([i["image"] for i in test[: args.num_volumes]])
    torch.manual_seed(args.seed)  # the random-init row is reproducible
    nets = {"random_init": build_unet()}
    for spec in args.unet_init:
        name, path = spec.split("=", 1)
        nets[name] = load_pretrained_encoder(path, build_unet(), prefix="encoder.net.")
    rows = []
    for name, net in nets.items():
        for pooling in POOLING:
            enc = MaskedConvEncoder(net, tuple(x.shape[2:]), pooling=pooling).eval()
            with torch.no_grad():
                pooled = enc(x)[1].float()
            rows.append({"network": name, "pooling": pooling, "dim": int(pooled.shape[1]),
                         "embedding_std": embedding_std(pooled), "isotropic": pooled.shape[1] ** -0.5})  # fmt: skip
            print(json.dumps(rows[-1]))
    payload = {"num_volumes": int(x.shape[0]), "seed": args.seed, "unet_init": args.unet_init, "rows": rows,
               "provenance": provenance()}  # fmt: skip
    atomic_write_text(OUT / "pooling_spread.json", json.dumps(payload, indent=4) + "\n")


def _budget_row(record: dict) -> str:
    """The table row of a fine-tuning record: its method, suffixed ``_ft<steps>`` when it ran a budget other than
    the standard one (``FT_STEPS`` with at most 20 labels, ``FT_STEPS_ALL`` with more): budgets never share a cell."""
    standard = FT_STEPS if record["num_labelled"] <= 20 else FT_STEPS_ALL
    return record["method"] if record["steps"] == standard else f"{record['method']}_ft{record['steps']}"


def _paired_reference(method: str, ref: str, methods: list[str]) -> str:
    """The row ``method`` is paired with: ``ref`` under the same protocol (frozen encoder, augmentation, budget), or
    the closest one that was run, dropping the budget first, then the augmentation, then the frozen encoder."""
    frozen = "_frozen_encoder" if "_frozen_encoder" in method else ""
    aug = "_augstrong" if "_augstrong" in method else ""
    budget = method[method.rfind("_ft") :] if "_ft" in method else ""
    for candidate in (ref + frozen + aug + budget, ref + frozen + aug, ref + frozen + budget, ref + frozen, ref):
        if candidate in methods:
            return candidate
    return ref


def cmd_report_cnn(args) -> None:
    """Multi-seed table (mean +- std over seeds, paired differences) and label-efficiency plot of the CNN rows."""
    import numpy as np

    records = []
    for name in args.sources:
        payload = json.loads((OUT / name).read_text())
        records += [dict(r, source=name, method=_budget_row(r)) for r in payload["records"]]
    methods = list(dict.fromkeys(r["method"] for r in records))
    counts = sorted({r["num_labelled"] for r in records})
    dice = {(m, n): {r["seed"]: r["dice"] for r in records if r["method"] == m and r["num_labelled"] == n}
            for m in methods for n in counts}  # fmt: skip
    ref = args.reference
    lines = ["# MSD Task04 Hippocampus: MONAI UNet pretrained by masked latent prediction (and peers)", "",
             "Mean test Dice over anterior and posterior hippocampus, 60 test volumes; mean +- std over fine-tuning "
             "seeds (seeds in brackets). Same UNet, same fine-tuning budget for every row (see the budget table).", "",
             "| method | " + " | ".join(f"{n} labels" for n in counts) + " |",
             "|---|" + "---:|" * len(counts)]  # fmt: skip
    for m in methods:
        cells = []
        for n in counts:
            v = np.array(list(dice[(m, n)].values()))
            cells.append("" if not len(v) else f"{v.mean():.3f} +- {v.std(ddof=1) if len(v) > 1 else 0:.3f} ({len(v)})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    frozen_ref = f"{ref}_frozen_encoder"
    lines += ["", f"Paired differences to `{ref}` (same seed: same data order, flips and decoder initialisation "
              f"draws); frozen-encoder rows to `{frozen_ref}`, the same protocol from random init, and rows with "
              "stronger augmentation (`_augstrong`) or another budget (`_ft<steps>`) to the reference run the same "
              "way: mean [min, max] over seeds.", "", "| method | " + " | ".join(f"{n} labels" for n in counts) +
              " |", "|---|" + "---:|" * len(counts)]  # fmt: skip
    for m in methods:
        base = _paired_reference(m, ref, methods)
        if m == base:
            continue
        cells = []
        for n in counts:
            seeds = sorted(set(dice[(m, n)]) & set(dice.get((base, n), {})))
            d = np.array([dice[(m, n)][s] - dice[(base, n)][s] for s in seeds])
            cells.append("" if not len(d) else f"{d.mean():+.3f} [{d.min():+.3f}, {d.max():+.3f}] ({len(d)})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Budget of every run (optimiser steps of 2 volumes, wall seconds on the machine named in the JSON, "
              "with other jobs sharing the 2 cores):", "", "| method | labels | seed | steps | train s | Dice | "
              "HD95 | source |", "|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in sorted(records, key=lambda r: (r["method"], r["num_labelled"], r["seed"])):
        hd = "" if r["hd95"] is None else f"{r['hd95']:.2f}"
        lines.append(f"| {r['method']} | {r['num_labelled']} | {r['seed']} | {r['steps']} | "
                     f"{r['train_seconds']:.0f} | {r['dice']:.4f} | {hd} | {r['source']} |")  # fmt: skip
    lines += ["", "## Pretraining runs", "", "| run | objective | steps | epochs | seconds | final loss | SIGReg |",
              "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for path in sorted(OUT.glob("pretrain_unet_*.json")):
        p = json.loads(path.read_text())
        h = p["history"][-1] if p["history"] else {}
        lines.append(f"| {path.stem} | {p['objective']} | {p['steps']} | {p['epochs']} | {p['seconds']:.0f} | "
                     f"{h.get('loss', float('nan')):.4f} | {h.get('sigreg', float('nan')):.3f} |")  # fmt: skip
    lines += ["", "Commands: `commands.md`; each JSON holds its command, commit, machine and date.",
              "Plot: [label_efficiency_cnn.png](label_efficiency_cnn.png)."]  # fmt: skip
    atomic_write_text(OUT / "results_cnn.md", "\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        xs = [n for n in counts if dice[(m, n)]]
        v = [np.array(list(dice[(m, n)].values())) for n in xs]
        ax.errorbar(xs, [a.mean() for a in v], yerr=[a.std(ddof=1) if len(a) > 1 else 0 for a in v], marker="o",
                    capsize=3, label=m)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlabel("labelled training volumes")
    ax.set_ylabel("mean test Dice (60 volumes)")
    ax.set_title("MSD Hippocampus, MONAI UNet (mean +- std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = OUT / "label_efficiency_cnn.tmp.png"
    fig.savefig(tmp, dpi=120)
    tmp.replace(OUT / "label_efficiency_cnn.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("report")
    ps = sub.add_parser("pooling_spread")
    ps.add_argument("--unet_init", nargs="*", default=[], help="name=checkpoint of pretrained MaskedConvEncoder UNets")
    ps.add_argument("--num_volumes", type=int, default=24, help="first test volumes to embed")
    ps.add_argument("--seed", type=int, default=0, help="seed of the random-init UNet")
    r = sub.add_parser("report_cnn")
    r.add_argument("--sources", nargs="+", required=True, help="segment_*.json files under the results folder")
    r.add_argument("--reference", default="unet_scratch", help="method the paired differences refer to")
    c = sub.add_parser("pretrain_cnn")
    c.add_argument("--objective", choices=("jepa", "mae", "tutorial"), default="jepa")
    c.add_argument("--steps", type=int, default=2400)
    c.add_argument("--batch_size", type=int, default=8)
    c.add_argument("--lr", type=float, default=1e-3)
    c.add_argument("--lamb", type=float, default=0.05)
    c.add_argument("--predictor_dim", type=int, default=192)
    c.add_argument("--predictor_depth", type=int, default=4)
    c.add_argument(
        "--pooling",
        choices=POOLING,
        default="deep",
        help="image-level embedding given to SIGReg (MaskedConvEncoder pooling)",
    )
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
    s.add_argument(
        "--unet_prefix",
        default="encoder.net.",
        help="prefix of the UNet entries in --unet_init files ('net.' for the tutorial recipe's checkpoints)",
    )
    s.add_argument("--seeds", nargs="*", type=int, default=[], help="seeds of the sweep (default: --seed)")
    s.add_argument("--baselines", nargs="*", default=["random", "unet"])
    s.add_argument("--counts", nargs="+", default=[5, 10, 20, 200])
    s.add_argument("--ft_steps", type=int, default=FT_STEPS, help="optimiser steps per run with at most 20 labels")
    s.add_argument(
        "--ft_steps_all", type=int, default=FT_STEPS_ALL, help="optimiser steps per run with more than 20 labels"
    )
    s.add_argument("--batch_size", type=int, default=2)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--feature_size", type=int, default=16)
    s.add_argument("--amp", action="store_true")
    s.add_argument("--encoder_lr_scale", type=float, default=1.0, help="learning-rate factor of the ViT encoder")
    s.add_argument(
        "--unet_encoder_only",
        action="store_true",
        help="load only the encoder path of --unet_init checkpoints (decoder and output layer random)",
    )
    s.add_argument("--freeze_encoder", action="store_true",
                   help="frozen-encoder protocol for UNet rows: only the decoder path trains")  # fmt: skip
    s.add_argument(
        "--unet_encoder_lr_scale",
        type=float,
        default=1.0,
        help="learning-rate factor of the UNet rows' encoder path (the decoder path at the full rate)",
    )
    s.add_argument(
        "--augment",
        choices=("flip", "strong"),
        default="flip",
        help="fine-tuning augmentation: left-right flips only, or also segmentation_augmentation()",
    )
    args = p.parse_args()
    {
        "pretrain": cmd_pretrain,
        "pretrain_cnn": cmd_pretrain_cnn,
        "segment": cmd_segment,
        "report": cmd_report,
        "report_cnn": cmd_report_cnn,
        "pooling_spread": cmd_pooling_spread,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
