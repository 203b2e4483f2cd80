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
"""The outputs of a de-identification run: DICOM files and the CSV report, each written atomically.

Both go through :func:`monai_jepa.utils.fileio.atomic_write`: an output is either complete or absent, never partial,
and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import csv
import inspect
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from monai.utils import optional_import

from monai_jepa.utils.fileio import atomic_write
from monai_jepa.utils.module import require_package

from .report import REPORT_COLUMNS

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
FileMetaDataset, _ = optional_import("pydicom.dataset", name="FileMetaDataset")
ExplicitVRBigEndian, _ = optional_import("pydicom.uid", name="ExplicitVRBigEndian")
ExplicitVRLittleEndian, _ = optional_import("pydicom.uid", name="ExplicitVRLittleEndian")
ImplicitVRLittleEndian, _ = optional_import("pydicom.uid", name="ImplicitVRLittleEndian")

__all__ = ["save_dataset", "write_dicom", "write_mapping_csv", "write_report_csv"]


def save_dataset(ds: Dataset, fh: IO[bytes]) -> None:
    """Write ``ds`` to the open binary file ``fh`` as a DICOM file (preamble + file meta) in its original transfer
    syntax.

    A dataset without a Transfer Syntax UID in its file meta gets the encoding it was read with, Implicit VR Little
    Endian when that is unknown (a dataset built in memory).

    Args:
        ds: the dataset; ``ds.file_meta`` is created when absent.
        fh: the destination, opened in binary mode.
    """
    require_package("pydicom", "monai_jepa.apps.deid.save_dataset", "writing DICOM")
    meta = ds.file_meta if getattr(ds, "file_meta", None) is not None else FileMetaDataset()
    ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        implicit = getattr(ds, "is_implicit_VR", None) if implicit is None else implicit
        little = getattr(ds, "is_little_endian", None) if little is None else little
        implicit = True if implicit is None else implicit  # unknown (built in memory): the DICOM default encoding
        little = True if little is None else little
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    if "enforce_file_format" in inspect.signature(ds.save_as).parameters:  # pydicom >= 3
        ds.save_as(fh, enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.x
        ds.save_as(fh, write_like_original=False)


def _write(out: Path, write: Any, text: bool = False) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, write, text=text)  # the file mode follows the user's umask


def write_dicom(ds: Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` atomically with :func:`save_dataset` (mode from the umask), creating its folder.

    Args:
        ds: the dataset to write.
        path: the output file; replaced if it exists.

    Returns:
        ``path`` as a ``Path``.
    """
    return _write(Path(path), lambda fh: save_dataset(ds, fh))


def write_report_csv(path: str | os.PathLike, rows: Iterable[Iterable[str]]) -> Path:
    """Write the CSV report atomically (mode from the umask): the
    :data:`~monai_jepa.apps.deid.report.REPORT_COLUMNS` header, then ``rows``.

    Args:
        path: the report file; replaced if it exists. Its folder is created.
        rows: ``(file, tag, keyword, action, path)`` rows, e.g. from :func:`~monai_jepa.apps.deid.report.report_rows`.

    Returns:
        ``path`` as a ``Path``.
    """

    def _write_rows(fh: IO[str]) -> None:
        writer = csv.writer(fh)
        writer.writerow(REPORT_COLUMNS)
        writer.writerows(rows)

    return _write(Path(path), _write_rows, text=True)


def write_mapping_csv(path: str | os.PathLike, rows: Iterable[Iterable[str]]) -> Path:
    """Write the input -> output name mapping atomically: a ``source,output`` header, then ``rows``. It holds original
    names: keep it private.

    Args:
        path: the mapping file; replaced if it exists. Its folder is created.
        rows: ``(source, output)`` pairs.

    Returns:
        ``path`` as a ``Path``.
    """

    def _write_rows(fh: IO[str]) -> None:
        writer = csv.writer(fh)
        writer.writerow(("source", "output"))
        writer.writerows(rows)

    return _write(Path(path), _write_rows, text=True)
