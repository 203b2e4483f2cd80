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

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_jepa.data.errors import ShapeMismatchError
from monai_jepa.transforms.presets import (
    CT_WINDOWS,
    ct_preset,
    cxr_preset,
    get_preset,
    mri_preset,
    rgb_preset,
)
from tests.data.test_io import SAMPLES, write_dicom, write_nifti


def _cause(exc: BaseException, cls: type) -> BaseException:
    """The first exception of type ``cls`` in the ``__cause__`` chain of ``exc``."""
    while exc is not None and not isinstance(exc, cls):
        exc = exc.__cause__
    assert exc is not None, f"no {cls.__name__} in the cause chain"
    return exc


def _ct_volume(tmp_path: Path, affine=None) -> Path:
    hu = np.full((4, 5, 6), -300.0, np.float32)
    hu[0, 0, 0], hu[1, 0, 0], hu[2, 0, 0], hu[3, 0, 0] = -1000.0, 400.0, 1000.0, -2000.0
    return write_nifti(tmp_path / "ct.nii.gz", hu, affine)


def test_ct_window_values(tmp_path):
    out = ct_preset()({"image": str(_ct_volume(tmp_path))})["image"]
    assert out.shape == (1, 4, 5, 6) and out.dtype == torch.float32
    # default window (-1000, 400): -1000 -> 0, 400 -> 1, -300 -> 0.5; outside clipped
    assert out[0, 0, 0, 0] == pytest.approx(0.0) and out[0, 1, 0, 0] == pytest.approx(1.0)
    assert out[0, 2, 0, 0] == pytest.approx(1.0) and out[0, 3, 0, 0] == pytest.approx(0.0)
    assert out[0, 1, 1, 1] == pytest.approx(0.5)
    lo, hi = CT_WINDOWS["lung"]
    lung = ct_preset("lung")({"image": str(_ct_volume(tmp_path))})["image"]
    assert lung[0, 1, 1, 1] == pytest.approx((-300 - lo) / (hi - lo))
    raw = ct_preset((-1000, 400), clip=False)({"image": str(_ct_volume(tmp_path))})["image"]
    assert raw[0, 2, 0, 0] == pytest.approx(1400 / 1400 + 600 / 1400)


def test_ct_orientation_and_spacing(tmp_path):
    # stored in LPS (x flipped): after "RAS" the voxel stored first along x ends up last
    path = _ct_volume(tmp_path, affine=np.diag([-1.0, 1.0, 1.0, 1.0]))
    out = ct_preset(orientation="RAS")({"image": str(path)})["image"]
    assert out[0, 3, 0, 0] == pytest.approx(0.0)  # the -1000 voxel, stored at x = 0
    assert out.affine[0, 0] > 0
    kept = ct_preset(orientation=None)({"image": str(path)})["image"]
    assert kept[0, 0, 0, 0] == pytest.approx(0.0) and kept.affine[0, 0] < 0
    resampled = ct_preset(spacing=(2.0, 2.0, 2.0))({"image": str(_ct_volume(tmp_path))})["image"]
    np.testing.assert_allclose(resampled.pixdim.numpy(), [2.0, 2.0, 2.0])
    assert np.all(np.abs(np.asarray(resampled.shape[1:]) * 2 - [4, 5, 6]) <= 2)  # same extent on the 2 mm grid


def test_ct_labels_resampled_nearest(tmp_path):
    label = np.zeros((4, 5, 6), np.uint8)
    label[:2] = 2
    lpath = write_nifti(tmp_path / "lbl.nii.gz", label)
    t = ct_preset(spacing=(1.5, 1.5, 1.5), label_keys="label")
    out = t({"image": str(_ct_volume(tmp_path)), "label": str(lpath)})
    assert set(torch.unique(out["label"]).tolist()) == {0.0, 2.0}
    assert out["label"].shape == out["image"].shape


def test_mri_zscore_nonzero_and_percentile(tmp_path):
    rng = np.random.default_rng(0)
    data = np.zeros((6, 6, 6), np.float32)
    data[1:5, 1:5, 1:5] = rng.normal(300, 40, (4, 4, 4))
    path = write_nifti(tmp_path / "t1.nii.gz", data)
    out = mri_preset("zscore")({"image": str(path)})["image"][0]
    fg = out[1:5, 1:5, 1:5]
    assert fg.mean().item() == pytest.approx(0.0, abs=1e-5) and fg.std(unbiased=False).item() == pytest.approx(
        1.0, abs=1e-4
    )
    assert (out[0] == 0).all()  # background kept at 0
    pct = mri_preset("percentile", percentiles=(0, 100))({"image": str(path)})["image"]
    assert pct.min().item() == pytest.approx(0.0) and pct.max().item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mri_preset("minmax")


def test_mri_sequences_stacked_and_normalised_per_channel(tmp_path):
    t1 = write_nifti(tmp_path / "t1.nii.gz", np.random.rand(5, 5, 5).astype(np.float32) * 100 + 1)
    t2 = write_nifti(tmp_path / "t2.nii.gz", np.random.rand(5, 5, 5).astype(np.float32) * 5000 + 1)
    out = mri_preset(sequences=("t1", "t2"))({"t1": str(t1), "t2": str(t2)})
    assert out["image"].shape == (2, 5, 5, 5) and "t1" not in out
    for c in range(2):
        assert out["image"][c].mean().item() == pytest.approx(0.0, abs=1e-4)
        assert out["image"][c].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-3)


def test_stack_sequences_mismatch_names_both_files(tmp_path):
    t1 = write_nifti(tmp_path / "t1.nii.gz", np.ones((4, 4, 4), np.float32))
    small = write_nifti(tmp_path / "flair_small.nii.gz", np.ones((4, 4, 3), np.float32))
    moved = write_nifti(tmp_path / "flair_moved.nii.gz", np.ones((4, 4, 4), np.float32), np.diag([1, 1, 2.0, 1]))
    t = mri_preset(sequences=("t1", "flair"))
    # MONAI's Compose re-raises as RuntimeError "applying transform ...": the data error is its cause
    with pytest.raises(RuntimeError) as e:
        t({"t1": str(t1), "flair": str(small)})
    cause = _cause(e.value, ShapeMismatchError)
    assert "t1.nii.gz" in str(cause) and "flair_small.nii.gz" in str(cause) and "spatial shape" in str(cause)
    with pytest.raises(RuntimeError) as e:
        t({"t1": str(t1), "flair": str(moved)})
    assert "flair_moved.nii.gz" in str(_cause(e.value, ShapeMismatchError)) and "affine" in str(e.value.__cause__)
    ok = mri_preset(sequences=("t1", "flair"), orientation=None)
    assert ok({"t1": str(t1), "flair": str(t1)})["image"].shape == (2, 4, 4, 4)


def test_cxr_monochrome1_dicom_inverted_and_png(tmp_path):
    pixels = np.zeros((40, 20), np.int16)
    pixels[:, :10] = 1000  # left half stored bright: in MONOCHROME1 that means dark
    mono1 = write_dicom(tmp_path / "cr.dcm", pixels, photometric="MONOCHROME1", Modality="CR")
    out = cxr_preset(size=None, percentiles=(0, 100))({"image": str(mono1)})["image"]
    assert out.shape == (1, 20, 40)  # MONAI's (W, H)
    assert out[0, :10].max().item() == pytest.approx(0.0) and out[0, 10:].min().item() == pytest.approx(1.0)
    mono2 = write_dicom(tmp_path / "dx.dcm", pixels, photometric="MONOCHROME2")
    out2 = cxr_preset(size=None, percentiles=(0, 100))({"image": str(mono2)})["image"]
    assert out2[0, :10].min().item() == pytest.approx(1.0)
    Image.fromarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8), (25, 1))).save(tmp_path / "x.png")  # 25 x 50
    png = cxr_preset(size=32)({"image": str(tmp_path / "x.png")})["image"]
    assert png.shape == (1, 32, 32) and 0.0 <= png.min() and png.max() <= 1.0
    # aspect kept: 50 x 25 -> 32 x 16, padded with zeros to 32 x 32
    assert (png[0, :, 24:] == 0).all() and png[0, :, 8:24].max() > 0.9


@pytest.mark.skipif(not (SAMPLES / "RG1_UNCR.dcm").is_file(), reason="shared DICOM samples not available")
def test_cxr_real_monochrome1_radiograph():
    out = cxr_preset(size=64)({"image": str(SAMPLES / "RG1_UNCR.dcm")})["image"]
    assert out.shape == (1, 64, 64)
    # after inversion the mediastinum (centre column) is brighter than the lungs on either side
    centre, lung = out[0, 30:34, 25:40].mean(), out[0, 15:20, 25:40].mean()
    assert centre > lung + 0.1


def test_rgb_preset_normalises_with_mean_std(tmp_path):
    mean, std = (0.5, 0.25, 0.75), (0.1, 0.2, 0.3)
    Image.fromarray(np.full((10, 12, 3), [51, 102, 153], np.uint8)).save(tmp_path / "tile.png")  # 0.2, 0.4, 0.6
    out = rgb_preset(mean, std, size=8)({"image": str(tmp_path / "tile.png")})["image"]
    assert out.shape == (3, 8, 8)
    np.testing.assert_allclose(
        out.mean(dim=(1, 2)).numpy(), [(0.2 - 0.5) / 0.1, (0.4 - 0.25) / 0.2, (0.6 - 0.75) / 0.3], atol=1e-3
    )
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "gray.png")
    assert rgb_preset(size=None)({"image": str(tmp_path / "gray.png")})["image"].shape == (3, 6, 6)
    with pytest.raises(ValueError, match="3 entries"):
        rgb_preset(mean=(0.5,))


def test_get_preset_by_name(tmp_path):
    t = get_preset("CT", window="brain")
    out = t({"image": str(_ct_volume(tmp_path))})["image"]
    assert out[0, 1, 1, 1] == pytest.approx(0.0)  # -300 HU is below the brain window (0, 80)
    assert get_preset("histopathology", size=16) is not None and get_preset("mr") is not None
    with pytest.raises(ValueError):
        get_preset("ultrasound")
    with pytest.raises(ValueError, match="window"):
        ct_preset(window=(400, -1000))
