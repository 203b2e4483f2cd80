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
"""The ``cxr_lejepa`` bundle on PneumoniaMNIST, several pretraining seeds at a fixed wall-clock budget.

For every seed ``s``: ``python -m monai.bundle run training`` with the bundle's default configs for ``--minutes`` of
wall-clock time (the learning-rate cosine ends with the budget), then ``run evaluating`` with the label-fraction
linear probe, kNN, few-shot episodes, fine-tuning against supervised training from scratch (same network, same
budget) and the same probes on the network at its random initialisation. The random-init twin and the label subsets
are seeded by ``s`` too (evaluation seeds ``s, s + 10, s + 20``), so the spread over seeds covers initialisation,
pretraining and label sampling.

    python -m benchmarks.pneumoniamnist run --seeds "[0,1,2]" --minutes 15
    python -m benchmarks.pneumoniamnist report

Outputs in ``benchmarks/results/pneumoniamnist/``: ``seed_<s>/`` (the evaluation's metrics.json, report.md,
label_efficiency.png, the pretraining log's iteration lines, commands.json) and, from ``report``, ``summary.md``,
``summary.json`` and ``label_efficiency_seeds.png`` (mean and spread over seeds).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import fire
import numpy as np

from benchmarks._common import provenance, run_logged

ROOT = Path(__file__).resolve().parents[1]
DATA = os.environ.get("DATA", str(ROOT.parent / "shared/data/pneumoniamnist/pneumoniamnist.npz"))
RESULTS = ROOT / "benchmarks/results/pneumoniamnist"
FRACTIONS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
FINETUNE_FRACTIONS = (0.01, 0.1)
TRAIN_CFG = "bundles/cxr_lejepa/configs/train.json"
EVAL_CFG = f"['{TRAIN_CFG}','bundles/cxr_lejepa/configs/evaluate.json']"


def _list(values) -> str:
    return str(list(values)).replace(" ", "")


def run_seed(seed: int, minutes: float = 15.0, work: str = "/tmp/cxr_pneumoniamnist", overrides: str = "") -> Path:
    """Pretrain and evaluate one seed; copy its outputs to ``RESULTS/seed_<seed>``."""
    out_dir = Path(work) / f"seed_{seed}"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    extra = shlex.split(overrides)
    common = ["--dataset_dir", DATA, "--output_dir", str(out_dir), "--seed", str(seed), *extra]
    train = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", TRAIN_CFG, *common,
             "--max_epochs", "10000", "--time_limit_minutes", str(minutes)]  # fmt: skip
    evaluate = [sys.executable, "-m", "monai.bundle", "run", "evaluating", "--config_file", EVAL_CFG, *common,
                "--eval_label_fractions", _list(FRACTIONS), "--eval_seeds", _list([seed, seed + 10, seed + 20]),
                "--eval_finetune_fractions", _list(FINETUNE_FRACTIONS)]  # fmt: skip
    pretrain_s = int(round(run_logged(train, out_dir / "pretrain_log_full.txt")))
    evaluate += ["--eval_pretrain_seconds", str(pretrain_s)]
    run_logged(evaluate, out_dir / "eval_log.txt")
    dest = RESULTS / f"seed_{seed}"
    tmp = RESULTS / f".seed_{seed}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in ("metrics.json", "report.md", "label_efficiency.png"):
        shutil.copy(out_dir / "eval" / name, tmp / name)
    keep = [
        line
        for line in (out_dir / "pretrain_log_full.txt").read_text().splitlines()
        if "Step settings probe" in line or "Time limit" in line or "Epoch[" in line or "/10000, Iter: " in line
    ]
    (tmp / "pretrain_log.txt").write_text("\n".join(keep) + "\n")
    meta = {
        "seed": seed,
        "minutes": minutes,
        "pretrain_seconds": pretrain_s,
        **{k: v for k, v in provenance().items() if k != "command"},
        "commands": [shlex.join(train), shlex.join(evaluate)],
    }
    (tmp / "commands.json").write_text(json.dumps(meta, indent=4) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    return dest


def run(seeds=(0, 1, 2), minutes: float = 15.0, work: str = "/tmp/cxr_pneumoniamnist", overrides: str = "") -> None:
    """Run :func:`run_seed` for every seed, one after the other (each gets the whole machine)."""
    for seed in seeds:
        print(f"seed {seed}: {run_seed(int(seed), minutes, work, overrides)}", flush=True)


def _seed_table() -> dict[int, dict[str, float]]:
    table: dict[int, dict[str, float]] = {}
    for folder in sorted(RESULTS.glob("seed_*")):
        seed = int(folder.name.split("_")[1])
        cells: dict[str, float] = {}
        for r in json.loads((folder / "metrics.json").read_text()):
            frac, method, proto = r.get("label_fraction"), r["method"], r["protocol"]
            if proto == "linear" and frac is not None:
                cells[f"{method}/linear@{frac:g}"] = r["auc"]
                if frac == 1.0:
                    cells[f"{method}/linear_acc@1"] = r["acc"]
            elif proto == "fine_tune" and frac is not None:
                cells[f"{method}/fine_tune@{frac:g}"] = r["auc"]
            elif proto == "few_shot" and r.get("probe") == "linear":
                cells[f"{method}/few_shot@{r['shots']}"] = r["auc"]
            elif proto == "knn" and frac == 1.0:
                cells[f"{method}/knn"] = r["auc"]
        cells["pretrain_seconds"] = json.loads((folder / "commands.json").read_text())["pretrain_seconds"]
        cells["pretrain_iterations"] = _iterations(folder / "pretrain_log.txt")
        table[seed] = cells
    return table


def _iterations(log: Path) -> int:
    """Iterations reached by the pretraining, from its last ``Epoch: e/E, Iter: i/n`` line (0 when none)."""
    hits = re.findall(r"Epoch: (\d+)/\d+, Iter: (\d+)/(\d+)", log.read_text())
    if not hits:
        return 0
    epoch, it, per_epoch = (int(v) for v in hits[-1])
    return (epoch - 1) * per_epoch + it


def _stat(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"


def report() -> str:
    """Mean ± std over seeds and paired differences; writes summary.md / summary.json / label_efficiency_seeds.png."""
    table = _seed_table()
    if not table:
        raise FileNotFoundError(f"no seed_* folder under '{RESULTS}': run `run` first.")
    seeds = sorted(table)

    def col(key: str) -> list[float]:
        return [table[s][key] for s in seeds if key in table[s]]

    lines = [
        f"Seeds: {seeds}; pretraining wall-clock seconds: {col('pretrain_seconds')}; iterations reached (last "
        f"logged): {col('pretrain_iterations')}.",
        "",
    ]
    lines += ["| labels | LeJEPA linear probe | random-init linear probe | paired difference (min, max) |",
              "|---|---|---|---|"]  # fmt: skip
    for f in FRACTIONS:
        a, b = col(f"lejepa/linear@{f:g}"), col(f"random_init/linear@{f:g}")
        d = np.asarray(a) - np.asarray(b)
        lines.append(f"| {f:.0%} | {_stat(a)} | {_stat(b)} | {d.mean():+.3f} ({d.min():+.3f}, {d.max():+.3f}) |")
    acc = col("lejepa/linear_acc@1")
    lines += ["", f"Linear probe at 100% labels: ACC {_stat(acc)}, AUC {_stat(col('lejepa/linear@1'))}.", ""]
    lines += ["| labels | LeJEPA fine-tuned | scratch | paired difference |", "|---|---|---|---|"]
    for f in FINETUNE_FRACTIONS:
        a, b = col(f"lejepa/fine_tune@{f:g}"), col(f"scratch/fine_tune@{f:g}")
        if a and b:
            lines.append(f"| {f:.0%} | {_stat(a)} | {_stat(b)} | {np.mean(np.asarray(a) - np.asarray(b)):+.3f} |")
    shots = sorted({int(k.split("@")[1]) for s in seeds for k in table[s] if "/few_shot@" in k})
    if shots:
        lines += ["", "| shots per class | LeJEPA | random init |", "|---|---|---|"]
        for k in shots:
            lines.append(f"| {k} | {_stat(col(f'lejepa/few_shot@{k}'))} | {_stat(col(f'random_init/few_shot@{k}'))} |")
    text = "\n".join(lines)
    (RESULTS / "summary.md").write_text(
        "# PneumoniaMNIST: mean ± std over pretraining seeds (test AUC)\n\n" + text + "\n"
    )
    (RESULTS / "summary.json").write_text(json.dumps({str(s): table[s] for s in seeds}, indent=4) + "\n")
    _plot(table, seeds)
    print(text)
    return text


def _plot(table: dict[int, dict[str, float]], seeds: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.asarray(FRACTIONS) * 100
    for method, label in (("lejepa", "LeJEPA linear probe"), ("random_init", "random-init linear probe")):
        vals = np.asarray([[table[s][f"{method}/linear@{f:g}"] for f in FRACTIONS] for s in seeds])
        mean, std = vals.mean(0), vals.std(0, ddof=1) if len(seeds) > 1 else np.zeros(len(FRACTIONS))
        ax.plot(x, mean, marker="o", label=f"{label} ({len(seeds)} seeds)")
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    for method, label, marker in (("lejepa", "LeJEPA fine-tuned", "s"), ("scratch", "supervised from scratch", "^")):
        pts = [(f * 100, np.mean([table[s][f"{method}/fine_tune@{f:g}"] for s in seeds])) for f in FINETUNE_FRACTIONS
               if all(f"{method}/fine_tune@{f:g}" in table[s] for s in seeds)]  # fmt: skip
        if pts:
            ax.plot(*zip(*pts), linestyle="--", marker=marker, label=label)
    ax.axhline(0.944, color="grey", linewidth=0.8, linestyle=":", label="MedMNIST v2 ResNet-18 (28), all labels")
    ax.set_xscale("log")
    ax.set_xlabel("labelled training images (%)")
    ax.set_ylabel("test AUC")
    ax.set_title("PneumoniaMNIST, cxr_lejepa defaults")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "label_efficiency_seeds.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    fire.Fire({"run": run, "run_seed": run_seed, "report": report})
