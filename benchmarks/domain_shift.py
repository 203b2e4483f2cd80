# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Scanner-shift stress curves on MSD Task04 Hippocampus: a MONAI UNet fine-tuned on 10 labelled volumes (from a
self-supervised checkpoint or from scratch, the budget of ``benchmarks.hippocampus segment``), then tested on the 60
test volumes under bias field, Gibbs ringing, gamma, thick slices and noise of increasing strength, with and without
Nyul histogram standardisation.

Split and network as in ``benchmarks/hippocampus.py`` (case ids sorted, last 60 test, first 200 pool, labelled: the
first 10 of the pool; UNet 16-32-64-128). The shifts act on the raw scanner intensities (RAS, unpadded); the
network's input pipeline follows: z-score on non-zero voxels and zero-padding to 48 x 64 x 48, exactly the pipeline of
``benchmarks.hippocampus``. ``--harmonization nyul`` puts ``HistogramStandardize`` (landmarks fitted on the 200 raw
pool images, no labels) before the z-score, for the fine-tuning images as well as the shifted test images.

    python -m benchmarks.domain_shift hippocampus --method unet_scratch --seeds 0 1 2 --tag scratch_none
    python -m benchmarks.domain_shift hippocampus --method unet_jepa_p2 \
        --init outputs/hippocampus/unet_jepa_p2/checkpoint_00001600.pt --seeds 0 1 2 --tag jepa_p2_none
    python -m benchmarks.domain_shift report
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, NormalizeIntensity, Orientationd, SpatialPad

from benchmarks._common import RESULTS, provenance
from benchmarks.hippocampus import CLASSES, DATA, SIZE, build_unet
from monai_jepa.evaluation import fine_tune_segmentation, scanner_shift_curve, write_shift_report
from monai_jepa.evaluation.report import json_safe
from monai_jepa.networks import load_pretrained_encoder
from monai_jepa.transforms import HistogramStandardize
from monai_jepa.utils.fileio import atomic_write_text

OUT = RESULTS / "domain_shift"


def load_raw(data: Path = DATA) -> tuple[list[dict], list[dict]]:
    """(pool of 200, test of 60) items ``{"image": (1, *S0) raw intensities, RAS, unpadded; "label": (1, 48, 64, 48)
    padded; "id"}``, the split of ``benchmarks.hippocampus.load_split``."""
    files = sorted((data / "imagesTr").glob("hippocampus_*.nii.gz"))
    if len(files) != 260:
        raise FileNotFoundError(f"expected 260 images in {data / 'imagesTr'}, found {len(files)}.")
    load = Compose([LoadImaged(("image", "label"), image_only=True), EnsureChannelFirstd(("image", "label")),
                    Orientationd(("image", "label"), axcodes="RAS")])  # fmt: skip
    pad = SpatialPad(SIZE)
    items = []
    for f in files:
        d = load({"image": str(f), "label": str(data / "labelsTr" / f.name)})
        items.append({"image": d["image"].as_tensor().float(), "label": pad(d["label"]).as_tensor().to(torch.uint8),
                      "id": f.name.split(".")[0]})  # fmt: skip
    return items[:200], items[200:]


def cmd_hippocampus(args) -> None:
    pool, test = load_raw()
    zscore_pad = Compose([NormalizeIntensity(nonzero=True), SpatialPad(SIZE)])

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(zscore_pad(x)).float()

    harmonize = None
    if args.harmonization == "nyul":
        harmonize = HistogramStandardize(foreground="nonzero").fit([i["image"] for i in pool])
        OUT.mkdir(parents=True, exist_ok=True)
        harmonize.save(OUT / "hippocampus_nyul_landmarks.json")
    first = (lambda x: harmonize(x)) if harmonize is not None else (lambda x: x)  # noqa: E731
    train = [{"image": preprocess(first(i["image"])), "label": i["label"]} for i in pool[: args.labels]]
    evaluate_kwargs = {"class_names": CLASSES, "amp": args.amp}
    payload = {"dataset": "MSD Task04 Hippocampus", "method": args.method, "init": args.init,
               "harmonization": args.harmonization, "labels": args.labels, "ft_steps": args.ft_steps,
               "batch_size": args.batch_size, "lr": args.lr, "amp": args.amp, "strengths": args.strengths,
               "shifts": args.shifts, "records": []}  # fmt: skip
    start = provenance()  # the commit the run started from (the tree may move on while it runs)
    for seed in args.seeds:
        torch.manual_seed(seed)
        net = build_unet() if not args.init else load_pretrained_encoder(args.init, build_unet(), prefix=args.prefix)
        t0 = time.perf_counter()
        fit = fine_tune_segmentation(net, train, 3, args.ft_steps, batch_size=args.batch_size, learning_rate=args.lr,
                                     flip_axes=(0,), amp=args.amp, seed=seed)  # fmt: skip
        print(f"{args.method} seed {seed}: fine-tuned in {fit['seconds']:.0f} s, loss {fit['final_loss']:.4f}")
        t1 = time.perf_counter()
        records = scanner_shift_curve(net, test, 3, shifts=args.shifts, strengths=args.strengths,
                                      preprocessing=preprocess, harmonization=harmonize, seed=1000,
                                      evaluate_kwargs=evaluate_kwargs)  # fmt: skip
        for r in records:
            r.pop("dice_per_case")
            r.update(method=args.method, harmonization=args.harmonization, seed=seed, train_seconds=fit["seconds"],
                     final_loss=fit["final_loss"], curve_seconds=time.perf_counter() - t1)  # fmt: skip
        payload["records"] += records
        payload["seconds"] = time.perf_counter() - t0
        payload["provenance"] = dict(start, finished=provenance()["date"])
        OUT.mkdir(parents=True, exist_ok=True)
        atomic_write_text(OUT / f"hippocampus_{args.tag}.json", json.dumps(json_safe(payload), indent=4) + "\n")
        print(f"{args.method} seed {seed}: stress curve in {time.perf_counter() - t1:.0f} s")


def paired_table(records: list[dict], reference: str) -> str:
    """Markdown: Dice of each method minus ``reference`` with the same harmonisation and seed (same data order and
    flips), then ``nyul`` minus ``none`` for the same method and seed: mean [min, max] over the seeds both have."""
    import numpy as np

    dice = {(r["method"], r["harmonization"], r["seed"], r["shift"], r["strength"]): r["dice"] for r in records}
    shifts = list(dict.fromkeys(r["shift"] for r in records))
    strengths = sorted({r["strength"] for r in records})
    seeds = sorted({r["seed"] for r in records})

    def cell(a: tuple, b: tuple, kind: str, st: float) -> str:
        pairs = [(a + (s, kind, st), b + (s, kind, st)) for s in seeds]
        d = np.array([dice[x] - dice[y] for x, y in pairs if x in dice and y in dice])
        return "" if not d.size else f"{d.mean():+.3f} [{d.min():+.3f}, {d.max():+.3f}] ({d.size})"

    head = " | ".join(f"strength {s:g}" for s in strengths) + " |"
    lines = [f"## Paired difference to `{reference}` (same harmonisation, same seed)", "",
             "Mean [min, max] over seeds of the Dice difference (number of seeds in brackets); positive: the method "
             "keeps more Dice.", "", "| method | harmonisation | shift | " + head,
             "|---|---|---|" + "---:|" * len(strengths)]  # fmt: skip
    for method, harm in sorted({(r["method"], r["harmonization"]) for r in records if r["method"] != reference}):
        for kind in shifts:
            cells = [cell((method, harm), (reference, harm), kind, st) for st in strengths]
            lines.append(f"| {method} | {harm} | {kind} | " + " | ".join(cells) + " |")
    lines += ["", "## Harmonisation effect (nyul minus none, same method and seed)", "", "| method | shift | " + head,
              "|---|---|" + "---:|" * len(strengths)]  # fmt: skip
    for method in sorted({r["method"] for r in records}):
        for kind in shifts:
            cells = [cell((method, "nyul"), (method, "none"), kind, st) for st in strengths]
            lines.append(f"| {method} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cmd_report(args) -> None:
    records, sources = [], []
    for path in sorted(OUT.glob("hippocampus_*.json")):
        payload = json.loads(path.read_text())
        if "records" not in payload:
            continue
        records += payload["records"]
        sources.append((path.name, payload["provenance"]))
    if not records:
        raise FileNotFoundError(f"no hippocampus_*.json results under {OUT}.")
    title = "MSD Hippocampus: scanner-shift stress curve (UNet, 10 labels)"
    paths = write_shift_report(records, OUT / "hippocampus_report", by=("method", "harmonization"), title=title)
    md = paths["report"].read_text()
    md += "\nSources (each JSON holds its command, commit, machine and date):\n\n"
    md += "\n".join(
        f"- `{name}`: `{p['command']}` (commit `{p['commit'][:12]}`, {p['date']}, {p['machine']['cpu']}, "
        f"{p['machine']['torch_threads']} thread(s))"
        for name, p in sources
    )
    md += "\n\n" + paired_table(records, args.reference) + "\nPlot: [shift_curves.png](shift_curves.png).\n"
    atomic_write_text(paths["report"], md)
    print(md)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hippocampus")
    h.add_argument("--method", required=True, help="name of the row")
    h.add_argument("--init", default="", help="checkpoint of a pretrained UNet (empty: from scratch)")
    h.add_argument("--prefix", default="encoder.net.", help="prefix of the UNet entries in --init")
    h.add_argument("--harmonization", choices=("none", "nyul"), default="none")
    h.add_argument("--labels", type=int, default=10)
    h.add_argument("--ft_steps", type=int, default=800)
    h.add_argument("--batch_size", type=int, default=2)
    h.add_argument("--lr", type=float, default=1e-3)
    h.add_argument("--no_amp", dest="amp", action="store_false", help="float32 instead of bf16 autocast")
    h.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    h.add_argument("--shifts", nargs="+", default=["bias_field", "gibbs", "gamma", "resolution", "noise"])
    h.add_argument("--strengths", nargs="+", type=float, default=[0.0, 0.25, 0.5, 0.75, 1.0])
    h.add_argument("--tag", required=True)
    r = sub.add_parser("report")
    r.add_argument("--reference", default="unet_scratch", help="method the paired differences refer to")
    args = p.parse_args()
    {"hippocampus": cmd_hippocampus, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
