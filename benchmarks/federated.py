# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Federated vs centralised masked latent pretraining of the hippocampus UNet, at equal total optimiser steps.

The MSD Task04 Hippocampus pool of :mod:`benchmarks.hippocampus` (the first 200 case ids, sorted) is the unlabelled
pretraining set and its last 60 case ids are the held-out images of the embedding metrics (their labels are not
read). Federated: the pool split into ``--num_sites`` sites (``--site_split random``: IID; ``size`` / ``intensity``:
non-IID), FedAvg on Flower for ``--num_rounds`` rounds of ``--local_steps`` steps per site
(:mod:`monai_jepa.fl.simulate`, the brats_vjepa bundle's ``train.json`` + ``federated/client.json``). Centralised:
the same configs, one site holding the whole pool, ``num_sites * num_rounds * local_steps`` steps in one run. Both
start from the same seeded initial model, with the same batch size, learning rate and schedule shape.

Reported for the final model on the 60 held-out images (:func:`monai_jepa.fl.masked_latent_metrics`, fixed masks):
the prediction loss, SIGReg of the pooled context embeddings and target tokens, SIGReg and the effective rank of the
pooled full-image embeddings. Downstream: ``segment`` runs the fine-tuning protocol of :mod:`benchmarks.hippocampus`
(``--unet_init``) and writes its JSON here.

    python -m benchmarks.federated datalist
    python -m benchmarks.federated federated --num_sites 3 --num_rounds 8 --local_steps 25 --tag fed_iid
    python -m benchmarks.federated centralised --steps 600 --tag central
    python -m benchmarks.federated segment --baselines --unet_init fed_iid=outputs/federated/fed_iid/global_model.pt \\
        --counts 5 10 --amp --seeds 0 1 2 --tag fed_iid
    python -m benchmarks.federated report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from ignite.engine import Events
from monai.fl.utils.constants import WeightType
from monai.fl.utils.exchange_object import ExchangeObject

from benchmarks import hippocampus
from benchmarks._common import RESULTS, provenance
from monai_jepa.fl import MaskedLatentAlgo
from monai_jepa.fl.simulate import initial_weights, simulate
from monai_jepa.utils.fileio import atomic_torch_save, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
OUT = RESULTS / "federated"
CKPT = ROOT / "outputs" / "federated"
DATALIST = CKPT / "hippocampus_datalist.json"
CONFIGS = [str(ROOT / "bundles" / "brats_vjepa" / "configs" / "train.json"),
           str(ROOT / "bundles" / "brats_vjepa" / "configs" / "federated" / "client.json")]  # fmt: skip


def hippocampus_overrides(args) -> dict:
    """The bundle's settings for the hippocampus volumes: whole 48 x 64 x 48 volumes (no crop), batch ``--batch_size``,
    the UNet of :func:`benchmarks.hippocampus.build_unet`, its default masks and predictor."""
    return {
        "datalist": str(DATALIST), "volume_size": list(hippocampus.SIZE), "roi_size": list(hippocampus.SIZE),
        "num_samples": 1, "batch_size": args.batch_size, "learning_rate": args.lr, "lambda": args.lamb,
        "intensity": "mri", "cache": True, "amp": True, "seed": args.seed, "log_interval": 25,
        "checkpoint_interval": 100000, "site_split": getattr(args, "site_split", "random"),
    }  # fmt: skip


def cmd_datalist(args) -> None:
    """Write the datalist: training = the 200 pool cases, validation = the 60 held-out cases (paths into the data)."""
    from monai_jepa.data import volume_datalist

    full = volume_datalist(hippocampus.DATA, validate=False)
    items = sorted(full["training"] + full["validation"] + full["test"], key=lambda i: i["image"])
    if len(items) != 260:
        raise FileNotFoundError(f"expected 260 cases in {hippocampus.DATA}, found {len(items)}.")
    for item in items:
        item.pop("split", None)
    full.update(training=items[:200], validation=items[200:], test=[], dataset_dir=str(hippocampus.DATA.resolve()))
    DATALIST.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(DATALIST, json.dumps(full, indent=4) + "\n")
    print(f"wrote {DATALIST}: {len(full['training'])} pool and {len(full['validation'])} held-out cases")


def held_out_metrics(args, weights: dict, group: int | None = None) -> dict:
    """:func:`~monai_jepa.fl.masked_latent_metrics` of ``weights`` on the 60 held-out images (one site holding all),
    or with ``group`` on one third of them by volume size (0: the smallest)."""
    sites = {"num_sites": 1, "site_index": 0}
    if group is not None:
        sites = {"num_sites": 3, "site_index": group, "site_split": "size"}
    algo = MaskedLatentAlgo.from_bundle(
        CONFIGS, {**hippocampus_overrides(args), **sites, "num_rounds": 1, "local_steps": 2,
                  "output_dir": str(CKPT / "eval"), "cache": False},
    )  # fmt: skip
    return algo.evaluate(ExchangeObject(weights=weights, weight_type=WeightType.WEIGHTS)).metrics


def _write(tag: str, payload: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    payload["provenance"] = provenance()
    atomic_write_text(OUT / f"{tag}.json", json.dumps(payload, indent=4, default=float) + "\n")
    print(
        json.dumps({k: v for k, v in payload.items() if k in ("tag", "held_out", "seconds")}, indent=1, default=float)
    )


def cmd_federated(args) -> None:
    out = CKPT / args.tag
    overrides = hippocampus_overrides(args)
    t0 = time.perf_counter()
    run = simulate(CONFIGS, args.num_sites, args.num_rounds, args.local_steps, out, overrides,
                   evaluate=not args.no_evaluate, num_cpus=args.num_cpus, cpus_per_site=1)  # fmt: skip
    seconds = time.perf_counter() - t0
    start = initial_weights(CONFIGS, {**overrides, "num_sites": args.num_sites}, str(out))
    payload = {
        "tag": args.tag, "mode": "federated", "num_sites": args.num_sites, "site_split": args.site_split,
        "num_rounds": args.num_rounds, "local_steps": args.local_steps,
        "total_steps": args.num_sites * args.num_rounds * args.local_steps, "batch_size": args.batch_size,
        "lr": args.lr, "lamb": args.lamb, "seed": args.seed, "seconds": seconds,
        "checkpoint": str((out / "global_model.pt").relative_to(ROOT)),
        "held_out": held_out_metrics(args, run.weights), "held_out_initial": held_out_metrics(args, start),
        "history": run.history,
    }  # fmt: skip
    _write(args.tag, payload)


def cmd_centralised(args) -> None:
    out = CKPT / args.tag
    overrides = {**hippocampus_overrides(args), "num_sites": 1, "site_index": 0, "num_rounds": 1,
                 "local_steps": args.steps, "output_dir": str(out / "site_0")}  # fmt: skip
    start = initial_weights(CONFIGS, overrides, str(out))
    algo = MaskedLatentAlgo.from_bundle(CONFIGS, overrides)
    history: list[dict] = []
    t0 = time.perf_counter()

    def log(engine) -> None:
        if engine.state.iteration % 25 == 0:
            history.append({"iteration": engine.state.iteration, "seconds": time.perf_counter() - t0,
                            **{k: float(v) for k, v in engine.state.output.items()}})  # fmt: skip

    algo.trainer.add_event_handler(Events.ITERATION_COMPLETED, log)
    algo.train(ExchangeObject(weights=start, weight_type=WeightType.WEIGHTS))
    seconds = time.perf_counter() - t0
    weights = algo.get_weights().weights
    atomic_torch_save({"model": weights}, out / "global_model.pt")
    payload = {
        "tag": args.tag, "mode": "centralised", "num_sites": 1, "total_steps": int(algo.trainer.state.iteration),
        "batch_size": args.batch_size, "lr": args.lr, "lamb": args.lamb, "seed": args.seed, "seconds": seconds,
        "checkpoint": str((out / "global_model.pt").relative_to(ROOT)),
        "held_out": held_out_metrics(args, weights), "held_out_initial": held_out_metrics(args, start),
        "history": history,
    }  # fmt: skip
    _write(args.tag, payload)


def cmd_evaluate(args) -> None:
    """Recompute the held-out metrics of finished runs from their checkpoints (e.g. after adding a metric)."""
    for tag in args.tags:
        path = OUT / f"{tag}.json"
        payload = json.loads(path.read_text())
        run_args = argparse.Namespace(**{k: payload[k] for k in ("batch_size", "lr", "lamb", "seed")})
        run_args.site_split = payload.get("site_split") or "random"
        weights = torch.load(ROOT / payload["checkpoint"], map_location="cpu", weights_only=True)["model"]
        overrides = {**hippocampus_overrides(run_args), "num_sites": payload["num_sites"], "num_rounds": 1,
                     "local_steps": 2}  # fmt: skip
        payload["held_out"] = held_out_metrics(run_args, weights)
        payload["held_out_initial"] = held_out_metrics(
            run_args, initial_weights(CONFIGS, overrides, str(CKPT / "eval"))
        )
        if args.by_size:
            payload["held_out_by_size"] = [held_out_metrics(run_args, weights, group=k) for k in range(3)]
        payload["held_out_provenance"] = provenance()
        atomic_write_text(path, json.dumps(payload, indent=4, default=float) + "\n")
        print(tag, payload["held_out"])


def cmd_segment(argv: list[str]) -> None:
    """:mod:`benchmarks.hippocampus`'s ``segment`` command, writing its ``segment_<tag>.json`` here."""
    hippocampus.OUT = OUT
    sys.argv = [sys.argv[0], "segment", *argv]
    hippocampus.main()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "segment":
        return cmd_segment(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("datalist")
    sub.add_parser("report")
    e = sub.add_parser("evaluate")
    e.add_argument("--tags", nargs="+", required=True)
    e.add_argument("--by_size", action="store_true", help="also on each third of the held-out images by volume size")
    for name in ("federated", "centralised"):
        s = sub.add_parser(name)
        s.add_argument("--batch_size", type=int, default=4)
        s.add_argument("--lr", type=float, default=1e-3)
        s.add_argument("--lamb", type=float, default=0.05)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--tag", required=True)
    s = sub.choices["federated"]
    s.add_argument("--num_sites", type=int, default=3)
    s.add_argument("--num_rounds", type=int, default=8)
    s.add_argument("--local_steps", type=int, default=25)
    s.add_argument("--site_split", default="random", choices=("random", "size", "intensity"))
    s.add_argument("--num_cpus", type=int, default=2)
    s.add_argument("--no_evaluate", action="store_true")
    sub.choices["centralised"].add_argument("--steps", type=int, default=600)
    args = p.parse_args()
    {"datalist": cmd_datalist, "federated": cmd_federated, "centralised": cmd_centralised, "evaluate": cmd_evaluate,
     "report": cmd_report}[args.cmd](args)  # fmt: skip


def _dice_table(records: list[dict], reference: dict[tuple[int, int], float]) -> list[str]:
    import numpy as np

    methods = list(dict.fromkeys(r["method"] for r in records))
    counts = sorted({r["num_labelled"] for r in records})
    lines = ["| method | " + " | ".join(f"{n} labels: Dice | paired diff. to unet_scratch" for n in counts) + " |",
             "|---|" + "---:|---:|" * len(counts)]  # fmt: skip
    for m in methods:
        cells = []
        for n in counts:
            by_seed = {r["seed"]: r["dice"] for r in records if r["method"] == m and r["num_labelled"] == n}
            v = np.array(list(by_seed.values()))
            d = np.array([by_seed[s] - reference[(n, s)] for s in by_seed if (n, s) in reference])
            cells.append(f"{v.mean():.3f} +- {v.std(ddof=1) if len(v) > 1 else 0:.3f} ({len(v)})")
            cells.append(f"{d.mean():+.3f} [{d.min():+.3f}, {d.max():+.3f}]" if len(d) else "")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def cmd_report(args) -> None:
    """Merge the pretraining and segmentation JSON files of this folder into ``results.md``."""
    runs = [json.loads(p.read_text()) for p in sorted(OUT.glob("*.json")) if not p.name.startswith("segment_")]
    lines = [
        "# Federated vs centralised masked latent pretraining (MSD Task04 Hippocampus)",
        "",
        "MONAI UNet 16-32-64-128 pretrained by masked latent prediction with SIGReg (brats_vjepa bundle configs, "
        "whole 48 x 64 x 48 volumes, batch 4 per optimiser step, AdamW 1e-3, warmup-cosine). Held-out metrics: "
        "the 60 held-out volumes, fixed masks (`monai_jepa.fl.masked_latent_metrics`).",
        "",
        "| run | sites | site split | rounds x local steps (batch) | total steps | wall s | pred | SIGReg | "
        "SIGReg pooled | eff. rank pooled | std pooled | eff. rank tokens |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    initial = None
    for r in runs:
        h = r["held_out"]
        schedule = f"{r['num_rounds']} x {r['local_steps']}" if r["mode"] == "federated" else f"1 x {r['total_steps']}"
        schedule += f" (batch {r['batch_size']})"
        lines.append(
            f"| {r['tag']} | {r['num_sites']} | {r.get('site_split', '') or ''} | {schedule} | "
            f"{r['total_steps']} | {r['seconds']:.0f} | {h['pred']:.4f} | {h['sigreg']:.2f} | "
            f"{h['sigreg_pooled']:.2f} | {h['effective_rank']:.2f} | {h['embedding_std']:.4f} | "
            f"{h.get('effective_rank_tokens', float('nan')):.1f} |"
        )
        initial = initial or (r["held_out_initial"] if "effective_rank_tokens" in r["held_out_initial"] else None)
    if initial is not None:
        lines.append(
            f"| initial model (seed 0) | | | | 0 | | {initial['pred']:.4f} | {initial['sigreg']:.2f} | "
            f"{initial['sigreg_pooled']:.2f} | {initial['effective_rank']:.2f} | "
            f"{initial['embedding_std']:.4f} | {initial.get('effective_rank_tokens', float('nan')):.1f} |"
        )
    for r in runs:
        if r["mode"] != "federated":
            continue
        lines += ["", f"## {r['tag']}: per round", "", "Training terms: last iteration of each site, averaged over the "
                  "sites (weighted by their pool images); held-out: each site scores the new global model on its "
                  "share of the held-out volumes, averaged.", "",
                  "| round | train loss | train pred | train SIGReg | held-out pred | held-out SIGReg pooled | "
                  "held-out eff. rank (per site) |", "|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
        for rec in r["history"]:
            t, e = rec["train"], rec.get("evaluate", {})
            ranks = ", ".join(f"{e[f'site{k}/effective_rank']:.1f}" for k in range(r["num_sites"])
                              if f"site{k}/effective_rank" in e)  # fmt: skip
            lines.append(
                f"| {rec['round']} | {t['loss']:.4f} | {t['pred']:.4f} | {t['sigreg']:.2f} | "
                f"{e.get('pred', float('nan')):.4f} | {e.get('sigreg_pooled', float('nan')):.2f} | {ranks} |"
            )
    sized = [r for r in runs if "held_out_by_size" in r]
    if sized:
        lines += [
            "",
            "## Held-out metrics by volume size",
            "",
            "The 60 held-out volumes cut into thirds by their "
            "number of voxels (the partition of the `size` sites); each third scored alone.",
            "",
            "| run | smallest: pred / SIGReg pooled / eff. rank tokens | middle | largest |",
            "|---|---:|---:|---:|",
        ]
        for r in sized:
            cells = [f"{m['pred']:.4f} / {m['sigreg_pooled']:.2f} / {m['effective_rank_tokens']:.1f}"
                     for m in r["held_out_by_size"]]  # fmt: skip
            lines.append(f"| {r['tag']} | " + " | ".join(cells) + " |")
    segments = sorted(OUT.glob("segment_*.json"))
    if segments:
        ref_path = RESULTS / "hippocampus" / "segment_unet_scratch.json"
        ref = {(r["num_labelled"], r["seed"]): r["dice"] for r in json.loads(ref_path.read_text())["records"]
               if r["method"] == "unet_scratch"}  # fmt: skip
        records = [r for p in segments for r in json.loads(p.read_text())["records"]]
        lines += [
            "",
            "## Segmentation fine-tuning (benchmarks.hippocampus protocol)",
            "",
            "Mean test Dice (60 volumes) +- std over fine-tuning seeds (count); paired differences to the "
            f"`unet_scratch` rows of `{ref_path.relative_to(ROOT)}` (same protocol and seeds).",
            "",
        ]
        lines += _dice_table(records, ref)
    lines += ["", "Commands: `commands.md`; every JSON file holds its command, commit, machine and date."]
    atomic_write_text(OUT / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
