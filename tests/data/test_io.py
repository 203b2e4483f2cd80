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
import gzip
import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from monai_jepa.data.errors import (
    DataError,
    EmptyDatasetError,
    InvalidImageError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)
from monai_jepa.data.io import check_datalist, detect_format, load_checked

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SAMPLES = DATA / "dicom_samples"
TCIA = DATA / "tcia_brain_tumor_progression"


# ------------------------------------------------------------------------------------------- synthetic file helpers


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    z: float = 0.0,
    series_uid: str | None = None,
    instance: int = 1,
    spacing: tuple[float, float] = (0.5, 0.8),
    photometric: str = "MONOCHROME2",
    patient_id: str = "P1",
    **tags,
) -> Path:
    """A minimal single-frame CT DICOM file: rows x columns int16 pixels, stored = HU + 1024."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.PatientName = "CT", patient_id, "Doe^Jane"
    ds.StudyInstanceUID = tags.pop("study_uid", "1.2.3.4")
    ds.SeriesInstanceUID = series_uid or "1.2.3.4.5"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [10.0, 20.0, float(z)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = 2.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (pixels.astype(np.int16) + 1024).astype(np.int16).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pydicom.dcmwrite(path, ds, enforce_file_format=True, implicit_vr=False, little_endian=True)
        except TypeError:  # pydicom 2.x
            ds.is_little_endian, ds.is_implicit_VR = True, False
            ds.save_as(path, write_like_original=False)
    return path


def write_series(
    folder: Path, num: int = 4, shape=(6, 5), gap: float = 2.0, series_uid="1.2.3.4.5", reverse_instances=True, **kw
) -> Path:
    """A series of ``num`` slices whose HU value at (row, col) is 100 * slice + 10 * row + col, files unordered.

    With ``reverse_instances``, InstanceNumber runs against the slice position (order must come from positions).
    """
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    for k in range(num):
        write_dicom(
            folder / f"slice_{(k * 7) % num:03d}.dcm",
            100 * k + 10 * rows + cols,
            z=k * gap,
            series_uid=series_uid,
            instance=num - k if reverse_instances else k + 1,
            **kw,
        )
    return folder


# ----------------------------------------------------------------------------------------------------- NIfTI


def test_nifti_loaded_channel_first_with_geometry(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    affine = np.diag([0.5, 2.0, 3.0, 1.0])
    arr, meta = load_checked(write_nifti(tmp_path / "a.nii.gz", data, affine), expected_dims=3, expected_channels=1)
    assert arr.shape == (1, 4, 5, 6) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr[0], data)
    assert meta["spacing"] == (0.5, 2.0, 3.0) and meta["format"] == "nifti" and meta["dtype"] == "float32"
    np.testing.assert_allclose(meta["affine"], affine)


@pytest.mark.parametrize("name", ["trunc.nii", "trunc.nii.gz"])
def test_truncated_nifti_names_the_file(tmp_path, name):
    path = write_nifti(tmp_path / name, np.random.rand(16, 16, 16).astype(np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UnreadableFileError, match=name.replace(".", r"\.")) as e:
        load_checked(path)
    assert e.value.path == str(path)


def test_nifti_header_claiming_huge_volume_is_rejected_before_allocation(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))  # 1e14 bytes declared in a ~100-byte gzip file
    hdr.set_data_dtype(np.float32)
    hdr["vox_offset"] = 352
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 68))
    with pytest.raises(UnreadableFileError, match="corrupt header"):
        load_checked(path)


def test_nan_voxels_are_counted(tmp_path):
    data = np.ones((4, 4, 4), np.float32)
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = np.inf
    path = write_nifti(tmp_path / "nan.nii.gz", data)
    with pytest.raises(InvalidImageError, match="4 of 64 voxels are NaN or infinite"):
        load_checked(path)
    arr, _ = load_checked(path, check_finite=False)
    assert np.isnan(arr).sum() == 3


def test_wrong_dims_and_channels(tmp_path):
    path = write_nifti(tmp_path / "v.nii.gz", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(InvalidImageError, match="expected a 2D image, got 3D"):
        load_checked(path, expected_dims=2)
    with pytest.raises(InvalidImageError, match="expected 3 channel"):
        load_checked(path, expected_channels=3)
    assert load_checked(path, expected_dims=(2, 3), expected_channels=(1, 3))[0].shape == (1, 4, 4, 4)
    four_d = write_nifti(tmp_path / "multi.nii.gz", np.zeros((4, 4, 4, 2), np.float32))
    assert load_checked(four_d, expected_channels=2)[0].shape == (2, 4, 4, 4)


def test_missing_empty_and_unknown(tmp_path):
    with pytest.raises(MissingFileError):
        load_checked(tmp_path / "nope.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDatasetError):
        load_checked(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnreadableFileError, match="unknown image format"):
        load_checked(tmp_path / "notes.txt")
    assert issubclass(MissingFileError, FileNotFoundError) and detect_format(tmp_path / "empty") == "folder"


def test_folder_of_nifti_is_a_layout_error(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(LayoutError, match="DICOM series"):
        load_checked(tmp_path)


# ---------------------------------------------------------------------------------------------- PNG / JPEG / npz


def test_png_gray_and_rgb_and_corrupt(tmp_path):
    gray = np.arange(12 * 7, dtype=np.uint8).reshape(12, 7)
    Image.fromarray(gray).save(tmp_path / "g.png")
    arr, meta = load_checked(tmp_path / "g.png", expected_dims=2, expected_channels=1)
    assert arr.shape == (1, 7, 12) and meta["format"] == "png"  # MONAI's (W, H) order
    np.testing.assert_array_equal(arr[0], gray.T)
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "c.jpg")
    assert load_checked(tmp_path / "c.jpg")[0].shape == (3, 6, 5)
    raw = (tmp_path / "g.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(raw[:40])
    with pytest.raises(UnreadableFileError, match="bad.png"):
        load_checked(tmp_path / "bad.png")


def test_npz_keys_and_truncation(tmp_path):
    np.savez(tmp_path / "one.npz", x=np.ones((3, 4), np.float32))
    arr, _ = load_checked(tmp_path / "one.npz")
    assert arr.shape == (1, 3, 4)
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 2)), b=np.ones((3, 3)))
    with pytest.raises(LayoutError, match="npz_key"):
        load_checked(tmp_path / "two.npz")
    assert load_checked(tmp_path / "two.npz", npz_key="b")[0].shape == (1, 3, 3)
    raw = (tmp_path / "one.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UnreadableFileError, match="cut.npz"):
        load_checked(tmp_path / "cut.npz")


# ---------------------------------------------------------------------------------------------- check_datalist


def _pair(tmp_path: Path, name: str, shape=(4, 4, 4), label_shape=None) -> dict:
    img = write_nifti(tmp_path / f"{name}_img.nii.gz", np.random.rand(*shape).astype(np.float32))
    lbl = write_nifti(tmp_path / f"{name}_lbl.nii.gz", np.zeros(label_shape or shape, np.uint8))
    return {"image": str(img), "label": str(lbl)}


def test_check_datalist_good_and_errors(tmp_path):
    good = _pair(tmp_path, "good")
    ok, skipped = check_datalist([good, {**good, "label": 3}])  # an int label is not a path
    assert len(ok) == 2 and skipped == []
    label_without_image = {"image": str(tmp_path / "gone.nii.gz"), "label": good["label"]}
    with pytest.raises(MissingFileError, match="gone.nii.gz: image file"):
        check_datalist([good, label_without_image])
    with pytest.raises(LayoutError, match="no 'image' key"):
        check_datalist([{"label": good["label"]}])
    with pytest.raises(ShapeMismatchError, match="differ in spatial shape"):
        check_datalist([_pair(tmp_path, "mm", shape=(4, 4, 4), label_shape=(4, 4, 5))])
    missing_sequence = {"image": [good["image"], str(tmp_path / "t2.nii.gz")]}
    with pytest.raises(MissingFileError, match="t2.nii.gz"):
        check_datalist([missing_sequence])
    with pytest.raises(EmptyDatasetError):
        check_datalist({"training": []})


def test_check_datalist_four_d_sequences_and_channel_agreement(tmp_path):
    """A 4D NIfTI among the sequence files of a case, a 4D label, or items with different channel counts fail
    ``check`` naming the file (a 4D NIfTI used to pass unless ``expected_channels`` was given)."""
    vol = np.ones((4, 4, 4), np.float32) * np.arange(4)
    t1 = write_nifti(tmp_path / "t1.nii.gz", vol)
    t2 = write_nifti(tmp_path / "t2.nii.gz", vol)
    four = write_nifti(tmp_path / "four.nii.gz", np.stack([vol] * 3, -1))
    assert len(check_datalist([{"image": [str(t1), str(t2)]}, {"image": [str(t2), str(t1)]}])[0]) == 2
    with pytest.raises(InvalidImageError, match=r"four.nii.gz: expected 1 channel\(s\), got 3"):
        check_datalist([{"image": [str(t1), str(four)]}])
    with pytest.raises(InvalidImageError, match=r"four.nii.gz: expected 1 channel\(s\), got 3"):
        check_datalist([{"image": str(t1), "label": str(four)}])
    with pytest.raises(InvalidImageError, match=r"four.nii.gz: the image of this item has 3 channel\(s\), the first"):
        check_datalist({"training": [{"image": [str(t1), str(t2)]}], "validation": [{"image": str(four)}]})
    ok, skipped = check_datalist([{"image": str(t1)}, {"image": str(four)}, {"image": str(t2)}], skip_bad=True)
    assert ok == [{"image": str(t1)}, {"image": str(t2)}] and skipped[0]["index"] == 1
    assert len(check_datalist([{"image": str(four)}, {"image": str(four)}])[0]) == 2  # MSD: 4D images throughout


def test_check_datalist_affine_mismatch(tmp_path):
    img = write_nifti(tmp_path / "i.nii.gz", np.zeros((3, 3, 3), np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    lbl = write_nifti(tmp_path / "l.nii.gz", np.zeros((3, 3, 3), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ShapeMismatchError, match="differ in affine"):
        check_datalist([{"image": str(img), "label": str(lbl)}])


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_check_datalist_skip_bad_report(tmp_path, suffix):
    good = _pair(tmp_path, "good")
    nan = np.ones((4, 4, 4), np.float32)
    nan[0, 0, 0] = np.nan
    bad_nan = {"image": str(write_nifti(tmp_path / "nan.nii.gz", nan))}
    no_image = {"image": str(tmp_path / "missing.nii.gz"), "label": good["label"]}
    datalist = {"name": "x", "training": [good, bad_nan], "validation": [no_image, good]}
    report = tmp_path / f"skipped{suffix}"
    ok, skipped = check_datalist(datalist, skip_bad=True, report=report)
    assert ok["name"] == "x" and ok["training"] == [good] and ok["validation"] == [good]
    assert [(s["split"], s["index"], s["error"]) for s in skipped] == [
        ("training", 1, "InvalidImageError"),
        ("validation", 0, "MissingFileError"),
    ]
    if suffix == ".json":
        payload = json.loads(report.read_text())
        assert payload["checked"] == 4 and payload["ok"] == 2 and len(payload["skipped"]) == 2
        assert "1 of 64 voxels" in payload["skipped"][0]["message"]
    else:
        rows = list(csv.DictReader(report.open()))
        assert [r["error"] for r in rows] == ["InvalidImageError", "MissingFileError"]
        assert rows[1]["path"] == str(tmp_path / "missing.nii.gz")
    with pytest.raises(EmptyDatasetError, match="all 1 datalist items are bad"):
        check_datalist([bad_nan], skip_bad=True)


def test_check_datalist_json_relative_to_root_and_dicom_file_list(tmp_path):
    folder = write_series(tmp_path / "data" / "series", num=3)
    files = sorted(p.name for p in folder.iterdir())
    datalist = {
        "root": str(tmp_path / "data"),
        "training": [{"image": "series"}, {"image": [f"series/{f}" for f in files]}],
    }
    path = tmp_path / "elsewhere" / "dl.json"
    path.parent.mkdir()
    path.write_text(json.dumps(datalist))
    ok, skipped = check_datalist(path, expected_dims=3)
    assert len(ok["training"]) == 2 and not skipped
    with pytest.raises(InvalidImageError, match="expected a 2D image"):
        check_datalist(path, expected_dims=2)


def test_all_errors_are_data_errors():
    for cls in (MissingFileError, UnreadableFileError, InvalidImageError, ShapeMismatchError, LayoutError):
        assert issubclass(cls, DataError) and issubclass(cls, ValueError)


def test_check_datalist_accepts_the_brats_datalist_the_bundle_writes(tmp_path):
    """A BraTS datalist holds a top-level "sequences" list of names: metadata, not a split of items."""
    from monai_jepa.data import volume_datalist

    out = tmp_path / "datalist.json"
    written = volume_datalist(None, demo_dir=tmp_path / "demo", demo_num_cases=3, demo_size=(16, 16, 16), out=out)
    assert isinstance(written.get("sequences"), list) and all(isinstance(s, str) for s in written["sequences"])
    ok, skipped = check_datalist(out)
    assert not skipped and ok["sequences"] == written["sequences"]
    assert sum(len(ok[k]) for k in ("training", "validation", "test")) == 3
    bad = dict(written, training=written["training"] + ["not-an-item"])  # a non-item inside a split is still an error
    with pytest.raises(LayoutError, match="must be a dict"):
        check_datalist(bad)


def test_check_datalist_cache_skips_unchanged_items(tmp_path, monkeypatch):
    """Items that passed are remembered by path, size and mtime: a rerun decodes only new or changed files; the cache
    is written only when the check succeeds; non-item lists of a datalist (a ``skipped`` list) are not splits."""
    import monai_jepa.data.io as io

    vol = np.ones((4, 4, 4), np.float32) * np.arange(4)
    write_nifti(tmp_path / "a.nii.gz", vol)
    b = write_nifti(tmp_path / "b.nii.gz", vol)
    datalist = {"training": [{"image": "a.nii.gz"}], "test": [{"image": "b.nii.gz"}], "skipped": [{"path": "x"}]}
    cache = tmp_path / "run" / "cache.json"  # its folder is created (a run's output folder does not exist yet)
    ok, _ = check_datalist(datalist, base_dir=tmp_path, cache=cache)
    assert ok["skipped"] == [{"path": "x"}] and len(json.loads(cache.read_text())["passed"]) == 2
    calls = []
    real = io.load_checked
    monkeypatch.setattr(io, "load_checked", lambda p, *a, **k: calls.append(Path(p).name) or real(p, *a, **k))
    check_datalist(datalist, base_dir=tmp_path, cache=cache)
    assert calls == []  # nothing decoded again
    check_datalist(datalist, base_dir=tmp_path, cache=cache, expected_dims=3)  # other settings: checked again
    assert sorted(calls) == ["a.nii.gz", "b.nii.gz"]
    check_datalist(datalist, base_dir=tmp_path, cache=cache)
    calls.clear()
    check_datalist(datalist, base_dir=tmp_path, cache=cache)
    assert calls == []
    write_nifti(b, np.ones((4, 4, 5), np.float32))  # changed: re-checked
    check_datalist(datalist, base_dir=tmp_path, cache=cache)
    assert calls == ["b.nii.gz"]
    b.write_bytes(b.read_bytes()[:40])  # now broken: the error, and the cache left as it was
    before = cache.read_text()
    with pytest.raises(UnreadableFileError, match="b.nii.gz"):
        check_datalist(datalist, base_dir=tmp_path, cache=cache)
    assert cache.read_text() == before
