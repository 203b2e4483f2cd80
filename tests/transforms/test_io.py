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

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor

from monai_jepa.data.errors import (
    InvalidImageError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)
from monai_jepa.transforms import (
    LoadCineDicom,
    LoadCineDicomD,
    LoadCineDicomd,
    LoadCineDicomDict,
    LoadCXRDicom,
    LoadCXRDicomD,
    LoadCXRDicomd,
    LoadCXRDicomDict,
    LoadVolume,
    LoadVolumeD,
    LoadVolumed,
    LoadVolumeDict,
    StackSequences,
    StackSequencesD,
    StackSequencesd,
    StackSequencesDict,
    load_cxr_dicom,
)
from tests.apps.datasets.test_cxr import DATA, write_dicom
from tests.data.test_io import SAMPLES, write_nifti, write_series


def test_dictionary_aliases():
    assert LoadVolumeD is LoadVolumeDict is LoadVolumed and StackSequencesD is StackSequencesDict is StackSequencesd
    assert LoadCXRDicomD is LoadCXRDicomDict is LoadCXRDicomd and LoadCineDicomD is LoadCineDicomDict is LoadCineDicomd


# ------------------------------------------------------------------------------------------------ StackSequences


def test_stack_sequences_checks_grids_and_names_both_images():
    t1 = MetaTensor(torch.ones(1, 2, 2), meta={"filename_or_obj": "t1.nii.gz"})
    t2 = MetaTensor(torch.zeros(2, 2, 2), meta={"filename_or_obj": "t2.nii.gz"})
    out = StackSequences()([t1, t2])
    assert isinstance(out, MetaTensor) and out.shape == (3, 2, 2) and out.meta["filename_or_obj"] == "t1.nii.gz"
    assert torch.equal(out.as_tensor(), torch.cat([torch.ones(1, 2, 2), torch.zeros(2, 2, 2)]))
    small = MetaTensor(torch.ones(1, 2, 3), meta={"filename_or_obj": "flair.nii.gz"})
    with pytest.raises(
        ShapeMismatchError, match=r"t1.nii.gz \(t1\) and flair.nii.gz \(flair\) differ in spatial shape"
    ):
        StackSequences()([t1, small], names=["t1", "flair"])
    moved = MetaTensor(torch.ones(1, 2, 2), affine=torch.diag(torch.tensor([1.0, 1.0, 2.0, 1.0])))
    with pytest.raises(ShapeMismatchError, match=r"\(0\) and <1> \(1\) differ in affine \(atol 0.001\)"):
        StackSequences()([t1, moved])
    assert StackSequences(check_affine=False)([t1, moved]).shape == (2, 2, 2)
    np.testing.assert_array_equal(StackSequences()([np.ones((1, 3)), np.zeros((1, 3))]), [[1, 1, 1], [0, 0, 0]])
    with pytest.raises(TypeError):
        StackSequences()([np.ones((1, 3)), torch.zeros(1, 3)])
    with pytest.raises(ValueError, match="atol"):
        StackSequences(atol=-1.0)


def test_stack_sequencesd_keys():
    with pytest.raises(MissingFileError, match="sequence 'flair' is missing"):
        StackSequencesd(["t1", "flair"])({"t1": MetaTensor(torch.ones(1, 2, 2))})
    loose = StackSequencesd(["t1", "flair"], check_affine=False)
    img = {"t1": MetaTensor(torch.ones(1, 2, 2)), "flair": MetaTensor(torch.zeros(1, 2, 2), affine=torch.eye(4) * 2)}
    assert loose(img)["image"].shape == (2, 2, 2) and "t1" in loose(img)
    out = StackSequencesd(["t1", "t2"], out_key="x", delete_keys=True, allow_missing_keys=True)(
        {"t1": torch.ones(1, 2), "id": 3}
    )
    assert set(out) == {"x", "id"} and out["x"].shape == (1, 2)


# ---------------------------------------------------------------------------------------------------- LoadVolume


def test_load_volume_channels_label_and_grid_checks(tmp_path):
    affine = np.diag([0.5, 1.0, 2.0, 1.0])
    t1 = write_nifti(tmp_path / "t1.nii.gz", np.arange(24, dtype=np.float32).reshape(2, 3, 4), affine)
    t2 = write_nifti(tmp_path / "t2.nii.gz", np.ones((2, 3, 4), np.float32), affine)
    seg = write_nifti(
        tmp_path / "seg.nii.gz", np.eye(2, 12, dtype=np.float32).reshape(2, 3, 4)[:1].repeat(2, 0), affine
    )
    image = LoadVolume()([str(t1), str(t2)])
    assert isinstance(image, MetaTensor) and image.shape == (2, 2, 3, 4)
    np.testing.assert_allclose(image.affine.numpy(), affine)
    np.testing.assert_array_equal(image[0].numpy(), np.arange(24).reshape(2, 3, 4))
    assert LoadVolume()(3) == 3 and LoadVolume()(str(t1)).shape == (1, 2, 3, 4)
    item = LoadVolumed()({"image": [str(t1), str(t2)], "label": str(seg), "id": "c1"})
    assert item["label"].shape == (1, 2, 3, 4) and item["id"] == "c1"
    far = write_nifti(tmp_path / "far.nii.gz", np.ones((2, 3, 4), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ShapeMismatchError, match=r"label .*far.nii.gz and image .*t1.nii.gz differ in affine"):
        LoadVolumed()({"image": str(t1), "label": str(far)})
    resampled = LoadVolumed(resample=True)({"image": str(t1), "label": str(far)})
    assert resampled["label"].shape == (1, 2, 3, 4)
    with pytest.raises(ShapeMismatchError, match=r"t1.nii.gz \(0\) and .*far.nii.gz \(1\) differ in affine"):
        LoadVolume()([str(t1), str(far)])
    assert LoadVolume(resample=True)([str(t1), str(far)]).shape == (2, 2, 3, 4)
    two = write_nifti(tmp_path / "two.nii.gz", np.ones((2, 3, 4, 2), np.float32), affine)
    with pytest.raises(InvalidImageError, match="2 channels"):
        LoadVolumed()({"image": str(t1), "label": str(two)})
    # a 4D file among the sequences of a case is refused by name (it used to add channels: a collate error later)
    with pytest.raises(InvalidImageError, match=r"two.nii.gz: expected 1 channel\(s\), got 2"):
        LoadVolume()([str(t1), str(two)])
    assert LoadVolume()(str(two)).shape == (2, 2, 3, 4)  # alone, a 4D NIfTI is a multi-channel image (MSD layout)


def test_load_volume_dicom_series_files(tmp_path):
    folder = write_series(tmp_path / "s", num=3)
    files = sorted(str(f) for f in folder.iterdir())
    from_files, from_folder = LoadVolume()([files]), LoadVolume()(str(folder))
    assert from_files.shape == from_folder.shape == (1, 5, 6, 3)
    assert torch.equal(from_files.as_tensor(), from_folder.as_tensor())
    assert from_files.meta["filename_or_obj"] == str(folder)
    label = LoadVolumed()({"image": str(folder), "label": files})["label"]  # a mask series given as its files
    assert label.shape == (1, 5, 6, 3)


# ------------------------------------------------------------------------------------------------- LoadCXRDicom


def test_load_cxr_dicom_windows_and_inversion(tmp_path):
    ramp = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (4, 1))  # 0 .. 4032, 12-bit
    noisy = ramp | np.uint16(0xF000)  # garbage in the unused high bits
    path = write_dicom(tmp_path / "mono1.dcm", noisy, photometric="MONOCHROME1", bits_stored=12)
    full = load_cxr_dicom(path, window="full")
    assert full.shape == (1, 4, 64) and full.dtype == np.float32
    np.testing.assert_allclose(full[0, 0], 1.0 - ramp[0] / 4095.0, atol=1e-6)  # masked, inverted: low raw -> bright
    percentile = load_cxr_dicom(path)  # no header window -> percentile window, still inverted
    assert percentile[0, 0, 0] == 1.0 and percentile[0, 0, -1] == 0.0 and np.all(np.diff(percentile[0, 0]) <= 0)

    path = write_dicom(
        tmp_path / "ct_like.dcm",
        ramp.astype(np.int16) - 1000,
        RescaleSlope="2",
        RescaleIntercept="-100",
        WindowCenter=["500", "0"],
        WindowWidth=["1000", "10"],
    )
    header = load_cxr_dicom(path)  # first header window: [0, 1000] in rescaled units
    values = (ramp[0].astype(float) - 1000) * 2 - 100
    np.testing.assert_allclose(header[0, 0], np.clip(values / 1000.0, 0, 1), atol=1e-6)
    explicit = load_cxr_dicom(path, window=(values.mean(), 2 * np.ptp(values)))
    np.testing.assert_allclose(
        explicit[0, 0], (values - values.min() + np.ptp(values) / 2) / (2 * np.ptp(values)), atol=1e-6
    )
    minmax = load_cxr_dicom(path, window="minmax")
    assert minmax.min() == 0.0 and minmax.max() == 1.0

    eight = write_dicom(tmp_path / "8bit.dcm", np.array([[0, 128], [255, 64]], np.uint8))
    np.testing.assert_allclose(load_cxr_dicom(eight, window="full")[0], [[0, 128 / 255], [1, 64 / 255]], atol=1e-6)
    with pytest.raises(LayoutError, match="no usable Window Center"):
        load_cxr_dicom(eight, window="header")
    with pytest.raises(ValueError, match="`window` must be"):
        load_cxr_dicom(eight, window=(10, 0))

    rgb = write_dicom(tmp_path / "rgb.dcm", np.zeros((4, 4, 3), np.uint8), photometric="RGB")
    with pytest.raises(InvalidImageError, match="expected one grayscale frame"):
        load_cxr_dicom(rgb)
    (tmp_path / "junk.dcm").write_bytes(b"junk" * 10)
    with pytest.raises(UnreadableFileError, match="junk.dcm"):
        load_cxr_dicom(tmp_path / "junk.dcm")
    with pytest.raises(MissingFileError, match="absent.dcm"):
        load_cxr_dicom(tmp_path / "absent.dcm")


def test_load_cxr_dicom_transforms(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", np.arange(12, dtype=np.uint16).reshape(3, 4), PixelSpacing=["0.2", "0.3"])
    image = LoadCXRDicom(window="minmax")(path)
    assert isinstance(image, MetaTensor) and image.shape == (1, 3, 4) and image.dtype == torch.float32
    assert torch.allclose(torch.diag(image.affine)[:2], torch.tensor([0.2, 0.3], dtype=torch.float64))
    assert image.meta["filename_or_obj"] == str(path) and image.meta["patient_id"] == "P1"
    item = LoadCXRDicomd(keys="image", window="minmax")({"image": str(path), "label": 1})
    assert item["label"] == 1 and torch.allclose(item["image"].as_tensor(), image.as_tensor())
    assert float(item["image"][0, 2, 3]) == 1.0 and float(item["image"][0, 0, 0]) == 0.0


def test_real_monochrome1_radiograph():
    path = DATA / "dicom_samples" / "RG1_UNCR.dcm"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    image = load_cxr_dicom(path)
    raw = pydicom.dcmread(path).pixel_array.astype(np.float64)
    assert image.shape == (1, 1955, 1841) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.05
    assert np.corrcoef(image[0, ::4, ::4].ravel(), raw[::4, ::4].ravel())[0, 1] < -0.9  # MONOCHROME1 inverted


# ----------------------------------------------------------------------------------------------- LoadCineDicom


@pytest.mark.skipif(not (SAMPLES / "examples_ybr_color.dcm").is_file(), reason="shared DICOM samples not available")
def test_load_cine_dicom():
    clip = LoadCineDicom()(SAMPLES / "examples_ybr_color.dcm")
    assert isinstance(clip, MetaTensor) and clip.shape == (3, 30, 240, 320)
    assert clip.meta["fps"] == pytest.approx(30.0, rel=1e-3)
    out = LoadCineDicomd("image", color="gray")({"image": str(SAMPLES / "examples_ybr_color.dcm")})["image"]
    assert isinstance(out, MetaTensor) and out.shape == (1, 30, 240, 320)
    assert out.meta["num_frames"] == 30
    w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1, 1)
    assert torch.allclose(out[0].as_tensor(), (w * clip.as_tensor()).sum(0), atol=1e-3)
    with pytest.raises(ValueError):
        LoadCineDicom(color="hsv")
