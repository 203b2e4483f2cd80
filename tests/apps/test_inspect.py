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

import json
import warnings

import numpy as np
import pytest

from monai_jepa.apps.inspect import PROBLEM_CODES, format_report, inspect_path
from monai_jepa.data.dicom import load_dicom
from monai_jepa.data.errors import MissingFileError
from monai_jepa.data.io import check_datalist
from tests.data.test_io import TCIA, write_dicom, write_nifti, write_series


def _codes(report: dict) -> list[str]:
    return [p["code"] for p in report["problems"]]


def test_nifti_fields(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    path = write_nifti(tmp_path / "a.nii.gz", data, np.diag([0.5, 1.0, 2.0, 1.0]))
    r = inspect_path(path)
    assert r["kind"] == "file" and r["format"] == "nifti" and r["modality"] is None
    assert r["shape"] == [1, 4, 5, 6] and r["spatial_shape"] == [4, 5, 6] and r["channels"] == 1
    assert r["spacing"] == [0.5, 1.0, 2.0] and r["orientation"] == "RAS" and r["dtype"] == "int16"
    it = r["intensity"]
    assert (
        it["min"] == 0 and it["max"] == 119 and it["p50"] == pytest.approx(59.5) and it["mean"] == pytest.approx(59.5)
    )
    assert r["problems"] == []
    json.dumps(r)  # JSON-serialisable
    assert "no problem found" in format_report(r)


def test_nan_constant_and_unreadable_are_problems(tmp_path):
    data = np.ones((3, 3, 3), np.float32)
    data[0, 0, 0], data[1, 1, 1] = np.nan, -np.inf
    r = inspect_path(write_nifti(tmp_path / "nan.nii.gz", data))
    assert _codes(r) == ["non_finite", "constant"]  # the finite voxels are all 1
    assert "2 of 27 voxels are not finite (1 NaN, 1 inf)" in r["problems"][0]["message"]
    assert r["intensity"]["min"] == 1.0  # statistics over finite voxels
    assert "PROBLEM [non_finite]" in format_report(r)
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes((tmp_path / "nan.nii.gz").read_bytes()[:30])
    r = inspect_path(bad)
    assert _codes(r) == ["unreadable"] and r["problems"][0]["path"] == str(bad) and r["shape"] is None


def test_empty_and_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    r = inspect_path(tmp_path / "empty")
    assert r["kind"] == "folder" and _codes(r) == ["empty"] and r["num_items"] == 0
    with pytest.raises(MissingFileError):
        inspect_path(tmp_path / "nothing")


def test_dicom_series_report(tmp_path):
    folder = write_series(tmp_path / "s", num=4, gap=3.0)
    r = inspect_path(folder)
    assert r["kind"] == "dicom_series" and r["format"] == "dicom_series" and r["modality"] == "CT"
    assert r["num_files"] == 4 and r["num_frames"] == 4 and r["spatial_shape"] == [5, 6, 4]
    assert r["spacing"] == [0.8, 0.5, 3.0] and r["orientation"] == "LPS" and r["dtype"] == "int16"
    assert r["slice_gaps"] == {"min": 3.0, "max": 3.0, "median": 3.0} and r["problems"] == []
    assert r["intensity"]["min"] == 0 and r["intensity"]["max"] == 300 + 50 + 4


def test_missing_slice_and_duplicates(tmp_path):
    folder = write_series(tmp_path / "s", num=5, gap=2.0)
    files = sorted(folder.iterdir())
    middle = [f for f in files if abs(float(__import__("pydicom").dcmread(f).ImagePositionPatient[2]) - 4.0) < 1e-6][0]
    middle.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inspect reports it as a problem, without a warning
        r = inspect_path(folder)
    assert _codes(r) == ["inconsistent_spacing"] and "2.000 to 4.000 mm" in r["problems"][0]["message"]
    # the loaders (training, check) warn, naming the series (they used to load it silently)
    with pytest.warns(UserWarning, match=r"/s: slice gaps range from 2.000 to 4.000 mm \(median 2.000\): a slice may"):
        load_dicom(sorted(folder.iterdir()), source=folder)
    dup = write_series(tmp_path / "d", num=3, gap=2.0)
    write_dicom(dup / "copy.dcm", np.zeros((6, 5)), z=2.0)
    assert _codes(inspect_path(dup)) == ["duplicate_slices"]
    with pytest.warns(UserWarning, match="1 pair"):
        check_datalist([{"image": str(dup)}])


def test_export_folder_with_series_files_and_problems(tmp_path):
    write_series(tmp_path / "export" / "study" / "a", num=3, series_uid="1.1")
    write_series(tmp_path / "export" / "study" / "b", num=2, series_uid="1.2", BurnedInAnnotation="YES")
    write_nifti(tmp_path / "export" / "vol.nii.gz", np.random.rand(3, 3, 3).astype(np.float32))
    (tmp_path / "export" / "notes.txt").write_text("ignored")
    broken = tmp_path / "export" / "study" / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f")
    r = inspect_path(tmp_path / "export")
    assert r["kind"] == "folder" and r["num_items"] == 3 and r["ignored_files"] == 1
    assert r["num_files"] == 3 + 2 + 1 + 1
    kinds = sorted(item["kind"] for item in r["items"])
    assert kinds == ["dicom_series", "dicom_series", "file"]
    assert sorted(_codes(r)) == ["burned_in", "unreadable"]
    unreadable = [p for p in r["problems"] if p["code"] == "unreadable"][0]
    assert unreadable["path"] == str(broken)
    text = format_report(r)
    assert "3 image(s) / series" in text and "PROBLEM [unreadable]" in text and "2 problem(s) found." in text
    assert set(PROBLEM_CODES) >= set(_codes(r))


@pytest.mark.skipif(not TCIA.is_dir(), reason="shared TCIA data not available")
def test_real_tcia_export():
    r = inspect_path(TCIA)
    assert r["kind"] == "folder" and r["num_items"] == 8 and r["num_files"] == 197 and r["problems"] == []
    assert all(item["spacing"] == pytest.approx([0.6875, 0.6875, 6.5], abs=1e-4) for item in r["items"])


def test_npz_archive_of_several_arrays_describes_each(tmp_path):
    """A MedMNIST-style archive (images and labels per split) is described array by array, problems named."""
    path = tmp_path / "tinymnist.npz"
    bad = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    bad[1, 2, 2] = np.nan
    np.savez(path, train_images=np.zeros((4, 8, 8), np.uint8) + 7, train_labels=np.array([[0], [1], [0], [1]]),
             test_images=bad)  # fmt: skip
    report = inspect_path(path)
    assert report["kind"] == "npz" and report["num_items"] == 3
    assert [i["path"] for i in report["items"]] == [
        f"{path}[{k}]" for k in ("train_images", "train_labels", "test_images")
    ]
    assert report["items"][0]["shape"] == [1, 4, 8, 8] and report["items"][0]["intensity"]["max"] == 7
    assert [(p["code"], p["path"]) for p in report["problems"]] == [
        ("constant", f"{path}[train_images]"),
        ("non_finite", f"{path}[test_images]"),
    ]
    text = format_report(report)
    assert "3 array(s) in 1 file(s)" in text and "PROBLEM [non_finite]" in text


def test_case_folder_sequences_must_agree(tmp_path):
    """The sequences of one case folder are stacked by the loaders: a 4D file, a different shape or a different
    affine among them is a problem (inspect used to say "no problem found")."""
    rng = np.random.default_rng(0)
    vol = lambda *shape: rng.random(shape).astype(np.float32)  # noqa: E731
    case = tmp_path / "ok"
    case.mkdir()
    for name in ("t1", "t2", "flair"):
        write_nifti(case / f"{name}.nii.gz", vol(6, 7, 8))
    assert inspect_path(case)["problems"] == []
    four_d = tmp_path / "four_d"
    four_d.mkdir()
    write_nifti(four_d / "t1.nii.gz", vol(6, 7, 8))
    write_nifti(four_d / "t2.nii.gz", vol(6, 7, 8, 3))
    r = inspect_path(four_d)
    assert _codes(r) == ["shape_mismatch"] and r["problems"][0]["path"] == str(four_d / "t2.nii.gz")
    assert "3 channels (a 4D NIfTI)" in r["problems"][0]["message"]
    shape = tmp_path / "shape"
    shape.mkdir()
    write_nifti(shape / "t1.nii.gz", vol(6, 7, 8))
    write_nifti(shape / "t2.nii.gz", vol(6, 7, 9))
    r = inspect_path(shape)
    assert _codes(r) == ["shape_mismatch"] and "differ in spatial shape: 6 x 7 x 8 vs 6 x 7 x 9" in format_report(r)
    moved = tmp_path / "affine"
    moved.mkdir()
    write_nifti(moved / "t1.nii.gz", vol(6, 7, 8))
    write_nifti(moved / "t2.nii.gz", vol(6, 7, 8), np.diag([1.0, 1.0, 2.0, 1.0]))
    r = inspect_path(moved)
    assert _codes(r) == ["shape_mismatch"] and "differ in affine" in r["problems"][0]["message"]
    assert r["items"][1]["affine"][2][2] == 2.0


def test_unreadable_subfolder_is_reported(tmp_path, monkeypatch):
    """A folder that cannot be listed is a problem, not silently skipped (nor an "empty" top folder)."""
    import os

    (tmp_path / "a").mkdir()
    write_nifti(tmp_path / "a" / "t1.nii.gz", np.ones((4, 4, 4), np.float32) * np.arange(4))
    (tmp_path / "locked").mkdir()
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    r = inspect_path(tmp_path)
    assert _codes(r) == ["unreadable"] and r["problems"][0]["path"] == str(tmp_path / "locked")
    assert "folder cannot be listed (Permission denied)" in r["problems"][0]["message"]
    (tmp_path / "a" / "t1.nii.gz").unlink()
    (tmp_path / "a").rmdir()
    r = inspect_path(tmp_path)
    assert _codes(r) == ["unreadable"]  # not "empty": the folder may hold images that could not be seen
