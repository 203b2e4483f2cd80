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
"""Synthetic BraTS-style demo folder: layout, geometry, labels, determinism and the ``brats`` datalist builder."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest

from monai_jepa.data import build_datalist
from monai_jepa.data.demo3d import make_demo_brats

SEQS = ("t1", "t1ce", "t2", "flair")


def test_files_shapes_affines_and_labels(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="monai_jepa.data.demo3d"):
        folders = make_demo_brats(tmp_path, num_cases=2, size=(24, 20, 16), seed=0)
    assert "SYNTHETIC" in caplog.text
    assert [f.name for f in folders] == ["BraTS2021_00000", "BraTS2021_00001"]
    for folder in folders:
        seg = nib.load(folder / f"{folder.name}_seg.nii.gz")
        labels = np.asarray(seg.dataobj)
        assert labels.shape == (24, 20, 16)
        assert set(np.unique(labels).tolist()) == {0, 1, 2, 4}
        means = {}
        for seq in SEQS:
            img = nib.load(folder / f"{folder.name}_{seq}.nii.gz")
            data = np.asarray(img.dataobj)
            assert data.shape == (24, 20, 16) and data.dtype == np.float32
            np.testing.assert_allclose(img.affine, seg.affine)
            assert data.min() >= 0 and data[labels > 0].min() > 0  # skull-stripped background, positive brain
            means[seq] = {k: data[labels == k].mean() for k in (1, 2, 4)}
        # contrasts differ by sequence: enhancing rim brightest in T1ce, oedema brighter than the rim in FLAIR
        assert means["t1ce"][4] > 1.5 * means["t1"][4]
        assert means["flair"][2] > means["flair"][4]


def test_deterministic_and_seed_dependent(tmp_path):
    a = make_demo_brats(tmp_path / "a", num_cases=1, size=(16, 16, 16), seed=3)[0]
    b = make_demo_brats(tmp_path / "b", num_cases=1, size=(16, 16, 16), seed=3)[0]
    c = make_demo_brats(tmp_path / "c", num_cases=1, size=(16, 16, 16), seed=4)[0]
    for seq in (*SEQS, "seg"):
        name = f"BraTS2021_00000_{seq}.nii.gz"
        np.testing.assert_array_equal(nib.load(a / name).get_fdata(), nib.load(b / name).get_fdata())
    name = "BraTS2021_00000_flair.nii.gz"
    assert not np.array_equal(nib.load(a / name).get_fdata(), nib.load(c / name).get_fdata())


def test_brats_datalist_reads_the_demo_folder(tmp_path):
    make_demo_brats(tmp_path, num_cases=5, size=(16, 16, 16))
    datalist = build_datalist("brats", tmp_path)
    assert datalist["version"] == "2021" and datalist["sequences"] == list(SEQS)
    items = [i for split in ("training", "validation", "test") for i in datalist.get(split, [])]
    assert len(items) == 5
    assert all(len(i["image"]) == 4 and i["label"].endswith("_seg.nii.gz") for i in items)


@pytest.mark.parametrize("kwargs", [{"size": (8, 16, 16)}, {"size": (16, 16)}, {"num_cases": 0}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_demo_brats(tmp_path, **kwargs)


def test_brats_dir_or_demo(tmp_path):
    from monai_jepa.data.demo3d import brats_dir_or_demo

    assert brats_dir_or_demo(str(tmp_path), tmp_path / "demo") == str(tmp_path)
    assert not (tmp_path / "demo").exists()
    out = brats_dir_or_demo(str(tmp_path / "missing"), tmp_path / "demo", num_cases=2, size=(16, 16, 16))
    assert out == str(tmp_path / "demo") and len(list((tmp_path / "demo").glob("BraTS2021_*"))) == 2
