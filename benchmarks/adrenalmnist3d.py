# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""AdrenalMNIST3D (MedMNIST v2, 28^3 shape masks, binary): pretrain a 3D JEPAViT on the training volumes without
labels, then evaluate with the evaluation suite (linear and kNN probes, fine-tuning, same-network random-init and
from-scratch baselines) on the official test split. The MedMNIST v2 reference is ResNet-18 + 3D: test AUC 0.827,
ACC 0.721. The encoder sees the 28^3 volumes in patches of 4^3 (7^3 tokens).

    python -m benchmarks.adrenalmnist3d --objective sigreg --steps 1000
    python -m benchmarks.adrenalmnist3d --encoder unet --objective jepa --steps 1500   # MONAI UNet, 7^3 tokens
    python -m benchmarks.adrenalmnist3d report --tags engine_sigreg_s0 engine_sigreg_s1 engine_sigreg_s2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from benchmarks._common import RESULTS, provenance
from benchmarks._pretrain3d import CNN_OBJECTIVES, OBJECTIVES, build_encoder, pretrain, pretrain_masked_cnn
from monai_jepa.data.medmnist import load_medmnist
from monai_jepa.evaluation import EvaluationSuite
from monai_jepa.networks import MaskedConvEncoder
from monai_jepa.networks.masked_conv import POOLING
from monai_jepa.utils.fileio import atomic_write_text

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "adrenalmnist3d" / "adrenalmnist3d.npz"
OUT = RESULTS / "adrenalmnist3d"


def build_unet() -> torch.nn.Module:
    """MONAI UNet of the CNN rows on 28^3 volumes (two stride-2 levels: 7^3 tokens of 4^3 voxels)."""
    from monai.networks.nets import UNet

    return UNet(3, 1, 2, channels=(16, 32, 64), strides=(2, 2), num_res_units=2)


def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels, _ = load_medmnist(DATA, split)
    return torch.from_numpy(images), torch.from_numpy(labels)


ROWS = (  # (label, method, protocol)
    ("pretrained, linear probe", None, "linear"),
    ("random init, linear probe", "random_init", "linear"),
    ("pretrained, kNN", None, "knn"),
    ("random init, kNN", "random_init", "knn"),
    ("pretrained, fine-tuned", None, "fine_tune"),
    ("same network from scratch, same budget", "scratch", "fine_tune"),
)


def report(tags: list[str], name: str) -> str:
    """Mean +- std over the runs ``run_<tag>.json`` (one per pretraining seed) of each protocol, and the paired
    differences pretrained - random init (probes) and fine-tuned - scratch; written to ``<name>.md`` / ``.json``."""
    import numpy as np

    runs = [json.loads((OUT / f"run_{t}.json").read_text()) for t in tags]
    table: dict[str, dict[str, list[float]]] = {}
    for label, method, protocol in ROWS:
        for metric in ("auc", "acc"):
            vals = []
            for run in runs:
                pre = next(
                    r["method"] for r in run["records"] if r["protocol"] == "linear" and r["method"] != "random_init"
                )
                want = method or pre
                vals += [r[metric] for r in run["records"] if r["method"] == want and r["protocol"] == protocol]
            table.setdefault(label, {})[metric] = vals
    fmt = lambda v: f"{np.mean(v):.3f} +- {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}" if v else "-"  # noqa: E731
    lines = [f"# AdrenalMNIST3D: {len(runs)} pretraining seeds ({', '.join(tags)})", "",
             "Test AUC / ACC, mean +- std over pretraining seeds (official test split, 298 volumes). MedMNIST v2 "
             "reference, ResNet-18 + 3D (supervised): AUC 0.827, ACC 0.721.", "",
             "| protocol | AUC | ACC | seeds |", "|---|---:|---:|---:|"]  # fmt: skip
    for label in table:
        lines.append(
            f"| {label} | {fmt(table[label]['auc'])} | {fmt(table[label]['acc'])} | {len(table[label]['auc'])} |"
        )
    lines += ["", "Paired differences (same pretraining seed), mean [min, max]:", "", "| comparison | AUC | ACC |",
              "|---|---:|---:|"]  # fmt: skip
    for a, b in (("pretrained, linear probe", "random init, linear probe"), ("pretrained, kNN", "random init, kNN"),
                 ("pretrained, fine-tuned", "same network from scratch, same budget")):  # fmt: skip
        cells = []
        for metric in ("auc", "acc"):
            d = (
                np.array(table[a][metric]) - np.array(table[b][metric])
                if len(table[a][metric]) == len(table[b][metric])
                else np.array([])
            )
            cells.append(f"{d.mean():+.3f} [{d.min():+.3f}, {d.max():+.3f}]" if d.size else "-")
        lines.append(f"| {a} - {b.split(',')[0]} | {cells[0]} | {cells[1]} |")
    budget, seconds = runs[0], ", ".join(f"{r['pretrain_seconds']:.0f}" for r in runs)
    lines += ["", f"Pretraining: {budget['steps']} steps of batch {budget['batch_size']} per seed ({seconds} s); "
              f"encoder {budget['encoder']}. Each run's JSON holds its command, commit, machine and date."]  # fmt: skip
    text = "\n".join(lines) + "\n"
    atomic_write_text(OUT / f"{name}.md", text)
    atomic_write_text(OUT / f"{name}.json", json.dumps({"tags": tags, "table": table}, indent=4) + "\n")
    return text


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        r = argparse.ArgumentParser(description="multi-seed table of run_<tag>.json files")
        r.add_argument("report")
        r.add_argument("--tags", nargs="+", required=True)
        r.add_argument("--name", default="results_seeds")
        a = r.parse_args()
        print(report(a.tags, a.name))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", choices=("vit", "unet"), default="vit", help="JEPAViT, or a MONAI UNet encoder")
    p.add_argument("--objective", choices=OBJECTIVES + CNN_OBJECTIVES, default="sigreg")
    p.add_argument("--finetune_seeds", nargs="*", type=int, default=None)
    p.add_argument("--ckpt_dir", default="outputs/adrenalmnist3d", help="pretraining checkpoints (resumed if present)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lamb", type=float, default=0.05)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument(
        "--pooling",
        choices=POOLING,
        default="deep",
        help="--encoder unet: the pooled embedding scored by SIGReg and read by the probes",
    )
    p.add_argument("--protocols", nargs="+", default=["linear", "knn", "fine_tune", "scratch", "random_init"])
    p.add_argument("--finetune_epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0, help="pretraining seed (a non-zero seed is added to the tag)")
    p.add_argument("--log_every", type=int, default=100)
    p.add_argument("--tag", default="", help="name of the output folder and file (default: the objective)")
    p.add_argument("--append", action="store_true",
                   help="add these protocols' records to an existing run_<tag>.json (pretraining resumed from its "
                        "checkpoint), e.g. fine-tuning for a seed first run with the probes only")  # fmt: skip
    args = p.parse_args()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = load("train"), load("val"), load("test")
    ekw = {"patch_size": args.patch, "hidden": args.hidden, "layers": args.layers, "heads": args.heads}
    t0 = time.perf_counter()
    tag = args.tag or (args.objective if args.encoder == "vit" else f"unet_{args.objective}")
    tag += f"_s{args.seed}" if args.seed and not args.tag else ""
    if args.encoder == "unet":
        if args.objective not in CNN_OBJECTIVES:
            raise SystemExit(f"--encoder unet takes --objective {' or '.join(CNN_OBJECTIVES)}.")
        model, history, _ = pretrain_masked_cnn(
            x_tr.float(), build_unet(), args.objective, args.steps, str(Path(args.ckpt_dir) / tag),
            batch_size=args.batch_size, lr=args.lr, lamb=args.lamb, seed=args.seed, log_every=args.log_every,
            flip_axes=(0, 1, 2), pooling=args.pooling,
        )  # fmt: skip
        encoder = model.encoder
        random_init = lambda: MaskedConvEncoder(build_unet(), (28, 28, 28), pooling=args.pooling)  # noqa: E731
        pooled = "stride-4 features" if args.pooling == "deep" else "tokens (strides 4 and 2)"
        ekw = {"network": f"MONAI UNet 16-32-64, strides 2, 2 residual units; pooled {pooled}", "pooling": args.pooling}
    else:
        if args.objective not in OBJECTIVES:
            raise SystemExit(f"--encoder vit takes --objective {' or '.join(OBJECTIVES)}.")
        encoder, history = pretrain(x_tr, args.objective, args.steps, ekw, batch_size=args.batch_size, lr=args.lr,
                                    lamb=args.lamb, seed=args.seed, log_every=args.log_every,
                                    view_kwargs={"num_global": 2, "num_local": 4, "global_size": 28,
                                                 "local_size": 12, "global_scale": (0.4, 1.0),
                                                 "local_scale": (0.1, 0.4)},
                                    flip_axes=(0, 1, 2), ckpt_dir=str(Path(args.ckpt_dir) / tag))  # fmt: skip
        random_init = lambda: build_encoder(1, (28, 28, 28), **ekw)  # noqa: E731
    pretrain_seconds = time.perf_counter() - t0
    previous = json.loads((OUT / f"run_{tag}.json").read_text()) if args.append else None
    out = OUT / tag / "+".join(args.protocols) if args.append else OUT / tag
    suite = EvaluationSuite(
        model=encoder, train_data=(x_tr, y_tr), val_data=(x_va, y_va), test_data=(x_te, y_te), task="binary",
        output_dir=out, dataset_name="adrenalmnist3d", protocols=args.protocols, finetune_fractions=(1.0,),
        finetune_epochs=args.finetune_epochs, amp=True, batch_size=64, pretrain_seconds=pretrain_seconds,
        random_init_factory=random_init,
        method_name=f"jepa_{args.objective}" if args.encoder == "vit" else f"unet_{args.objective}",
        finetune_seeds=args.finetune_seeds,
        finetune_kwargs={"batch_size": 32, "lr": 5e-4, "flip_dims": (2, 3, 4)},
    )  # fmt: skip
    records = suite.run()
    if previous is not None:  # keep the earlier protocols' records, pretraining history and time
        done = {(r["method"], r["protocol"]) for r in records}
        records = [r for r in previous["records"] if (r["method"], r["protocol"]) not in done] + records
        history, pretrain_seconds = previous["history"], previous["pretrain_seconds"]
    payload = {"objective": args.objective, "steps": args.steps, "batch_size": args.batch_size, "encoder": ekw,
               "pretrain_seconds": pretrain_seconds, "history": history, "records": records,
               "provenance": provenance()}  # fmt: skip
    if previous is not None:
        payload["earlier_provenance"] = [previous["provenance"]] + previous.get("earlier_provenance", [])
    atomic_write_text(OUT / f"run_{tag}.json", json.dumps(payload, indent=4, default=str) + "\n")
    for r in records:
        print(r["method"], r["protocol"], r.get("probe"), f"auc={r.get('auc'):.4f} acc={r.get('acc'):.4f}")


if __name__ == "__main__":
    main()
