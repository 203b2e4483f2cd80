# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0; see LICENSE.
"""Provenance and output helpers shared by the benchmarks."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from monai_jepa.utils.fileio import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"

__all__ = ["provenance", "run_logged", "write_results", "median"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _command() -> str:
    """The command line as typed (``python -m benchmarks.<name> ...`` for module runs)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None and spec.name else ["python", sys.argv[0]]
    return " ".join(shlex.quote(a) for a in head + sys.argv[1:])


def provenance() -> dict:
    """Command, commit, machine and date of this run."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=root, text=True).strip()
        dirty = bool(
            subprocess.check_output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, text=True)
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    machine = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    return {
        "command": _command(),
        "commit": commit + ("-dirty" if dirty else ""),
        "machine": machine,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def run_logged(cmd: list[str], log_path: Path, env: dict | None = None) -> float:
    """Run ``cmd`` from the repository root with stdout and stderr in ``log_path``; raise on failure.

    Returns:
        the wall-clock seconds the command took.
    """
    import time

    start = time.time()
    with open(log_path, "w") as log:
        subprocess.run(cmd, cwd=RESULTS.parents[1], env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.time() - start


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def write_results(name: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (with the provenance block appended)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    prov = payload.setdefault("provenance", provenance())
    md = markdown.rstrip() + "\n\n## Provenance\n\n"
    md += f"- command: `{prov['command']}`\n- commit: `{prov['commit']}`\n- date: {prov['date']}\n"
    md += "- machine: " + ", ".join(f"{k}={v}" for k, v in prov["machine"].items()) + "\n"
    jpath, mpath = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    for path, text in ((jpath, json.dumps(payload, indent=4) + "\n"), (mpath, md)):
        atomic_write_text(path, text)
    return jpath, mpath
