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
"""The 2D bundle's preprocessing written out in ``train.json`` (``preprocessing_transforms``): for each kind of
source it gives the same tensors as the library's ``image_preprocessing``, and evaluation uses it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_jepa.data import EmptyDatasetError, image_preprocessing, image_source_info, resolve_image_source
from monai_jepa.transforms import LoadCXRDicomd

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "cxr_lejepa" / "configs"
SHARED = REPO.parent / "shared" / "data"


def _check_same(tmp_path: Path, dataset_dir, image_size: int = 32, n: int = 3, **overrides) -> dict:
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    split = overrides.pop("train_split", "training")
    parser.update({"output_dir": str(tmp_path / "out"), "dataset_dir": dataset_dir, "image_size": image_size,
                   "max_items": n, "train#source#split": split, **overrides})  # fmt: skip
    source = parser.get_parsed_content("train#source")
    info = image_source_info(dataset_dir)
    assert source.info["source"] == info["source"] and source.info["in_channels"] == parser.get_parsed_content(
        "num_channels"
    )
    loader = LoadCXRDicomd(keys="image") if info["source"] == "dicom_cxr" else None
    expected = image_preprocessing(
        image_size, source.info["in_channels"], load=info["file_source"], spatial_dims=info["spatial_dims"],
        loader=loader,
    )  # fmt: skip
    pre = parser.get_parsed_content("train#preprocessing")
    for item in source.dataset.data[:n]:
        got, want = pre(dict(item))["image"], expected(dict(item))["image"]
        assert got.shape == want.shape and got.dtype == want.dtype == torch.float32
        assert torch.allclose(got, want, atol=1e-6)
    return source.info


def _pngs(folder: Path, mode: str, n: int = 4) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        shape = (40, 36, 3) if mode == "RGB" else (40, 36)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(folder / f"img_{i}.png")
    return folder


def test_demo_and_folders_match_library(tmp_path):
    assert _check_same(tmp_path, None)["source"] == "demo"
    grey = _check_same(tmp_path, str(_pngs(tmp_path / "grey", "L")), max_items=None)
    assert grey["source"] == "folder" and grey["in_channels"] == 1
    rgb = _check_same(tmp_path, str(_pngs(tmp_path / "rgb", "RGB")), max_items=None)
    assert rgb["in_channels"] == 3  # colour stays colour
    forced = _check_same(tmp_path, str(tmp_path / "rgb"), max_items=None, in_channels=1)
    assert forced["in_channels"] == 1


@pytest.mark.skipif(not (SHARED / "pneumoniamnist").is_dir(), reason="needs ../shared/data/pneumoniamnist")
def test_medmnist_arrays_are_not_rescaled(tmp_path):
    info = _check_same(tmp_path, str(SHARED / "pneumoniamnist" / "pneumoniamnist.npz"), image_size=28)
    assert info["source"] == "medmnist"


@pytest.mark.skipif(
    not (SHARED / "dicom_samples" / "RG1_UNCR.dcm").is_file(), reason="needs ../shared/data/dicom_samples"
)
def test_dicom_radiograph_matches_library(tmp_path):
    (tmp_path / "cr" / "patient").mkdir(parents=True)
    (tmp_path / "cr" / "patient" / "chest.dcm").symlink_to(SHARED / "dicom_samples" / "RG1_UNCR.dcm")
    found = []
    for split in ("training", "validation", "test"):  # one patient: in one split
        try:
            found.append((split, resolve_image_source(tmp_path / "cr", split, 32)))
        except EmptyDatasetError:
            pass
    assert len(found) == 1
    info = _check_same(tmp_path, str(tmp_path / "cr"), train_split=found[0][0])
    assert info["source"] == "dicom_cxr"


def test_evaluation_uses_the_training_preprocessing():
    train = json.loads((CONFIGS / "train.json").read_text())
    assert train["train"]["source"]["preprocessing"] == "@train#preprocessing"
    names = [t["_target_"].split(".")[-1] for t in train["preprocessing_transforms"]]
    assert names == ["LoadImaged", "EnsureChannelFirstd", "LoadCXRDicomd", "MatchChannelsd", "Resized",
                     "ScaleIntensityd", "EnsureTyped"]  # fmt: skip
    inference = json.loads((CONFIGS / "inference.json").read_text())  # run on its own (MONAI Label): a verbatim copy
    assert inference["preprocessing_transforms"] == train["preprocessing_transforms"]
    assert inference["source"]["preprocessing"] == "$None if @demo_input else @preprocessing"
    evaluate = json.loads((CONFIGS / "evaluate.json").read_text())
    for split in ("train", "val", "test"):
        assert evaluate["evaluate"][f"{split}_source"]["preprocessing"] == "@train#preprocessing"
