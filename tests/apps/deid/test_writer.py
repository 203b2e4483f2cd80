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
import io
import stat

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from monai_jepa.apps.deid import REPORT_COLUMNS, anonymize, save_dataset, write_dicom, write_report_csv
from monai_jepa.apps.deid import writer as deid_writer
from tests.apps.deid._common import SAMPLES, require, synthetic


def test_write_dicom_creates_the_folder_and_keeps_the_transfer_syntax(tmp_path):
    ds = synthetic()
    out = write_dicom(ds, tmp_path / "a" / "b" / "ct.dcm")
    assert out == tmp_path / "a" / "b" / "ct.dcm" and stat.S_IMODE(out.stat().st_mode) == 0o644
    data = out.read_bytes()
    assert data[:128] == bytes(128) and data[128:132] == b"DICM"
    back = pydicom.dcmread(out)
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian and back.PixelData == bytes(range(16))
    assert back.PatientID == "12345" and [p.name for p in out.parent.iterdir()] == ["ct.dcm"]


def test_save_dataset_fills_a_missing_transfer_syntax():
    ds = synthetic()
    del ds.file_meta.TransferSyntaxUID
    buffer = io.BytesIO()
    save_dataset(ds, buffer)  # no original encoding known: Implicit VR Little Endian
    buffer.seek(0)
    assert pydicom.dcmread(buffer).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian


def test_write_report_csv_writes_the_header_then_the_rows(tmp_path):
    rows = [("a/b.dcm", "(0010,0010)", "PatientName", "pseudonym", ""), ("c.dcm", "(0029,1010)", "", "remove", "")]
    out = write_report_csv(tmp_path / "reports" / "r.csv", rows)
    assert out.read_bytes() == (
        b"file,tag,keyword,action,path\r\n"
        b'a/b.dcm,"(0010,0010)",PatientName,pseudonym,\r\n'
        b'c.dcm,"(0029,1010)",,remove,\r\n'
    )
    with open(out, newline="") as fh:
        assert [tuple(r) for r in csv.reader(fh)] == [REPORT_COLUMNS, *rows]
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_atomic_write_leaves_no_partial_output(tmp_path, monkeypatch):
    src = require(SAMPLES) / "CT_small.dcm"

    def failing_save(ds, fh):
        fh.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(deid_writer, "save_dataset", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        anonymize(src, tmp_path / "out" / "ct.dcm")
    assert list(tmp_path.iterdir()) == []  # neither the output nor its folder nor a temporary folder
    (tmp_path / "keep.dcm").write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="disk full"):
        write_dicom(synthetic(), tmp_path / "keep.dcm")
    assert (tmp_path / "keep.dcm").read_bytes() == b"previous"  # the previous file is left intact
