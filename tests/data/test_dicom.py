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

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGLSLossless

from monai_jepa.data.dicom import (
    DICOM_SUFFIXES,
    find_dicom_files,
    is_dicom_file,
    load_cine_dicom,
    load_dicom,
    read_header,
    series_files,
    sort_series,
)
from monai_jepa.data.errors import (
    InvalidImageError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)
from monai_jepa.data.io import load_checked
from tests.data.test_io import DATA, SAMPLES, TCIA, write_dicom, write_series

REFERENCE = Path(__file__).with_name("dicom_reference.json")


def _sha16(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr, dtype=np.float32).tobytes()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- which files, headers


def test_one_suffix_list_and_dicom_files(tmp_path):
    from monai_jepa.apps.deid import DICOM_SUFFIXES as DEID_SUFFIXES

    assert DEID_SUFFIXES is DICOM_SUFFIXES and DICOM_SUFFIXES == (".dcm", ".dicom", ".dic", ".ima")
    src = write_dicom(tmp_path / "a.dcm", np.zeros((4, 4)))
    uid_named = tmp_path / "1.2.840.113619.2.55.3"  # numeric suffix: DICOM when it has the marker
    uid_named.write_bytes(src.read_bytes())
    (tmp_path / "notes.txt").write_bytes(src.read_bytes())
    (tmp_path / "README").write_text("no marker")
    (tmp_path / "b.dic").write_bytes(b"")
    names = ("a.dcm", uid_named.name, "notes.txt", "README", "b.dic")
    assert {n: is_dicom_file(tmp_path / n) for n in names} == dict(zip(names, (True, True, False, False, True)))
    assert not is_dicom_file(tmp_path) and not is_dicom_file(tmp_path / "gone.dcm")
    assert [f.name for f in series_files(tmp_path)] == [uid_named.name, "a.dcm", "b.dic"]
    (tmp_path / ".hidden").mkdir()
    write_dicom(tmp_path / ".hidden" / "h.dcm", np.zeros((4, 4)))
    # candidates by name, recursively; README has no suffix, so read_header decides
    assert [f.name for f in find_dicom_files(tmp_path)] == [uid_named.name, "README", "a.dcm", "b.dic"]


def test_read_header_errors_name_the_file(tmp_path):
    path = write_dicom(tmp_path / "ct.dcm", np.zeros((4, 4)))
    ds = read_header(path)
    assert ds.Modality == "CT" and "PixelData" not in ds and "PixelData" in read_header(path, stop_before_pixels=False)
    with pytest.raises(MissingFileError, match="gone.dcm"):
        read_header(tmp_path / "gone.dcm")
    (tmp_path / "junk.dcm").write_bytes(b"DICM" * 4)
    with pytest.raises(UnreadableFileError, match=r"junk.dcm: not a DICOM file") as e:
        read_header(tmp_path / "junk.dcm")
    assert e.value.path == str(tmp_path / "junk.dcm")
    # no preamble but a SOP Instance UID: read (the datalist builders and the loader accept the same files)
    raw = pydicom.dcmread(path)
    bare = tmp_path / "bare"
    raw.preamble = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(bare, raw, implicit_vr=False, little_endian=True, enforce_file_format=False)
    assert bare.read_bytes()[128:132] != b"DICM" and read_header(bare).SOPInstanceUID == raw.SOPInstanceUID


def test_sort_series_by_position_then_instance_number(tmp_path):
    folder = write_series(tmp_path / "s", num=4, gap=2.0)  # instance numbers run against the positions
    files, headers, positions = sort_series(series_files(folder))
    assert positions == [0.0, 2.0, 4.0, 6.0] and [int(h.InstanceNumber) for h in headers] == [4, 3, 2, 1]
    assert [float(read_header(f).ImagePositionPatient[2]) for f in files] == positions
    for f in files:  # without positions, InstanceNumber orders the slices
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        ds.save_as(f)
    files, headers, positions = sort_series(series_files(folder))
    assert positions is None and [int(h.InstanceNumber) for h in headers] == [1, 2, 3, 4]
    write_dicom(folder / "zz.dcm", np.zeros((7, 5)), z=9.0)
    with pytest.raises(ShapeMismatchError, match=r"mixes slice sizes \[\(6, 5\), \(7, 5\)\]") as e:
        sort_series(series_files(folder))
    assert "zz.dcm" in str(e.value) and e.value.path == str(folder)


# ---------------------------------------------------------------------------------------------------- loading


def test_dicom_series_sorted_by_position_with_affine(tmp_path):
    folder = write_series(tmp_path / "s", num=4, shape=(6, 5), gap=2.5)
    arr, meta = load_checked(folder, expected_dims=3)
    assert arr.shape == (1, 5, 6, 4)  # (C, columns, rows, slices)
    # HU at (x=col, y=row, z) = 100 z + 10 row + col, after the -1024 rescale
    assert arr[0, 3, 2, 1] == 100 * 1 + 10 * 2 + 3
    assert meta["num_files"] == 4 and meta["format"] == "dicom_series" and meta["modality"] == "CT"
    np.testing.assert_allclose(meta["spacing"], (0.8, 0.5, 2.5))
    np.testing.assert_allclose(meta["slice_gaps"], [2.5] * 3)
    # RAS affine: x along -L (column direction +x in LPS), y along -P, z along +S
    np.testing.assert_allclose(np.diag(meta["affine"])[:3], [-0.8, -0.5, 2.5])
    np.testing.assert_allclose(meta["affine"][:3, 3], [-10.0, -20.0, 0.0])


def test_dicom_series_matches_monai_pydicom_reader(tmp_path):
    from monai.data import PydicomReader
    from monai.transforms import LoadImage

    folder = write_series(tmp_path / "s", num=3, reverse_instances=False)  # MONAI sorts by InstanceNumber
    arr, meta = load_checked(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = LoadImage(reader=PydicomReader(), ensure_channel_first=True)(str(folder))
    np.testing.assert_allclose(arr, ref.numpy())
    np.testing.assert_allclose(meta["affine"], ref.affine.numpy(), atol=1e-6)


def test_truncated_dicom_in_series_names_the_slice(tmp_path):
    folder = write_series(tmp_path / "s", num=3)
    bad = sorted(folder.iterdir())[1]
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) - 20])
    with pytest.raises(UnreadableFileError, match=bad.name) as e:
        load_checked(folder)
    assert e.value.path == str(bad)


def test_not_dicom_and_no_pixels(tmp_path):
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"\0" * 300)
    with pytest.raises(UnreadableFileError, match="not a DICOM file"):
        load_checked(fake)
    path = write_dicom(tmp_path / "nopix.dcm", np.zeros((4, 4)))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(InvalidImageError, match="no pixel data"):
        load_checked(path)


def test_series_with_mismatched_slices_names_both_files(tmp_path):
    folder = write_series(tmp_path / "s", num=2, shape=(6, 5))
    odd = write_dicom(folder / "zz_odd.dcm", np.zeros((7, 5)), z=10.0)
    with pytest.raises(ShapeMismatchError, match="differ in size") as e:
        load_checked(folder)
    assert odd.name in str(e.value) and "slice_" in str(e.value)


def test_folder_with_two_series_is_a_layout_error(tmp_path):
    folder = write_series(tmp_path / "s", num=2)
    write_dicom(folder / "other.dcm", np.zeros((6, 5)), series_uid="9.9.9")
    with pytest.raises(LayoutError, match="2 DICOM series"):
        load_checked(folder)


def test_missing_decoder_names_the_package(tmp_path):
    get_decoder = pytest.importorskip("pydicom.pixels", reason="pydicom >= 3 reports decoder availability").get_decoder

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    path = write_dicom(tmp_path / "jls.dcm", np.zeros((4, 4)))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8" + b"\0" * 30])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    with pytest.raises(UnreadableFileError, match="pip install pylibjpeg pylibjpeg-libjpeg"):
        load_checked(path)


@pytest.mark.skipif(not (SAMPLES / "color3d_jpeg_baseline.dcm").is_file(), reason="shared DICOM samples not available")
def test_missing_jpeg_decoder_on_real_cine(monkeypatch):
    pytest.importorskip("pydicom.pixels", reason="pydicom >= 3 reports decoder availability")

    class _NoDecoder:
        is_available = False
        missing_dependencies = ["pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1"]

    monkeypatch.setattr("pydicom.pixels.get_decoder", lambda uid: _NoDecoder())
    with pytest.raises(UnreadableFileError, match="JPEG Baseline.*pip install pylibjpeg pylibjpeg-libjpeg"):
        load_cine_dicom(SAMPLES / "color3d_jpeg_baseline.dcm")


@pytest.mark.skipif(not (SAMPLES / "examples_ybr_color.dcm").is_file(), reason="shared DICOM samples not available")
def test_cine_ybr_dicom_as_rgb_and_gray_clip():
    clip, meta = load_cine_dicom(SAMPLES / "examples_ybr_color.dcm")
    assert clip.shape == (3, 30, 240, 320) and clip.dtype == np.float32
    assert meta["num_frames"] == 30 and meta["fps"] == pytest.approx(30.0, rel=1e-3)
    # ultrasound is mostly gray: in RGB the channels agree; YBR would have Cb = Cr = 128 where Y varies
    assert np.abs(clip[0] - clip[1]).mean() < 2.0 and abs(clip[1].mean() - 128) > 50
    gray, _ = load_cine_dicom(SAMPLES / "examples_ybr_color.dcm", color="gray")
    assert gray.shape == (1, 30, 240, 320)
    np.testing.assert_allclose(gray[0], 0.299 * clip[0] + 0.587 * clip[1] + 0.114 * clip[2], atol=1e-3)
    arr, lmeta = load_checked(SAMPLES / "examples_ybr_color.dcm", expected_channels=3)
    assert arr.shape == (3, 320, 240, 30) and lmeta["num_frames"] == 30  # (C, X, Y, frames)
    np.testing.assert_array_equal(arr[:, :, :, 4], clip[:, 4].transpose(0, 2, 1))


def test_tilted_gantry_keeps_every_slice_where_its_header_puts_it(tmp_path):
    folder = tmp_path / "tilt"
    shift = 2.5 * np.tan(np.radians(20.0))  # each slice moves 2.5 mm up and 0.91 mm back
    for k in range(4):
        write_dicom(
            folder / f"{k}.dcm",
            np.full((6, 5), k),
            instance=k + 1,
            ImagePositionPatient=[10.0, 20.0 + k * shift, 2.5 * k],
        )
    arr, meta = load_dicom(series_files(folder), source=folder)
    assert arr.shape == (1, 5, 6, 4) and [float(arr[0, 0, 0, k]) for k in range(4)] == [0.0, 1.0, 2.0, 3.0]
    last = meta["affine"] @ np.array([0.0, 0.0, 3.0, 1.0])  # RAS position of the last slice's first voxel
    np.testing.assert_allclose(last[:3], [-10.0, -(20.0 + 3 * shift), 7.5], atol=1e-6)


def test_colour_series_has_three_channels(tmp_path):
    folder = tmp_path / "rgb"
    rgbs = []
    for k in range(2):
        path = write_dicom(folder / f"c{k}.dcm", np.zeros((6, 5)), z=2.0 * k, instance=k + 1)
        ds = pydicom.dcmread(path)
        rgb = np.random.RandomState(k).randint(0, 256, size=(6, 5, 3)).astype(np.uint8)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.PixelData = rgb.tobytes()
        ds.save_as(path)
        rgbs.append(rgb)
    arr, meta = load_dicom(series_files(folder), source=folder)
    assert arr.shape == (3, 5, 6, 2) and meta["format"] == "dicom_series"
    np.testing.assert_array_equal(arr[..., 1], rgbs[1].transpose(2, 1, 0))  # (C, X = column, Y = row)


def test_multiframe_file_in_a_series_is_a_layout_error(tmp_path):
    folder = write_series(tmp_path / "s", num=2)
    path = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    ds.save_as(path)
    with pytest.raises(LayoutError, match="multi-frame file inside a series of 2 files"):
        load_checked(folder)


def _reference() -> dict:
    return json.loads(REFERENCE.read_text())["volumes"]


@pytest.mark.skipif(not (DATA / "dicom_samples").is_dir(), reason="shared DICOM data not available")
@pytest.mark.parametrize("name", sorted(k for k in _reference() if k.startswith("dicom_samples/")))
def test_real_files_equal_the_previous_loader(name):
    """Every shared sample file loads as before the DICOM layer moved (pydicom decoding, own geometry)."""
    ref = _reference()[name]
    arr, meta = load_checked(DATA / name, check_finite=False)
    assert list(arr.shape) == ref["shape"] and _sha16(arr) == ref["sha256_16"]
    np.testing.assert_allclose(meta["affine"], ref["affine"], atol=1e-4)
    clip, _ = load_cine_dicom(DATA / name)
    assert list(clip.shape) == ref["cine_shape"] and _sha16(clip) == ref["cine_sha256_16"]


@pytest.mark.skipif(not TCIA.is_dir(), reason="shared TCIA data not available")
def test_real_series_equal_the_previous_loader_and_monai_itk_reader():
    """Every TCIA series: the same voxels, slice order and affine as before (the series now go through ITKReader)
    and as MONAI's own folder reading with ITKReader (GDCM's slice order)."""
    from monai.data import ITKReader
    from monai.transforms import LoadImage

    series = {k: v for k, v in _reference().items() if k.startswith("tcia_brain_tumor_progression/")}
    assert len(series) == 8
    for name, ref in series.items():
        arr, meta = load_checked(DATA / name, expected_dims=3, expected_channels=1)
        assert list(arr.shape) == ref["shape"] and _sha16(arr) == ref["sha256_16"], name
        assert [Path(f).name for f in meta["files"]] == ref["files"], name
        np.testing.assert_allclose(meta["affine"], ref["affine"], atol=1e-4, err_msg=name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            itk = LoadImage(reader=ITKReader(), ensure_channel_first=True)(str(DATA / name))
        np.testing.assert_array_equal(arr, itk.numpy())
        np.testing.assert_allclose(meta["affine"], itk.affine.numpy(), atol=1e-4, err_msg=name)
