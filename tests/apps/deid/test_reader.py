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

import pydicom
import pytest
from pydicom.dataset import Dataset

from monai_jepa.apps.deid import anonymize, looks_like_dicom, read_dicom
from monai_jepa.data.errors import UnreadableFileError
from tests.apps.deid._common import SAMPLES, require, synthetic


def test_looks_like_dicom_by_suffix_name_or_preamble(tmp_path):
    synthetic().save_as(tmp_path / "no_suffix", enforce_file_format=True)
    (tmp_path / "notes.txt").write_text("a note")
    (tmp_path / "short.bin").write_bytes(b"DICM")
    for name in ("a.dcm", "b.DICOM", "c.dic", "d.IMA", "DICOMDIR"):
        (tmp_path / name).write_bytes(b"")
        assert looks_like_dicom(tmp_path / name), name
    assert looks_like_dicom(tmp_path / "no_suffix")
    assert not looks_like_dicom(tmp_path / "notes.txt") and not looks_like_dicom(tmp_path / "short.bin")
    assert not looks_like_dicom(tmp_path / "missing.bin")


def test_read_dicom_accepts_padding_and_refuses_non_dicom(tmp_path):
    src = require(SAMPLES) / "CT_small.dcm"
    padded = tmp_path / "padded.dcm"
    padded.write_bytes(src.read_bytes() + b"\x00" * 64)
    assert read_dicom(padded).SOPInstanceUID == pydicom.dcmread(src).SOPInstanceUID
    trailing = tmp_path / "trailing.dcm"
    trailing.write_bytes(src.read_bytes() + b"\x00\x01junk")
    with pytest.raises(UnreadableFileError, match="6 trailing bytes"):
        read_dicom(trailing)
    no_class = Dataset()
    no_class.PatientID = "X"
    no_class.save_as(tmp_path / "no_class.dcm", implicit_vr=True, little_endian=True)
    with pytest.raises(UnreadableFileError, match="no SOP Class UID") as err:
        read_dicom(tmp_path / "no_class.dcm")
    assert err.value.path.endswith("no_class.dcm")


@pytest.mark.parametrize("cut", [1500, 0.5, -3])
def test_truncated_input_is_refused_without_output(tmp_path, cut):
    data = (require(SAMPLES) / "CT_small.dcm").read_bytes()
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad.dcm").write_bytes(data[: int(len(data) * cut) if isinstance(cut, float) else cut])
    with pytest.raises(UnreadableFileError, match="bad.dcm"):
        read_dicom(src / "bad.dcm")
    with pytest.raises(UnreadableFileError, match="bad.dcm"):
        anonymize(src / "bad.dcm", tmp_path / "out.dcm")
    assert list(tmp_path.iterdir()) == [src]  # no output, no temporary file
