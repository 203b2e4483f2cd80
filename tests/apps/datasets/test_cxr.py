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
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from monai_jepa.apps.datasets.cxr import CHESTXRAY14_FINDINGS, CHEXPERT_OBSERVATIONS
from monai_jepa.data.datalist import SPLITS, build_datalist
from monai_jepa.data.errors import (
    EmptyDatasetError,
    LayoutError,
    MissingFileError,
    UnreadableFileError,
)

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def _csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _jpg(path, size=(8, 8), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, 128, np.uint8)).save(path, format=fmt)


def write_dicom(path, pixels, patient_id="P1", photometric="MONOCHROME2", bits_stored=None, **elements):
    """A minimal single-frame grayscale DICOM file (explicit VR little endian)."""
    pixels = np.asarray(pixels)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.Modality = patient_id, "CR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1 if pixels.ndim == 2 else pixels.shape[-1]
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    for key, value in elements.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    except TypeError:  # pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    return path


def _splits(datalist):
    return {s: datalist[s] for s in SPLITS}


def _all_items(datalist):
    return [it for s in SPLITS for it in datalist[s]]


def _no_leak(datalist):
    owners = {}
    for s in SPLITS:
        for it in datalist[s]:
            assert owners.setdefault(it["patient_id"], s) == s


# ---------------------------------------------------------------- ChestX-ray14


def _chestxray14(root):
    header = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender"]
    header += ["View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]
    rows, train_val, test = [], [], []
    findings = ["No Finding", "Cardiomegaly|Effusion", "Hernia", "Atelectasis|Pleural_Thickening|Mass"]
    for patient in range(1, 13):
        for follow_up in range(2):
            name = f"{patient:08d}_{follow_up:03d}.png"
            folder = "images_001" if patient <= 6 else "images_002"
            _jpg(root / folder / "images" / name, fmt="PNG")
            rows.append([name, findings[(patient + follow_up) % 4], follow_up, patient, 50, "M", "PA", 8, 8, 0.1, 0.1])
            (test if patient > 9 else train_val).append(name)
    _csv(root / "Data_Entry_2017.csv", header, rows)
    (root / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    return rows


def test_chestxray14(tmp_path):
    _chestxray14(tmp_path)
    datalist = build_datalist("chestxray14", tmp_path, val_fraction=0.25, seed=0)
    assert datalist["task"] == "multilabel" and list(datalist["labels"].values()) == list(CHESTXRAY14_FINDINGS)
    items = {Path(it["image"]).name: it for it in _all_items(datalist)}
    assert len(items) == 24
    first = items["00000001_000.png"]  # (1 + 0) % 4 -> "Cardiomegaly|Effusion"
    assert first["label"] == [0, 1, 1] + [0] * 11 and first["patient_id"] == "1" and first["view"] == "PA"
    assert first["image"] == "images_001/images/00000001_000.png"
    assert items["00000001_001.png"]["label"][13] == 1 and sum(items["00000001_001.png"]["label"]) == 1  # Hernia
    assert items["00000003_001.png"]["label"] == [0] * 14  # No Finding
    assert [i for i, v in enumerate(items["00000002_001.png"]["label"]) if v] == [0, 4, 12]
    # official test split; validation carved patient-level from train_val (9 patients -> 7 / 2)
    assert {it["patient_id"] for it in datalist["test"]} == {"10", "11", "12"}
    assert len({it["patient_id"] for it in datalist["validation"]}) == 2
    assert len({it["patient_id"] for it in datalist["training"]}) == 7
    _no_leak(datalist)
    assert (Path(datalist["root"]) / datalist["training"][0]["image"]).is_file()


def test_chestxray14_errors(tmp_path):
    rows = _chestxray14(tmp_path)
    (tmp_path / "images_002" / "images" / "00000012_001.png").unlink()
    with pytest.raises(MissingFileError, match="00000012_001.png"):
        build_datalist("chestxray14", tmp_path)
    datalist = build_datalist("chestxray14", tmp_path, skip_bad=True)
    assert len(_all_items(datalist)) == 23 and datalist["skipped"][0]["path"] == "00000012_001.png"
    rows[0][1] = "Cardiomegaly|Flu"
    _csv(
        tmp_path / "Data_Entry_2017.csv",
        ["Image Index", "Finding Labels", "Patient ID"],
        [r[:2] + [r[3]] for r in rows],
    )
    with pytest.raises(LayoutError, match="unknown finding 'Flu'"):
        build_datalist("chestxray14", tmp_path, check_files=False)
    (tmp_path / "test_list.txt").unlink()
    with pytest.raises(MissingFileError, match="test_list.txt"):
        build_datalist("chestxray14", tmp_path)


# ---------------------------------------------------------------- CheXpert


def _chexpert(parent):
    folder = parent / "CheXpert-v1.0-small"
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_OBSERVATIONS]
    train, valid = [], []
    for patient in range(1, 11):
        for view in ("frontal", "lateral"):
            rel = f"train/patient{patient:05d}/study1/view{1 if view == 'frontal' else 2}_{view}.jpg"
            _jpg(folder / rel)
            labels = [""] * 14
            labels[2] = "-1.0" if patient % 2 else "1.0"  # Cardiomegaly uncertain / positive
            labels[5] = "0.0"  # Edema negative; everything else blank
            train.append([f"CheXpert-v1.0-small/{rel}", "Male", 60, view.capitalize(), "AP", *labels])
    for patient in range(64541, 64544):
        rel = f"valid/patient{patient}/study1/view1_frontal.jpg"
        _jpg(folder / rel)
        valid.append([f"CheXpert-v1.0-small/{rel}", "Female", 70, "Frontal", "PA", "1.0"] + ["0.0"] * 13)
    _csv(folder / "train.csv", header, train)
    _csv(folder / "valid.csv", header, valid)
    return folder, header, train


@pytest.mark.parametrize("policy, uncertain", [("ones", 1), ("zeros", 0), ("ignore", -1)])
def test_chexpert_uncertain_policy(tmp_path, policy, uncertain):
    folder, _, _ = _chexpert(tmp_path)
    datalist = build_datalist("chexpert", tmp_path, uncertain_policy=policy, val_fraction=0.2, seed=1)
    assert datalist["root"] == str(folder) and datalist["task"] == "multilabel"
    items = {it["image"]: it for it in _all_items(datalist)}
    odd = items["train/patient00001/study1/view1_frontal.jpg"]
    even = items["train/patient00002/study1/view2_lateral.jpg"]
    assert odd["label"] == [0, 0, uncertain] + [0] * 11  # blank -> 0, -1 -> policy
    assert even["label"] == [0, 0, 1] + [0] * 11 and even["view"] == "Lateral"
    assert odd["patient_id"] == "patient00001" and odd["study"] == "patient00001/study1"
    assert {it["patient_id"] for it in datalist["test"]} == {"patient64541", "patient64542", "patient64543"}
    assert datalist["test"][0]["label"] == [1] + [0] * 13
    assert len({it["patient_id"] for it in datalist["validation"]}) == 2
    _no_leak(datalist)
    assert all((folder / it["image"]).is_file() for it in items.values())


def test_chexpert_frontal_only_and_errors(tmp_path):
    folder, header, train = _chexpert(tmp_path)
    datalist = build_datalist("chexpert", folder, frontal_only=True)
    assert len(_all_items(datalist)) == 13 and {it["view"] for it in _all_items(datalist)} == {"Frontal"}
    train[0][header.index("Edema")] = "2.0"
    _csv(folder / "train.csv", header, train)
    with pytest.raises(LayoutError, match=r"row 2, column 'Edema': '2.0' is not 1, 0, -1 or blank"):
        build_datalist("chexpert", folder)
    with pytest.raises(ValueError, match="did you mean 'ones'"):
        build_datalist("chexpert", folder, uncertain_policy="one")
    _csv(folder / "train.csv", header[:-1], [r[:-1] for r in train])
    with pytest.raises(LayoutError, match=r"lacks the required column\(s\) \['Support Devices'\]"):
        build_datalist("chexpert", folder)


# ---------------------------------------------------------------- MIMIC-CXR-JPG


def test_mimic_cxr(tmp_path):
    meta, labels, split_rows = [], [], []
    splits = {"10000032": "train", "10000033": "train", "10000034": "validate", "10000035": "test"}
    for s, (subject, split) in enumerate(splits.items()):
        study = str(50000000 + s)
        for view in ("PA", "LATERAL"):
            dicom_id = f"d{s}{view[0]}"
            _jpg(tmp_path / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg")
            meta.append([dicom_id, subject, study, "CHEST (PA AND LAT)", view])
            split_rows.append([dicom_id, study, subject, split])
        if subject != "10000035":  # the test subject's study has no CheXpert row
            labels.append([subject, study] + ["-1.0", "", "1.0"] + ["0.0"] * 11)
    _csv(
        tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz",
        ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition"],
        meta,
    )
    _csv(tmp_path / "mimic-cxr-2.0.0-chexpert.csv", ["subject_id", "study_id", *CHEXPERT_OBSERVATIONS], labels)
    _csv(tmp_path / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split_rows)

    datalist = build_datalist("mimic_cxr", tmp_path, uncertain_policy="zeros")
    assert [len(datalist[s]) for s in SPLITS] == [4, 2, 0]  # unlabelled test study dropped
    item = datalist["training"][0]
    assert item == {
        "image": "files/p10/p10000032/s50000000/d0P.jpg",
        "label": [0, 0, 1] + [0] * 11,
        "patient_id": "10000032",
        "study_id": "50000000",
        "dicom_id": "d0P",
        "view": "PA",
        "split": "training",
    }
    kept = build_datalist("mimic_cxr", tmp_path, frontal_only=True, labelled_only=False, uncertain_policy="ignore")
    assert [len(kept[s]) for s in SPLITS] == [2, 1, 1] and {it["view"] for it in _all_items(kept)} == {"PA"}
    assert kept["training"][0]["label"][0] == -1 and kept["test"][0]["label"] == [-1] * 14
    _no_leak(kept)
    (tmp_path / "files" / "p10" / "p10000033" / "s50000001" / "d1P.jpg").unlink()
    with pytest.raises(MissingFileError, match="d1P.jpg"):
        build_datalist("mimic_cxr", tmp_path)
    (tmp_path / "mimic-cxr-2.0.0-chexpert.csv").unlink()
    with pytest.raises(MissingFileError, match=r"mimic-cxr-2.0.0-chexpert.csv\(.gz\) does not exist"):
        build_datalist("mimic_cxr", tmp_path)


# ---------------------------------------------------------------- DICOM folders and reading


def test_dicom_cxr(tmp_path):
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8)
    for p in range(6):
        for k in range(2):
            write_dicom(tmp_path / f"site/pat{p}" / f"{k}.dcm", pixels, patient_id=f"PAT{p}", ViewPosition="PA")
    (tmp_path / "site" / "notes.txt").write_text("not an image")  # ignored: not a DICOM suffix
    datalist = build_datalist("dicom_cxr", tmp_path, fractions=(0.5, 0.25, 0.25), seed=0)
    assert datalist["task"] == "unlabelled" and len(_all_items(datalist)) == 12
    assert [len({it["patient_id"] for it in datalist[s]}) for s in SPLITS] == [3, 2, 1]
    _no_leak(datalist)
    item = datalist["training"][0]
    assert item["image"].startswith("site/pat") and item["view"] == "PA" and item["modality"] == "CR"

    rows = [[f"site/pat{p}/{k}.dcm", "pneumonia" if p % 2 else "normal"] for p in range(6) for k in range(2)]
    _csv(tmp_path / "labels.csv", ["file", "finding"], rows)
    labelled = build_datalist(
        "dicom_cxr", tmp_path, labels_csv="labels.csv", image_column="file", label_column="finding"
    )
    assert labelled["task"] == "binary" and labelled["labels"] == {"0": "normal", "1": "pneumonia"}
    assert all(it["label"] == int(it["image"].split("/")[1][-1]) % 2 for it in _all_items(labelled))
    # ids and patient ids hold no header value (PAT0 ... PAT5 -> patient_001 ... patient_006), no UIDs
    ids = sorted(it["id"] for it in _all_items(labelled))
    assert ids[:3] == ["patient_001_image_001", "patient_001_image_002", "patient_002_image_001"]
    assert {it["patient_id"] for it in _all_items(labelled)} == {f"patient_{i:03d}" for i in range(1, 7)}
    values = [json.dumps({k: v for k, v in it.items() if k != "image"}) for it in _all_items(labelled)]
    assert not any("PAT" in v or "study_uid" in v or "series_uid" in v for v in values)
    phi = build_datalist("dicom_cxr", tmp_path, phi_ids=True)
    assert {it["patient_id"] for it in _all_items(phi)} == {f"PAT{p}" for p in range(6)}
    assert all(it["study_uid"] for it in _all_items(phi))

    (tmp_path / "site" / "broken.dcm").write_bytes(b"\x00" * 50)
    with pytest.raises(UnreadableFileError, match="broken.dcm"):
        build_datalist("dicom_cxr", tmp_path)
    skipped = build_datalist("dicom_cxr", tmp_path, skip_bad=True)
    assert len(_all_items(skipped)) == 12 and skipped["skipped"][0]["path"].endswith("broken.dcm")
    (tmp_path / "site" / "broken.dcm").unlink()
    write_dicom(tmp_path / "site" / "anon.dcm", pixels, patient_id="")
    with pytest.raises(LayoutError, match="anon.dcm has an empty PatientID"):
        build_datalist("dicom_cxr", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDatasetError, match="no DICOM file"):
        build_datalist("dicom_cxr", tmp_path / "empty")
