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

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from monai_jepa.data import load_dicom, write_dicom_seg
from monai_jepa.data.dicom import series_files
from monai_jepa.data.errors import InvalidImageError, ShapeMismatchError
from tests.data.test_io import TCIA, write_series

hd = pytest.importorskip("highdicom")


def _check_seg(path: Path, label: np.ndarray, files: list, values: list) -> None:
    """The SEG reads back with highdicom: same frame of reference, study and source series, one frame per source
    slice at the slice's position, and per source instance exactly the label map's masks."""
    seg = hd.seg.segread(path)
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and len(seg.SegmentSequence) == len(values)
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID and seg.PatientID == sources[0].PatientID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    positions = {tuple(np.round(np.asarray(s.ImagePositionPatient, float), 3)) for s in sources}
    frames = {
        tuple(np.round(np.asarray(f.PlanePositionSequence[0].ImagePositionPatient, float), 3))
        for f in seg.PerFrameFunctionalGroupsSequence
    }
    assert frames == positions
    uids = [s.SOPInstanceUID for s in sources]
    got = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=list(range(1, len(values) + 1))
    )
    expected = np.stack([label == v for v in values], axis=-1).transpose(2, 1, 0, 3)
    np.testing.assert_array_equal(got.astype(bool), expected)


def test_dicom_seg_of_a_synthetic_series_reads_back(tmp_path):
    folder = write_series(tmp_path / "ct", num=5, shape=(6, 7), FrameOfReferenceUID="1.2.3.9", StudyDate="20200101")
    volume, meta = load_dicom(series_files(folder), source=folder)
    label = np.zeros(volume.shape[1:], np.uint8)  # (X=7 columns, Y=6 rows, Z=5 slices)
    label[1:4, 2:5, 1:3], label[5, 0, 4] = 1, 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's note on one-component person names
        out = write_dicom_seg(label, meta["files"], tmp_path / "out" / "seg.dcm", ["lesion", "marker"])
    assert out.is_file() and not any(p.name.endswith(".tmp") for p in out.parent.iterdir())
    _check_seg(out, label, meta["files"], [1, 2])
    with pytest.raises(ShapeMismatchError, match=r"columns x rows x slices = \(7, 6, 5\)"):
        write_dicom_seg(label[:, :, :4], meta["files"], tmp_path / "bad.dcm", ["lesion", "marker"])
    with pytest.raises(InvalidImageError, match="a name per class"):
        write_dicom_seg(label, meta["files"], tmp_path / "bad.dcm", ["lesion"], label_values=[1, 2])
    assert not (tmp_path / "bad.dcm").exists()


@pytest.mark.filterwarnings("ignore")
def test_dicom_seg_of_a_tcia_series_reads_back_with_consistent_geometry(tmp_path):
    if not TCIA.is_dir():
        pytest.skip(f"{TCIA} is not available")
    series = sorted(TCIA.glob("*/*T1post*"))[0]
    volume, meta = load_dicom(series_files(series), source=series)
    label = np.zeros(volume.shape[1:], np.uint8)
    label[volume[0] > np.percentile(volume, 97)] = 3  # a BraTS-like label value
    label[100:140, 120:160, 8:12] = 1
    out = write_dicom_seg(label, meta["files"], tmp_path / "seg.dcm", ["necrosis", "enhancing"], label_values=[1, 3])
    _check_seg(out, label, meta["files"], [1, 3])


@pytest.mark.filterwarnings("ignore")
def test_save_dicom_segd_after_the_loader_and_an_inversion(tmp_path):
    """SaveDicomSegd writes the SEG of a label map on the grid LoadVolumed loaded the series on (the prediction
    inverted to the input), named by the case id; a NIfTI source writes nothing."""
    from monai.transforms import Compose, Invertd, Orientationd

    from monai_jepa.transforms import LoadVolumed, SaveDicomSegd
    from tests.data.test_io import write_nifti

    folder = write_series(tmp_path / "mr", num=5, shape=(6, 7), FrameOfReferenceUID="1.2.3.9")
    pre = Compose([LoadVolumed(), Orientationd("image", axcodes="LPS")])  # a reorientation, undone below
    item = pre({"image": str(folder), "id": "patient_001_study_1"})
    pred = (item["image"] > np.median(item["image"].numpy())).to(torch.uint8)  # a "prediction" on the LPS grid
    item["pred"] = pred
    inverted = Invertd("pred", pre, orig_keys="image", nearest_interp=True)(item)
    SaveDicomSegd("pred", tmp_path / "out", ["bright"])(inverted)
    out = tmp_path / "out" / "patient_001_study_1_seg.dcm"
    volume, meta = load_dicom(series_files(folder), source=folder)
    expected = (volume[0] > np.median(volume)).astype(np.uint8)  # the same rule on the loaded grid
    _check_seg(out, expected, meta["files"], [1])
    nifti = write_nifti(tmp_path / "t1.nii.gz", np.ones((4, 4, 4), np.float32))
    case = LoadVolumed()({"image": str(nifti), "id": "case"})
    SaveDicomSegd("image", tmp_path / "none", ["x"])(case)
    assert not (tmp_path / "none").exists()
