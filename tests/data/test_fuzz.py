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
"""Seeded corruption of real and synthetic images: the loaders raise only DataError, never hang, never crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_jepa.apps.inspect import inspect_path
from monai_jepa.data.errors import DataError
from monai_jepa.data.io import load_checked
from tests.data.test_io import DATA, write_dicom, write_nifti

REPO = Path(__file__).resolve().parents[2]
CASE_SECONDS = 10
MUTATIONS = ("flip", "truncate", "zero")


def _sources(folder: Path) -> list[Path]:
    """Small synthetic files of every format, plus a few real ones when the shared data is present."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(6, 7, 5)).astype(np.float32)
    files = [
        write_nifti(folder / "syn.nii", vol, np.diag([0.7, 0.8, 2.0, 1.0])),
        write_nifti(folder / "syn.nii.gz", vol),
        write_dicom(folder / "syn.dcm", rng.integers(-1000, 1000, size=(8, 6))),
        folder / "syn.png",
        folder / "syn.npz",
    ]
    Image.fromarray(rng.integers(0, 255, size=(9, 11, 3), dtype=np.uint8)).save(files[3])
    np.savez(files[4], image=vol)
    for real in (
        DATA / "dicom_samples" / "CT_small.dcm",
        DATA / "dicom_samples" / "MR_small.dcm",
        DATA / "dicom_samples" / "examples_ybr_color.dcm",
        DATA / "msd_task04_hippocampus" / "imagesTr" / "hippocampus_001.nii.gz",
    ):
        if real.is_file():
            files.append(real)
    return files


def _mutate(raw: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """Flip bytes, truncate, or zero a block; half of the edits hit the first KiB, where the headers are."""
    data = bytearray(raw)
    n = len(data)

    def offset() -> int:
        return int(rng.integers(0, min(n, 1024))) if rng.random() < 0.5 else int(rng.integers(0, n))

    if kind == "flip":
        for _ in range(int(rng.integers(1, 17))):
            data[offset()] ^= int(rng.integers(1, 256))
    elif kind == "truncate":
        data = data[: int(rng.integers(0, n))]
    else:
        start = offset()
        length = int(rng.integers(4, 513))
        data[start : start + length] = bytes(len(data[start : start + length]))
    return bytes(data)


def _cases(tmp_path: Path, per_kind: int) -> list[Path]:
    rng = np.random.default_rng(20240229)
    out = tmp_path / "fuzzed"
    out.mkdir()
    cases = []
    for i, src in enumerate(_sources(tmp_path / "sources")):
        raw = src.read_bytes()
        suffix = "".join(src.suffixes[-2:]) if src.name.endswith(".nii.gz") else src.suffix
        for kind in MUTATIONS:
            for j in range(per_kind):
                path = out / f"{i:02d}_{src.name.split('.')[0]}_{kind}_{j}{suffix}"
                path.write_bytes(_mutate(raw, kind, rng))
                cases.append(path)
    return cases


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="per-case alarm needs POSIX signals")
def test_corrupted_files_raise_only_data_errors(tmp_path):
    cases = _cases(tmp_path, per_kind=8)
    previous = signal.signal(signal.SIGALRM, _alarm)
    outcomes = {"ok": 0, "data_error": 0}
    failures = []
    try:
        for path in cases:
            signal.alarm(CASE_SECONDS)
            try:
                try:
                    load_checked(path)
                    outcomes["ok"] += 1
                except DataError:
                    outcomes["data_error"] += 1
                report = inspect_path(path)  # reports problems, never raises on a bad file
                assert isinstance(report["problems"], list)
            except _Hang:
                failures.append(f"{path.name}: still running after {CASE_SECONDS} s")
            except Exception:  # noqa: BLE001 - anything else is a bug
                failures.append(f"{path.name}:\n{traceback.format_exc()}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not failures, "\n".join(failures)
    assert outcomes["data_error"] > len(cases) // 3  # the corruption does reach the decoders


def test_corrupted_files_never_crash_the_process(tmp_path):
    """A separate process reads a handful of corrupted files: it must exit normally (no segfault, no hang)."""
    cases = _cases(tmp_path, per_kind=1)
    script = (
        "import sys\n"
        "from monai_jepa.data.errors import DataError\n"
        "from monai_jepa.apps.inspect import inspect_path\n"
        "from monai_jepa.data.io import load_checked\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        load_checked(p)\n"
        "    except DataError:\n"
        "        pass\n"
        "    inspect_path(p)\n"
        "print('done', len(sys.argv) - 1)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, cases)], capture_output=True, text=True, timeout=180, env=env, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith(f"done {len(cases)}")
