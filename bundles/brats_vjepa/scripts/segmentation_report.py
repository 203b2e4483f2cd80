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
"""Records, ``metrics.json`` and ``report.md`` of the segmentation protocol of ``configs/evaluate.json``.

The protocol itself is :func:`monai_jepa.evaluation.segmentation_label_sweep`; this module only labels its records
(dataset, protocol, provenance) and writes them as the classification protocols' outputs are written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_jepa.evaluation.report import json_safe, run_provenance
from monai_jepa.utils.fileio import atomic_write_text

__all__ = ["format_segmentation_report", "write_segmentation_report"]


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_segmentation_report(records: Sequence[Mapping[str, Any]], title: str | None = None) -> str:
    """A Markdown report: mean foreground Dice and HD95 per method and number of labelled volumes, the same per
    class, then the budget and provenance.

    Args:
        records: records of :func:`write_segmentation_report`.
        title: heading (default from the records' ``dataset``).

    Returns:
        the Markdown text.
    """
    dataset = records[0].get("dataset", "unnamed dataset") if records else "unnamed dataset"
    lines = [f"# {title or f'Segmentation evaluation: {dataset}'}", ""]
    if not records:
        return "\n".join([*lines, "No results.", ""])
    methods = list(dict.fromkeys(str(r["method"]) for r in records))
    counts = sorted({int(r["num_labelled"]) for r in records})
    by_key = {(str(r["method"]), int(r["num_labelled"])): r for r in records}
    unit = "mm" if records[0].get("spacing") else "voxels"
    lines += [
        f"Test split ({records[0].get('num_cases')} volume(s)). Dice: mean over foreground classes and volumes; "
        f"HD95: 95th-percentile Hausdorff distance ({unit}), mean over the volumes where it is defined. Each method "
        "is trained with the same number of optimiser steps for a given number of labelled volumes.",
        "",
        "| labelled volumes | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for n in counts:
        cells = [by_key.get((m, n)) for m in methods]
        lines.append(f"| {n} | " + " | ".join(
            "" if r is None else f"Dice {_num(r['dice'])}, HD95 {_num(r['hd95'], 2)}" for r in cells
        ) + " |")  # fmt: skip
    classes = list(records[0]["dice_per_class"])
    lines += ["", "## Per class (Dice / HD95)", "", "| method | labelled | " + " | ".join(classes) + " |"]
    lines.append("|---|---|" + "---|" * len(classes))
    for r in records:
        per = [f"{_num(r['dice_per_class'][c])} / {_num(r['hd95_per_class'][c], 2)}" for c in classes]
        lines.append(f"| {r['method']} | {r['num_labelled']} | " + " | ".join(per) + " |")
    lines += ["", "## Cost and provenance", "", "| method | labelled | steps | training (s) |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['num_labelled']} | {r['steps']} | {r['train_seconds']:.1f} |" for r in records]
    last = records[-1]
    lines += [""] + [f"- {k}: `{last.get(k)}`" for k in ("pretrain_seconds", "commit", "command", "machine", "date")]
    return "\n".join([*lines, ""])


def write_segmentation_report(
    records: Sequence[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    dataset_name: str,
    spacing: Sequence[float] | None = None,
    pretrain_seconds: float | None = None,
    command: str | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Path]:
    """Label the records of :func:`~monai_jepa.evaluation.segmentation_label_sweep` and write
    ``<output_dir>/eval/metrics.json`` and ``eval/report.md`` (each atomically).

    Args:
        records: the sweep's records.
        output_dir: output folder (``eval/`` is created inside).
        dataset_name: stored as ``dataset`` in every record.
        spacing: voxel spacing the HD95 was computed with (None: voxels).
        pretrain_seconds: wall time of the pretraining, when known.
        command: command stored in the records (default: the process command line).
        device: device of the run (named in ``machine``).

    Returns:
        ``{"metrics": path, "report": path}``.

    Example::

        write_segmentation_report(segmentation_label_sweep(...), "outputs", "demo_brats")
    """
    provenance = run_provenance(command, device)
    extra = {"spacing": None if spacing is None else list(spacing), "pretrain_seconds": pretrain_seconds}
    out = [{"dataset": dataset_name, "protocol": "segmentation", **r, **extra, **provenance} for r in records]
    safe = json_safe(out)
    eval_dir = Path(output_dir) / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": eval_dir / "metrics.json", "report": eval_dir / "report.md"}
    atomic_write_text(paths["metrics"], json.dumps(safe, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["report"], format_segmentation_report(safe))
    return paths
