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
"""The untuned ``cxr_lejepa`` bundle on 2D modalities it was not tuned for: MRI slices from ``../shared/data``.

Two labelled 2D sets are exported as a plain PNG folder with a ``labels.csv`` (columns ``image``, ``label``,
``split``; splits by patient), the layout any user can bring, then the bundle runs on it with its default configs
(only ``dataset_dir``, ``output_dir`` and the wall-clock budget are given):

- ``acdc_phase``: ACDC short-axis cine MRI slices that contain the LV cavity, labelled end-diastole (0) or
  end-systole (1): 30 patients, 18 / 4 / 8 for training / validation / test.
- ``hippocampus_part``: MSD Task04 Hippocampus T1 MRI slices along the first axis with at least 30 labelled voxels,
  labelled by the dominant part, anterior (0) or posterior (1): 260 volumes, 60 / 10 / 30 % by volume.

    python -m benchmarks.slices2d export acdc_phase /tmp/slices2d/acdc_phase
    python -m benchmarks.slices2d run acdc_phase --minutes 15 --seed 0
    python -m benchmarks.slices2d report

``run`` writes ``benchmarks/results/slices2d/<name>_s<seed>.json``: the linear-probe test AUC of the pretrained encoder
and of its random-init twin at every label fraction, with the commands, commit, machine and date.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shlex
import sys
from pathlib import Path

import fire
import numpy as np

from benchmarks._common import provenance, run_logged

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared/data"))
RESULTS = ROOT / "benchmarks/results/slices2d"
FRACTIONS = (0.05, 0.25, 1.0)


def _split_ids(ids: list[str], fractions: tuple[float, float], seed: int = 0) -> dict[str, str]:
    order = np.random.RandomState(seed).permutation(len(ids))
    n_train, n_val = int(round(fractions[0] * len(ids))), int(round(fractions[1] * len(ids)))
    return {
        ids[k]: "training" if r < n_train else "validation" if r < n_train + n_val else "test"
        for r, k in enumerate(order)
    }


def _save_png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    lo, hi = np.percentile(image, (0.5, 99.5))
    scaled = np.clip((image - lo) / max(hi - lo, 1e-8), 0, 1)
    Image.fromarray((scaled * 255).round().astype(np.uint8)).save(path)


def _acdc_rows(out: Path) -> list[tuple[str, int, str]]:
    import h5py

    files = sorted(glob.glob(str(SHARED / "acdc_edes_h5/volumes/patient*_frame0[12].h5")))
    if not files:
        raise FileNotFoundError(f"no ACDC volume under '{SHARED / 'acdc_edes_h5/volumes'}'.")
    patients = sorted({Path(f).name.split("_")[0] for f in files})
    split = _split_ids(patients, (18 / 30, 4 / 30))
    rows = []
    for f in files:
        patient, frame = Path(f).stem.split("_")
        with h5py.File(f, "r") as h:
            image, label = np.asarray(h["image"]), np.asarray(h["label"])
        for z in range(image.shape[0]):
            if (label[z] == 3).sum() < 20:  # slices without the LV cavity carry no phase information
                continue
            name = f"{patient}_{frame}_z{z:02d}.png"
            _save_png(image[z], out / name)
            rows.append((name, int(frame == "frame02"), split[patient]))
    return rows


def _hippocampus_rows(out: Path) -> list[tuple[str, int, str]]:
    import nibabel as nib

    images = sorted(glob.glob(str(SHARED / "msd_task04_hippocampus/imagesTr/hippocampus_*.nii.gz")))
    if not images:
        raise FileNotFoundError(f"no image under '{SHARED / 'msd_task04_hippocampus/imagesTr'}'.")
    ids = [Path(p).name.split(".")[0] for p in images]
    split = _split_ids(ids, (0.6, 0.1))
    rows = []
    for path, case in zip(images, ids):
        image = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        label = np.asarray(nib.load(path.replace("imagesTr", "labelsTr")).dataobj)
        for x in range(image.shape[0]):
            anterior, posterior = int((label[x] == 1).sum()), int((label[x] == 2).sum())
            if anterior + posterior < 30:
                continue
            name = f"{case}_x{x:02d}.png"
            _save_png(image[x], out / name)
            rows.append((name, int(posterior > anterior), split[case]))
    return rows


DATASETS = {"acdc_phase": _acdc_rows, "hippocampus_part": _hippocampus_rows}


def export(name: str, out: str) -> str:
    """Write the PNG folder + ``labels.csv`` of dataset ``name`` to ``out``; returns ``out``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}.")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rows = DATASETS[name](folder)
    with open(folder / "labels.csv.tmp", "w", newline="") as f:
        csv.writer(f).writerows([("image", "label", "split"), *rows])
    os.replace(folder / "labels.csv.tmp", folder / "labels.csv")
    counts = {
        s: [sum(1 for r in rows if r[2] == s and r[1] == c) for c in (0, 1)] for s in ("training", "validation", "test")
    }
    print(f"{name}: {len(rows)} slices, per split [class 0, class 1]: {counts}")
    return str(folder)


def run(name: str, minutes: float = 15.0, seed: int = 0, threads: int = 2, work: str = "/tmp/slices2d") -> dict:
    """Export ``name`` (once), pretrain the default bundle on it for ``minutes`` and evaluate it."""
    data = Path(work) / name
    if not (data / "labels.csv").is_file():
        export(name, str(data))
    out_dir = Path(work) / f"{name}_s{seed}"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    common = ["--dataset_dir", str(data), "--output_dir", str(out_dir), "--seed", str(seed)]
    train = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        "bundles/cxr_lejepa/configs/train.json",
        "--max_epochs",
        "100000",
        "--time_limit_minutes",
        str(minutes),
    ]
    train += common
    evaluate = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "evaluating",
        "--config_file",
        "['bundles/cxr_lejepa/configs/train.json','bundles/cxr_lejepa/configs/evaluate.json']",
        *common,
        "--eval_protocols",
        "['label_fraction','random_init']",
        "--eval_label_fractions",
        str(list(FRACTIONS)).replace(" ", ""),
        "--eval_seeds",
        "[0,1,2]",
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    pretrain_s = run_logged(train, out_dir / "train_log.txt", env)
    run_logged(evaluate, out_dir / "eval_log.txt", env)
    records = json.loads((out_dir / "eval" / "metrics.json").read_text())
    result = {
        "dataset": name,
        "seed": seed,
        "minutes": minutes,
        "threads": threads,
        "pretrain_seconds": round(pretrain_s, 1),
        **{k: v for k, v in provenance().items() if k != "command"},
        "commands": [shlex.join(train), shlex.join(evaluate)],
        "auc": {
            f"{r['method']}@{r['label_fraction']}": r["auc"]
            for r in records
            if r["protocol"] == "linear" and r.get("label_fraction") is not None
        },
        "n_labels": {str(r["label_fraction"]): r["n_labels"] for r in records if r.get("label_fraction") is not None},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS / f".{name}_s{seed}.json.tmp"
    tmp.write_text(json.dumps(result, indent=4) + "\n")
    tmp.replace(RESULTS / f"{name}_s{seed}.json")
    return result


def report() -> str:
    """Markdown tables of the results: probe test AUC, pretrained vs random init, per seed and label fraction, then
    the mean +- std over seeds per dataset with the paired difference (mean, min..max over seeds)."""
    head = " | ".join(f"AUC {f:g}: pretrained / random init" for f in FRACTIONS)
    rows = [f"| dataset | seed | budget | {head} |", "|---|---|---|" + "---|" * len(FRACTIONS)]
    by_dataset: dict[str, list[dict]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        by_dataset.setdefault(r["dataset"], []).append(r)
        cells = [
            f"{r['auc'].get(f'lejepa@{f}', float('nan')):.3f} / {r['auc'].get(f'random_init@{f}', float('nan')):.3f}"
            for f in FRACTIONS
        ]
        rows.append(
            f"| {r['dataset']} | {r['seed']} | {r['minutes']:g} min x {r['threads']} thr | " + " | ".join(cells) + " |"
        )
    head = " | ".join(f"AUC {f:g}: pretrained / random init (paired diff, min..max)" for f in FRACTIONS)
    rows += ["", f"| dataset | seeds | {head} |", "|---|---|" + "---|" * len(FRACTIONS)]
    for name, runs in sorted(by_dataset.items()):
        cells = []
        for f in FRACTIONS:
            pre = np.array([r["auc"][f"lejepa@{f}"] for r in runs])
            rnd = np.array([r["auc"][f"random_init@{f}"] for r in runs])
            diff = pre - rnd
            cells.append(
                f"{pre.mean():.3f} +- {pre.std(ddof=1) if len(runs) > 1 else 0:.3f} / {rnd.mean():.3f} +- "
                f"{rnd.std(ddof=1) if len(runs) > 1 else 0:.3f} "
                f"({diff.mean():+.3f}, {diff.min():+.3f}..{diff.max():+.3f})"
            )
        rows.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    text = "\n".join(rows)
    print(text)
    return text


if __name__ == "__main__":
    fire.Fire({"export": export, "run": run, "report": report})
