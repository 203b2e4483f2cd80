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
"""Recipe search for the ``cxr_lejepa`` bundle at a fixed wall-clock pretraining budget.

Every variant is a set of command-line overrides of the bundle's own ``train.json``: it is pretrained with
``python -m monai.bundle run training`` for ``--minutes`` of wall-clock time (the learning-rate cosine follows the
budget), then evaluated with ``run evaluating`` (the label-fraction linear probe of the pretrained encoder and of the
same network at its random initialisation). One JSON file per variant and seed lands in ``--out``; ``report``
tabulates them.

    python -m benchmarks.cxr_recipe run --variant base --seed 0 --minutes 10 --threads 1
    python -m benchmarks.cxr_recipe report

The variants are listed in ``VARIANTS`` (the overrides each one passes, on top of ``COMMON``).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import fire

from benchmarks._common import provenance, run_logged

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("DATA", str(ROOT.parent / "shared/data/pneumoniamnist/pneumoniamnist.npz"))
OUT = ROOT / "benchmarks/results/pneumoniamnist/recipe"
FRACTIONS = (0.01, 0.1, 1.0)

COMMON = [
    "--max_epochs",
    "10000",
    "--batch_size",
    "128",
    "--network_def#conv1_t_size",
    "7",
    "--network_def#no_max_pool",
    "False",
]
"""Overrides of every variant: the time budget, not the epoch count, ends the run; ResNet-18 with the standard stem
(7x7 stride-2 convolution + max pooling), as in ``benchmarks/pneumoniamnist.sh``."""

VARIANTS: dict[str, list[str]] = {
    "base": [],
    "lambda0.02_d16": ["--lambda", "0.02", "--network_def#proj_out_dim", "16"],
    "batch64": ["--batch_size", "64"],
    "lr1e-3": ["--learning_rate", "0.001"],
    "global_only": ["--num_local_views", "0"],
    "wd5e-2": ["--weight_decay", "0.05"],
    "size32": ["--image_size", "32"],
    "resnet10": ["--network_def#encoder", "resnet10"],
    "small_stem": ["--network_def#conv1_t_size", "3", "--network_def#no_max_pool", "True"],
}


def _overrides(variant: str, seed: int, minutes: float, out_dir: Path) -> list[str]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}.")
    return (
        COMMON
        + VARIANTS[variant]
        + [
            "--dataset_dir",
            DATA,
            "--output_dir",
            str(out_dir),
            "--seed",
            str(seed),
            "--time_limit_minutes",
            str(minutes),
        ]
    )


def run(variant: str, seed: int = 0, minutes: float = 10.0, threads: int = 1, work: str = "/tmp/cxr_recipe") -> dict:
    """Pretrain one variant for ``minutes``, evaluate it and write ``<out>/<variant>_s<seed>.json``."""
    out_dir = Path(work) / f"{variant}_s{seed}"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    train = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--config_file",
        "bundles/cxr_lejepa/configs/train.json",
    ] + _overrides(variant, seed, minutes, out_dir)
    evaluate = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "evaluating",
        "--config_file",
        "['bundles/cxr_lejepa/configs/train.json','bundles/cxr_lejepa/configs/evaluate.json']",
    ]
    evaluate += _overrides(variant, seed, minutes, out_dir)
    evaluate += [
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
    iters = [line for line in (out_dir / "train_log.txt").read_text().splitlines() if "Iter:" in line]
    result = {
        "variant": variant,
        "seed": seed,
        "minutes": minutes,
        "threads": threads,
        "pretrain_seconds": round(pretrain_s, 1),
        "last_iteration_log": iters[-1] if iters else None,
        **{k: v for k, v in provenance().items() if k != "command"},
        "commands": [shlex.join(train), shlex.join(evaluate)],
        "auc": {
            f"{r['method']}@{r['label_fraction']}": r["auc"]
            for r in records
            if r["protocol"] == "linear" and r.get("label_fraction") is not None
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = OUT / f".{variant}_s{seed}.json.tmp"
    tmp.write_text(json.dumps(result, indent=4) + "\n")
    tmp.replace(OUT / f"{variant}_s{seed}.json")
    return result


def report() -> str:
    """Markdown table of every result in ``<out>``: probe AUC of the pretrained and random-init encoder."""
    rows = [
        "| variant | seed | budget | iterations | " + " | ".join(f"AUC {f:g} (random)" for f in FRACTIONS) + " |",
        "|---|---|---|---|" + "---|" * len(FRACTIONS),
    ]
    for path in sorted(OUT.glob("*.json")):
        r = json.loads(path.read_text())
        log = r.get("last_iteration_log") or ""
        its = log.split("Iter: ")[1].split(" ")[0] if "Iter: " in log else "?"
        cells = [
            f"{r['auc'].get(f'lejepa@{f}', float('nan')):.3f} ({r['auc'].get(f'random_init@{f}', float('nan')):.3f})"
            for f in FRACTIONS
        ]
        rows.append(
            f"| {r['variant']} | {r['seed']} | {r['minutes']:g} min x {r['threads']} thr | {its} | "
            + " | ".join(cells)
            + " |"
        )
    text = "\n".join(rows)
    print(text)
    return text


if __name__ == "__main__":
    fire.Fire({"run": run, "report": report})
