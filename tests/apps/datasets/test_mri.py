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

import nibabel as nib
import numpy as np
import pytest

from monai_jepa.apps.datasets.mri import ACDC_GROUPS, ACDC_LABELS, BRATS_LABELS, read_info_cfg
from monai_jepa.data.datalist import SPLITS, build_datalist
from monai_jepa.data.errors import LayoutError, MissingFileError


def _items(datalist):
    return [it for split in SPLITS for it in datalist[split]]


def _nii(path, shape=(2, 2, 2)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), np.eye(4)), path)


def _brats(root, cases, suffixes, sep):
    for case in cases:
        for suffix in suffixes:
            _nii(root / case / f"{case}{sep}{suffix}.nii.gz")


def test_brats2021(tmp_path):
    cases = [f"BraTS2021_{i:05d}" for i in (0, 2, 3, 5, 6)]
    _brats(tmp_path / "BraTS2021_Training_Data", cases, ("t1", "t1ce", "t2", "flair", "seg"), "_")
    datalist = build_datalist("brats", tmp_path, fractions=(0.6, 0.2, 0.2))
    assert datalist["version"] == "2021" and datalist["sequences"] == ["t1", "t1ce", "t2", "flair"]
    assert datalist["labels"] == BRATS_LABELS["2021"] and "4" in datalist["labels"]
    assert [len(datalist[s]) for s in SPLITS] == [3, 1, 1]
    item = next(it for it in _items(datalist) if it["case_id"] == "BraTS2021_00002")
    folder = "BraTS2021_Training_Data/BraTS2021_00002/BraTS2021_00002"
    assert item["image"] == [
        f"{folder}_t1.nii.gz",
        f"{folder}_t1ce.nii.gz",
        f"{folder}_t2.nii.gz",
        f"{folder}_flair.nii.gz",
    ]
    assert item["label"] == f"{folder}_seg.nii.gz" and item["patient_id"] == "BraTS2021_00002"


def test_brats2023_timepoints_grouped(tmp_path):
    cases = ["BraTS-GLI-00000-000", "BraTS-GLI-00000-001", "BraTS-GLI-00002-000", "BraTS-GLI-00003-000"]
    cases += ["BraTS-GLI-00005-000", "BraTS-GLI-00005-001"]
    _brats(tmp_path, cases, ("t1n", "t1c", "t2w", "t2f", "seg"), "-")
    datalist = build_datalist("brats", tmp_path, fractions=(0.5, 0.25, 0.25), seed=2)
    assert datalist["version"] == "2023" and datalist["labels"]["3"] == "enhancing tumour (ET)"
    items = {it["case_id"]: it for it in _items(datalist)}
    assert [p.rsplit("-", 1)[-1] for p in items["BraTS-GLI-00005-001"]["image"]] == [
        "t1n.nii.gz",
        "t1c.nii.gz",
        "t2w.nii.gz",
        "t2f.nii.gz",
    ]
    for patient in ("BraTS-GLI-00000", "BraTS-GLI-00005"):
        assert items[f"{patient}-000"]["patient_id"] == items[f"{patient}-001"]["patient_id"] == patient
        assert items[f"{patient}-000"]["split"] == items[f"{patient}-001"]["split"]


def test_brats_errors(tmp_path):
    cases = ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"]
    _brats(tmp_path, cases, ("t1", "t1ce", "t2", "flair", "seg"), "_")
    (tmp_path / "BraTS2021_00001" / "BraTS2021_00001_t1ce.nii.gz").unlink()
    with pytest.raises(MissingFileError, match="BraTS case BraTS2021_00001: missing sequence 't1ce'"):
        build_datalist("brats", tmp_path)
    datalist = build_datalist("brats", tmp_path, skip_bad=True)
    assert sorted(it["case_id"] for it in _items(datalist)) == ["BraTS2021_00000", "BraTS2021_00002"]
    assert datalist["skipped"][0]["path"].endswith("BraTS2021_00001_t1ce.nii.gz")
    _nii(tmp_path / "BraTS2021_00001" / "BraTS2021_00001_t1ce.nii.gz")
    (tmp_path / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz").unlink()
    with pytest.raises(MissingFileError, match="BraTS2021_00002: missing sequence 'seg'"):
        build_datalist("brats", tmp_path, version="2021")
    unlabelled = {it["case_id"]: it for it in _items(build_datalist("brats", tmp_path, require_label=False))}
    assert len(unlabelled) == 3 and "label" not in unlabelled["BraTS2021_00002"]
    assert unlabelled["BraTS2021_00000"]["label"].endswith("BraTS2021_00000_seg.nii.gz")
    _brats(tmp_path, ["BraTS-GLI-00009-000"], ("t1n", "t1c", "t2w", "t2f", "seg"), "-")
    with pytest.raises(LayoutError, match="both the 2021 and 2023"):
        build_datalist("brats", tmp_path)
    with pytest.raises(LayoutError, match="no BraTS case folder"):
        build_datalist("brats", tmp_path / "BraTS2021_00000")


GROUPS = {1: "DCM", 2: "HCM", 3: "MINF", 4: "NOR", 5: "RV", 6: "NOR", 7: "DCM", 8: "RV"}


def _acdc(root, patients=GROUPS, testing=(101,)):
    for number in [*patients, *testing]:
        case = f"patient{number:03d}"
        folder = root / ("testing" if number in testing else "training") / case
        ed, es = 1, 10 + number
        _nii(folder / f"{case}_4d.nii.gz", (2, 2, 2, 3))
        for frame in (ed, es):
            _nii(folder / f"{case}_frame{frame:02d}.nii.gz")
            _nii(folder / f"{case}_frame{frame:02d}_gt.nii.gz")
        group = patients.get(number, "NOR")
        (folder / "Info.cfg").write_text(
            f"ED: {ed}\nES: {es}\nGroup: {group}\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n"
        )


def test_acdc_segmentation_items(tmp_path):
    _acdc(tmp_path)
    datalist = build_datalist("acdc", tmp_path, fractions=(0.5, 0.25, 0.25))
    assert datalist["task"] == "segmentation" and datalist["labels"] == ACDC_LABELS
    items = _items(datalist)
    assert len(items) == 2 * 9
    es = next(it for it in items if it["patient_id"] == "patient003" and it["phase"] == "ES")
    assert es["frame"] == 13 and es["image"] == "training/patient003/patient003_frame13.nii.gz"
    assert es["label"] == "training/patient003/patient003_frame13_gt.nii.gz"
    assert es["cine"] == "training/patient003/patient003_4d.nii.gz"
    assert es["group"] == "MINF" and es["group_label"] == 2 and es["height"] == 184.0 and es["num_frames"] == 30
    assert {it["split"] for it in items if it["patient_id"] == "patient101"} == {"test"}  # official test kept
    by_patient = {}
    for it in items:
        by_patient.setdefault(it["patient_id"], set()).add(it["split"])
    assert all(len(s) == 1 for s in by_patient.values())


def test_acdc_classification_and_errors(tmp_path):
    _acdc(tmp_path)
    datalist = build_datalist("acdc", tmp_path, task="classification")
    assert datalist["task"] == "multiclass" and len(datalist["labels"]) == len(ACDC_GROUPS) == 5
    item = next(it for it in _items(datalist) if it["patient_id"] == "patient005" and it["phase"] == "ED")
    assert item["label"] == 4 and item["seg"] == "training/patient005/patient005_frame01_gt.nii.gz"
    folder = tmp_path / "training" / "patient002"
    assert read_info_cfg(folder / "Info.cfg")["Group"] == "HCM"
    (folder / "patient002_frame12_gt.nii.gz").unlink()
    with pytest.raises(MissingFileError, match=r"ACDC case patient002: missing ES file .*patient002_frame12_gt"):
        build_datalist("acdc", tmp_path)
    skipped = build_datalist("acdc", tmp_path, skip_bad=True)
    assert len(_items(skipped)) == 16 and "patient002" in skipped["skipped"][0]["reason"]
    (folder / "Info.cfg").write_text("ES: 12\nGroup: HCM\n")
    with pytest.raises(LayoutError, match="no valid 'ED' entry"):
        build_datalist("acdc", tmp_path)
    (folder / "Info.cfg").write_text("ED: 1\nES: 12\nGroup: XYZ\n")
    with pytest.raises(LayoutError, match="Group 'XYZ'"):
        build_datalist("acdc", tmp_path)
    (folder / "Info.cfg").unlink()
    with pytest.raises(MissingFileError, match="Info.cfg"):
        build_datalist("acdc", tmp_path)
