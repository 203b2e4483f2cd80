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
"""Evaluation outputs: provenance, atomic ``metrics.json``, a Markdown report and the label-efficiency plot."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import optional_import

from monai_jepa.utils.fileio import atomic_write, atomic_write_text
from monai_jepa.utils.module import require_package

Figure, _ = optional_import("matplotlib.figure", name="Figure")
FigureCanvasAgg, _ = optional_import("matplotlib.backends.backend_agg", name="FigureCanvasAgg")

__all__ = ["format_report", "json_safe", "plot_label_efficiency", "run_provenance", "write_report"]

METHOD_ORDER = ("lejepa", "random_init", "scratch")
_METHOD_COLORS = {"lejepa": "tab:blue", "random_init": "tab:gray", "scratch": "tab:red"}
_SECTIONS = {
    ("linear", "linear"): "Linear probe on frozen features",
    ("knn", "knn"): "kNN probe on frozen features",
    ("few_shot", "linear"): "Few-shot, linear probe",
    ("few_shot", "knn"): "Few-shot, kNN probe",
    ("fine_tune", None): "Fine-tuning end-to-end (pretrained vs from scratch, same network and budget)",
}
_LINESTYLES = {"linear": "-", "knn": "--", "few_shot": ":", "fine_tune": "-."}
_MARKERS = {"linear": "o", "knn": "s"}


def _git_commit() -> str | None:
    """The commit of the source tree holding this package (``-dirty`` when it has uncommitted changes)."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit or None


def run_provenance(command: str | None = None, device: str | torch.device | None = None) -> dict[str, Any]:
    """Where a result comes from: ``commit`` (of the package source, ``None`` outside a git checkout),
    ``command`` (default: the process command line), ``machine`` (OS, CPU count, torch version, accelerator) and
    ``date`` (UTC, ISO 8601)."""
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        machine += f", {torch.cuda.get_device_name(torch.device(device))}"
    return {
        "commit": _git_commit(),
        "command": command if command is not None else " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy / torch scalars and arrays turned into Python values and NaN / inf into ``None``."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _fmt(value: Any, std: Any = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.3f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {std:.3f}"
    return text


def _labels_cell(record: Mapping[str, Any]) -> str:
    n = record.get("n_labels")
    n_text = f" ({int(round(n))} labels)" if isinstance(n, (int, float)) else ""
    if record.get("shots") is not None:
        return f"{record['shots']}-shot{n_text}"
    if record.get("label_fraction") is not None:
        return f"{100 * record['label_fraction']:g}%{n_text}"
    return f"all{n_text}"


def _cell(record: Mapping[str, Any]) -> str:
    parts = [
        f"AUC {_fmt(record.get('auc'), record.get('auc_std'))}",
        f"acc {_fmt(record.get('acc'), record.get('acc_std'))}",
    ]
    if record.get("qwk") is not None:
        parts.append(f"QWK {_fmt(record.get('qwk'), record.get('qwk_std'))}")
    return ", ".join(parts)


def _methods(records: Sequence[Mapping[str, Any]]) -> list[str]:
    present = list(dict.fromkeys(str(r.get("method")) for r in records))
    return sorted(present, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))


def _row_key(record: Mapping[str, Any]) -> tuple:
    return (record.get("shots") or 0, record.get("label_fraction") or 0.0)


def format_report(records: Sequence[Mapping[str, Any]], title: str | None = None) -> str:
    """A Markdown report of evaluation records: one table per protocol (rows: number of labels, columns: methods,
    cells: test AUC and accuracy, mean ± standard deviation over seeds), then the cost and provenance of the run.

    Args:
        records: evaluation records (see :class:`~monai_jepa.evaluation.EvaluationSuite`).
        title: heading (default: from the records' ``dataset``).

    Returns:
        the Markdown text.
    """
    datasets = sorted({str(r.get("dataset")) for r in records if r.get("dataset") is not None})
    lines = [f"# {title or 'Evaluation: ' + (', '.join(datasets) or 'unnamed dataset')}", ""]
    if not records:
        return "\n".join([*lines, "No results.", ""])
    lines += [
        "Test-set metrics. AUC: ROC AUC (macro one-vs-rest for several classes); acc: accuracy; ± is the standard "
        "deviation over seeds / episodes. lejepa: the pretrained encoder; random_init: the same architecture at a "
        "random initialisation (what the architecture alone gives); scratch: supervised training from a random "
        "initialisation with the same network and budget as fine-tuning.",
        "",
    ]
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r.get("protocol"), r.get("probe")), []).append(r)
    order = list(_SECTIONS) + [k for k in groups if k not in _SECTIONS]
    for key in order:
        if key not in groups:
            continue
        recs = groups[key]
        methods = _methods(recs)
        lines += [f"## {_SECTIONS.get(key, ' / '.join(str(k) for k in key if k))}", ""]
        lines += ["| labels | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        rows: dict[tuple, dict[str, Mapping[str, Any]]] = {}
        for r in recs:
            rows.setdefault(_row_key(r), {})[str(r.get("method"))] = r
        for row_key in sorted(rows):
            cells = rows[row_key]
            first = next(iter(cells.values()))
            lines.append(
                f"| {_labels_cell(first)} | "
                + " | ".join(_cell(cells[m]) if m in cells else "" for m in methods)
                + " |"
            )
        if key == ("fine_tune", None):
            budgets = {(r.get("max_epochs"), r.get("max_minutes")) for r in recs}
            text = "; ".join(f"max_epochs={e}, max_minutes={m}" for e, m in sorted(budgets, key=str))
            lines += ["", f"Budget per run: {text}."]
        lines.append("")
    lines += ["## Cost and provenance", "", "| method | pretraining (s) | evaluation (s) |", "|---|---|---|"]
    for method in _methods(records):
        recs = [r for r in records if str(r.get("method")) == method]
        pre = next((r.get("pretrain_seconds") for r in recs if r.get("pretrain_seconds") is not None), None)
        extraction = {r.get("feature_seconds") for r in recs if r.get("feature_seconds") is not None}  # shared
        spent = sum(float(r.get("seconds") or 0.0) for r in recs) + sum(extraction)
        lines.append(f"| {method} | {'n/a' if pre is None else f'{pre:.0f}'} | {spent:.1f} |")
    last = records[-1]
    lines += [""] + [f"- {k}: `{last.get(k)}`" for k in ("commit", "command", "machine", "date")] + [""]
    return "\n".join(lines)


def plot_label_efficiency(
    records: Sequence[Mapping[str, Any]], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Plot test AUC against the number of training labels (log scale), one line per method and protocol
    (colour: method; line style: protocol; marker: probe), with standard deviations as error bars; saved as PNG
    (Agg canvas: no global matplotlib state is changed).

    Args:
        records: evaluation records with ``n_labels`` and ``auc``.
        path: output PNG file (written atomically).
        title: plot title.

    Returns:
        the path written.
    """
    require_package("matplotlib", "monai_jepa.evaluation.plot_label_efficiency", "plots")
    fig = Figure(figsize=(8.5, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    series: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        auc, n = r.get("auc"), r.get("n_labels")
        if isinstance(auc, (int, float)) and math.isfinite(auc) and isinstance(n, (int, float)) and n > 0:
            series.setdefault((str(r.get("method")), str(r.get("protocol")), r.get("probe")), []).append(r)
    for (method, protocol, probe), recs in sorted(series.items(), key=lambda kv: (str(kv[0]))):
        recs = sorted(recs, key=lambda r: r["n_labels"])
        x = np.array([r["n_labels"] for r in recs], dtype=float)
        y = np.array([r["auc"] for r in recs], dtype=float)
        err = np.array([r.get("auc_std") if r.get("auc_std") is not None else np.nan for r in recs], dtype=float)
        label = f"{method}, {protocol}" + (f" ({probe})" if probe and probe != protocol else "")
        ax.errorbar(
            x,
            y,
            yerr=None if np.isnan(err).all() else np.nan_to_num(err),
            label=label,
            marker=_MARKERS.get(str(probe), "^"),
            markersize=4,
            capsize=3,
            color=_METHOD_COLORS.get(method),
            linestyle=_LINESTYLES.get(protocol, "-"),
        )
    if series:
        ax.set_xscale("log")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.text(0.5, 0.5, "no AUC values", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("number of training labels")
    ax.set_ylabel("test AUC")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or "Label efficiency")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return path


def write_report(
    records: Sequence[Mapping[str, Any]], output_dir: str | os.PathLike, title: str | None = None
) -> dict[str, Path]:
    """Write ``<output_dir>/eval/metrics.json`` (the records, NaN as ``null``), ``eval/report.md`` and
    ``eval/label_efficiency.png``, each atomically (a reader never sees a partial file).

    Args:
        records: evaluation records.
        output_dir: output folder (``eval/`` is created inside).
        title: report and plot title.

    Returns:
        ``{"metrics": path, "report": path, "plot": path}``.
    """
    eval_dir = Path(output_dir) / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    safe = json_safe(list(records))
    paths = {"metrics": eval_dir / "metrics.json", "report": eval_dir / "report.md"}
    atomic_write_text(paths["metrics"], json.dumps(safe, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["report"], format_report(safe, title))
    paths["plot"] = plot_label_efficiency(safe, eval_dir / "label_efficiency.png", title)
    return paths
