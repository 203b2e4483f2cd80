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
"""The 3D bundle's preprocessing written out in ``train.json`` (``preprocessing_transforms``): for each kind of
source it gives the same tensors as the library's ``volume_preprocessing``, and the other configs use it (segment,
evaluate, interpret by reference; inference and embed by a verbatim copy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_jepa.data import volume_intensity, volume_preprocessing

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "brats_vjepa" / "configs"
SHARED = REPO.parent / "shared" / "data"


def _parser(tmp_path: Path, files: tuple[str, ...] = ("train.json",), **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f) for f in files])
    parser["output_dir"] = str(tmp_path / "out")
    for k, v in overrides.items():
        parser[k] = v
    return parser


def _expected(datalist: dict, size, spacing=None) -> torch.nn.Module:
    task = datalist["task"]
    if datalist["source"] == "medmnist":
        return volume_preprocessing(size, "none", label="class", load=False)
    return volume_preprocessing(
        size, volume_intensity(datalist), spacing, label=task == "segmentation", load=True,
        resample=datalist["source"] == "dicom_series", label_values=datalist.get("label_values"),
    )  # fmt: skip


def _check_same(parser: ConfigParser, size, spacing=None, n: int = 2) -> dict:
    source = parser.get_parsed_content("train#source")
    datalist = parser.get_parsed_content("datalist")
    expected = _expected(datalist, size, spacing)
    pre = parser.get_parsed_content("train#preprocessing")
    for i in range(min(n, len(source.dataset.data))):
        item = source.dataset.data[i]
        got, want = pre(dict(item)), expected(dict(item))
        assert set(got) == set(want), (sorted(got), sorted(want))
        for key in want:
            if isinstance(want[key], torch.Tensor):
                assert got[key].shape == want[key].shape and got[key].dtype == want[key].dtype, key
                assert torch.allclose(torch.as_tensor(got[key]), want[key], atol=1e-5), key
            else:
                assert np.array_equal(np.asarray(got[key]), np.asarray(want[key])), key
    return datalist


def _first_item(parser: ConfigParser) -> dict:
    item = parser.get_parsed_content("train#source").dataset.data[0]
    return parser.get_parsed_content("train#preprocessing")(dict(item))


def test_demo_segmentation_matches_library(tmp_path):
    """BraTS-layout demo cases (4 sequences, label values 0, 1, 2, 4), with and without resampling."""
    parser = _parser(tmp_path, demo_num_cases=4, demo_size=[24, 24, 24], volume_size=[24, 24, 24])
    datalist = _check_same(parser, (24, 24, 24))
    assert datalist["task"] == "segmentation" and list(datalist["label_values"]) == [0, 1, 2, 4]
    item = _first_item(parser)
    assert item["image"].shape[0] == 4 and set(torch.unique(item["label"]).tolist()) <= {0, 1, 2, 3}
    parser = _parser(tmp_path, demo_num_cases=4, demo_size=[24, 24, 24], volume_size=[16, 16, 16], spacing=2.0)
    _check_same(parser, (16, 16, 16), 2.0)


def _ct_folder(root: Path, n: int = 5) -> Path:
    import nibabel as nib

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    training = []
    for i in range(n):
        hu = np.full((20, 22, 18), -1000.0, np.float32)
        hu[3:17, 4:18, 2:16] = rng.uniform(-200, 300, (14, 14, 14))
        lab = np.zeros(hu.shape, np.uint8)
        lab[6:12, 6:12, 5:10] = 1
        nib.save(nib.Nifti1Image(hu, np.diag([1.5, 1.5, 2.0, 1.0])), str(root / "imagesTr" / f"ct_{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.diag([1.5, 1.5, 2.0, 1.0])), str(root / "labelsTr" / f"ct_{i}.nii.gz"))
        training.append({"image": f"./imagesTr/ct_{i}.nii.gz", "label": f"./labelsTr/ct_{i}.nii.gz"})
    meta = {"name": "ct", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "organ"}, "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_ct_folder_is_windowed_not_zscored(tmp_path):
    """An MSD-layout CT dataset: the written-out preprocessing windows Hounsfield units to [0, 1] (intensity
    ``auto``), exactly as the library does."""
    parser = _parser(tmp_path, dataset_dir=str(_ct_folder(tmp_path / "ct")), volume_size=[16, 16, 16])
    datalist = _check_same(parser, (16, 16, 16))
    assert volume_intensity(datalist) == "ct"
    image = _first_item(parser)["image"]
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


@pytest.mark.skipif(not (SHARED / "adrenalmnist3d").is_dir(), reason="needs ../shared/data/adrenalmnist3d")
def test_medmnist_arrays_are_only_sized(tmp_path):
    """MedMNIST 3D arrays skip loading, orientation and intensity: only pad / crop and typing, as the library."""
    npz = next((SHARED / "adrenalmnist3d").glob("*.npz"))
    parser = _parser(tmp_path, dataset_dir=str(npz), volume_size=[32, 32, 32], max_items=3)
    datalist = _check_same(parser, (32, 32, 32))
    assert datalist["source"] == "medmnist"


@pytest.mark.skipif(
    not (SHARED / "tcia_brain_tumor_progression").is_dir(), reason="needs ../shared/data/tcia_brain_tumor_progression"
)
def test_dicom_series_resampled_like_library(tmp_path):
    """DICOM series of one study, stacked and resampled onto the first one's grid, as the library does."""
    root = SHARED / "tcia_brain_tumor_progression"
    parser = _parser(
        tmp_path, dataset_dir=str(root), dataset_kind="dicom_series", volume_size=[32, 32, 32],
        dicom_sequences=["T1post", "FLAIR"], split_fractions=[1.0, 0.0, 0.0], max_items=1,
    )  # fmt: skip
    _check_same(parser, (32, 32, 32), n=1)


def test_other_configs_share_the_written_out_preprocessing():
    """segment / evaluate / interpret / domain_shift reference train.json's list; inference.json and embed.json (run on
    their own, e.g. by MONAI Label) hold a verbatim copy of it."""
    train = json.loads((CONFIGS / "train.json").read_text())
    shared = train["preprocessing_transforms"]
    assert [t["_target_"].split(".")[-1] for t in shared] == [
        "LoadVolumed", "Orientationd", "Spacingd", "NormalizeIntensityd", "ScaleIntensityRanged", "CropForegroundd",
        "MapLabelValued",
    ]  # fmt: skip
    for name in ("inference.json", "embed.json"):
        assert json.loads((CONFIGS / name).read_text())["preprocessing_transforms"] == shared, name
    segment = json.loads((CONFIGS / "segment.json").read_text())
    assert segment["segment"]["load_transforms"] == "@preprocessing_transforms"
    evaluate = json.loads((CONFIGS / "evaluate.json").read_text())
    assert all(evaluate["evaluate"][f"{s}_source"]["preprocessing"] == "@evaluate#preprocessing"
               for s in ("train", "val", "test"))  # fmt: skip
    interpret = json.loads((CONFIGS / "interpret.json").read_text())
    assert interpret["interpret"]["source"]["preprocessing"] == "@train#preprocessing"


def test_datalist_file_as_dataset_dir(tmp_path):
    """``--dataset_dir`` naming a datalist file (here an earlier run's ``datalist.json``): the same cases, the same
    written-out preprocessing."""
    first = _parser(tmp_path / "first", demo_num_cases=4, demo_size=[24, 24, 24], volume_size=[24, 24, 24])
    written = first.get_parsed_content("datalist")
    parser = _parser(tmp_path, dataset_dir=str(tmp_path / "first" / "out" / "datalist.json"), volume_size=[24, 24, 24])
    datalist = _check_same(parser, (24, 24, 24))
    assert datalist["training"] == written["training"] and datalist["source"] == "demo"


def test_inference_preprocessing_stands_alone(tmp_path):
    """MONAI Label instantiates inference.json's ``preprocessing`` on its own: that builds no datalist (no demo data
    written, no dataset folder needed) and loads a case file; ``intensity_mode`` is a plain value (``ct`` for a CT
    model)."""
    import nibabel as nib

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.update({"output_dir": str(tmp_path / "out"), "dataset_dir": str(tmp_path / "missing")})
    pre = parser.get_parsed_content("preprocessing")
    assert not (tmp_path / "out").exists()
    vol = np.zeros((20, 20, 20), np.float32)
    vol[4:16, 4:16, 4:16] = np.arange(12**3, dtype=np.float32).reshape(12, 12, 12) + 1
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "case.nii.gz"))
    image = pre({"image": str(tmp_path / "case.nii.gz")})["image"]
    assert image.shape == (1, 12, 12, 12) and abs(float(image.mean())) < 1e-4  # z-scored, cropped to the foreground
    parser["intensity_mode"] = "ct"
    image = parser.get_parsed_content("preprocessing", lazy=False)({"image": str(tmp_path / "case.nii.gz")})["image"]
    assert float(image.min()) >= 0.0 and float(image.max()) == 1.0  # the CT window
