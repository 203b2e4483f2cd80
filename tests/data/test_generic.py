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
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist
from monai.transforms import LoadImaged
from PIL import Image
from pydicom.uid import generate_uid

from monai_jepa.data.datalist import SPLITS, build_datalist, write_datalist
from monai_jepa.data.dicom import find_dicom_files, read_header
from monai_jepa.data.errors import (
    EmptyDatasetError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)
from tests.apps.datasets.test_cxr import _csv, write_dicom

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _all(datalist):
    return [it for s in SPLITS for it in datalist[s]]


def _no_leak(datalist, key="patient_id"):
    owners = {}
    for s in SPLITS:
        for it in datalist[s]:
            assert owners.setdefault(it[key], s) == s


def _nii(path, shape=(4, 4, 3), value=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full(shape, value, np.int16), np.eye(4)), str(path))


# ---------------------------------------------------------------- nifti_folder


def _msd_like(root, names):
    for name in names:
        _nii(root / "imagesTr" / f"{name}.nii.gz")
        _nii(root / "labelsTr" / f"{name}.nii.gz")
    (root / "imagesTr" / "._junk.nii.gz").write_bytes(b"resource fork")  # hidden: ignored
    meta = {"name": "Toy", "description": "toy organ", "labels": {"0": "background", "1": "organ"}}
    (root / "dataset.json").write_text(json.dumps(meta))


def test_nifti_folder(tmp_path):
    names = [f"sub{p}_scan{k}" for p in range(5) for k in range(2)]
    _msd_like(tmp_path, names)
    datalist = build_datalist("nifti_folder", tmp_path, patient_regex=r"^(sub\d+)_", fractions=(0.6, 0.2, 0.2))
    assert datalist["task"] == "segmentation" and datalist["labels"] == {"0": "background", "1": "organ"}
    assert datalist["description"] == "toy organ" and len(_all(datalist)) == 10
    for item in _all(datalist):
        case = Path(item["image"]).name
        assert item["image"] == f"imagesTr/{case}" and item["label"] == f"labelsTr/{case}"
        assert item["patient_id"] == case.split("_")[0]
    assert [len({it["patient_id"] for it in datalist[s]}) for s in SPLITS] == [3, 1, 1]
    _no_leak(datalist)

    out = write_datalist(datalist, tmp_path / "datalist.json")
    loaded = load_decathlon_datalist(out, data_list_key="validation", base_dir=datalist["root"])
    data = LoadImaged(keys=["image", "label"])(loaded[0])
    assert data["image"].shape == data["label"].shape == (4, 4, 3)

    unlabelled = build_datalist("nifti_folder", tmp_path, labels=None, label_names=["bg"])
    assert unlabelled["task"] == "unlabelled" and "label" not in unlabelled["training"][0]
    assert {it["patient_id"] for it in _all(unlabelled)} == set(names)  # default: one patient per case


def test_nifti_folder_nnunet_channels(tmp_path):
    for case in ("brain_001", "brain_002", "brain_003"):
        for channel in range(2):
            _nii(tmp_path / "imagesTr" / f"{case}_{channel:04d}.nii.gz")
        _nii(tmp_path / "labelsTr" / f"{case}.nii.gz")
    datalist = build_datalist("nifti_folder", tmp_path)
    item = next(it for it in _all(datalist) if it["patient_id"] == "brain_002")
    assert item["image"] == ["imagesTr/brain_002_0000.nii.gz", "imagesTr/brain_002_0001.nii.gz"]
    assert item["label"] == "labelsTr/brain_002.nii.gz"
    _nii(tmp_path / "imagesTr" / "brain_003_0001.nii.gz", shape=(4, 4, 5))
    with pytest.raises(ShapeMismatchError, match="channel files of case brain_003"):
        build_datalist("nifti_folder", tmp_path)


def test_nifti_folder_errors_and_skip_bad(tmp_path):
    _msd_like(tmp_path, ["a", "b", "c", "d"])
    _nii(tmp_path / "labelsTr" / "orphan.nii.gz")
    with pytest.raises(MissingFileError, match=r"label .*orphan.nii.gz has no image orphan.nii.gz"):
        build_datalist("nifti_folder", tmp_path)
    (tmp_path / "labelsTr" / "orphan.nii.gz").unlink()
    (tmp_path / "labelsTr" / "b.nii.gz").unlink()
    with pytest.raises(MissingFileError, match=r"image .*b.nii.gz has no label b.nii.gz"):
        build_datalist("nifti_folder", tmp_path)
    _nii(tmp_path / "labelsTr" / "b.nii.gz", shape=(4, 4, 2))
    with pytest.raises(ShapeMismatchError, match=r"spatial shape \(4, 4, 2\) but image .* has \(4, 4, 3\)"):
        build_datalist("nifti_folder", tmp_path)
    assert len(_all(build_datalist("nifti_folder", tmp_path, check_headers=False))) == 4
    _nii(tmp_path / "labelsTr" / "b.nii.gz")
    (tmp_path / "imagesTr" / "c.nii.gz").write_bytes(b"\x1f\x8b broken gzip")
    with pytest.raises(UnreadableFileError, match="NIfTI header of .*c.nii.gz cannot be read"):
        build_datalist("nifti_folder", tmp_path)
    _nii(tmp_path / "labelsTr" / "b.nii.gz", shape=(4, 4, 2))
    _nii(tmp_path / "labelsTr" / "orphan.nii.gz")
    datalist = build_datalist("nifti_folder", tmp_path, skip_bad=True)
    assert sorted(Path(it["image"]).name for it in _all(datalist)) == ["a.nii.gz", "d.nii.gz"]
    assert sorted(Path(s["path"]).name for s in datalist["skipped"]) == ["b.nii.gz", "c.nii.gz", "orphan.nii.gz"]
    with pytest.raises(LayoutError, match="does not match patient_regex"):
        build_datalist("nifti_folder", tmp_path, patient_regex=r"^sub", check_headers=False, labels=None)
    with pytest.raises(MissingFileError, match="labels=None"):
        build_datalist("nifti_folder", tmp_path, labels="labelsTs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDatasetError, match="no image"):
        build_datalist("nifti_folder", tmp_path, images="empty", labels=None)


def test_real_msd_hippocampus():
    root = DATA / "msd_task04_hippocampus"
    if not (root / "imagesTr").is_dir():
        pytest.skip(f"{root} not available")
    datalist = build_datalist("nifti_folder", root, seed=0)
    assert [len(datalist[s]) for s in SPLITS] == [208, 26, 26]
    assert all(Path(it["image"]).name == Path(it["label"]).name for it in _all(datalist))


# ---------------------------------------------------------------- image_csv


def _png(path, value=100, size=(6, 5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)


def test_image_csv(tmp_path):
    rows = []
    for p in range(8):
        for k in range(2):
            _png(tmp_path / "img" / f"p{p}_{k}.png")
            split = "test" if p == 7 else ""
            rows.append([f"p{p}_{k}", "melanoma" if p % 2 else "nevus", f"P{p}", split, k, 1 - k])
    _csv(tmp_path / "meta" / "table.csv", ["file", "dx", "patient", "fold", "mass", "calc"], rows)
    datalist = build_datalist(
        "image_csv",
        tmp_path,
        csv="meta/table.csv",
        image_column="file",
        label_column="dx",
        patient_column="patient",
        split_column="fold",
        image_dir="img",
        image_suffix=".png",
        fractions=(0.5, 0.5, 0),
    )
    assert datalist["task"] == "binary" and datalist["labels"] == {"0": "melanoma", "1": "nevus"}
    assert {it["patient_id"] for it in datalist["test"]} == {"P7"}  # official split kept
    assert [len({it["patient_id"] for it in datalist[s]}) for s in SPLITS] == [4, 3, 1]
    for item in _all(datalist):
        assert item["image"].startswith("img/p") and item["label"] == (0 if int(item["patient_id"][1]) % 2 else 1)
    # stratified: both classes in training and validation
    assert {it["label"] for it in datalist["training"]} == {it["label"] for it in datalist["validation"]} == {0, 1}
    _no_leak(datalist)

    multi = build_datalist(
        "image_csv",
        tmp_path,
        csv=tmp_path / "meta/table.csv",
        image_column="file",
        label_column=["mass", "calc"],
        image_dir="img",
        image_suffix=".png",
    )
    assert multi["task"] == "multilabel" and multi["labels"] == {"0": "mass", "1": "calc"}
    assert all(it["label"] == ([0, 1] if it["image"].endswith("_0.png") else [1, 0]) for it in _all(multi))
    assert "patient_id" not in multi["training"][0]  # image-level split without a patient column
    unlabelled = build_datalist(
        "image_csv",
        tmp_path,
        csv="meta/table.csv",
        image_column="file",
        label_column=None,
        image_dir="img",
        image_suffix=".png",
    )
    assert unlabelled["task"] == "unlabelled" and len(_all(unlabelled)) == 16


def test_image_csv_errors(tmp_path):
    for name in ("a.png", "b.jpg"):
        _png(tmp_path / name)
    (tmp_path / "c.png").write_bytes(b"not a png")
    _csv(tmp_path / "labels.csv", ["image", "label"], [["a.png", 0], ["b.jpg", 1], ["c.png", 1], ["gone.png", 0]])
    with pytest.raises(UnreadableFileError, match="c.png cannot be read"):
        build_datalist("image_csv", tmp_path)
    datalist = build_datalist("image_csv", tmp_path, skip_bad=True)
    assert sorted(it["image"] for it in _all(datalist)) == ["a.png", "b.jpg"]
    assert [Path(s["path"]).name for s in datalist["skipped"]] == ["c.png", "gone.png"]
    _csv(tmp_path / "labels.csv", ["image", "label"], [["a.png", 0], ["gone.png", 1]])
    with pytest.raises(MissingFileError, match=r"gone.png \(table .*labels.csv, row 3\) does not exist"):
        build_datalist("image_csv", tmp_path)
    _csv(tmp_path / "labels.csv", ["image", "label"], [["a.png", 0], ["scan.nii.gz", 1]])
    with pytest.raises(LayoutError, match="scan.nii.gz is not a 2D image file"):
        build_datalist("image_csv", tmp_path, check_files=False)
    _csv(tmp_path / "split.csv", ["image", "label", "fold"], [["a.png", 0, "holdout"]])
    with pytest.raises(LayoutError, match="split.csv, row 2, column 'fold': unknown split 'holdout'"):
        build_datalist("image_csv", tmp_path, csv="split.csv", split_column="fold")
    with pytest.raises(LayoutError, match=r"lacks the required column\(s\) \['diagnosis'\]"):
        build_datalist("image_csv", tmp_path, label_column="diagnosis")
    _csv(tmp_path / "labels.csv", ["image", "m1"], [["a.png", 2]])
    with pytest.raises(LayoutError, match="column 'm1', row 2: '2' is not 0 or 1"):
        build_datalist("image_csv", tmp_path, label_column=["m1"])


# ---------------------------------------------------------------- dicom_series


def _series(folder, uid, patient, z_order, rows=4, **elements):
    """Write one slice per z in ``z_order`` (file order != anatomical order); instance numbers run backwards."""
    paths = []
    for k, z in enumerate(z_order):
        paths.append(
            write_dicom(
                folder / f"{uid[-6:]}_{k}.dcm",
                np.full((rows, 4), z, np.uint16),
                patient_id=patient,
                SeriesInstanceUID=uid,
                StudyInstanceUID=f"{uid}.9",
                Modality="MR",
                SeriesDescription=f"desc {uid[-3:]}",
                StudyDate="20200101",
                ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                ImagePositionPatient=[0, 0, float(z)],
                InstanceNumber=len(z_order) - k,
                **elements,
            )
        )
    return paths


def _by_z(paths):
    return sorted(paths, key=lambda p: float(read_header(p).ImagePositionPatient[2]))


def test_dicom_series(tmp_path):
    s1, s2, s3, s4 = (generate_uid() for _ in range(4))
    p1 = _series(tmp_path / "A" / "t1", s1, "PA", [2.0, 0.0, 1.0])
    p2 = _series(tmp_path / "A" / "mixed", s2, "PA", [5.0, 3.0])
    p3 = _series(tmp_path / "A" / "mixed", s3, "PA", [1.0])
    _series(tmp_path / "B" / "ct", s4, "PB", [0.0, 1.0])
    (tmp_path / "A" / "README.txt").write_text("ignored")
    assert len(find_dicom_files(tmp_path)) == 8

    datalist = build_datalist("dicom_series", tmp_path, fractions=(0.5, 0.5, 0), seed=0)
    items = {it["series_uid"]: it for it in _all(datalist)}
    assert len(items) == 4 and datalist["task"] == "unlabelled"
    assert items[s1]["image"] == "A/t1" and items[s1]["num_files"] == 3  # pure folder -> the folder
    assert items[s2]["image"] == [p.relative_to(tmp_path).as_posix() for p in _by_z(p2)]  # shared folder -> files
    assert items[s3]["image"] == [p3[0].relative_to(tmp_path).as_posix()]
    assert items[s1]["patient_id"] == "PA" and items[s1]["modality"] == "MR" and items[s1]["study_uid"] == f"{s1}.9"
    assert items[s1]["series_description"] == f"desc {s1[-3:]}" and items[s1]["study_date"] == "20200101"
    assert items[s2]["split"] == items[s1]["split"] != items[s4]["split"]
    _no_leak(datalist)

    files = build_datalist("dicom_series", tmp_path, image_as="files")
    by_uid = {it["series_uid"]: it for it in _all(files)}
    assert by_uid[s1]["image"] == [p.relative_to(tmp_path).as_posix() for p in _by_z(p1)]  # sorted along the normal
    with pytest.raises(LayoutError, match="cannot be given as a folder"):
        build_datalist("dicom_series", tmp_path, image_as="folder")


def test_dicom_series_errors(tmp_path):
    uid = generate_uid()
    _series(tmp_path / "s", uid, "P1", [0.0, 1.0])
    _series(tmp_path / "s", uid, "P1", [2.0], rows=6)  # same series, different slice size
    _series(tmp_path / "ok", generate_uid(), "P2", [0.0])
    with pytest.raises(ShapeMismatchError, match=r"mixes slice sizes \[\(4, 4\), \(6, 4\)\]"):
        build_datalist("dicom_series", tmp_path)
    (tmp_path / "ok" / "broken.dcm").write_bytes(b"DICM" * 4)
    with pytest.raises(UnreadableFileError, match="broken.dcm"):
        build_datalist("dicom_series", tmp_path / "ok")
    datalist = build_datalist("dicom_series", tmp_path, skip_bad=True)
    assert [it["patient_id"] for it in _all(datalist)] == ["P2"] and datalist["training"][0]["image"] != "ok"
    assert sorted(Path(s["path"]).name for s in datalist["skipped"]) == ["broken.dcm", "s"]
    _series(tmp_path / "anon", generate_uid(), "", [0.0])
    with pytest.raises(LayoutError, match="empty PatientID"):
        build_datalist("dicom_series", tmp_path / "anon")
    (tmp_path / "none").mkdir()
    with pytest.raises(EmptyDatasetError, match="no DICOM file"):
        build_datalist("dicom_series", tmp_path / "none")


def test_real_tcia_series():
    root = DATA / "tcia_brain_tumor_progression"
    if not root.is_dir():
        pytest.skip(f"{root} not available")
    datalist = build_datalist("dicom_series", root)
    items = _all(datalist)
    assert len(items) == 8 and {it["patient_id"] for it in items} == {"PGBM-001"}
    assert sum(it["num_files"] for it in items) == 197 and {it["modality"] for it in items} == {"MR"}
    assert all((root / it["image"]).is_dir() for it in items) and len({it["study_uid"] for it in items}) == 2
