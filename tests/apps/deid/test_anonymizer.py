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
import datetime
import importlib.util
import os
import shutil
import stat
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest

import monai_jepa.data
from monai_jepa.apps.deid import DeidContext, anonymize, anonymize_dataset
from monai_jepa.data.errors import BurnedInAnnotationError, MissingFileError, UnreadableFileError
from tests.apps.deid._common import (
    BRAIN,
    COVID,
    SALT,
    SAMPLES,
    assert_deidentified,
    outputs,
    read_all,
    read_outputs,
    require,
    synthetic,
)


def test_deid_lives_in_apps_not_in_the_data_package():
    assert importlib.util.find_spec("monai_jepa.data.deid") is None
    for name in ("anonymize", "anonymize_dataset", "DeidContext"):
        assert not hasattr(monai_jepa.data, name), name
    import monai_jepa.apps.deid as deid

    assert deid.anonymize is anonymize and len(set(deid.__all__)) == len(deid.__all__)
    assert all(hasattr(deid, name) for name in deid.__all__)
    assert {"anonymize", "anonymize_dataset", "DeidContext", "BASIC_PROFILE_TABLE", "resolve_action"} <= set(
        deid.__all__
    )


def test_anonymize_dataset_in_memory():
    ds, ctx = synthetic(), DeidContext(salt=SALT)
    changes = anonymize_dataset(ds, ctx)
    actions = {(c.path, c.keyword): c.action for c in changes}
    assert actions[("", "PatientName")] == actions[("", "PatientID")] == "pseudonym"
    assert actions[("", "InstitutionName")] == actions[("", "StationName")] == "remove"
    assert actions[("", "DeviceSerialNumber")] == "dummy" and ds.DeviceSerialNumber == "ANONYMIZED"
    assert actions[("", "ContentDate")] == "dummy" and ds.ContentDate == "19000101"
    assert actions[("", "StudyDate")] == "empty" and ds.StudyDate == "" and ds.StudyTime == ""
    assert ds.PatientSex == "" and ds.PatientBirthDate == "" and ds.AccessionNumber == "" and ds.Manufacturer == "ACME"
    for keyword in ("InstitutionName", "AcquisitionDate", "ReferencedImageSequence", "OtherPatientIDsSequence"):
        assert keyword not in ds
    assert actions[("", "")] == "remove_private" and actions[("", "OverlayData")] == "remove"
    assert not [tag for tag in ds.keys() if tag.is_private or tag.group == 0x6000]
    # UIDs: one map for the whole tree, nested references included, and the file meta follows
    new_ref = ctx.uid_map["1.2.3.4.5.7"]
    assert ds.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID == new_ref
    assert ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == new_ref
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == ds.SeriesInstanceUID == ctx.uid_map["1.2.3.4.5"]
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == ctx.uid_map["1.2.3.4.5.6"]
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert ("(0008,9124)[0].(0008,2112)[0]", "ReferencedSOPInstanceUID") in actions
    assert ds.PixelData == bytes(range(16))
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100"]
    # one context: same patient -> same pseudonym, another patient -> another one
    same, other = synthetic(sop_uid="1.2.3.4.5.8"), synthetic(patient_id="999", sop_uid="1.2.3.4.5.9")
    anonymize_dataset(same, ctx), anonymize_dataset(other, ctx)
    assert same.PatientID == ds.PatientID != other.PatientID and same.StudyInstanceUID == ds.StudyInstanceUID
    assert len(set(ctx.uid_map.values())) == len(ctx.uid_map)


def test_date_shift_int_keeps_times():
    ds = synthetic()
    changes = anonymize_dataset(ds, DeidContext(salt=SALT, date_shift_days=-10))
    assert ds.StudyDate == ds.ContentDate == ds.AcquisitionDate == "20191223" and ds.StudyTime == "101500"
    assert ds.PatientBirthDate == "" and ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert {c.action for c in changes if c.keyword == "StudyDate"} == {"shift_date"}
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100", "113107"]


def test_dicom_samples_are_deidentified(samples_run):
    src, out, summary = samples_run
    inputs = sorted(src.glob("*.dcm"))
    assert summary["sources"] == [str(p) for p in inputs] and not summary["skipped"]
    names = outputs(src, summary)
    for path in inputs:
        orig, anon = pydicom.dcmread(path), pydicom.dcmread(names[Path(path.name)])
        assert_deidentified(orig, anon, path.name)
        assert anon.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID
        assert anon.PixelData == orig.PixelData, path.name
        if not orig.file_meta.TransferSyntaxUID.is_compressed or len(orig.PixelData) < 1_000_000:
            np.testing.assert_array_equal(anon.pixel_array, orig.pixel_array)


def test_ultrasound_without_burned_in_attribute_warns(samples_run):
    src, _, summary = samples_run
    us = [p.name for p in sorted(src.glob("*.dcm")) if pydicom.dcmread(p, stop_before_pixels=True).Modality == "US"]
    assert us and all(any(name in warning for warning in summary["warnings"]) for name in us)


def test_segmentation_references_stay_linked(samples_run):
    src, _, summary = samples_run
    seg = pydicom.dcmread(outputs(src, summary)[Path("liver.dcm")], stop_before_pixels=True)
    orig = pydicom.dcmread(SAMPLES / "liver.dcm", stop_before_pixels=True)
    series_refs = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    frame_refs = {
        f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for f in seg.PerFrameFunctionalGroupsSequence
    }
    orig_refs = {i.ReferencedSOPInstanceUID for i in orig.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert series_refs == frame_refs and len(series_refs) == len(orig_refs) and not series_refs & orig_refs


def test_tcia_uids_consistent_and_dates_shifted(brain_run):
    src, out, summary = brain_run
    assert len(summary["written"]) == len(list(src.rglob("*.dcm")))
    orig, anon = read_all(src), read_outputs(src, summary)
    assert orig.keys() == anon.keys()
    mapping = defaultdict(set)
    series_by_folder, offsets = defaultdict(set), set()
    for rel, o in orig.items():
        a = anon[rel]
        assert_deidentified(o, a, str(rel), times_kept=True)
        assert a.PixelData == o.PixelData and a.file_meta.TransferSyntaxUID == o.file_meta.TransferSyntaxUID
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            mapping[o[keyword].value].add(a[keyword].value)
        series_by_folder[rel.parent].add(a.SeriesInstanceUID)
        to_date = lambda text: datetime.datetime.strptime(text, "%Y%m%d").date()  # noqa: E731
        offsets.add((to_date(a.StudyDate) - to_date(o.StudyDate)).days)
        assert a.SeriesDate == a.StudyDate == a.ContentDate and a.StudyTime == o.StudyTime
    assert all(len(new) == 1 for new in mapping.values())  # a function ...
    assert len({next(iter(new)) for new in mapping.values()}) == len(mapping)  # ... and one-to-one
    assert all(len(uids) == 1 for uids in series_by_folder.values()) and len(series_by_folder) == 8
    assert len({a.StudyInstanceUID for a in anon.values()}) == len({o.StudyInstanceUID for o in orig.values()})
    assert len(offsets) == 1 and -3652 <= offsets.pop() <= -365  # one patient: one offset for both time points
    assert len({a.PatientID for a in anon.values()}) == 1


@pytest.mark.filterwarnings("ignore:NvImgCodecPydicomReader")
def test_tcia_series_loads_as_same_volume(brain_run):
    from monai.transforms import LoadImage

    src, out, summary = brain_run
    series = next(p.parent.relative_to(src) for p in sorted(src.rglob("*.dcm")) if "T1post" in p.parent.name)
    out_series = {o.parent for rel, o in outputs(src, summary).items() if rel.parent == series}
    assert len(out_series) == 1  # the series is one output folder
    loader = LoadImage(reader="PydicomReader", image_only=True)  # sorts the slices by position, as ITKReader does
    orig, anon = loader(str(src / series)), loader(str(out_series.pop()))
    assert orig.shape == anon.shape and orig.shape[-1] > 10
    np.testing.assert_array_equal(np.asarray(anon), np.asarray(orig))
    np.testing.assert_allclose(np.asarray(anon.pixdim), np.asarray(orig.pixdim))
    np.testing.assert_allclose(np.asarray(anon.affine), np.asarray(orig.affine))


def test_auto_date_shift_consistent_per_patient(tmp_path):
    src = require(COVID)
    summary = anonymize(src, tmp_path / "anon", salt=SALT, date_shift_days="auto", keep_names=True)
    assert [s["file"] for s in summary["skipped"]] == [str(p) for p in src.rglob("*") if p.suffix == ".md"]
    to_date = lambda text: datetime.datetime.strptime(text, "%Y%m%d").date()  # noqa: E731
    offsets, pseudonyms = {}, {}
    for patient in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(patient.glob("*.dcm"))
        orig = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        anon = [pydicom.dcmread(tmp_path / "anon" / f.relative_to(src), stop_before_pixels=True) for f in files]
        shifts = {(to_date(a.StudyDate) - to_date(o.StudyDate)).days for o, a in zip(orig, anon)}
        assert len(shifts) == 1 and [a.StudyTime for a in anon] == [o.StudyTime for o in orig]
        offsets[patient.name], pseudonyms[patient.name] = shifts.pop(), {a.PatientID for a in anon}
        assert len(pseudonyms[patient.name]) == 1 and patient.name not in next(iter(pseudonyms[patient.name]))
    assert len(set(offsets.values())) > 1 and all(-3652 <= d <= -365 for d in offsets.values())
    assert len({next(iter(p)) for p in pseudonyms.values()}) == len(pseudonyms)


def test_keep_private_tags(tmp_path):
    src = require(COVID) / "A002304" / "19001231-076.dcm"
    keep = ['0019,"GEMS_ACQU_01",02', "(0043,1010)"]
    anonymize(src, tmp_path / "out.dcm", salt=SALT, keep_private_tags=keep)
    orig, anon = pydicom.dcmread(src), pydicom.dcmread(tmp_path / "out.dcm")
    private = sorted(int(t) for t in anon.keys() if t.is_private)
    assert private == [0x00190010, 0x00191002, 0x00430010, 0x00431010]
    assert anon[0x00191002].value == orig[0x00191002].value and anon[0x00190010].value == "GEMS_ACQU_01"
    assert [item.CodeValue for item in anon.DeidentificationMethodCodeSequence] == ["113100", "113111"]


def _burned_in_copy(folder: Path) -> Path:
    ds = pydicom.dcmread(require(SAMPLES) / "CT_small.dcm")
    ds.BurnedInAnnotation = "YES"
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / "burned.dcm")
    shutil.copy(SAMPLES / "MR_small.dcm", folder / "clean.dcm")
    return folder


def test_burned_in_annotation_refused_unless_allowed(tmp_path):
    src = _burned_in_copy(tmp_path / "src")
    with pytest.raises(BurnedInAnnotationError, match="burned.dcm") as err:
        anonymize(src, tmp_path / "refused")
    assert err.value.path.endswith("burned.dcm") and not (tmp_path / "refused" / "burned.dcm").exists()
    summary = anonymize(src, tmp_path / "skipped", skip_bad=True)
    assert [Path(p).name for p in summary["sources"]] == ["clean.dcm"]
    assert [Path(s["file"]).name for s in summary["skipped"]] == ["burned.dcm"]
    summary = anonymize(src, tmp_path / "allowed", allow_burned_in=True, keep_names=True)
    assert len(summary["written"]) == 2 and any("burned.dcm" in w for w in summary["warnings"])
    assert (
        pydicom.dcmread(tmp_path / "allowed" / "burned.dcm").PixelData == pydicom.dcmread(src / "burned.dcm").PixelData
    )


def test_skip_bad_and_non_dicom_files(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    shutil.copy(require(SAMPLES) / "CT_small.dcm", src / "sub" / "good.dcm")
    (src / "junk.dcm").write_text("not dicom at all\n" * 20)
    (src / "notes.txt").write_text("a note")
    with pytest.raises(UnreadableFileError, match="junk.dcm"):
        anonymize(src, tmp_path / "strict")
    summary = anonymize(src, tmp_path / "out", skip_bad=True, report_csv=tmp_path / "r.csv")
    assert summary["sources"] == [str(src / "sub" / "good.dcm")] and len(summary["written"]) == 1
    assert sorted(Path(s["file"]).name for s in summary["skipped"]) == ["junk.dcm", "notes.txt"]
    out_rel = Path(summary["written"][0]).relative_to(tmp_path / "out").as_posix()
    assert {row["file"] for row in csv.DictReader(open(tmp_path / "r.csv"))} == {out_rel}
    assert not (tmp_path / "strict").exists()  # the failed run wrote nothing


def test_paths_are_checked_before_writing(tmp_path):
    src = require(SAMPLES) / "CT_small.dcm"
    with pytest.raises(MissingFileError):
        anonymize(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(ValueError, match="inside src"):
        anonymize(tmp_path, tmp_path / "anon")
    with pytest.raises(ValueError, match="differ"):
        anonymize(src, src)
    anonymize(src, tmp_path / "ct.dcm", salt=SALT)
    first = pydicom.dcmread(tmp_path / "ct.dcm").SOPInstanceUID
    with pytest.raises(FileExistsError):
        anonymize(src, tmp_path / "ct.dcm", salt="other")
    assert pydicom.dcmread(tmp_path / "ct.dcm").SOPInstanceUID == first
    anonymize(src, tmp_path / "ct.dcm", salt="other", overwrite=True)
    assert pydicom.dcmread(tmp_path / "ct.dcm").SOPInstanceUID != first


@pytest.mark.filterwarnings("ignore:NvImgCodecPydicomReader")
@pytest.mark.parametrize("folder", [SAMPLES, BRAIN], ids=["dicom_samples", "tcia_brain_tumor_progression"])
def test_command_line_output_passes_the_checks(tmp_path, folder):
    """`python -m monai_jepa anonymize` (the same entry point, in-process) on the real data passes every check."""
    from monai.transforms import LoadImage

    from monai_jepa.cli import main

    src = require(folder)
    out = tmp_path / "anon"
    mapping = tmp_path / "mapping.csv"
    args = ["anonymize", str(src), str(out), "--salt", SALT, "--report_csv", str(tmp_path / "r.csv")]
    assert main(args + ["--mapping_csv", str(mapping)]) == 0
    originals = read_all(src)
    names = {Path(r["source"]).relative_to(src): Path(r["output"]) for r in csv.DictReader(open(mapping))}
    assert sorted(names) == sorted(originals) and len(read_all(out)) == len(originals)
    for rel, orig in originals.items():
        anon = pydicom.dcmread(names[rel])
        assert_deidentified(orig, anon, str(rel))
        assert anon.PixelData == orig.PixelData, rel
    if folder == BRAIN:
        loader = LoadImage(reader="PydicomReader", image_only=True)
        for series in sorted({rel.parent for rel in originals}):
            (out_series,) = {o.parent for rel, o in names.items() if rel.parent == series}
            a, b = loader(str(src / series)), loader(str(out_series))
            np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
            np.testing.assert_allclose(np.asarray(b.affine), np.asarray(a.affine))


def _identifiers(src: Path) -> set[str]:
    """What must not survive: each input's patient name and ID, institution, every date, every non-standard UID (at
    any depth, file meta included) and every folder / file name of at least 6 characters under ``src``."""
    from pydicom.uid import UID_dictionary

    from tests.apps.deid._common import elements

    found: set[str] = set()
    for path in sorted(src.rglob("*.dcm")):
        parts = path.relative_to(src).with_suffix("").parts  # short all-digit names are counters (000001.dcm)
        found |= {part for part in parts if len(part) >= 6 and not (part.isdigit() and len(part) < 8)}
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for _, elem in [*elements(ds), *elements(ds.file_meta)]:
            values = [v for v in (elem.value if elem.VM > 1 else [elem.value]) if v not in (None, "", b"")]
            if elem.keyword == "InstitutionName" and all(str(v) in str(ds.get("Manufacturer")) for v in values):
                continue  # a sample names its institution after the scanner's manufacturer, which is kept
            if elem.keyword in ("PatientName", "PatientID", "InstitutionName") or elem.VR in ("DA", "DT"):
                found |= {str(v)[:8] if elem.VR == "DT" else str(v) for v in values if len(str(v)) >= 6}
            elif elem.VR == "UI" and elem.keyword != "ImplementationClassUID":
                found |= {str(v) for v in values if str(v) not in UID_dictionary}
        if len(ds.preamble or b"") and any(ds.preamble):
            found.add(ds.preamble.rstrip(b"\0").decode("latin-1"))
    # placeholders such as 11111111 (a birth date in one sample) also occur by chance in pixel bytes: not scanned
    return {text for text in found if len(set(text)) >= 3}


@pytest.mark.parametrize("folder", [SAMPLES, BRAIN, COVID], ids=["dicom_samples", "tcia_brain", "tcia_covid"])
def test_no_original_identifier_in_any_output_byte(tmp_path, folder):
    """A scan of every output byte (names, preamble, values at any depth, the report) for each original identifier,
    with the default options (no date shift), on the shared DICOM data plus a crafted file whose folder, name and
    preamble hold a patient name, an MRN and a birth date."""
    src = tmp_path / "src"
    shutil.copytree(require(folder), src, ignore=shutil.ignore_patterns("*.md"))
    crafted = pydicom.dcmread(require(SAMPLES) / "CT_small.dcm")
    crafted.preamble = b"Doe^Jane 19700101 MRN1234567".ljust(128, b"\0")
    (src / "Doe^Jane_19700101").mkdir()
    crafted.save_as(src / "Doe^Jane_19700101" / "MRN1234567.dcm")
    secrets = _identifiers(src)
    assert {"Doe^Jane 19700101 MRN1234567", "MRN1234567", "Doe^Jane_19700101"} <= secrets and len(secrets) > 10
    out, report = tmp_path / "anon", tmp_path / "report.csv"
    summary = anonymize(src, out, salt=SALT, report_csv=report)
    assert len(summary["written"]) == len(list(src.rglob("*.dcm")))
    blobs = {"report.csv": report.read_bytes()}
    for path in sorted(out.rglob("*")):
        blobs[f"name {path}"] = str(path.relative_to(out)).encode()
        if path.is_file():
            data = path.read_bytes()
            assert data[:128] == bytes(128), path  # the preamble is zeroed
            blobs[str(path)] = data
    leaks = sorted({(s, where) for s in secrets for where, data in blobs.items() if s.encode() in data})
    assert not leaks, leaks[:10]


def test_dates_outside_the_table_are_emptied_without_a_date_shift():
    ds = synthetic()
    ds.DateOfLastCalibration, ds.DateOfSecondaryCapture = "20200102", "20200103"
    changes = anonymize_dataset(ds, DeidContext(salt=SALT))
    assert ds.DateOfLastCalibration == "" and ds.DateOfSecondaryCapture == ""
    assert {c.keyword for c in changes if c.action == "empty"} >= {"DateOfLastCalibration", "DateOfSecondaryCapture"}
    shifted = synthetic()
    shifted.DateOfLastCalibration = "20200102"
    anonymize_dataset(shifted, DeidContext(salt=SALT, date_shift_days=-10))
    assert shifted.DateOfLastCalibration == "20191223"


def test_a_failed_run_writes_nothing_and_names_follow_the_identifiers(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(require(SAMPLES) / name, src / "a" / name)
    (src / "a" / "broken.dcm").write_bytes((SAMPLES / "CT_small.dcm").read_bytes()[:300])  # truncated
    with pytest.raises(UnreadableFileError, match="broken.dcm"):
        anonymize(src, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no output folder, no temporary folder
    summary = anonymize(src, tmp_path / "out", skip_bad=True, salt=SALT)  # a rerun is not blocked by leftovers
    assert len(summary["written"]) == 2
    for source, output in zip(summary["sources"], summary["written"]):
        ds = pydicom.dcmread(output)
        assert Path(output).relative_to(tmp_path / "out").parts == (
            ds.PatientID,
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            f"{ds.SOPInstanceUID}.dcm",
        ) and ds.PatientID.startswith("ANON")


def test_outputs_never_go_through_a_link_out_of_dst_and_follow_the_umask(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    shutil.copy(require(SAMPLES) / "CT_small.dcm", src / "sub" / "ct.dcm")
    outside, dst = tmp_path / "outside", tmp_path / "dst"
    outside.mkdir()
    dst.mkdir()
    (dst / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        anonymize(src, dst, keep_names=True)
    assert list(outside.iterdir()) == [] and sorted(p.name for p in dst.iterdir()) == ["sub"]
    old = os.umask(0o077)
    try:
        summary = anonymize(src, tmp_path / "private", report_csv=tmp_path / "r.csv")
    finally:
        os.umask(old)
    for path in summary["written"] + [str(tmp_path / "r.csv")]:
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600, path
