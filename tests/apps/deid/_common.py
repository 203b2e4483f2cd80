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
"""Helpers shared by the de-identification tests: the shared data folders, a synthetic dataset, and the check that a
de-identified dataset keeps no identifying value."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from monai_jepa.apps.deid import BASIC_PROFILE

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
SAMPLES = DATA / "dicom_samples"
BRAIN = DATA / "tcia_brain_tumor_progression"
COVID = DATA / "tcia_covid19_ct_pairs"
SALT = "test-salt"


def require(folder: Path) -> Path:
    """``folder``, or skip the test when the shared data is absent."""
    if not folder.is_dir():
        pytest.skip(f"{folder} is not available")
    return folder


def elements(ds, path=()):
    """Every element of ``ds`` with its location: a tuple of (sequence tag, item index) pairs."""
    for elem in ds:
        yield path, elem
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                yield from elements(item, path + ((int(elem.tag), index),))


def find(ds, path, tag):
    """The element ``tag`` at ``path`` in ``ds``, or ``None``."""
    for seq_tag, index in path:
        if seq_tag not in ds or len(ds[seq_tag].value) <= index:
            return None
        ds = ds[seq_tag].value[index]
    return ds[tag] if tag in ds else None


def assert_deidentified(orig, anon, name, times_kept=False):
    """No profile attribute keeps its original non-empty value, at any depth (times are kept when dates are shifted);
    no private tag, overlay or curve is left."""
    for path, elem in elements(orig):
        tag = int(elem.tag)
        group = tag >> 16
        if elem.VR == "SQ" or elem.is_empty or (times_kept and elem.VR == "TM"):
            continue
        if tag in BASIC_PROFILE or elem.tag.is_private or group & 0xFF00 in (0x5000, 0x6000):
            new = find(anon, path, tag)
            assert new is None or new.is_empty or new.value != elem.value, f"{name}: {elem.tag} {path} kept"
    assert not [elem.tag for _, elem in elements(anon) if elem.tag.is_private], f"{name}: private tags left"
    assert not [tag for tag in anon.keys() if tag.group & 0xFF00 in (0x5000, 0x6000)], f"{name}: overlays left"
    for tag in ("MediaStorageSOPInstanceUID", "SourceApplicationEntityTitle"):
        if tag in orig.file_meta and not orig.file_meta[tag].is_empty:
            new = anon.file_meta.get(tag)
            assert new is None or new != orig.file_meta[tag].value, f"{name}: file meta {tag} kept"
    assert anon.file_meta.MediaStorageSOPInstanceUID == anon.SOPInstanceUID
    assert anon.PatientIdentityRemoved == "YES"
    assert anon.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert anon.PatientID.startswith("ANON") and str(anon.PatientName) == anon.PatientID


def read_all(folder: Path) -> dict[Path, Dataset]:
    """Every ``.dcm`` file under ``folder``, read, by relative path."""
    return {p.relative_to(folder): pydicom.dcmread(p) for p in sorted(folder.rglob("*.dcm"))}


def outputs(src: Path, summary) -> dict[Path, Path]:
    """Each output file of an ``anonymize`` run, by the path of its input relative to ``src``."""
    return {Path(s).relative_to(src): Path(o) for s, o in zip(summary["sources"], summary["written"])}


def read_outputs(src: Path, summary) -> dict[Path, Dataset]:
    """The de-identified datasets, by the path of their input relative to ``src`` (as :func:`read_all` keys them)."""
    return {rel: pydicom.dcmread(out) for rel, out in sorted(outputs(src, summary).items())}


def synthetic(patient_id="12345", sop_uid="1.2.3.4.5.6"):
    """A small CT dataset with identifying attributes at every level, private tags, an overlay and a file meta."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, sop_uid, "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3.4.5"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Doe^John", patient_id, "19600101", "M"
    ds.InstitutionName, ds.DeviceSerialNumber, ds.StationName = "General Hospital", "SN-42", "CT01"
    ds.StudyDate, ds.ContentDate, ds.StudyTime, ds.AcquisitionDate = "20200102", "20200102", "101500", "20200102"
    ds.AccessionNumber, ds.Manufacturer = "ACC123", "ACME"
    ds.ReferencedImageSequence = [Dataset()]
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.4.5.7"
    source = Dataset()
    source.ReferencedSOPClassUID, source.ReferencedSOPInstanceUID = CTImageStorage, "1.2.3.4.5.7"
    ds.DerivationImageSequence = [Dataset()]
    ds.DerivationImageSequence[0].SourceImageSequence = [source]
    instance = Dataset()
    instance.ReferencedSOPInstanceUID = "1.2.3.4.5.7"
    series = Dataset()
    series.SeriesInstanceUID, series.ReferencedInstanceSequence = "1.2.3.4.5", [instance]
    ds.ReferencedSeriesSequence = [series]
    other = Dataset()
    other.PatientID = "OTHER-1"
    ds.OtherPatientIDsSequence = [other]
    ds.add_new(0x00290010, "LO", "ACME PRIVATE")
    ds.add_new(0x00291010, "LO", "secret note")
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60003000, "OW", b"\x01\x02" * 8)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel = 4, 4, 8, 1
    ds.PixelData = bytes(range(16))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CTImageStorage, sop_uid
    ds.file_meta.TransferSyntaxUID, ds.file_meta.SourceApplicationEntityTitle = ExplicitVRLittleEndian, "HOSPITAL_PACS"
    return ds
