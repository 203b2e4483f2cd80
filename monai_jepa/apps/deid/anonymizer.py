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
"""De-identification of DICOM datasets and files with the DICOM PS3.15 Annex E Basic Application Level
Confidentiality Profile (:mod:`monai_jepa.apps.deid.profile`).

Besides the profile's table, every private attribute (odd group) is removed unless listed in ``keep_private_tags``,
repeating overlay (60xx) and curve (50xx) groups are removed as a whole, Patient ID and Patient's Name become a
keyed-hash pseudonym of the original patient, and, with ``date_shift_days``, DA / DT values are shifted by a
per-patient offset (times are kept) instead of being emptied or removed; without it, DA / DT attributes that the
table does not list are emptied too. Pixel data and the transfer syntax are never
touched, so burned-in annotations are refused (:class:`~monai_jepa.data.errors.BurnedInAnnotationError`) unless
explicitly allowed.

:func:`anonymize_dataset` works on one in-memory dataset; :func:`anonymize` runs over a file or a folder tree, reading
with :func:`~monai_jepa.apps.deid.reader.read_dicom` and writing atomically with
:mod:`~monai_jepa.apps.deid.writer`.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.utils import optional_import

from monai_jepa.data.errors import BurnedInAnnotationError, DataError, MissingFileError, UnreadableFileError
from monai_jepa.utils.module import require_package

from .context import DateShift, DeidContext
from .profile import BASIC_PROFILE, NESTED_ACTIONS, TOP_LEVEL_ACTIONS
from .reader import looks_like_dicom, read_dicom
from .report import DeidChange, report_rows, tag_str
from .writer import write_dicom, write_mapping_csv, write_report_csv

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement
Dataset, _ = optional_import("pydicom.dataset", name="Dataset")
keyword_for_tag, _ = optional_import("pydicom.datadict", name="keyword_for_tag")

__all__ = ["BURNED_IN_MODALITIES", "anonymize_dataset", "anonymize", "pseudonymized_path"]

logger = logging.getLogger(__name__)

#: Modalities whose pixels often show patient data: a warning when Burned In Annotation is absent.
BURNED_IN_MODALITIES = ("US", "SC", "XC")
_PATIENT_NAME, _PATIENT_ID = 0x00100010, 0x00100020
# never shifted, even with date shifting: the table's Z / X applies
_NEVER_SHIFTED = frozenset({0x00100030, 0x00100032})  # Patient's Birth Date, Patient's Birth Time
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, Any] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    **dict.fromkeys(("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"), 0),
    **dict.fromkeys(("OB", "OW", "OD", "OF", "OL", "OV", "UN"), b""),
}
_METHOD_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "private": ("113111", "Retain Safe Private Option"),
}


def _patient_key(ds: Dataset) -> str:
    patient_id = str(ds[_PATIENT_ID].value or "").strip() if _PATIENT_ID in ds else ""
    if patient_id:
        return "id:" + patient_id
    name = str(ds[_PATIENT_NAME].value or "").strip() if _PATIENT_NAME in ds else ""
    return "name:" + name


def _is_repeating_group(group: int) -> bool:
    """Curve (50xx) and overlay (60xx) repeating groups, removed as a whole."""
    return group % 2 == 0 and (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E)


def _shift_date_text(value: str, days: int, vr: str) -> str | None:
    """Shift a DA value, or the date part of a DT value, by ``days``; ``None`` when it cannot be parsed."""
    text = value.strip()
    digits = len(text) if vr == "DA" else min(len(text), 8)
    if digits not in (4, 6, 8) or not text[:digits].isdigit():
        return None
    padded = text[:digits] + "0101"[digits - 4 :] if digits < 8 else text[:8]
    try:
        day = datetime.date(int(padded[:4]), int(padded[4:6]), int(padded[6:8])) + datetime.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    shifted = f"{day.year:04d}{day.month:02d}{day.day:02d}"[:digits]
    return shifted + text[digits:] if vr == "DT" else shifted


def _values(elem: DataElement) -> list[Any]:
    value = elem.value
    if value is None or value == "" or value == b"":
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


class _Walker:
    """Applies the profile to one dataset tree, recording every change."""

    def __init__(self, ctx: DeidContext, patient_key: str) -> None:
        self.ctx = ctx
        self.offset = ctx.date_offset(patient_key)
        self.changes: list[DeidChange] = []

    def record(self, tag: int, keyword: str, action: str, path: str) -> None:
        self.changes.append(DeidChange(tag_str(tag), keyword, action, path))

    def process(self, ds: Dataset, path: str = "", nested: bool = False, is_meta: bool = False) -> None:
        ctx = self.ctx
        has_patient = _PATIENT_ID in ds or _PATIENT_NAME in ds
        pseudonym = ctx.pseudonym(_patient_key(ds)) if has_patient else ""
        kept_private = self._kept_private(ds)
        for elem in list(ds):
            tag, vr = int(elem.tag), elem.VR
            entry = BASIC_PROFILE.get(tag)
            keyword = entry.keyword if entry else ("" if elem.tag.is_private else keyword_for_tag(tag))
            if elem.tag.is_private:
                if tag in kept_private:
                    self._recurse(elem, path)
                else:
                    del ds[tag]
                    self.record(tag, "", "remove_private", path)
                continue
            if _is_repeating_group(tag >> 16) or ((tag & 0xFFFF) == 0 and not is_meta):
                del ds[tag]  # overlay / curve groups, and group lengths that the removals would falsify
                self.record(tag, keyword, "remove", path)
                continue
            if tag in (_PATIENT_ID, _PATIENT_NAME):
                elem.value = pseudonym
                self.record(tag, keyword, "pseudonym", path)
                continue
            if ctx.shifts_dates and tag not in _NEVER_SHIFTED and not is_meta:
                if vr in ("DA", "DT"):
                    self._shift(elem, keyword, path)
                    continue
                if vr == "TM" and entry is not None:
                    continue  # times are kept when dates are shifted
            if entry is None and vr in ("DA", "DT") and not is_meta:
                if _values(elem):  # a date the table does not list (Date of Last Calibration, ...): emptied too
                    elem.value = elem.empty_value
                    self.record(tag, keyword, "empty", path)
                continue
            if entry is None:
                self._recurse(elem, path)
                continue
            action = (NESTED_ACTIONS if nested else TOP_LEVEL_ACTIONS)[tag]
            self._apply(ds, elem, action, keyword, path)

    def _kept_private(self, ds: Dataset) -> set[int]:
        kept: set[int] = set()
        for tag in ds.keys():
            if not tag.is_private:
                continue
            tag = int(tag)
            element = tag & 0xFFFF
            if 0x0010 <= element <= 0x00FF:
                if self.ctx.keeps_private(tag, None):  # a private creator listed by its exact tag
                    kept.add(tag)
                continue
            creator_tag = (tag & 0xFFFF0000) | (element >> 8)
            creator = ds[creator_tag].value if element >= 0x1000 and creator_tag in ds else None
            if isinstance(creator, bytes):  # a private creator read with VR UN
                creator = creator.decode("latin-1").rstrip("\x00 ")
            if self.ctx.keeps_private(tag, None if creator is None else str(creator)):
                kept.add(tag)
                if creator is not None:
                    kept.add(creator_tag)
        return kept

    def _recurse(self, elem: DataElement, path: str) -> None:
        if elem.VR == "SQ" and elem.value:
            for index, item in enumerate(elem.value):
                self.process(item, f"{path}{'.' if path else ''}{tag_str(int(elem.tag))}[{index}]", nested=True)

    def _shift(self, elem: DataElement, keyword: str, path: str) -> None:
        values = _values(elem)
        if not values:
            return
        shifted = [_shift_date_text(str(value), self.offset, elem.VR) for value in values]
        if any(value is None for value in shifted):
            elem.value = elem.empty_value  # unparseable dates cannot be shifted: empty them
            self.record(int(elem.tag), keyword, "empty", path)
        else:
            elem.value = shifted if len(shifted) > 1 else shifted[0]
            self.record(int(elem.tag), keyword, "shift_date", path)

    def _apply(self, ds: Dataset, elem: DataElement, action: str, keyword: str, path: str) -> None:
        tag, vr = int(elem.tag), elem.VR
        if action in ("K", "C"):
            self._recurse(elem, path)
        elif action == "X":
            del ds[tag]
            self.record(tag, keyword, "remove", path)
        elif action == "U":
            if vr == "SQ":
                self._recurse(elem, path)  # X/Z/U*: keep the reference sequence, replace the UIDs inside
                return
            values = _values(elem)
            if values:
                new = [self.ctx.map_uid(str(value)) for value in values]
                elem.value = new if len(new) > 1 else new[0]
                self.record(tag, keyword, "replace_uid", path)
        elif not _values(elem):
            return  # already empty: as valid as a dummy for a type 2 attribute, and identifies nothing
        elif action == "Z" or vr == "SQ":  # a sequence to replace by a dummy is emptied
            elem.value = elem.empty_value
            self.record(tag, keyword, "empty", path)
        else:  # "D"
            elem.value = _DUMMY_BY_VR.get(vr, _DUMMY_TEXT)
            self.record(tag, keyword, "dummy", path)


def _check_burned_in(ds: Dataset, ctx: DeidContext) -> None:
    name = str(getattr(ds, "filename", None) or "<in-memory dataset>")
    burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned_in == "YES":
        if not ctx.allow_burned_in:
            raise BurnedInAnnotationError(
                f"{name} declares BurnedInAnnotation YES: its pixels may show patient data, which this profile does "
                "not clean; refused (pass allow_burned_in=True after checking the pixels).",
                path=name,
            )
        message = f"{name}: BurnedInAnnotation is YES; kept as allowed, its pixels were not cleaned."
    elif not burned_in and str(ds.get("Modality", "") or "").strip().upper() in BURNED_IN_MODALITIES:
        message = (
            f"{name}: modality {str(ds.Modality).strip()} without BurnedInAnnotation; its pixels may show patient "
            "data, check them."
        )
    else:
        return
    logger.warning(message)
    ctx.warnings.append(message)


def _set_deid_attributes(ds: Dataset, ctx: DeidContext, record: Any) -> None:
    keys = ["basic"] + (["dates"] if ctx.shifts_dates else []) + (["private"] if ctx.keep_private_tags else [])
    items = []
    for key in keys:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = _METHOD_CODES[key]
        item.CodingSchemeDesignator = "DCM"
        items.append(item)
    method = ["DICOM PS3.15 E.1 Basic Application Level Conf. Profile"]
    if ctx.shifts_dates:
        method.append("dates shifted per patient")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = method if len(method) > 1 else method[0]
    ds.DeidentificationMethodCodeSequence = items
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if ctx.shifts_dates else "REMOVED"
    for keyword in (
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
    ):
        record(int(ds[keyword].tag), keyword, "set", "")


def anonymize_dataset(ds: Dataset, ctx: DeidContext | None = None) -> list[DeidChange]:
    """De-identify a dataset in place with the Basic Application Level Confidentiality Profile.

    Applies :data:`BASIC_PROFILE` at every nesting level (sequences included) and to the file meta information
    (Media Storage SOP Instance UID gets the same new UID as SOP Instance UID), removes private attributes not kept by
    the context, pseudonymizes Patient ID / Patient's Name, shifts or removes dates, and sets Patient Identity Removed,
    De-identification Method (Code Sequence) and Longitudinal Temporal Information Modified. Pixel data is not touched.

    Args:
        ds: the dataset, modified in place (``ds.file_meta`` too, when present).
        ctx: the run's context (UID map, pseudonyms, date offsets, options); ``None`` makes a fresh one with a random
            salt. Use one context for all datasets that must stay linked.

    Returns:
        The changes, one :class:`DeidChange` per changed attribute, without any original value.

    Raises:
        BurnedInAnnotationError: ``ds`` declares ``BurnedInAnnotation == "YES"`` and ``ctx.allow_burned_in`` is False
            (nothing is modified then).

    Example::

        ds = pydicom.dcmread("ct.dcm")
        changes = anonymize_dataset(ds, DeidContext(salt="secret"))
        ds.save_as("ct_anon.dcm")
    """
    require_package("pydicom", "monai_jepa.apps.deid.anonymize_dataset", "DICOM de-identification")
    if not isinstance(ds, Dataset):
        raise ValueError(f"ds must be a pydicom Dataset, got {type(ds).__name__}.")
    ctx = DeidContext() if ctx is None else ctx
    _check_burned_in(ds, ctx)
    walker = _Walker(ctx, _patient_key(ds))
    walker.process(ds)
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None and len(file_meta):
        walker.process(file_meta, is_meta=True)
        if "SOPInstanceUID" in ds:
            file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    _set_deid_attributes(ds, ctx, walker.record)
    return walker.changes


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _plan(src: Path, dst: Path) -> tuple[list[tuple[Path, str]], list[dict[str, str]]]:
    """List each input file with its path relative to ``src`` (a file: its name); list the non-DICOM files
    skipped."""
    if src.is_file():
        if dst.resolve() == src.resolve() or (dst.is_dir() and (dst / src.name).resolve() == src.resolve()):
            raise ValueError(f"dst must differ from src, got the same file {src}.")
        return [(src, src.name)], []
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"dst must be a folder when src is a folder, got the file {dst}.")
    if _is_within(dst, src):
        raise ValueError(f"dst must not lie inside src (outputs are never written into the input tree), got {dst}.")
    pairs, skipped = [], []
    for path in sorted(src.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(src).parts):
            continue
        if looks_like_dicom(path):
            pairs.append((path, path.relative_to(src).as_posix()))
        else:
            skipped.append({"file": str(path), "reason": "not a DICOM file (no .dcm suffix, no DICM preamble)"})
    return pairs, skipped


def _safe(value: Any, default: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]", "_", str(value or "").strip())
    return text if text.strip("._") else default


def pseudonymized_path(ds: Dataset) -> str:
    """The output path of a de-identified dataset, from its de-identified identifiers only:
    ``<PatientID pseudonym>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` (``unknown...`` parts where
    an attribute is absent)."""
    parts = [_safe(ds.get(k), f"unknown_{k[:-3].lower() if k.endswith('UID') else k.lower()}")
             for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")]  # fmt: skip
    return "/".join(parts + [_safe(ds.get("SOPInstanceUID"), "unknown_instance") + ".dcm"])


def _unique(rel: str, taken: set[str]) -> str:
    stem, suffix = rel.rsplit(".", 1) if "." in rel.rsplit("/", 1)[-1] else (rel, "")
    candidate, k = rel, 2
    while candidate in taken:  # e.g. two inputs with the same SOP Instance UID
        candidate, k = f"{stem}_{k}" + (f".{suffix}" if suffix else ""), k + 1
    taken.add(candidate)
    return candidate


def _final_path(dst: Path, rel: str, single: bool) -> Path:
    """Where ``rel`` lands; refuses a path that a symbolic link would lead out of ``dst``."""
    out = dst if single and not dst.is_dir() else dst / rel
    root = out.parent if single and not dst.is_dir() else dst
    if not _is_within(out.parent, root) or out.is_symlink():
        raise ValueError(f"output {out} would be written outside {root} (through a symbolic link); refused.")
    return out


def anonymize(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    date_shift_days: DateShift = None,
    keep_private_tags: Sequence[str] = (),
    allow_burned_in: bool = False,
    uid_root: str | None = None,
    salt: str | None = None,
    report_csv: str | os.PathLike | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
    keep_names: bool = False,
    mapping_csv: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """De-identify a DICOM file or a folder of DICOM files (recursively) into ``dst``.

    Output names come from the de-identified identifiers only (:func:`pseudonymized_path`:
    ``<patient pseudonym>/<study UID>/<series UID>/<instance UID>.dcm``), so no folder or file name of the input
    (often a patient name, an accession number or a study date) reaches the output; ``keep_names=True`` mirrors the
    input tree instead (``src/a/b.dcm`` -> ``dst/a/b.dcm``). A single input file written to a file path keeps that
    path. Files that are neither ``.dcm`` / ``.dicom`` / ``.dic`` / ``.ima`` nor carry the ``DICM`` preamble are
    skipped, hidden files ignored. The 128-byte preamble of every output is zeroed. One :class:`DeidContext` serves
    the whole run, so UIDs, pseudonyms and date offsets are consistent across files and studies stay linked.

    Nothing is written unless the whole run succeeds: outputs go to a temporary folder beside ``dst`` and are moved
    into place at the end (a failure removes that folder); no output may be written through a symbolic link out of
    ``dst``. Files get the mode of the user's umask.

    Args:
        src: a DICOM file or a folder; never written to.
        dst: the output file or folder (an existing folder receives the output name when ``src`` is a file); must
            not lie inside ``src``.
        date_shift_days: ``None`` (dates removed or emptied as the profile says), an int number of days, or ``"auto"``
            (a per-patient offset in [-3652, -365] days derived from the salt); see :class:`DeidContext`.
        keep_private_tags: private attributes to keep (``"gggg,eeee"`` or ``'gggg,"CREATOR",ee'``); all others go.
        allow_burned_in: process files with ``BurnedInAnnotation == "YES"`` instead of refusing them.
        uid_root: prefix of the new UIDs (ending with ``"."``); ``None`` gives ``"2.25.<int>"`` UIDs.
        salt: secret for the UID / pseudonym / offset hashes; the same salt reproduces the same output. ``None`` draws
            a random one.
        report_csv: where to write the CSV report (columns ``file, tag, keyword, action, path``: one row per changed
            attribute, ``file`` relative to ``dst``; never an original value or name); ``None`` writes no report.
        skip_bad: skip unreadable or truncated files, and refused burned-in files, recording why, instead of raising.
        overwrite: replace existing outputs (and reports); otherwise any existing one raises before anything is moved
            into place.
        keep_names: mirror the input's folder and file names (they may hold identifiers) instead of pseudonymised
            names.
        mapping_csv: where to write the input -> output name mapping (columns ``source, output``). It holds the
            original names: keep it with the salt, away from the de-identified data. ``None`` writes none.

    Returns:
        A summary dict: ``"written"`` (output paths), ``"sources"`` (the input path of each output, in the same
        order: keep it private like ``mapping_csv``), ``"skipped"`` (``{"file", "reason"}`` dicts), ``"warnings"``
        (e.g. ultrasound without Burned In Annotation), ``"report_csv"`` / ``"mapping_csv"`` (paths or ``None``) and
        ``"num_changes"``.

    Raises:
        MissingFileError: ``src`` does not exist.
        ValueError: bad options, ``dst`` inside ``src``, or an output path through a link out of ``dst``.
        FileExistsError: an output exists and ``overwrite`` is False.
        UnreadableFileError: a file is corrupt or truncated (unless ``skip_bad``); it names the file.
        BurnedInAnnotationError: a file declares burned-in annotations (unless ``allow_burned_in`` or ``skip_bad``).

    Example::

        summary = anonymize("raw/", "anon/", date_shift_days="auto", salt="secret", report_csv="anon_report.csv")
        print(len(summary["written"]), summary["skipped"])
    """
    src_path, dst_path = Path(src), Path(dst)
    require_package("pydicom", "monai_jepa.apps.deid.anonymize", "DICOM de-identification")
    if not src_path.exists():
        raise MissingFileError(f"src {src_path} does not exist.", path=src_path)
    ctx = DeidContext(
        salt=salt,
        uid_root=uid_root,
        date_shift_days=date_shift_days,
        keep_private_tags=keep_private_tags,
        allow_burned_in=allow_burned_in,
    )
    pairs, skipped = _plan(src_path, dst_path)
    extra = {"report_csv": report_csv, "mapping_csv": mapping_csv}
    for key, value in extra.items():
        if value is not None and src_path.is_dir() and _is_within(Path(value), src_path):
            raise ValueError(f"{key} must not lie inside src, got {value}.")
        if value is not None and not overwrite and Path(value).exists():
            raise FileExistsError(f"{value} exists; pass overwrite=True to replace it.")
    single = src_path.is_file()
    # the outputs are written beside their final folder (same file system: os.replace moves them into place)
    staging_parent = (dst_path.parent if single and not dst_path.is_dir() else dst_path).resolve().parent
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".deid-partial-", dir=staging_parent))
    try:
        done, rows, taken = [], [], set()
        for path, rel in pairs:
            try:
                ds = read_dicom(path)
                try:
                    changes = anonymize_dataset(ds, ctx)
                except DataError:
                    raise
                except Exception as err:
                    # the message names the error type only: pydicom's messages may quote original values
                    raise UnreadableFileError(
                        f"{path} could not be de-identified ({type(err).__name__}).", path
                    ) from err
                ds.preamble = b"\0" * 128
                out_rel = _unique(rel if keep_names else pseudonymized_path(ds), taken)
                try:
                    write_dicom(ds, staging / out_rel)
                except (ValueError, TypeError, AttributeError, NotImplementedError) as err:
                    # pydicom refuses to encode what a corrupt input left (I/O errors pass unchanged)
                    raise UnreadableFileError(
                        f"{path} could not be written after de-identification ({type(err).__name__}).", path
                    ) from err
            except (UnreadableFileError, BurnedInAnnotationError) as err:
                if not skip_bad:
                    raise
                skipped.append({"file": str(path), "reason": str(err)})
                logger.warning("skipped %s", err)
                continue
            done.append((path, out_rel))
            rows.extend(report_rows(dst_path.name if single and not dst_path.is_dir() else out_rel, changes))
        finals = [_final_path(dst_path, rel, single) for _, rel in done]
        if not overwrite:
            for out in finals:
                if out.exists():
                    raise FileExistsError(f"{out} exists; pass overwrite=True to replace it.")
        for (_, rel), out in zip(done, finals):
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    written = [str(out) for out in finals]
    if report_csv is not None:
        write_report_csv(report_csv, rows)
    if mapping_csv is not None:
        write_mapping_csv(mapping_csv, [(str(path), out) for (path, _), out in zip(done, written)])
    logger.info("de-identified %d file(s) into %s, skipped %d", len(written), dst_path, len(skipped))
    return {
        "written": written,
        "sources": [str(path) for path, _ in done],
        "skipped": skipped,
        "warnings": list(ctx.warnings),
        "report_csv": None if report_csv is None else str(report_csv),
        "mapping_csv": None if mapping_csv is None else str(mapping_csv),
        "num_changes": len(rows),
    }
