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

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from monai_jepa.cli import main
from tests.data.test_io import write_nifti, write_series

REPO = Path(__file__).resolve().parents[1]
HAS_DEID = importlib.util.find_spec("monai_jepa.apps.deid") is not None
HAS_DATALIST = importlib.util.find_spec("monai_jepa.data.datalist") is not None


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "command, expected",
    [
        ("inspect", ["Usage: python -m monai_jepa inspect PATH", "--json", "orientation code"]),
        ("anonymize", ["Usage: python -m monai_jepa anonymize SRC DST", "--salt", "--date_shift_days", "--skip_bad"]),
        ("datalist", ["Usage: python -m monai_jepa datalist DATASET ROOT", "--out", "--list"]),
        ("check", ["Usage: python -m monai_jepa check DATALIST.json", "--skip_bad", "--report"]),
        ("embedding_map", ["Usage: python -m monai_jepa embedding_map", "--colour_by", "--colours", "umap"]),
        ("release_weights", ["Usage: python -m monai_jepa release_weights", "--drop_prefixes", "--max_mb"]),
    ],
)
def test_help_of_each_command(capsys, command, expected):
    code, out, _ = _run(capsys, command, "--help")
    assert code == 0
    for text in expected:
        assert text in out, f"{text!r} missing from `{command} --help`"


def test_top_level_help_lists_commands(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0 and all(
        c in out for c in ("inspect", "anonymize", "datalist", "check", "embedding_map", "release_weights")
    )


def test_embedding_map_from_an_embeddings_csv(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    rows = ["id,label," + ",".join(f"f{i}" for i in range(4))]
    rows += [f"case_{i},{i % 2}," + ",".join(f"{v:.4f}" for v in rng.normal(i % 2, 1, 4)) for i in range(10)]
    (tmp_path / "embeddings.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "sites.csv").write_text("id,site\n" + "".join(f"case_{i},{'AB'[i < 5]}\n" for i in range(10)))
    code, out, _ = _run(capsys, "embedding_map", tmp_path / "embeddings.csv")
    assert code == 0 and "10 points, pca" in out
    assert (tmp_path / "embedding_map_pca.png").read_bytes()[:4] == b"\x89PNG"
    code, out, _ = _run(capsys, "embedding_map", tmp_path / "embeddings.csv", "--colour_by", "site", "--colours",
                        tmp_path / "sites.csv", "--out", tmp_path / "by_site.png")  # fmt: skip
    assert code == 0 and (tmp_path / "by_site.png").is_file()
    (tmp_path / "few.csv").write_text("id,site\ncase_0,A\n")
    code, _, err = _run(capsys, "embedding_map", tmp_path / "embeddings.csv", "--colour_by", "site", "--colours",
                        tmp_path / "few.csv", "--out", tmp_path / "bad.png")  # fmt: skip
    assert code == 2 and "few.csv" in err and "9 id(s)" in err and not (tmp_path / "bad.png").exists()
    code, _, err = _run(capsys, "embedding_map", tmp_path / "embeddings.csv", "--colour_by", "scanner")
    assert code == 2 and "no column 'scanner'" in err


def test_inspect_exit_codes_and_json(capsys, tmp_path):
    good = write_nifti(tmp_path / "good.nii.gz", np.arange(27, dtype=np.float32).reshape(3, 3, 3))
    code, out, _ = _run(capsys, "inspect", good)
    assert code == 0 and "nifti" in out and "orientation RAS" in out and "no problem found." in out
    code, out, _ = _run(capsys, "inspect", good, "--json")
    assert code == 0 and json.loads(out)["shape"] == [1, 3, 3, 3]
    nan = np.ones((3, 3, 3), np.float32)
    nan[0, 0, 0] = np.nan
    code, out, _ = _run(capsys, "inspect", write_nifti(tmp_path / "nan.nii.gz", nan))
    assert code == 1 and "PROBLEM [non_finite]" in out
    code, out, err = _run(capsys, "inspect", tmp_path / "missing.nii.gz")
    assert code == 2 and out == "" and err.strip().startswith("error:") and len(err.strip().splitlines()) == 1


def test_subprocess_entry_point_error_is_one_line_without_traceback():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "monai_jepa", "datalist"], capture_output=True, text=True, timeout=120, env=env, cwd=REPO
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: give DATASET and ROOT (python -m monai_jepa datalist DATASET ROOT --out FILE), or --list."
    ]
    help_proc = subprocess.run(
        [sys.executable, "-m", "monai_jepa", "inspect", "--help"], capture_output=True, text=True, timeout=120, env=env
    )
    assert help_proc.returncode == 0 and "monai_jepa inspect PATH" in help_proc.stdout


def test_check_command(capsys, tmp_path):
    img = write_nifti(tmp_path / "img.nii.gz", np.zeros((3, 3, 3), np.float32))
    datalist = {"root": str(tmp_path), "training": [{"image": "img.nii.gz"}, {"image": "gone.nii.gz"}]}
    path = tmp_path / "dl.json"
    path.write_text(json.dumps(datalist))
    code, _, err = _run(capsys, "check", path)
    assert code == 2 and "gone.nii.gz" in err
    code, out, _ = _run(capsys, "check", path, "--skip_bad", "--report", tmp_path / "skipped.csv")
    assert code == 1 and "1 good item(s), 1 skipped" in out
    assert [r["error"] for r in csv.DictReader((tmp_path / "skipped.csv").open())] == ["MissingFileError"]
    code, out, _ = _run(capsys, "check", path, "--skip_bad", "--out", tmp_path / "clean.json")
    assert code == 1 and f"wrote {tmp_path / 'clean.json'}" in out
    assert json.loads((tmp_path / "clean.json").read_text()) == {**datalist, "training": [{"image": "img.nii.gz"}]}
    assert img.is_file()


@pytest.mark.skipif(not HAS_DATALIST, reason="monai_jepa.data.datalist is not available")
def test_datalist_command_on_dicom_series(capsys, tmp_path):
    for patient in ("A", "B", "C"):
        write_series(tmp_path / "export" / patient / "ct", num=3, series_uid=f"1.2.{ord(patient)}", patient_id=patient)
    out_json = tmp_path / "series.json"
    code, out, _ = _run(capsys, "datalist", "dicom_series", tmp_path / "export", "--out", out_json, "--seed", "1")
    assert code == 0 and f"wrote {out_json}" in out
    datalist = json.loads(out_json.read_text())
    items = [i for split in ("training", "validation", "test") for i in datalist[split]]
    assert sorted(i["patient_id"] for i in items) == ["A", "B", "C"] and all(i["num_files"] == 3 for i in items)
    code, out, _ = _run(capsys, "check", out_json, "--expected_dims", "3")
    assert code == 0 and "3 good item(s), 0 skipped" in out
    code, out, _ = _run(capsys, "datalist", "--list")
    assert code == 0 and "dicom_series" in out.split()
    code, _, err = _run(capsys, "datalist", "no_such_layout", tmp_path)
    assert code == 2 and err.startswith("error:")


@pytest.mark.skipif(not HAS_DEID, reason="monai_jepa.apps.deid is not available")
def test_anonymize_command(capsys, tmp_path):
    write_series(tmp_path / "raw" / "ct", num=2, patient_id="MRN-12345")
    code, out, _ = _run(
        capsys, "anonymize", tmp_path / "raw", tmp_path / "anon", "--salt", "s3cret", "--report_csv", tmp_path / "r.csv"
    )
    assert code == 0 and "de-identified 2 file(s)" in out
    outputs = sorted((tmp_path / "anon").rglob("*.dcm"))
    assert len(outputs) == 2
    ds = pydicom.dcmread(outputs[0])
    assert ds.PatientID != "MRN-12345" and str(ds.PatientName) != "Doe^Jane"
    assert (tmp_path / "r.csv").is_file()
    code, _, err = _run(capsys, "anonymize", tmp_path / "raw", tmp_path / "anon", "--salt", "s3cret")
    assert code == 2 and "exists" in err  # no silent overwrite
