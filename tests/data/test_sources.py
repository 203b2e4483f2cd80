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
"""The source resolver: layout detection, datalists and preprocessed images / volumes for every supported 2D and 3D
layout, each on a small synthetic copy written by the test, the errors naming the files, and the real data when
../shared is there (PneumoniaMNIST, the DICOM samples, the TCIA series)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_jepa.data import (
    ImageSource,
    LayoutError,
    ShapeMismatchError,
    VolumeSource,
    detect_kind,
    detect_volume_source_kind,
    make_demo_brats,
    resolve_source,
    resolve_volume_source,
    volume_datalist,
)
from monai_jepa.data.errors import EmptyDatasetError
from monai_jepa.data.sources import detect_source_kind, folder_channels, resolve_image_source
from monai_jepa.transforms import LoadVolumed
from tests.data.test_io import write_dicom

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
TCIA = DATA / "tcia_brain_tumor_progression"
PNEUMONIA = DATA / "pneumoniamnist" / "pneumoniamnist.npz"
CR_DICOM = DATA / "dicom_samples" / "RG1_UNCR.dcm"


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _blob(shape=(10, 12, 8), seed=0, offset=0.0) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipsoid on a zero background and its label map (1 outside the core, 2 in the core)."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    r = np.sqrt((grid**2).sum(0))
    img = np.where(r < 0.8, 100.0 + offset + np.random.RandomState(seed).rand(*shape) * 50, 0.0).astype(np.float32)
    seg = np.where(r < 0.3, 2, np.where(r < 0.6, 1, 0)).astype(np.uint8)
    return img, seg


# ---------------------------------------------------------------------------------------------------- layouts


def _brats2023(root: Path, cases: int = 3) -> Path:
    for i in range(cases):
        case = f"BraTS-GLI-{i:05d}-000"
        img, seg = _blob(seed=i)
        for k, seq in enumerate(("t1n", "t1c", "t2w", "t2f")):
            _nifti(root / case / f"{case}-{seq}.nii.gz", np.where(img > 0, img + 10 * k, 0).astype(np.float32))
        label = np.where(seg == 2, 3, np.where((seg == 0) & (img > 0), 2, seg))  # 2023 codes: 1, 2 and 3
        _nifti(root / case / f"{case}-seg.nii.gz", label.astype(np.uint8))
    return root


def _msd(root: Path, modality: dict, cases: int = 3) -> Path:
    training = []
    for i in range(cases):
        img, seg = _blob(seed=i)
        stack = np.stack([img * (k + 1) for k in range(len(modality))], axis=-1)
        _nifti(root / "imagesTr" / f"case_{i:03d}.nii.gz", stack if len(modality) > 1 else img)
        _nifti(root / "labelsTr" / f"case_{i:03d}.nii.gz", seg)
        training.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    meta = {"name": "Toy", "modality": modality, "labels": {"0": "background", "1": "edema", "2": "core"},
            "training": training, "test": []}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def _medmnist3d(path: Path, size: int = 12, dims: int = 3) -> Path:
    rs = np.random.RandomState(0)
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 4)):
        arrays[f"{split}_images"] = (rs.rand(n, *(size,) * dims) * 255).astype(np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2)[:, None].astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def _dicom_series(folder: Path, uid: str, description: str, values: np.ndarray, spacing=(1.0, 1.0), **tags) -> None:
    """One DICOM series, a slice per first-axis index of ``values`` (slices, rows, columns), 2 mm apart."""
    tags = {"study_uid": "1.2.3.4", "Modality": "MR", "SeriesDescription": description, "StudyDate": "20200101", **tags}
    for k, pixels in enumerate(values):
        write_dicom(folder / f"{k:03d}.dcm", pixels, z=2.0 * k, series_uid=uid, instance=k + 1, spacing=spacing, **tags)


def _dicom_study(root: Path) -> Path:
    """T1 and FLAIR on one 4 x 8 x 8 grid, T2 on a coarser 4 x 5 x 5 grid (1.6 mm pixels), a mask on the T1 grid."""
    base = np.arange(4)[:, None, None] * 10 + np.arange(8)[None, :, None] + np.arange(8)[None, None, :] + 1
    _dicom_series(root / "t1", "1.2.3.4.1", "T1", base)
    _dicom_series(root / "flair", "1.2.3.4.2", "FLAIR", base + 1000)
    _dicom_series(root / "t2", "1.2.3.4.3", "T2", base[:, :5, :5] + 2000, spacing=(1.6, 1.6))
    mask = np.zeros((4, 8, 8), np.int16)
    mask[1:3, 2:6, 2:6] = 1
    _dicom_series(root / "mask", "1.2.3.4.9", "Mask_Tumor", mask)
    return root


def test_detection_of_every_layout(tmp_path):
    assert detect_volume_source_kind(None) == "demo" and detect_volume_source_kind(tmp_path / "missing") == "demo"
    (tmp_path / "empty").mkdir()
    assert detect_volume_source_kind(tmp_path / "empty") == "demo"
    make_demo_brats(tmp_path / "b21", num_cases=1, size=(16, 16, 16))
    assert detect_volume_source_kind(tmp_path / "b21") == "brats"
    assert detect_volume_source_kind(_brats2023(tmp_path / "b23" / "train", cases=1).parent) == "brats"
    assert detect_volume_source_kind(_msd(tmp_path / "msd", {"0": "MRI"}, cases=1)) == "msd"
    npz = _medmnist3d(tmp_path / "mm" / "toy3d.npz")
    assert detect_volume_source_kind(npz) == detect_volume_source_kind(npz.parent) == "medmnist"
    _nifti(tmp_path / "plain" / "a.nii.gz", np.ones((4, 4, 4), np.float32))
    assert detect_volume_source_kind(tmp_path / "plain") == "nifti_folder"
    write_dicom(tmp_path / "dcm" / "s1" / "x.dcm", np.zeros((4, 4)))
    assert detect_volume_source_kind(tmp_path / "dcm") == "dicom_series"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(LayoutError, match="matches no supported 3D layout"):
        detect_volume_source_kind(tmp_path / "other")
    with pytest.raises(LayoutError, match="not a MedMNIST 3D .npz"):
        detect_volume_source_kind(tmp_path / "other" / "notes.txt")


def test_demo_source_is_synthetic_loud_and_bratslike(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="monai_jepa.data.sources"):
        ds, info = resolve_volume_source(tmp_path / "missing", "training", 16, demo_dir=tmp_path / "demo",
                                         demo_num_cases=3, demo_size=(16, 16, 16), patch_size=8)  # fmt: skip
    assert "NO REAL DATA" in caplog.text and "SYNTHETIC" in caplog.text and "--dataset_dir" in caplog.text
    assert (info["source"], info["is_synthetic"], info["task"], info["in_channels"]) == (
        "demo",
        True,
        "segmentation",
        4,
    )
    assert (info["label_values"], info["num_classes"]) == ([0, 1, 2, 4], 4)
    item = ds[0]
    assert item["image"].shape == (4, 16, 16, 16) and item["image"].dtype == torch.float32
    assert item["label"].shape == (1, 16, 16, 16) and item["label"].dtype == torch.int64
    assert set(item["label"].unique().tolist()) <= {0, 1, 2, 3} and 3 in item["label"]  # enhancing 4 -> class 3
    brain = item["image"][0] != 0  # z-score on the non-zero (brain) voxels of each channel
    assert abs(float(item["image"][0][brain].mean())) < 0.2 and abs(float(item["image"][0][brain].std()) - 1) < 0.2
    with pytest.raises(ValueError, match="must be divisible by the patch size"):
        resolve_volume_source(None, spatial_size=(16, 16, 12), patch_size=8, demo_dir=tmp_path / "demo")


def test_brats_2021_and_2023(tmp_path):
    make_demo_brats(tmp_path / "b21", num_cases=3, size=(16, 16, 16))
    ds21, info21 = resolve_volume_source(tmp_path / "b21", "training", (16, 16, 16))
    assert (info21["source"], info21["in_channels"], info21["label_values"]) == ("brats", 4, [0, 1, 2, 4])
    assert info21["is_synthetic"] is False and ds21[0]["id"].startswith("BraTS2021_")
    root = _brats2023(tmp_path / "b23")
    datalist = volume_datalist(root)
    assert (datalist["source"], datalist["version"], datalist["label_values"]) == ("brats", "2023", [0, 1, 2, 3])
    ds, info = resolve_volume_source(datalist=datalist, split="training", spatial_size=(16, 16, 16))
    item = ds[0]
    assert item["image"].shape == (4, 16, 16, 16) and info["num_items"] == len(datalist["training"])
    assert set(item["label"].unique().tolist()) == {0, 1, 2, 3}  # already contiguous: kept
    # channel order t1n, t1c, t2w, t2f: the raw intensities differ by 10 per channel, z-scoring removes it
    raw = LoadVolumed()({"image": [str(Path(datalist["root"]) / f) for f in datalist["training"][0]["image"]]})
    means = [float(raw["image"][c][raw["image"][c] > 0].mean()) for c in range(4)]
    assert np.allclose(np.diff(means), 10, atol=1e-3)


def test_msd_task_modalities_become_channels(tmp_path):
    root = _msd(tmp_path / "Task99_Toy", {"0": "FLAIR", "1": "T1w"})
    ds, info = resolve_volume_source(root, "training", (8, 16, 8), fractions=(1, 0, 0))
    assert (info["source"], info["name"], info["in_channels"], info["num_classes"]) == ("msd", "msd", 2, 3)
    assert info["labels"] == ["background", "edema", "core"] and info["num_items"] == 3
    item = ds[0]
    assert item["image"].shape == (2, 8, 16, 8) and set(item["label"].unique().tolist()) == {0, 1, 2}
    # CT: a Hounsfield window mapped to [0, 1] instead of the MRI z-score
    ct, ct_info = resolve_volume_source(_msd(tmp_path / "Task98_CT", {"0": "CT"}), "training", 8, fractions=(1, 0, 0))
    image = ct[0]["image"]
    assert ct_info["in_channels"] == 1 and float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    with pytest.raises(EmptyDatasetError, match="'test' split"):
        resolve_volume_source(root, "test", 8, fractions=(1, 0, 0))


def test_medmnist_3d_npz_file_and_folder(tmp_path):
    npz = _medmnist3d(tmp_path / "toy3d" / "toy3d.npz")
    ds, info = resolve_volume_source(npz.parent, "test", 16, patch_size=8)
    assert (info["source"], info["task"], info["num_classes"], info["in_channels"]) == ("medmnist", "binary", 2, 1)
    assert [d["label"] for d in ds] == [0, 1, 0, 1] and ds[1]["id"] == "toy3d_test_00001"
    image = ds[0]["image"]  # 12^3 in [0, 1], zero-padded to 16^3 (2 voxels each side)
    assert image.shape == (1, 16, 16, 16) and float(image.max()) <= 1.0
    assert float(image[:, :2].abs().sum()) == 0 and float(image[:, 2:14, 2:14, 2:14].min()) >= 0
    assert "label_values" not in info
    datalist = volume_datalist(npz)
    assert [len(datalist[s]) for s in ("training", "validation", "test")] == [6, 2, 4]
    with pytest.raises(LayoutError, match="expected a 3D flavour"):
        volume_datalist(_medmnist3d(tmp_path / "flat" / "toy2d.npz", dims=2))


def test_nifti_folder_with_labels_and_errors_naming_files(tmp_path):
    root = tmp_path / "nifti"
    for i in range(4):
        img, seg = _blob(seed=i)
        _nifti(root / "images" / f"c{i}.nii.gz", img)
        _nifti(root / "labels" / f"c{i}.nii.gz", (seg * 3).astype(np.uint8))  # stored values 0, 3, 6
    ds, info = resolve_volume_source(root, "training", 16, fractions=(1, 0, 0), max_items=2)
    assert (info["source"], info["label_values"], info["num_items"]) == ("nifti_folder", [0, 3, 6], 2)
    assert set(ds[0]["label"].unique().tolist()) == {0, 1, 2}
    # an image / label affine mismatch is found when the case is loaded, naming the label file
    img, seg = _blob(seed=9)
    _nifti(root / "images" / "c9.nii.gz", img)
    _nifti(root / "labels" / "c9.nii.gz", seg, affine=np.diag([2.0, 1.0, 1.0, 1.0]))
    load = LoadVolumed()
    with pytest.raises(ShapeMismatchError, match=r"label .*c9.nii.gz and image .*c9.nii.gz differ in affine"):
        load({"image": str(root / "images" / "c9.nii.gz"), "label": str(root / "labels" / "c9.nii.gz")})
    # a shape mismatch is found by the datalist builder, naming the label file
    _nifti(root / "labels" / "c9.nii.gz", seg[:-1])
    with pytest.raises(ShapeMismatchError, match=r"labels/c9.nii.gz has spatial shape \(9, 12, 8\)"):
        volume_datalist(root)
    # channel files of one case with different affines: both files named
    a = _nifti(tmp_path / "ch" / "x_0000.nii.gz", img)
    b = _nifti(tmp_path / "ch" / "x_0001.nii.gz", img, affine=np.diag([1.0, 1.0, 1.5, 1.0]))
    with pytest.raises(ShapeMismatchError, match=r"x_0000.nii.gz .* and .*x_0001.nii.gz .* differ in affine"):
        load({"image": [str(a), str(b)]})


def test_dicom_series_items_stacking_and_resampling(tmp_path):
    root = _dicom_study(tmp_path / "dicom" / "P1")
    root = root.parent
    datalist = volume_datalist(root)
    assert (datalist["source"], datalist["task"], datalist["label_values"], datalist["in_channels"]) == (
        "dicom_series", "segmentation", [0, 1], 1)  # fmt: skip
    items = {i["id"]: i for i in datalist["training"]}
    # ids hold no header value (Patient ID, dates): patients and studies are numbered
    assert sorted(items) == ["patient_001_study_1_FLAIR", "patient_001_study_1_T1", "patient_001_study_1_T2"]
    assert {i["patient_id"] for i in items.values()} == {"patient_001"}  # the mask is no image
    named = volume_datalist(root, dicom_phi_ids=True)
    assert sorted(i["id"] for i in named["training"]) == ["P1_20200101_FLAIR", "P1_20200101_T1", "P1_20200101_T2"]
    assert all(i["label"] == "P1/mask" for i in items.values())
    ds, info = resolve_volume_source(datalist=datalist, spatial_size=(8, 8, 4), intensity="none")
    by_id = {d["id"]: d for d in ds}
    t2 = by_id["patient_001_study_1_T2"]  # the mask (8 x 8 pixels of 1 mm) resampled onto the T2 grid (5 x 5, 1.6 mm)
    assert t2["image"].shape == t2["label"].shape == (1, 8, 8, 4) and int(t2["label"].sum()) > 0

    stacked = volume_datalist(root, dicom_sequences=["T1", "FLAIR", "T2"])
    (item,) = stacked["training"]
    assert item["image"] == ["P1/t1", "P1/flair", "P1/t2"] and stacked["in_channels"] == 3
    paths = [str(root / p) for p in item["image"]]
    loaded = LoadVolumed(resample=True)({"image": paths, "label": str(root / item["label"])})
    image = loaded["image"]
    assert image.shape == (3, 8, 8, 4) and loaded["label"].shape == (1, 8, 8, 4)
    i, j, k = np.meshgrid(np.arange(8), np.arange(8), np.arange(4), indexing="ij")
    assert np.allclose(image[0].numpy(), 1 + 10 * k + i + j) and torch.equal(image[1], image[0] + 1000)
    # T2 resampled (trilinear) onto the T1 grid: exact inside its 6.4 mm field of view, where the values are linear
    inside = (i < 7) & (j < 7)
    assert np.allclose(image[2].numpy()[inside], (2001 + 10 * k + (i + j) / 1.6)[inside], atol=1e-3)
    with pytest.raises(ShapeMismatchError, match=r"P1/t1 \(0\) and .*P1/t2 \(2\) differ in spatial shape"):
        LoadVolumed(resample=False)({"image": paths})
    with pytest.raises(EmptyDatasetError, match="no DICOM study"):
        volume_datalist(root, dicom_sequences=["T1", "DWI"])


def test_dicom_series_sharing_one_folder_are_file_lists(tmp_path):
    base = np.arange(4 * 6 * 6, dtype=np.int16).reshape(4, 6, 6) % 50 + 1
    mask = (base > 25).astype(np.int16)
    _dicom_series(tmp_path / "flat", "1.2.3.4.1", "T1", base)
    for k in range(4):  # the mask slices sit in the same folder as the image slices
        (tmp_path / "flat" / f"{k:03d}.dcm").rename(tmp_path / "flat" / f"t1_{k:03d}.dcm")
    _dicom_series(tmp_path / "flat", "1.2.3.4.9", "seg", mask)
    datalist = volume_datalist(tmp_path)
    (item,) = datalist["training"]
    assert len(item["image"]) == 1 and len(item["image"][0]) == 4 and len(item["label"]) == 4  # file lists
    ds, info = resolve_volume_source(datalist=datalist, spatial_size=(6, 6, 4), intensity="none")
    loaded = ds[0]
    assert info["label_values"] == [0, 1] and loaded["image"].shape == (1, 6, 6, 4)
    assert torch.equal(loaded["label"], (loaded["image"] > 25).long())  # the mask series, on the image's grid


@pytest.mark.skipif(not TCIA.is_dir(), reason="TCIA Brain-Tumor-Progression series not available (../shared/data)")
def test_tcia_series_load_and_baseline_sequences_stack():
    datalist = volume_datalist(TCIA)
    ids = sorted(i["id"] for s in ("training", "validation", "test") for i in datalist[s])
    studies = ["_".join(i.split("_")[:4]) for i in ids]  # patient_001_study_<k>: the baseline, then the follow-up
    assert studies.count("patient_001_study_1") == 4 and studies.count("patient_001_study_2") == 2
    assert not any("PGBM" in i or "1991" in i or "1992" in i for i in ids)  # no Patient ID, no date
    assert datalist["task"] == "segmentation" and datalist["label_values"] == [0, 1]  # MaskTumor series as labels
    ds, _ = resolve_volume_source(datalist=datalist, spatial_size=(64, 64, 16))
    dates = {}
    for index, entry in enumerate(ds.data):
        if entry["id"].split("_")[3] not in dates:
            dates[entry["id"].split("_")[3]] = ds[index]
    assert sorted(dates) == ["1", "2"]  # both time points load as volumes
    assert all(d["image"].shape == (1, 64, 64, 16) and torch.isfinite(d["image"]).all() for d in dates.values())

    stacked = volume_datalist(TCIA, dicom_sequences=["T1pre", "T1post", "FLAIR", "T2"])
    (item,) = stacked["training"] + stacked["validation"] + stacked["test"]  # the follow-up lacks T1pre and T2
    assert [Path(p).name.split("-")[1] for p in item["image"]] == ["T1prereg", "T1post", "FLAIRreg", "T2reg"]
    assert item["id"] == "patient_001_study_1" and "no series matching" in stacked["skipped"][0]["reason"]
    # the four registered baseline series share one grid: stacked as they are, without resampling
    loaded = LoadVolumed()({"image": [str(TCIA / p) for p in item["image"]], "label": str(TCIA / item["label"])})
    assert loaded["image"].shape == (4, 260, 320, 25) and loaded["label"].shape == (1, 260, 320, 25)
    assert int(loaded["label"].sum()) > 0


# ------------------------------------------------------------------------------------------------------- 2D sources


def test_demo_source_warns_loudly_and_is_seeded(caplog):
    with caplog.at_level(logging.WARNING, logger="monai_jepa.data.sources"):
        ds, info = resolve_image_source("/does/not/exist", "train", 32, demo_num_images=20)
    assert "SYNTHETIC" in caplog.text and "--dataset_dir" in caplog.text
    assert (info["source"], info["is_synthetic"], info["task"], info["num_items"]) == ("demo", True, "binary", 20)
    item = ds[0]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    again, _ = resolve_image_source(None, "training", 32, demo_num_images=20)
    assert torch.equal(again[0]["image"], item["image"])
    test, test_info = resolve_image_source("", "test", 32, demo_num_images=20)
    assert test_info["num_items"] == 10 and not torch.equal(test[0]["image"], item["image"])


def _write_png(path: Path, size=(40, 50), rgb=False, seed=0) -> None:
    rs = np.random.RandomState(seed)
    shape = (*size, 3) if rgb else size
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((rs.rand(*shape) * 255).astype(np.uint8)).save(path)


def test_folder_source_with_labels_csv_and_split(tmp_path):
    for i in range(6):
        _write_png(tmp_path / "imgs" / f"{i}.png", rgb=i == 0, seed=i)
    rows = [("imgs/0.png", "pneumonia", "training"), ("imgs/1.png", "normal", "training")]
    rows += [("imgs/2.png", "normal", "test"), ("imgs/3.png", "pneumonia", "validation"), ("imgs/4.png", "normal", "")]
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image", "label", "split"), *rows])
    assert detect_source_kind(tmp_path) == "folder"
    ds, info = resolve_image_source(tmp_path, "test", 24, cache=True)
    assert (info["task"], info["labels"], info["in_channels"]) == (
        "binary",
        ["normal", "pneumonia"],
        3,
    )  # 0.png: colour
    assert [d["id"] for d in ds] == ["imgs/2.png"] and ds[0]["image"].shape == (3, 24, 24)  # grey file, replicated
    train, _ = resolve_image_source(tmp_path, "training", 24, in_channels=1)
    by_id = {d["id"]: d for d in train}
    assert by_id["imgs/0.png"]["label"] == 1 and by_id["imgs/1.png"]["label"] == 0
    img = by_id["imgs/0.png"]["image"]  # RGB -> one channel, 40x50 -> 24x24, min-max scaled
    assert img.shape == (1, 24, 24) and float(img.min()) == 0.0 and float(img.max()) == 1.0
    assert "imgs/4.png" in by_id  # no split given: seeded random split (one image: training)
    assert "imgs/5.png" not in by_id  # not in labels.csv
    rgb, info3 = resolve_image_source(tmp_path, "training", 24, in_channels=3)
    assert rgb[0]["image"].shape == (3, 24, 24) and info3["in_channels"] == 3


def test_folder_channels_follow_the_data(tmp_path):
    """Colour photographs stay RGB; grey images stay one channel, also when saved as RGB (JPEG included)."""
    grey = (np.random.RandomState(0).rand(32, 32) * 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "grey_rgb.jpg", quality=90)
    _write_png(tmp_path / "colour.png", rgb=True)
    assert folder_channels([tmp_path / "grey.png", tmp_path / "grey_rgb.jpg"]) == 1
    assert folder_channels([tmp_path / "grey.png", tmp_path / "colour.png"]) == 3
    assert folder_channels([tmp_path / "grey.png", tmp_path / "colour.png"], max_files=1) == 1
    (tmp_path / "colour.png").unlink()
    ds, info = resolve_image_source(tmp_path, "training", 16, test_fraction=0, val_fraction=0)
    assert info["in_channels"] == 1 and ds[0]["image"].shape == (1, 16, 16)


def test_unlabelled_folder_is_split_at_random(tmp_path):
    for i in range(10):
        _write_png(tmp_path / f"{i}.jpg", seed=i)
    sizes = {s: resolve_image_source(tmp_path, s, 16)[1]["num_items"] for s in ("training", "validation", "test")}
    assert sizes == {"training": 7, "validation": 1, "test": 2}
    ds, info = resolve_image_source(tmp_path, "training", 16)
    assert info["task"] == "unlabelled" and {d["label"] for d in ds} == {-1}


def test_source_kind_detection(tmp_path):
    assert detect_source_kind(None) == "demo" and detect_source_kind(tmp_path / "missing") == "demo"
    assert detect_source_kind(tmp_path) == "demo"  # empty folder
    layouts = {
        "nih": ("Data_Entry_2017.csv", "Image Index,Finding Labels\n"),
        "chexpert": ("train.csv", "Path,Sex,Age\n"),
        "mimic": ("mimic-cxr-2.0.0-metadata.csv", "dicom_id,subject_id\n"),
        "dicom": ("a/b/x.dcm", ""),
        "npz": ("data.npz", ""),
    }
    expected = {"nih": "chestxray14", "chexpert": "chexpert", "mimic": "mimic_cxr", "dicom": "dicom_cxr"}
    for folder, (name, text) in layouts.items():
        (tmp_path / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name).write_text(text)
        assert detect_source_kind(tmp_path / folder) == expected.get(folder, "medmnist")
    assert detect_source_kind(tmp_path / "npz" / "data.npz") == "medmnist"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(LayoutError, match="matches no supported layout"):
        resolve_image_source(tmp_path / "other")
    with pytest.raises(LayoutError, match="not a MedMNIST"):
        detect_source_kind(tmp_path / "other" / "notes.txt")
    with pytest.raises(EmptyDatasetError):
        resolve_image_source(tmp_path / "other", kind="folder")


@pytest.mark.skipif(not PNEUMONIA.is_file(), reason="PneumoniaMNIST not available (../shared/data)")
def test_medmnist_source():
    ds, info = resolve_image_source(PNEUMONIA, "val", 64, max_items=5)
    assert (info["source"], info["task"], info["num_classes"], info["num_items"]) == ("medmnist", "binary", 2, 5)
    item = ds[0]
    assert item["image"].shape == (1, 64, 64) and isinstance(item["label"], int)
    folder_ds, folder_info = resolve_image_source(PNEUMONIA.parent, "test", 28, max_items=3)
    assert folder_info["source"] == "medmnist" and folder_ds[0]["image"].shape == (1, 28, 28)


@pytest.mark.skipif(not CR_DICOM.is_file(), reason="DICOM samples not available (../shared/data)")
def test_dicom_source(tmp_path):
    (tmp_path / "cr").mkdir()
    (tmp_path / "cr" / "chest.dcm").symlink_to(CR_DICOM.resolve())
    assert detect_source_kind(tmp_path) == "dicom_cxr"
    found = []
    for split in ("training", "validation", "test"):
        try:
            found.append(resolve_image_source(tmp_path, split, 32))
        except EmptyDatasetError:
            pass
    assert len(found) == 1  # one patient: one split
    ((ds, info),) = found
    image = ds[0]["image"]
    assert (info["source"], info["task"], info["num_items"]) == ("dicom_cxr", "unlabelled", 1)
    assert image.shape == (1, 32, 32) and float(image.min()) == 0.0 and float(image.max()) == 1.0


# --------------------------------------------------------------------------------------------------- one resolver


def test_one_detector_for_both_dimensionalities(tmp_path):
    for dims in (2, 3):  # the shared rules
        assert detect_kind(None, dims) == detect_kind(tmp_path / "missing", dims) == "demo"
        (tmp_path / "hidden_only").mkdir(exist_ok=True)
        (tmp_path / "hidden_only" / ".DS_Store").write_text("x")
        assert detect_kind(tmp_path / "hidden_only", dims) == "demo"
        (tmp_path / "npz").mkdir(exist_ok=True)
        (tmp_path / "npz" / "x.npz").write_text("")
        assert detect_kind(tmp_path / "npz", dims) == detect_kind(tmp_path / "npz" / "x.npz", dims) == "medmnist"
    uid_named = tmp_path / "dcm" / "s" / "1.2.840.10008.1"  # a DICOM file named by its UID (DICM marker)
    uid_named.parent.mkdir(parents=True)
    uid_named.write_bytes(write_dicom(tmp_path / "src.dcm", np.zeros((4, 4))).read_bytes())
    assert (detect_kind(tmp_path / "dcm", 2), detect_kind(tmp_path / "dcm", 3)) == ("dicom_cxr", "dicom_series")
    assert detect_source_kind(tmp_path / "dcm") == "dicom_cxr" and detect_volume_source_kind(tmp_path / "dcm") == (
        "dicom_series"
    )
    with pytest.raises(ValueError, match="spatial_dims"):
        detect_kind(tmp_path, 4)


def test_resolve_source_dispatches_on_spatial_dims(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="monai_jepa.data.sources"):
        image = resolve_source(None, "val", 2, image_size=16, demo_num_images=8)
    assert isinstance(image, ImageSource) and image.info["num_items"] == 2 and image.info["split"] == "validation"
    assert image.dataset[0]["image"].shape == (1, 16, 16) and caplog.text.count("NO REAL DATA") == 1
    volume = resolve_source(None, "test", 3, spatial_size=16, demo_dir=tmp_path / "demo", demo_num_cases=3,
                            demo_size=(16, 16, 16))  # fmt: skip
    assert isinstance(volume, VolumeSource) and volume.info["source"] == "demo" and volume.info["split"] == "test"
    assert volume.dataset[0]["image"].shape == (4, 16, 16, 16) and "bundles/brats_vjepa" in caplog.text
    with pytest.raises(ValueError, match="spatial_dims"):
        resolve_source(None, "training", 1)
    with pytest.raises(LayoutError, match="unknown split"):
        resolve_image_source(None, "holdout")


def test_medmnist_folder_must_hold_one_file(tmp_path):
    _medmnist3d(tmp_path / "a" / "toy3d.npz")
    _medmnist3d(tmp_path / "a" / "other3d.npz")
    with pytest.raises(LayoutError, match=r"MedMNIST: expected one .npz file in .*\['other3d.npz', 'toy3d.npz'\]"):
        volume_datalist(tmp_path / "a", kind="medmnist")
    with pytest.raises(LayoutError, match="expected one .npz file"):
        resolve_image_source(tmp_path / "a", kind="medmnist")


def test_volume_datalist_from_a_json_file(tmp_path):
    """A datalist file given as ``dataset_dir``: an earlier run's ``datalist.json`` is used as written (source,
    channels, label values kept); a plain Decathlon-style file gets its description from the files, paths relative to
    its folder."""
    written = volume_datalist(None, demo_dir=tmp_path / "demo", demo_num_cases=4, demo_size=(16, 16, 16),
                              out=tmp_path / "run" / "datalist.json")  # fmt: skip
    assert detect_volume_source_kind(tmp_path / "run" / "datalist.json") == "datalist"
    again = volume_datalist(tmp_path / "run" / "datalist.json")
    for key in ("source", "in_channels", "label_values", "task", "root", "training", "validation", "test"):
        assert again[key] == written[key], key
    assert again["source"] == "demo" and again["is_synthetic"]

    folder = tmp_path / "plain"
    (folder / "img").mkdir(parents=True)
    entries = []
    for i in range(3):
        vol = np.zeros((8, 8, 8), np.float32)
        vol[2:6, 2:6, 2:6] = np.arange(1, 65, dtype=np.float32).reshape(4, 4, 4) + i
        lab = (vol > 0).astype(np.uint8) * 2
        nib.save(nib.Nifti1Image(vol, np.eye(4)), str(folder / "img" / f"c{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(folder / "img" / f"c{i}_seg.nii.gz"))
        entries.append({"image": f"img/c{i}.nii.gz", "label": f"img/c{i}_seg.nii.gz"})
    (folder / "list.json").write_text(json.dumps({"training": entries[:2], "test": entries[2:]}))
    plain = volume_datalist(folder / "list.json")
    described = (plain["source"], plain["task"], plain["in_channels"], plain["label_values"])
    assert described == ("datalist", "segmentation", 1, [0, 2])
    assert plain["root"] == str(folder.resolve()) and plain["validation"] == []
    ds, info = resolve_volume_source(datalist=plain, split="training", spatial_size=8)
    assert len(ds) == 2 and info["num_classes"] == 2 and set(torch.unique(ds[0]["label"]).tolist()) == {0, 1}

    (folder / "bad.json").write_text(json.dumps({"training": []}))
    with pytest.raises(LayoutError, match="bad.json.*non-empty 'training'"):
        volume_datalist(folder / "bad.json")
