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
"""Sunnybrook LV cavity segmentation at ED and ES with 1 and 2 labelled patients: the ``cine_vjepa`` pretrained 2D+t
UNet against the same MONAI UNet from random initialisation (the UNet from scratch).

Per pretraining seed: ``run training`` of the bundle with its default configs on every Sunnybrook cine clip without
labels (``--split_fractions "[1,0,0]"``: the archive a hospital would pretrain on, the test patients' frames included,
never their contours). Then leave-one-patient-out folds: each of the 5 patients is the test patient once; 1 or 2
labelled patients are drawn from the other 4 (with the seed); the bundle's ``segmentation_net_def`` UNet is
fine-tuned on their labelled clips (full 20-frame clips, loss on the ED and ES frames only,
:class:`monai_jepa.losses.FrameMaskedLoss` over ``DiceCELoss``) with MONAI's ``SupervisedTrainer`` for a fixed number
of iterations, once from the pretrained weights and once from random init; the test Dice is computed on the ED and
ES frames of the test patient's labelled slices, at the original 256 x 256 grid.

    python -m benchmarks.cine_lv run --seeds "[0,1,2]"
    python -m benchmarks.cine_lv report

``run`` writes ``benchmarks/results/cine_lv/seed_<s>.json`` (per fold, count and init: Dice at ED, ES and their
mean) with the commands, commit, machine and date.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import fire
import numpy as np
import torch
import torch.nn.functional as F

from benchmarks._common import provenance, run_logged
from monai_jepa.utils.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared/data"))
RESULTS = ROOT / "benchmarks/results/cine_lv"
TRAIN = "bundles/cine_vjepa/configs/train.json"
COUNTS = (1, 2)


def _parser(**overrides):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(ROOT / TRAIN)
    parser.update(overrides)
    return parser


def _transforms(frame_size, train: bool):
    from monai.transforms import (
        Compose,
        EnsureTyped,
        RandAffined,
        RandFlipd,
        RandScaleIntensityd,
        Resized,
        ScaleIntensityRangePercentilesd,
    )

    from monai_jepa.transforms import LoadCined, LoadFrameLabelsd

    size = [-1, *frame_size]
    steps = [
        LoadCined("image"),
        LoadFrameLabelsd(),
        ScaleIntensityRangePercentilesd("image", 1, 99, 0.0, 1.0, clip=True, channel_wise=True),
        Resized("image", size, mode="area"),
        Resized("label", size, mode="nearest"),
    ]
    if train:
        steps += [
            RandAffined(
                ["image", "label"],
                prob=0.5,
                rotate_range=(0.26, 0, 0),
                scale_range=(0, 0.1, 0.1),
                mode=("bilinear", "nearest"),
            ),
            RandFlipd(["image", "label"], prob=0.5, spatial_axis=2),
            RandScaleIntensityd("image", factors=0.1, prob=0.5),
        ]
    return Compose(steps + [EnsureTyped(["image", "label"], dtype=torch.float32, track_meta=False)])


def _dice(pred: torch.Tensor, ref: torch.Tensor) -> float:
    inter, total = float((pred & ref).sum()), float(pred.sum() + ref.sum())
    return 1.0 if total == 0 else 2.0 * inter / total


def _cyclic(delta: int, period: int) -> int:
    """Distance in frames on the cardiac cycle (the last frame neighbours the first)."""
    delta = abs(int(delta)) % period
    return min(delta, period - delta)


def finetune_and_test(datalist: dict, train_ids, test_id, weights, seed: int, iterations: int) -> dict:
    """Fine-tune the bundle's UNet (from ``weights`` or random init) on ``train_ids``' labelled clips; test Dice."""
    from monai.data import CacheDataset, DataLoader
    from monai.engines import SupervisedTrainer
    from monai.losses import DiceCELoss
    from monai.utils import set_determinism

    from monai_jepa.data import load_cine, load_frame_mask
    from monai_jepa.losses import FrameMaskedLoss
    from monai_jepa.networks import load_pretrained_encoder

    set_determinism(seed)
    parser = _parser()
    frame_size = parser.get_parsed_content("frame_size")
    items = [dict(i) for s in ("training", "validation", "test") for i in datalist[s] if "label_frames" in i]
    root = Path(datalist["root"])
    for item in items:
        item["image"] = [str(root / p) for p in item["image"]]
        item.update({k: str(root / item[k]) for k in ("label_ed", "label_es")})
    train = [i for i in items if i["patient_id"] in train_ids]
    test = [i for i in items if i["patient_id"] == test_id]
    net = parser.get_parsed_content("segmentation_net_def", lazy=False)
    if weights is not None:
        net = load_pretrained_encoder(weights, net, prefix="encoder.net.")
    ds = CacheDataset(train, _transforms(frame_size, True), progress=False)
    loader = DataLoader(ds, batch_size=2, shuffle=True, drop_last=len(ds) >= 4)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    epochs = max(1, -(-iterations // len(loader)))
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=loader,
        network=net,
        optimizer=opt,
        loss_function=FrameMaskedLoss(DiceCELoss(to_onehot_y=True, softmax=True)),
    )
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    net.eval()
    scores = {"ed": [], "es": []}
    # ED / ES detection from the predicted LV area over the cycle (ED: largest cavity, ES: smallest), against the
    # trivial detector that always answers the training clips' median ED / ES frame index
    errors, trivial = {"ed": [], "es": []}, {"ed": [], "es": []}
    median = {p: int(np.median([i["label_frames"][p] for i in train])) for p in ("ed", "es")}
    prep = _transforms(frame_size, False)
    with torch.no_grad():
        for item in test:
            x = prep(item)["image"][None]
            logits = net(x)  # (1, 2, T, h, w)
            clip, _ = load_cine(item["image"])
            shape = clip.shape[1:]
            logits = F.interpolate(logits, size=shape, mode="trilinear", align_corners=False)
            pred = logits.argmax(1)[0]
            area = (pred > 0).flatten(1).sum(1).float()
            found = {"ed": int(area.argmax()), "es": int(area.argmin())}
            for phase, frame in item["label_frames"].items():
                errors[phase].append(_cyclic(found[phase] - frame, len(area)))
                trivial[phase].append(_cyclic(median[phase] - frame, len(area)))
            for phase in ("ed", "es"):
                ref = torch.from_numpy(load_frame_mask(item[f"label_{phase}"], shape[1:]) > 0)
                scores[phase].append(_dice(pred[item["label_frames"][phase]] > 0, ref))
    return {
        "dice_ed": float(np.mean(scores["ed"])),
        "dice_es": float(np.mean(scores["es"])),
        "dice": float(np.mean(scores["ed"] + scores["es"])),
        **{f"frame_error_{p}": float(np.mean(errors[p])) for p in ("ed", "es")},
        **{f"frame_error_{p}_trivial": float(np.mean(trivial[p])) for p in ("ed", "es")},
        "num_train_clips": len(train),
        "num_test_clips": len(test),
        "iterations": epochs * len(loader),
        "train_seconds": round(seconds, 1),
    }


def run(seeds=(0, 1, 2), counts=COUNTS, iterations: int = 150, work: str = "/tmp/cine_lv", threads: int = 2) -> None:
    """Pretrain once per seed (bundle defaults), then all folds x label counts x {pretrained, random init}."""
    from monai_jepa.apps.datasets import sunnybrook_datalist

    torch.set_num_threads(threads)
    datalist = sunnybrook_datalist(SHARED / "sunnybrook_cine")
    patients = sorted({i["patient_id"] for s in ("training", "validation", "test") for i in datalist[s]})
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    for seed in seeds:
        out = Path(work) / f"pretrain_s{seed}"
        cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", TRAIN, "--dataset_dir",
               str(SHARED / "sunnybrook_cine"), "--output_dir", str(out), "--seed", str(seed),
               "--split_fractions", "[1,0,0]"]  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        pretrain_s = run_logged(cmd, out / "train_log.txt", env) if not (out / "models/model.pt").is_file() else None
        rows = []
        for fold, test_id in enumerate(patients):
            pool = [p for p in patients if p != test_id]
            order = [pool[k] for k in np.random.RandomState(1000 * seed + fold).permutation(len(pool))]
            for count in counts:
                for init, weights in (("pretrained", out / "models/model.pt"), ("random_init", None)):
                    r = finetune_and_test(datalist, order[:count], test_id, weights, seed, iterations)
                    rows.append({"fold": fold, "test_patient": test_id, "labelled": order[:count], "count": count,
                                 "init": init, **r})  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
        result = {
            "seed": seed,
            "pretrain_seconds": pretrain_s,
            "iterations": iterations,
            "threads": threads,
            **{k: v for k, v in provenance().items() if k != "command"},
            "commands": [shlex.join(cmd), shlex.join([sys.executable, "-m", "benchmarks.cine_lv", *sys.argv[1:]])],
            "rows": rows,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS / f"seed_{seed}.json", json.dumps(result, indent=4) + "\n")


def _per_seed(runs: list, count: int, init: str, metric: str) -> np.ndarray:
    """Mean of ``metric`` over the folds of each seed."""
    return np.array(
        [np.mean([x[metric] for x in r["rows"] if x["count"] == count and x["init"] == init]) for r in runs]
    )


def report() -> str:
    """Markdown tables (mean over folds, then mean +- std over seeds; paired differences) and the Dice plot."""
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("seed_*.json"))]
    counts = sorted({x["count"] for r in runs for x in r["rows"]})
    lines = [
        f"Seeds: {[r['seed'] for r in runs]}; {runs[0]['iterations'] if runs else '-'} fine-tuning iterations; "
        "5 leave-one-patient-out folds per seed.",
        "",
        "| labelled patients | Dice | pretrained | random init (UNet from scratch) | paired diff (min..max) |",
        "|---|---|---|---|---|",
    ]
    for count in counts:
        for metric in ("dice", "dice_ed", "dice_es"):
            per = {init: _per_seed(runs, count, init, metric) for init in ("pretrained", "random_init")}
            d = per["pretrained"] - per["random_init"]
            sd = {k: v.std(ddof=1) if len(v) > 1 else 0.0 for k, v in per.items()}
            lines.append(
                f"| {count} | {metric.replace('dice', 'ED+ES').replace('ED+ES_', '')} | "
                f"{per['pretrained'].mean():.3f} +- {sd['pretrained']:.3f} | {per['random_init'].mean():.3f} +- "
                f"{sd['random_init']:.3f} | {d.mean():+.3f} ({d.min():+.3f}..{d.max():+.3f}) |"
            )
    lines += [
        "",
        "ED / ES frame detection on the test patient's clips (mean absolute error in frames on the 20-frame cycle): "
        "ED = the frame of largest predicted LV cavity, ES = the smallest; trivial = the training clips' median index.",
        "",
        "| labelled patients | phase | pretrained | random init | trivial |",
        "|---|---|---|---|---|",
    ]
    for count in counts:
        for phase in ("ed", "es"):
            m = {init: _per_seed(runs, count, init, f"frame_error_{phase}") for init in ("pretrained", "random_init")}
            triv = _per_seed(runs, count, "pretrained", f"frame_error_{phase}_trivial")
            lines.append(
                f"| {count} | {phase.upper()} | {m['pretrained'].mean():.2f} | {m['random_init'].mean():.2f} | "
                f"{triv.mean():.2f} |"
            )
    text = "\n".join(lines) + "\n"
    atomic_write_text(RESULTS / "results.md", text)
    print(text)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for init, label in (("pretrained", "cine_vjepa pretrained"), ("random_init", "random init (UNet from scratch)")):
        v = [_per_seed(runs, c, init, "dice") for c in counts]
        ax.errorbar(counts, [a.mean() for a in v], yerr=[a.std(ddof=1) if len(a) > 1 else 0 for a in v], marker="o",
                    capsize=3, label=label)  # fmt: skip
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlabel("labelled patients")
    ax.set_ylabel("LV cavity Dice, ED + ES (test patient)")
    ax.set_title(f"Sunnybrook LOPO, mean +- std over {len(runs)} seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = RESULTS / "dice.tmp.png"
    fig.savefig(tmp, dpi=120)
    tmp.replace(RESULTS / "dice.png")
    return text


if __name__ == "__main__":
    fire.Fire({"run": run, "report": report})
