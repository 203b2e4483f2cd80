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
"""Property-based fuzzing (hypothesis) of the readers, `check` and `anonymize` with mutated image files.

Each example takes a valid seed file (generated here, plus small real files from ``../shared/data`` when present),
mutates it (truncation, byte flips, a zeroed or garbage range) and asserts that the readers either load it or raise a
documented :class:`~monai_jepa.data.DataError`, that ``inspect`` reports instead of raising, that ``check`` and
``anonymize`` fail with a documented error and write nothing, and that nothing hangs (a deadline per example).
The number of examples is bounded so that the whole module runs in well under a minute on 2 CPU cores; failing
examples shrink to a minimal mutation. ``test_fuzz.py`` runs a fixed seeded corpus, also in a separate process.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from monai_jepa.apps.deid import anonymize  # noqa: E402
from monai_jepa.apps.inspect import PROBLEM_CODES, inspect_path  # noqa: E402
from monai_jepa.data.errors import DataError  # noqa: E402
from monai_jepa.data.io import check_datalist, load_checked  # noqa: E402
from tests.data.test_io import write_dicom, write_nifti  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
_REAL = [SHARED / "dicom_samples" / "MR_small.dcm", SHARED / "dicom_samples" / "CT_small.dcm"]
_SETTINGS = settings(
    max_examples=int(os.environ.get("MONAI_JEPA_FUZZ_EXAMPLES", "60")),
    deadline=5000,  # ms per example: a hang or a runaway decode fails the test
    derandomize=os.environ.get("MONAI_JEPA_FUZZ_RANDOM", "") != "1",  # fixed examples unless asked (CI must not flake)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no example database written into the checkout
)


def _seeds(folder: Path) -> dict[str, bytes]:
    """Valid files to mutate, by suffix: generated NIfTI / DICOM / PNG / npz, and real DICOM when available."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    seeds = {
        ".nii.gz": write_nifti(folder / "v.nii.gz", rng.random((6, 7, 5), dtype=np.float32)).read_bytes(),
        ".nii": write_nifti(folder / "v.nii", rng.random((6, 7, 5), dtype=np.float32)).read_bytes(),
    }
    write_dicom(folder / "s.dcm", (rng.random((8, 9)) * 1000).astype(np.uint16))
    seeds[".dcm"] = (folder / "s.dcm").read_bytes()
    buf = io.BytesIO()
    Image.fromarray((rng.random((10, 12)) * 255).astype(np.uint8)).save(buf, format="PNG")
    seeds[".png"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez(buf, train_images=rng.integers(0, 255, (3, 8, 8), dtype=np.uint8))
    seeds[".npz"] = buf.getvalue()
    for k, path in enumerate(p for p in _REAL if p.is_file()):
        seeds[f"real{k}.dcm"] = path.read_bytes()
    return seeds


@st.composite
def _mutations(draw, size: int) -> list[tuple[str, int, int, int]]:
    """Up to 3 edits of a file of ``size`` bytes: (kind, position, length, byte)."""
    kinds = st.sampled_from(["truncate", "flip", "zero", "garbage"])
    edit = st.tuples(kinds, st.integers(0, max(size - 1, 0)), st.integers(1, 64), st.integers(0, 255))
    return draw(st.lists(edit, min_size=1, max_size=3))


def _mutate(data: bytes, edits: list[tuple[str, int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, pos, length, byte in edits:
        pos = min(pos, max(len(out) - 1, 0))
        if kind == "truncate":
            del out[pos:]
        elif kind == "flip":
            out[pos : pos + 1] = bytes([out[pos] ^ (byte or 1)]) if out else b""
        elif kind == "zero":
            out[pos : pos + length] = bytes(len(out[pos : pos + length]))
        else:
            out[pos:pos] = bytes((byte + i * 37) % 256 for i in range(length))
    return bytes(out)


@functools.lru_cache(maxsize=1)
def _seed_files() -> dict[str, bytes]:
    return _seeds(Path(tempfile.mkdtemp(prefix="monai_jepa_fuzz_seeds_")))


def _suffix(name: str) -> str:
    return ".dcm" if name.startswith("real") else name


@_SETTINGS
@given(data=st.data())
def test_readers_load_or_raise_a_documented_error(tmp_path, data):
    seeds = _seed_files()
    name = data.draw(st.sampled_from(sorted(seeds)))
    mutated = _mutate(seeds[name], data.draw(_mutations(len(seeds[name]))))
    path = tmp_path / f"fuzz{_suffix(name)}"
    path.write_bytes(mutated)
    try:
        arr, meta = load_checked(path, check_finite=False)
    except DataError as e:
        assert str(path) in str(e) or e.path is not None  # the error names the file
    else:
        assert arr.ndim >= 2 and arr.size > 0 and "filename_or_obj" in meta
    report = inspect_path(path)  # never raises for problems in the data: it reports them
    assert all(p["code"] in PROBLEM_CODES for p in report["problems"])
    try:
        check_datalist([{"image": str(path)}])
    except DataError:
        pass


@_SETTINGS
@given(data=st.data())
def test_anonymize_fails_cleanly_and_writes_nothing(tmp_path, data):
    seeds = _seed_files()
    name = data.draw(st.sampled_from(sorted(n for n in seeds if _suffix(n) == ".dcm")))
    mutated = _mutate(seeds[name], data.draw(_mutations(len(seeds[name]))))
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    src, dst = case / "in", case / "out"
    src.mkdir()
    (src / "a.dcm").write_bytes(mutated)
    (src / "b.dcm").write_bytes(seeds[name])  # a good file beside it: a failure must not leave it written either
    try:
        summary = anonymize(src, dst, salt="fuzz", allow_burned_in=True)
    except DataError as e:
        assert "a.dcm" in str(e)  # the error names the bad file
        assert not dst.exists() or not any(dst.rglob("*"))  # nothing half-written
        assert [p.name for p in case.iterdir()] == ["in"]  # no staging folder left beside dst
    else:
        assert len(summary["written"]) == 2 and all(Path(p).is_file() for p in summary["written"])
    finally:
        shutil.rmtree(case)
