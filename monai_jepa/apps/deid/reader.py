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
"""The inputs of a de-identification run: which files are DICOM, and reading them with a completeness check.

pydicom silently accepts truncated files; :func:`read_dicom` refuses them, so a cut export is never de-identified
into a cut output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from monai.utils import optional_import

from monai_jepa.data.dicom import DICOM_SUFFIXES
from monai_jepa.data.errors import DataError, UnreadableFileError
from monai_jepa.utils.module import require_package

from .report import tag_str

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
pydicom, _ = optional_import("pydicom")
RawDataElement, _ = optional_import("pydicom.dataelem", name="RawDataElement")

__all__ = ["DICOM_SUFFIXES", "looks_like_dicom", "check_complete", "read_dicom"]

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float / Double Float Pixel Data


def looks_like_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is taken as a DICOM file: a :data:`DICOM_SUFFIXES` suffix, ``DICOMDIR``, or the ``DICM``
    preamble.

    Args:
        path: the file.

    Returns:
        True for a DICOM suffix or name, or when bytes 128-131 are ``b"DICM"``; False otherwise or when unreadable.
    """
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES or path.name == "DICOMDIR":
        return True
    try:
        with open(path, "rb") as fh:
            header = fh.read(132)
    except OSError:
        return False
    return header[128:132] == b"DICM"


def check_complete(ds: Dataset, path: str | os.PathLike) -> None:
    """Check that the (deferred) parse ``ds`` covered the file ``path`` exactly.

    Args:
        ds: the dataset read from ``path`` (raw, not yet converted elements).
        path: the file it was read from.

    Raises:
        UnreadableFileError: an element is cut, the last element ends past the end of the file, non-null bytes trail
            it, or the header declares an image (Rows, or an image storage SOP class) without pixel data.
    """
    path = Path(path)
    size, end = path.stat().st_size, None
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement):
            end = None  # a parsed sequence: its end offset is unknown
            continue
        length = len(raw.value) if raw.value is not None else 0
        if raw.length == 0xFFFFFFFF:
            end = raw.value_tell + length + 8  # encapsulated data and its sequence delimiter
        elif length < raw.length:
            raise UnreadableFileError(f"{path} is truncated inside {tag_str(int(tag))}.", path=path)
        else:
            end = raw.value_tell + raw.length
    if end is not None and end > size:
        raise UnreadableFileError(f"{path} is truncated: its last element ends past the end of the file.", path=path)
    if end is not None and end < size:
        with open(path, "rb") as fh:
            fh.seek(end)
            while chunk := fh.read(1 << 20):
                if chunk.strip(b"\x00"):  # null padding is tolerated, anything else is a cut element
                    raise UnreadableFileError(f"{path} is truncated: {size - end} trailing bytes remain.", path)
    if not any(tag in ds for tag in _PIXEL_TAGS):
        if "Rows" in ds:
            raise UnreadableFileError(f"{path} declares an image (Rows) but holds no pixel data: truncated?", path=path)
        sop_class = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
        name = str(getattr(sop_class, "name", "") or "")
        if name.endswith("Image Storage"):
            raise UnreadableFileError(f"{path} is a {name} instance without pixel data: truncated?", path=path)


def read_dicom(path: str | os.PathLike) -> Dataset:
    """Read a DICOM file for de-identification, refusing non-DICOM, corrupt and truncated files.

    Args:
        path: the file.

    Returns:
        The dataset (read with ``force=True``; a file without preamble is accepted when it holds a SOP Class UID).

    Raises:
        UnreadableFileError: pydicom cannot parse the file, it has no (or an empty) SOP Class UID or SOP Instance
            UID (a file cut inside its meta header), or :func:`check_complete` fails; the message names the file.
    """
    path = Path(path)
    require_package("pydicom", "monai_jepa.apps.deid.read_dicom", "DICOM input")
    try:
        ds = pydicom.dcmread(str(path), force=True)
    except Exception as err:  # pydicom raises many types on corrupt input
        raise UnreadableFileError(
            f"{path} is not a readable DICOM file: {type(err).__name__}: {err}", path=path
        ) from err
    try:
        check_complete(ds, path)
        # (0000,0000) is what trailing null padding parses as; other command / file meta elements mean corruption
        if any(int(tag) >> 16 in (0x0000, 0x0002) and int(tag) != 0 for tag in ds.keys()):
            raise UnreadableFileError(
                f"{path} is corrupt: command or file meta elements (0000,eeee) / (0002,eeee) inside its data set.", path
            )
        for _ in ds.iterall():  # converts every element now: a corrupt VR or value fails here, naming the file
            pass
    except DataError:
        raise
    except Exception as err:  # pydicom raises many types on corrupt elements
        # the message names the error type only: pydicom's messages may quote original values
        raise UnreadableFileError(f"{path} has a corrupt element ({type(err).__name__}).", path) from err
    meta = getattr(ds, "file_meta", None)
    for keyword, meta_keyword in (("SOPClassUID", "MediaStorageSOPClassUID"), ("SOPInstanceUID", "")):
        value = ds.get(keyword) or (meta.get(meta_keyword) if meta is not None and meta_keyword else None)
        if not str(value or "").strip():  # absent, or empty where the file was cut inside its meta header
            what = "SOP Class UID" if keyword == "SOPClassUID" else "SOP Instance UID"
            raise UnreadableFileError(f"{path} is not a complete DICOM instance: it has no {what} (truncated?).", path)
    return ds
