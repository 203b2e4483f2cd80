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
"""Sequence-level regression on Sunnybrook cine MRI: each labelled clip's area ejection fraction (from the expert ED /
ES endocardium contours) predicted by ridge probes on frozen clip embeddings of the ``cine_vjepa`` pretrained encoder
and of the same encoder at a random initialisation.

Per seed, exactly what a user runs: ``run training`` of the bundle with its defaults on the Sunnybrook folder (the
seed also draws the patient-level split, 3 / 1 / 1 patients, so seeds differ in their test patient), then ``run
evaluating`` with ``evaluate.json`` (label fractions of the training clips, penalty chosen on the validation patient).

    python -m benchmarks.cine_ef run --seeds "[0,1,2]"
    python -m benchmarks.cine_ef report

``run`` writes ``benchmarks/results/cine_ef/seed_<s>.json`` (the evaluation records plus the commands, commit,
machine, date and pretraining seconds); ``report`` writes ``benchmarks/results/cine_ef/README.md``.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import fire
import numpy as np

from benchmarks._common import provenance, run_logged
from monai_jepa.utils.fileio import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared/data"))
RESULTS = ROOT / "benchmarks/results/cine_ef"
CONFIGS = "bundles/cine_vjepa/configs"


def run(seeds=(0, 1, 2), work: str = "/tmp/cine_ef", threads: int = 1) -> None:
    """Pretrain and evaluate once per seed with the bundle's own configs."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    for seed in seeds:
        out = Path(work) / f"seed_{seed}"
        out.mkdir(parents=True, exist_ok=True)
        common = ["--dataset_dir", str(SHARED / "sunnybrook_cine"), "--output_dir", str(out), "--seed", str(seed)]
        train = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", f"{CONFIGS}/train.json",
                 *common]  # fmt: skip
        evaluate = [sys.executable, "-m", "monai.bundle", "run", "evaluating", "--config_file",
                    f"['{CONFIGS}/train.json','{CONFIGS}/evaluate.json']", *common]  # fmt: skip
        pretrain_s = run_logged(train, out / "train_log.txt", env)
        eval_s = run_logged(evaluate, out / "eval_log.txt", env)
        records = json.loads((out / "eval" / "regression_metrics.json").read_text())
        datalist = json.loads((out / "datalist.json").read_text())
        patients = {s: sorted({i["patient_id"] for i in datalist[s]}) for s in ("training", "validation", "test")}
        result = {
            "seed": seed,
            "pretrain_seconds": pretrain_s,
            "eval_seconds": eval_s,
            "threads": threads,
            "patients": patients,
            **{k: v for k, v in provenance().items() if k != "command"},
            "commands": [shlex.join(train), shlex.join(evaluate)],
            "records": records,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        atomic_write_text(RESULTS / f"seed_{seed}.json", json.dumps(result, indent=4) + "\n")
        print(f"seed {seed}: pretraining {pretrain_s:.0f} s, evaluation {eval_s:.0f} s", flush=True)


def _cell(values: np.ndarray) -> str:
    return f"{values.mean():.2f} +- {values.std():.2f}"


def report() -> None:
    """Mean over seeds of each method's test MAE and R^2 per label fraction, and the paired difference."""
    runs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("seed_*.json"))]
    if not runs:
        raise SystemExit(f"no result in {RESULTS}; run `python -m benchmarks.cine_ef run` first.")
    fractions = sorted({r["label_fraction"] for r in runs[0]["records"]})

    def metric(run: dict, method: str, f: float, key: str) -> float:
        return next(r[key] for r in run["records"] if r["method"] == method and r["label_fraction"] == f)

    lines = [
        "# Sunnybrook cine: area ejection fraction from frozen clip embeddings",
        "",
        "Each labelled Sunnybrook clip (one short-axis slice over the cardiac cycle) carries its area ejection",
        "fraction, `100 * (1 - ES area / ED area)` of the expert endocardium contours. Ridge probes on the frozen clip",
        "embeddings of the `cine_vjepa` encoder (bundle defaults, pretrained on the training patients' clips without",
        "labels) and of the same encoder at a random initialisation predict it for the clips of a held-out patient.",
        f"Mean +- std over {len(runs)} seeds; each seed draws its own patient split (3 training, 1 validation, 1 test",
        "patient) and its own pretraining. `pretrained - random` is the paired difference (mean, min .. max over",
        "seeds); a negative MAE difference and a positive R^2 difference favour pretraining.",
        "",
        "| label fraction | training clips | MAE pretrained | MAE random init | MAE pretrained - random | "
        "R^2 pretrained | R^2 random init | R^2 pretrained - random |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in fractions:
        mae = {m: np.array([metric(r, m, f, "mae") for r in runs]) for m in ("pretrained", "random_init")}
        r2 = {m: np.array([metric(r, m, f, "r2") for r in runs]) for m in ("pretrained", "random_init")}
        n = [metric(r, "pretrained", f, "n_labels") for r in runs]
        d_mae, d_r2 = mae["pretrained"] - mae["random_init"], r2["pretrained"] - r2["random_init"]
        lines.append(
            f"| {f:g} | {min(n)}-{max(n)} | {_cell(mae['pretrained'])} | {_cell(mae['random_init'])} | "
            f"{d_mae.mean():+.2f} ({d_mae.min():+.2f} .. {d_mae.max():+.2f}) | {_cell(r2['pretrained'])} | "
            f"{_cell(r2['random_init'])} | {d_r2.mean():+.3f} ({d_r2.min():+.3f} .. {d_r2.max():+.3f}) |"
        )
    lines += ["", "Per seed: test patient, pretraining seconds, machine:", ""]
    for r in runs:
        lines.append(f"- seed {r['seed']}: test {r['patients']['test']}, validation {r['patients']['validation']}, "
                     f"{r['pretrain_seconds']:.0f} s pretraining ({r['threads']} thread), {r['machine']['cpu']}, "
                     f"commit {r['commit'][:10]}, {r['date']}")  # fmt: skip
    lines += ["", "Commands (per seed):", "", "```bash", "python -m benchmarks.cine_ef run --seeds \"[0,1,2]\"",
              "python -m benchmarks.cine_ef report", "# which runs, for each seed:", *runs[0]["commands"], "```", ""]
    atomic_write_text(RESULTS / "README.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    fire.Fire({"run": run, "report": report})
