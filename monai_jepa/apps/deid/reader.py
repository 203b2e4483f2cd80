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
from monai_jepa.data.errors import UnreadableFileError
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
        UnreadableFileError: pydicom cannot parse the file, it has no SOP Class UID, or :func:`check_complete` fails;
            the message names the file.
    """
    path = Path(path)
    require_package("pydicom", "monai_jepa.apps.deid.read_dicom", "DICOM input")
    try:
        ds = pydicom.dcmread(str(path), force=True)
    except Exception as err:  # pydicom raises many types on corrupt input
        raise UnreadableFileError(
            f"{path} is not a readable DICOM file: {type(err).__name__}: {err}", path=path
        ) from err
    meta = getattr(ds, "file_meta", None)
    if "SOPClassUID" not in ds and (meta is None or "MediaStorageSOPClassUID" not in meta):
        raise UnreadableFileError(f"{path} is not a DICOM file: it has no SOP Class UID.", path=path)
    check_complete(ds, path)
    return ds
