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
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from monai_jepa.apps.datasets.ct import group_lidc_readings, read_lidc_xml
from monai_jepa.data.datalist import SPLITS, build_datalist
from monai_jepa.data.errors import LayoutError, MissingFileError, UnreadableFileError

HIPPOCAMPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "msd_task04_hippocampus"
MSD_LABELS = {"0": "background", "1": "Anterior", "2": "Posterior"}


def _items(datalist):
    return [it for split in SPLITS for it in datalist[split]]


def _nii(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), path)


def _msd(root, cases=("hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006")):
    for case in cases:
        _nii(root / "imagesTr" / f"{case}.nii.gz")
        _nii(root / "labelsTr" / f"{case}.nii.gz")
    _nii(root / "imagesTs" / "hippocampus_002.nii.gz")
    meta = {
        "name": "Hippocampus",
        "description": "Left and right hippocampus segmentation",
        "modality": {"0": "MRI"},
        "labels": MSD_LABELS,
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases],
        "test": ["./imagesTs/hippocampus_002.nii.gz"],
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return meta


def test_msd_items_and_unlabelled_test(tmp_path):
    _msd(tmp_path)
    datalist = build_datalist("msd", tmp_path, fractions=(0.5, 0.25, 0.25))
    assert datalist["task"] == "segmentation" and datalist["labels"] == MSD_LABELS
    assert datalist["modality"] == {"0": "MRI"} and "Hippocampus" in datalist["description"]
    items = sorted(_items(datalist), key=lambda it: it["image"])
    assert items[0] == {
        "image": "imagesTr/hippocampus_001.nii.gz",
        "label": "labelsTr/hippocampus_001.nii.gz",
        "patient_id": "hippocampus_001",
        "split": items[0]["split"],
    }
    assert [len(datalist[s]) for s in SPLITS] == [2, 1, 1]
    assert datalist["unlabelled"] == [{"image": "imagesTs/hippocampus_002.nii.gz", "patient_id": "hippocampus_002"}]


def test_msd_errors(tmp_path):
    _msd(tmp_path)
    (tmp_path / "labelsTr" / "hippocampus_004.nii.gz").unlink()
    with pytest.raises(MissingFileError, match=r"label 'labelsTr/hippocampus_004\.nii\.gz'"):
        build_datalist("msd", tmp_path)
    datalist = build_datalist("msd", tmp_path, skip_bad=True)
    assert len(_items(datalist)) == 3 and "hippocampus_004" in datalist["skipped"][0]["path"]
    (tmp_path / "dataset.json").write_text('{"training": [')
    with pytest.raises(UnreadableFileError, match="dataset.json"):
        build_datalist("msd", tmp_path)
    (tmp_path / "dataset.json").write_text('{"training": [{"image": "./imagesTr/hippocampus_001.nii.gz"}]}')
    with pytest.raises(LayoutError, match="training entry 0"):
        build_datalist("msd", tmp_path)
    (tmp_path / "dataset.json").unlink()
    with pytest.raises(MissingFileError, match="dataset.json"):
        build_datalist("msd", tmp_path)


def test_msd_on_real_hippocampus(tmp_path):
    if not (HIPPOCAMPUS / "imagesTr").is_dir():
        pytest.skip("shared MSD Task04 Hippocampus data not available")
    cases = sorted(p.name for p in (HIPPOCAMPUS / "imagesTr").glob("hippocampus_*.nii.gz"))
    meta = {
        "name": "Hippocampus",
        "modality": {"0": "MRI"},
        "labels": MSD_LABELS,
        "training": [{"image": f"./imagesTr/{c}", "label": f"./labelsTr/{c}"} for c in cases],
    }
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    datalist = build_datalist("msd", HIPPOCAMPUS, dataset_json=tmp_path / "dataset.json", seed=0)
    assert len(cases) == 260 and [len(datalist[s]) for s in SPLITS] == [208, 26, 26]
    assert datalist["root"] == os.path.abspath(HIPPOCAMPUS)
    for item in datalist["validation"]:
        assert item["label"] == item["image"].replace("imagesTr/", "labelsTr/")
        assert (Path(datalist["root"]) / item["label"]).is_file()
    assert datalist == build_datalist("msd", HIPPOCAMPUS, dataset_json=tmp_path / "dataset.json", seed=0)


# ----------------------------------------------------------------------------------------------------------- LIDC-IDRI
def _dcm(path, patient, modality="CT", spacing=(0.7, 0.7), series_uid="1.2.3.4"):
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.PixelSpacing = modality, patient, list(spacing)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", series_uid
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:  # pydicom < 3
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)


def _roi(z, cx, cy, inclusion=True):
    edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in _ring(cx, cy))
    return (
        f"<roi><imageZposition>{z} </imageZposition><imageSOP_UID>1.2.{z}</imageSOP_UID>"
        f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>{edges}</roi>"
    )


def _ring(cx, cy):
    return [(cx - 2, cy), (cx, cy - 2), (cx + 2, cy), (cx, cy + 2)]


def _nodule(nid, malignancy, rois):
    chars = ""
    if malignancy is not None:  # readers rate nodules >= 3 mm only
        chars = f"<characteristics><subtlety>4</subtlety><malignancy>{malignancy}</malignancy></characteristics>"
    return f"<unblindedReadNodule><noduleID>{nid}</noduleID>{chars}{''.join(rois)}</unblindedReadNodule>"


def _lidc_xml(sessions, namespace=True):
    ns = ' xmlns="http://www.nih.gov" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"' if namespace else ""
    body = "".join(
        f"<readingSession><annotationVersion>3.12</annotationVersion>"
        f"<servicingRadiologistID>{i}</servicingRadiologistID>{''.join(s)}"
        f"<nonNodule><nonNoduleID>n{i}</nonNoduleID><imageZposition>-10</imageZposition></nonNodule></readingSession>"
        for i, s in enumerate(sessions)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><LidcReadMessage uid="1"{ns}><ResponseHeader/>{body}</LidcReadMessage>'
    )


# four readers: A marked by readers 0, 1, 2 (malignancy 4, 5, 3); reader 2 also marks C next to A (another nodule);
# B by reader 1 only; a < 3 mm nodule (one point, no rating) by reader 0; reader 3 marks nothing
SESSIONS = [
    [
        _nodule("IL057_1", 4, [_roi(-50.0, 100, 100), _roi(-50.0, 400, 400, inclusion=False)]),
        _nodule(
            "small_1",
            None,
            [
                "<roi><imageZposition>-80</imageZposition><inclusion>TRUE</inclusion>"
                "<edgeMap><xCoord>300</xCoord><yCoord>300</yCoord></edgeMap></roi>"
            ],
        ),
    ],
    [_nodule("Nodule 001", 5, [_roi(-51.0, 102, 101)]), _nodule("Nodule 002", 2, [_roi(-60.0, 200, 200)])],
    [_nodule("1", 3, [_roi(-49.0, 99, 98), _roi(-50.0, 99, 98)]), _nodule("2", 1, [_roi(-50.0, 106, 100)])],
    [],
]


def test_read_and_group_lidc_readings(tmp_path):
    (tmp_path / "069.xml").write_text(_lidc_xml(SESSIONS))
    readings = read_lidc_xml(tmp_path / "069.xml")
    assert len(readings) == 6
    first = readings[0]
    assert first["reader"] == 0 and first["nodule_id"] == "IL057_1" and first["malignancy"] == 4
    assert first["centroid"] == [100.0, 100.0, -50.0] and first["num_rois"] == 1  # exclusion ROI ignored
    assert readings[4]["centroid"] == [99.0, 98.0, -49.5] and readings[1]["malignancy"] is None
    nodules = group_lidc_readings(readings, pixel_spacing=(0.7, 0.7), max_distance_mm=10.0)
    assert [n["num_readers"] for n in nodules] == [3, 1, 1, 1]
    a = nodules[0]
    assert sorted(a["readers"]) == [0, 1, 2] and a["malignancy"] == pytest.approx(4.0)
    assert sorted(a["malignancy_scores"]) == [3, 4, 5] and a["at_least_3mm"]
    np.testing.assert_allclose(
        a["centroid"], [(100 + 102 + 99) / 3, (100 + 101 + 98) / 3, (-50 - 51 - 49.5) / 3], atol=0.01
    )
    singles = {n["nodule_ids"][0]: n for n in nodules[1:]}
    assert set(singles) == {"small_1", "Nodule 002", "2"}  # reader 2's second nodule never joins its own reader
    assert singles["small_1"]["malignancy"] is None and not singles["small_1"]["at_least_3mm"]
    # at 1 mm the three readings of A (1.6-3.3 mm apart) stay separate
    assert len(group_lidc_readings(readings, (0.7, 0.7), max_distance_mm=1.0)) == 6
    (tmp_path / "cxr.xml").write_text('<IdriReadMessage xmlns="http://www.nih.gov"><x/></IdriReadMessage>')
    assert read_lidc_xml(tmp_path / "cxr.xml") is None
    (tmp_path / "bad.xml").write_text("<LidcReadMessage><readingSession>")
    with pytest.raises(UnreadableFileError, match="bad.xml"):
        read_lidc_xml(tmp_path / "bad.xml")


def _lidc(root):
    ct = root / "LIDC-IDRI-0001" / "01-01-2000-30178" / "3000566-03192"
    for k in range(3):
        _dcm(ct / f"1-00{k + 1}.dcm", "LIDC-IDRI-0001", series_uid="1.3.6.1")
    (ct / "069.xml").write_text(_lidc_xml(SESSIONS))
    cxr = root / "LIDC-IDRI-0001" / "01-01-2000-35511" / "3000923-62357"
    _dcm(cxr / "1-1.dcm", "LIDC-IDRI-0001", modality="CR")
    (cxr / "8.xml").write_text("<IdriReadMessage><x/></IdriReadMessage>")
    for patient in ("LIDC-IDRI-0002", "LIDC-IDRI-0003", "LIDC-IDRI-0004"):
        ct2 = root / patient / "01-01-2000-1" / "3000-1"
        _dcm(ct2 / "1-001.dcm", patient, spacing=(0.6, 0.6))
        (ct2 / "100.xml").write_text(_lidc_xml([[_nodule("1", 2, [_roi(-10.0, 50, 50)])], [], [], []], namespace=False))


def test_lidc_idri_datalist(tmp_path):
    _lidc(tmp_path)
    datalist = build_datalist("lidc_idri", tmp_path, out=tmp_path / "lidc.json", fractions=(0.5, 0.25, 0.25))
    assert datalist["task"] == "detection" and json.loads((tmp_path / "lidc.json").read_text()) == datalist
    items = {it["patient_id"]: it for it in _items(datalist)}
    assert sorted(items) == ["LIDC-IDRI-0001", "LIDC-IDRI-0002", "LIDC-IDRI-0003", "LIDC-IDRI-0004"]  # CR ignored
    first = items["LIDC-IDRI-0001"]
    assert first["image"] == "LIDC-IDRI-0001/01-01-2000-30178/3000566-03192" and first["num_slices"] == 3
    assert first["annotation"].endswith("069.xml") and first["series_uid"] == "1.3.6.1"
    assert first["pixel_spacing"] == [0.7, 0.7] and first["label"] == 1  # A has 3 readers
    assert [n["num_readers"] for n in first["nodules"]] == [3, 1, 1, 1]
    assert items["LIDC-IDRI-0002"]["label"] == 0 and items["LIDC-IDRI-0002"]["nodules"][0]["malignancy"] == 2.0
    assert {it["split"] for it in items.values()} == set(SPLITS)
    strict = build_datalist("lidc_idri", tmp_path, min_agreement=4)
    assert all(it["label"] == 0 for it in _items(strict))


def test_lidc_idri_errors(tmp_path):
    _lidc(tmp_path)
    no_xml = tmp_path / "LIDC-IDRI-0005" / "s" / "t"
    _dcm(no_xml / "1.dcm", "LIDC-IDRI-0005")
    with pytest.raises(MissingFileError, match="has no LidcReadMessage XML"):
        build_datalist("lidc_idri", tmp_path)
    datalist = build_datalist("lidc_idri", tmp_path, skip_bad=True)
    assert len(_items(datalist)) == 4 and datalist["skipped"][0]["path"] == str(no_xml)
    (no_xml / "1.dcm").write_bytes(b"not a dicom file")
    with pytest.raises(UnreadableFileError, match="1.dcm"):
        build_datalist("lidc_idri", tmp_path)
    with pytest.raises(ValueError, match="min_agreement"):
        build_datalist("lidc_idri", tmp_path, min_agreement=5)
