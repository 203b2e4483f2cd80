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
"""The DICOM layer: which files are DICOM, header reads, the slice order of a series, and loading.

Every module of the package reads DICOM through this one (the de-identification app, which reads and writes whole
datasets, shares :data:`DICOM_SUFFIXES`):

* :data:`DICOM_SUFFIXES`, :func:`is_dicom_file`, :func:`find_dicom_files`, :func:`series_files`: which files are DICOM.
* :func:`read_header`: one pydicom read of a file (header only, or with its pixel data); every failure is an
  :class:`~monai_jepa.data.errors.UnreadableFileError` naming the file.
* :func:`sort_series`: the slice order of a series (position along the slice normal, else ``InstanceNumber``, then the
  file name), after checking that the slices share one size.
* :func:`load_dicom`: the slices of a series are read in that order by MONAI's ``ITKReader``, which builds the RAS
  affine (axes ``x`` = column, ``y`` = row, ``z`` = slice). One file (single- or multi-frame, grayscale, colour or
  palette, enhanced multi-frame) is decoded with pydicom's pure-Python decoders instead: a corrupt file then raises an
  error rather than crashing the process, frames stay on the last axis and the enhanced multi-frame geometry is used
  (MONAI's ``PydicomReader`` swaps frames with rows and gives an identity affine there).
* :func:`load_cine_dicom`: a multi-frame (cine) file as a 2D+t clip ``(C, T, H, W)``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import look_up_option, optional_import

from monai_jepa.utils.module import require_package

from .errors import (
    DataError,
    EmptyDatasetError,
    InvalidImageError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)

pydicom, _ = optional_import("pydicom")

__all__ = [
    "DICOM_SUFFIXES",
    "is_dicom_file",
    "find_dicom_files",
    "series_files",
    "read_header",
    "pixel_array",
    "sort_series",
    "load_dicom",
    "load_cine_dicom",
    "slice_gap_problem",
]

#: file suffixes (lower case) taken as DICOM; files without a suffix or with a numeric one (named by their UID, such
#: as ``1.2.840.113619.2.55.3``) are DICOM when they carry the ``DICM`` marker (see :func:`is_dicom_file`).
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# packages that decode each family of compressed transfer syntaxes with pydicom
_DECODER_PACKAGES = (
    ("JPEG 2000", "pylibjpeg pylibjpeg-openjpeg"),
    ("High-Throughput JPEG", "pylibjpeg pylibjpeg-openjpeg"),
    ("JPEG", "pylibjpeg pylibjpeg-libjpeg"),  # baseline, extended, lossless, JPEG-LS
    ("RLE", "pylibjpeg pylibjpeg-rle"),
)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def _pydicom(user: str) -> Any:
    return require_package("pydicom", user, "DICOM input")


# ------------------------------------------------------------------------------------------------- which files


def _dicom_name(path: Path) -> bool:
    """A DICOM suffix, no suffix, or a numeric suffix (UID-named files)."""
    suffix = path.suffix.lower()
    return suffix in DICOM_SUFFIXES or suffix == "" or suffix[1:].isdigit()


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM file: a :data:`DICOM_SUFFIXES` suffix, or no suffix / a numeric suffix and the
    ``DICM`` marker at byte 128.

    Args:
        path: the file.

    Returns:
        False for folders, missing files and other suffixes.
    """
    path = Path(path)
    if not path.is_file() or not _dicom_name(path):
        return False
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def find_dicom_files(root: str | os.PathLike) -> list[Path]:
    """The DICOM candidate files under a folder, recursively, sorted.

    Candidates have a :data:`DICOM_SUFFIXES` suffix, no suffix or a numeric suffix; hidden files and folders and
    ``DICOMDIR`` are left out. Whether a candidate really is DICOM is decided by :func:`read_header`.

    Args:
        root: the folder to search.

    Returns:
        absolute paths, sorted.

    Raises:
        MissingFileError: when ``root`` is not a folder.
    """
    from .datalist import dataset_root

    root = dataset_root(root)
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or path.name.upper() == "DICOMDIR" or not _dicom_name(path):
            continue
        if not any(part.startswith(".") for part in path.relative_to(root).parts):
            found.append(path)
    return sorted(found)


def series_files(folder: str | os.PathLike) -> list[Path]:
    """The DICOM files (:func:`is_dicom_file`) directly in ``folder``, sorted by name; ``DICOMDIR`` is left out.

    Args:
        folder: a series folder.

    Returns:
        the files (not yet in slice order: see :func:`sort_series`).
    """
    return sorted(f for f in Path(folder).iterdir() if f.name.upper() != "DICOMDIR" and is_dicom_file(f))


# ----------------------------------------------------------------------------------------------------- headers


def read_header(path: str | os.PathLike, stop_before_pixels: bool = True) -> Any:
    """Read one DICOM file with pydicom; any failure becomes an :class:`UnreadableFileError` naming the file.

    Every element is parsed here, so that a corrupt value fails now rather than later. A file without the 128-byte
    preamble is accepted when it holds a ``SOPInstanceUID`` or ``SeriesInstanceUID``.

    Args:
        path: the DICOM file.
        stop_before_pixels: skip the pixel data (header only, fast).

    Returns:
        the ``pydicom.Dataset``.

    Raises:
        MissingFileError: the file does not exist.
        UnreadableFileError: not DICOM, or a corrupt or empty header.

    Example::

        header = read_header("ct/000001.dcm")
        header.SeriesInstanceUID, header.get("ImagePositionPatient")
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such DICOM file.", path)
    pydicom = _pydicom("monai_jepa.data.dicom.read_header")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
            except pydicom.errors.InvalidDicomError:
                try:
                    ds = pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels, force=True)
                    known = "SOPInstanceUID" in ds or "SeriesInstanceUID" in ds
                except Exception:  # noqa: BLE001 - whatever the forced read trips on, the file is not DICOM
                    known = False
                if not known:
                    raise UnreadableFileError(
                        f"{path}: not a DICOM file (no 'DICM' marker at byte 128, no SOP / Series Instance UID).", path
                    ) from None
            for elem in ds.iterall():  # parse every element now, so that corrupt values fail here
                _ = elem.value
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - every parser failure is a corrupt file
        raise UnreadableFileError(f"{path}: cannot read DICOM ({type(e).__name__}: {e}).", path) from e
    if len(ds) == 0:
        raise UnreadableFileError(f"{path}: DICOM file holds no data element after its header (truncated?).", path)
    return ds


def _tag(ds: Any, name: str, default: Any = None) -> Any:
    """``ds.<name>``, else its value in the shared, then first per-frame, functional groups (enhanced multi-frame)."""
    if name in ds:
        return ds.get(name, default)
    for seq_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(seq_name)
        if not groups:
            continue
        for item in groups[0]:
            if item.VR == "SQ" and item.value and name in item.value[0]:
                return item.value[0].get(name, default)
    return default


def _plane(ds: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]] | None:
    """(row direction, column direction, position, (row spacing, column spacing)) in LPS, or None without geometry."""
    iop, ipp = _tag(ds, "ImageOrientationPatient"), _tag(ds, "ImagePositionPatient")
    spacing = _tag(ds, "PixelSpacing") or ds.get("ImagerPixelSpacing")
    if iop is None or ipp is None or len(iop) != 6 or len(ipp) != 3:
        return None
    iop, ipp = np.asarray(iop, dtype=np.float64), np.asarray(ipp, dtype=np.float64)
    sp = tuple(float(s) for s in spacing) if spacing is not None and len(spacing) == 2 else (1.0, 1.0)
    if not (np.isfinite(iop).all() and np.isfinite(ipp).all() and np.isfinite(sp).all()):
        return None
    return iop[:3], iop[3:], ipp, sp


def _instance(ds: Any) -> tuple[bool, float]:
    try:
        return False, float(ds.get("InstanceNumber"))
    except (TypeError, ValueError):
        return True, 0.0


def sort_series(
    files: Sequence[str | os.PathLike], headers: Sequence[Any] | None = None
) -> tuple[list[Path], list[Any], list[float] | None]:
    """The slice order of one series: along the first slice's normal, else by ``InstanceNumber``; then by file name.

    Positions are used when every slice has ``ImagePositionPatient`` and ``ImageOrientationPatient``; otherwise all
    slices are ordered by ``InstanceNumber`` (slices without one last).

    Args:
        files: the files of the series.
        headers: their headers (:func:`read_header`), read here when None.

    Returns:
        ``(files, headers, positions)`` in slice order; ``positions`` are the slice positions along the normal (mm),
        or None when the order comes from ``InstanceNumber``.

    Raises:
        ShapeMismatchError: slices of different sizes (``Rows``, ``Columns``), naming two of them.

    Example::

        files, headers, positions = sort_series(find_dicom_files("series_folder"))
        gaps = np.diff(positions)  # slice distances in mm
    """
    files = [Path(f) for f in files]
    headers = [read_header(f) for f in files] if headers is None else list(headers)
    sizes = [(int(h.get("Rows", 0) or 0), int(h.get("Columns", 0) or 0)) for h in headers]
    if len(set(sizes)) > 1:
        odd = next(i for i, s in enumerate(sizes) if s != sizes[0])
        raise ShapeMismatchError(
            f"DICOM series {headers[0].get('SeriesInstanceUID', '')} in {files[0].parent} mixes slice sizes "
            f"{sorted(set(sizes))} (Rows, Columns): {files[0]} and {files[odd]} differ in size; expected one size per "
            "series.",
            files[0].parent,
        )
    planes = [_plane(h) for h in headers]
    positions = None
    if planes and all(p is not None for p in planes):
        normal = np.cross(planes[0][0], planes[0][1])
        positions = [float(np.dot(normal, p[2])) for p in planes]
    key = [(positions[i] if positions else 0.0, *_instance(h), files[i].name) for i, h in enumerate(headers)]
    order = sorted(range(len(files)), key=lambda i: key[i])
    return (
        [files[i] for i in order],
        [headers[i] for i in order],
        None if positions is None else [positions[i] for i in order],
    )


# ----------------------------------------------------------------------------------------------------- pixels


def _decoder_hint(transfer_syntax: Any) -> str:
    name = getattr(transfer_syntax, "name", str(transfer_syntax))
    for family, packages in _DECODER_PACKAGES:
        if family.lower() in name.lower():
            return f"install a decoder for {name}: `pip install {packages}`"
    return f"install a decoder for {name} (`pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg` or gdcm)"


def _transfer_syntax(ds: Any) -> Any:
    return getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)


def _check_pixels(ds: Any, path: Path) -> None:
    """Pixel data present, not truncated (native encodings) and, when compressed, an installed pydicom decoder."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise InvalidImageError(f"{path}: DICOM file holds no pixel data (SOP class {ds.get('SOPClassUID')}).", path)
    ts = _transfer_syntax(ds)
    if ts is None or not ts.is_compressed:
        if "PixelData" in ds:
            bits = int(ds.get("BitsAllocated", 16) or 16)
            count = (
                int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * int(ds.get("SamplesPerPixel", 1) or 1)
            )
            count *= int(ds.get("NumberOfFrames", 1) or 1)
            expected = (count * bits + 7) // 8
            if str(ds.get("PhotometricInterpretation", "")).upper() == "YBR_FULL_422":  # chroma subsampled
                expected = expected * 2 // 3
            if len(ds.PixelData) < expected:
                raise UnreadableFileError(
                    f"{path}: truncated pixel data ({len(ds.PixelData)} of {expected} bytes).", path
                )
        return
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom 2.x: the decode error itself is translated in pixel_array
        return
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise UnreadableFileError(f"{path}: pydicom has no decoder for transfer syntax {ts.name}.", path) from None
    if not decoder.is_available:
        missing = "; ".join(getattr(decoder, "missing_dependencies", []) or [])
        raise UnreadableFileError(
            f"{path}: pixel data is compressed with {ts.name} and no installed package can decode it: "
            f"{_decoder_hint(ts)}" + (f" (pydicom's options: {missing})." if missing else "."),
            path,
        )


def _decode_error(e: Exception, ds: Any, path: Path) -> UnreadableFileError:
    msg = f"{path}: cannot decode DICOM pixel data ({type(e).__name__}: {e})"
    ts = _transfer_syntax(ds)
    if ts is not None and ts.is_compressed and any(w in str(e).lower() for w in ("missing", "handler", "plugin")):
        msg += f"; {_decoder_hint(ts)}"
    return UnreadableFileError(msg + ".", path)


def pixel_array(ds: Any, path: str | os.PathLike) -> np.ndarray:
    """The stored pixel values of a dataset read with pixel data (``ds.pixel_array``), with checked errors.

    Args:
        ds: a dataset from :func:`read_header` with ``stop_before_pixels=False``.
        path: its file, named in errors.

    Returns:
        pydicom's array: ``(rows, columns)``, ``(frames, rows, columns)``, with a last samples axis for colour.

    Raises:
        InvalidImageError: no pixel data. UnreadableFileError: truncated or undecodable pixel data, or a compressed
            transfer syntax without an installed decoder (the message names the package to install).
    """
    path = Path(path)
    _check_pixels(ds, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ds.pixel_array
    except Exception as e:  # noqa: BLE001 - every decoder failure is a corrupt file
        raise _decode_error(e, ds, path) from e


def _decode(ds: Any, path: Path) -> np.ndarray:
    """Pixels of one file as ``(frames, rows, columns, samples)`` float32, rescaled (grayscale), RGB for colour."""
    arr = pixel_array(ds, path)
    try:
        from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import apply_color_lut, apply_modality_lut, convert_color_space
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
            spp = int(ds.get("SamplesPerPixel", 1) or 1)
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            if photometric == "PALETTE COLOR":
                arr, spp = apply_color_lut(arr, ds), 3
            elif spp == 1:
                slope, intercept = _tag(ds, "RescaleSlope"), _tag(ds, "RescaleIntercept")
                if "RescaleSlope" not in ds and slope is not None:  # enhanced multi-frame: rescale in the groups
                    arr = arr.astype(np.float32) * float(slope) + float(intercept or 0.0)
                else:
                    arr = apply_modality_lut(arr, ds)
            elif photometric.startswith("YBR") and not _transfer_syntax(ds).is_compressed:
                if int(pydicom.__version__.split(".")[0]) < 3:  # 2.x returns YBR; 3.x already converted to RGB
                    arr = convert_color_space(arr, photometric, "RGB")
            return np.asarray(arr, dtype=np.float32).reshape(frames, int(ds.Rows), int(ds.Columns), spp)
    except Exception as e:  # noqa: BLE001
        raise _decode_error(e, ds, path) from e


# ---------------------------------------------------------------------------------------------------- loading


def _affine_ras(row_dir, col_dir, origin, spacing_rc, slice_step) -> np.ndarray:
    """RAS affine for axes (x = column index, y = row index, z = slice / frame), from LPS DICOM geometry."""
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing_rc[1]  # moving along a row = next column
    lps[:3, 1] = col_dir * spacing_rc[0]  # moving along a column = next row
    lps[:3, 2] = slice_step
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _file_affine(ds: Any) -> np.ndarray:
    """The RAS affine of one file: its plane and frame positions, else pixel spacing only on LPS axes (as ITK)."""
    plane = _plane(ds)
    if plane is None:  # no patient geometry (X-ray, ultrasound, secondary capture)
        sp = (1.0, 1.0)
        for name in ("PixelSpacing", "ImagerPixelSpacing"):
            try:
                cand = tuple(float(s) for s in _tag(ds, name))
            except (TypeError, ValueError):
                continue
            if len(cand) == 2 and all(np.isfinite(c) and c > 0 for c in cand):
                sp = cand
                break
        return np.diag([-sp[1], -sp[0], 1.0, 1.0])
    row_dir, col_dir, origin, sp = plane
    positions = []
    for frame in ds.get("PerFrameFunctionalGroupsSequence") or []:  # enhanced multi-frame
        seq = frame.get("PlanePositionSequence")
        if not seq or "ImagePositionPatient" not in seq[0]:
            positions = []
            break
        positions.append(np.asarray(seq[0].ImagePositionPatient, dtype=np.float64))
    if len(positions) > 1:
        step, origin = (positions[-1] - positions[0]) / (len(positions) - 1), positions[0]
    else:
        thickness = _tag(ds, "SpacingBetweenSlices") or _tag(ds, "SliceThickness") or 1.0
        step = np.cross(row_dir, col_dir) * float(thickness)
    return _affine_ras(row_dir, col_dir, origin, sp, step)


def _read_series(files: list[Path], source: Path, gray: bool) -> tuple[np.ndarray, np.ndarray]:
    """The slices, in the given order, read by MONAI's ``ITKReader``: ``(C, X, Y, Z)`` float32 and the RAS affine."""
    itk = require_package("itk", "monai_jepa.data.dicom.load_dicom", "DICOM series")
    from monai.data import ITKReader

    shown = itk.ProcessObject.GetGlobalWarningDisplay()
    itk.ProcessObject.SetGlobalWarningDisplay(False)  # slice gaps: reported by apps.inspect
    try:
        # ITKReader.read reads a folder as a series in GDCM's order; a file list is read here in the given order
        image = itk.imread([str(f) for f in files], **({"pixel_type": itk.F} if gray else {}))
        arr, meta = ITKReader().get_data(image)
    except Exception as e:  # noqa: BLE001 - ITK raises RuntimeError naming the file it could not read
        bad = next((f for f in files if str(f) in str(e)), source)
        detail = str(e).strip().splitlines()
        raise UnreadableFileError(
            f"{bad}: cannot read this DICOM slice of {source} with ITK ({type(e).__name__}: "
            f"{detail[-1] if detail else ''}).",
            bad,
        ) from e
    finally:
        itk.ProcessObject.SetGlobalWarningDisplay(shown)
    arr = np.asarray(arr, dtype=np.float32)
    arr = np.moveaxis(arr, -1, 0) if arr.ndim == 4 else arr[None]
    return np.ascontiguousarray(arr), np.asarray(meta["affine"], dtype=np.float64)


def load_dicom(files: Sequence[str | os.PathLike], source: str | os.PathLike | None = None) -> tuple[np.ndarray, dict]:
    """Load one DICOM file, or the single-frame files of one series, as a channel-first volume.

    A series is sorted with :func:`sort_series` and read by MONAI's ``ITKReader``; a single file is decoded with
    pydicom (a multi-frame file keeps its frames along the last axis). Colour (RGB / YBR / palette) images have 3
    channels.

    Args:
        files: the DICOM files (one multi-frame or single-frame file, or the slices of one series).
        source: the path to name in errors and metadata (the series folder); defaults to the first file.

    Returns:
        ``(array, meta)``: float32 array ``(C, X, Y)`` for one single-frame file or ``(C, X, Y, Z)`` for a series or
        multi-frame file (``X`` columns, ``Y`` rows, ``Z`` slices / frames), and a dict with ``affine`` (4x4 RAS),
        ``spacing``, ``spatial_shape``, ``format``, ``modality``, ``num_files``, ``num_frames``, ``files`` (in slice
        order), ``slice_gaps`` (distances between consecutive slices, mm), ``photometric_interpretation``, ``dtype``
        (stored type), ``series_instance_uid``, ``burned_in_annotation``, ``geometry``, ``transfer_syntax``.

    Raises:
        EmptyDatasetError: no file given. UnreadableFileError: a file does not parse or decode (naming it).
        InvalidImageError: a file has no pixel data. ShapeMismatchError: slices differ in size or orientation.
        LayoutError: the files belong to more than one series, or a series holds a multi-frame file.

    Example::

        volume, meta = load_dicom(series_files("ct/series_3"), source="ct/series_3")  # (1, X, Y, Z), meta["affine"]
    """
    files = [Path(f) for f in files]
    if not files:
        raise EmptyDatasetError(f"{source}: no DICOM file to load.", source)
    source = Path(source) if source is not None else files[0]
    _pydicom("monai_jepa.data.load_dicom")  # before the try below, which would report it as a corrupt file
    if len(files) > 1:
        require_package("itk", "monai_jepa.data.load_dicom", "DICOM series")
    try:
        if len(files) == 1:
            ds = read_header(files[0], stop_before_pixels=False)
            data = np.ascontiguousarray(_decode(ds, files[0]).transpose(3, 2, 1, 0))  # (C, X=cols, Y=rows, frames)
            num_frames = data.shape[-1]
            data = data[..., 0] if num_frames == 1 else data
            return data, _meta(data, _file_affine(ds), files, [ds], source, num_frames, [])
        return _load_series(files, source)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - corrupt values (orientation, spacing, sizes) of a parsed header
        raise UnreadableFileError(f"{source}: inconsistent DICOM header ({type(e).__name__}: {e}).", source) from e


def _load_series(files: list[Path], source: Path) -> tuple[np.ndarray, dict]:
    headers = [read_header(f, stop_before_pixels=False) for f in files]  # a full read names a corrupt slice
    uids = {str(ds.get("SeriesInstanceUID", "")) for ds in headers}
    if len(uids) > 1:
        raise LayoutError(
            f"{source}: the files belong to {len(uids)} DICOM series; pass one series folder at a time "
            "(`python -m monai_jepa inspect` lists them).",
            source,
        )
    for ds, f in zip(headers, files):
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise LayoutError(f"{f}: multi-frame file inside a series of {len(files)} files.", f)
        _check_pixels(ds, f)
        for keyword in _PIXEL_KEYWORDS:  # ITK reads the pixels again: not kept twice in memory
            if keyword in ds:
                delattr(ds, keyword)
    samples = {int(ds.get("SamplesPerPixel", 1) or 1) for ds in headers}
    if len(samples) > 1:
        raise ShapeMismatchError(f"{source}: slices with {sorted(samples)} samples per pixel in one series.", source)
    files, headers, positions = sort_series(files, headers)
    planes = [_plane(ds) for ds in headers]
    if positions is not None:
        for p, f in zip(planes[1:], files[1:]):
            if not np.allclose(np.concatenate(p[:2]), np.concatenate(planes[0][:2]), atol=1e-3):
                raise ShapeMismatchError(f"{files[0]} and {f} have different image orientations.", f)
    data, affine = _read_series(files, source, gray=samples == {1})
    if positions is not None:
        step = np.diag([-1.0, -1.0, 1.0]) @ (planes[-1][2] - planes[0][2]) / (len(files) - 1)
        if not np.allclose(affine[:3, 2], step, atol=1e-4):
            # a tilted gantry (slices shifted sideways) or irregular gaps: ITK keeps the slice normal and the first
            # gap; the mean step from the first to the last slice keeps every slice where the headers put it
            affine[:3, 2] = step
    gaps = np.diff(positions).tolist() if positions is not None else []
    problem = slice_gap_problem(gaps)
    if problem is not None:
        warnings.warn(f"{source}: {problem[1]}", stacklevel=2)
    return data, _meta(data, affine, files, headers, source, len(files), gaps)


def slice_gap_problem(gaps: Sequence[float]) -> tuple[str, str] | None:
    """``(code, message)`` when the distances between consecutive slices of a series are not regular: two slices at
    one position (``"duplicate_slices"``) or gaps that differ by more than 5 % of their median
    (``"inconsistent_spacing"``, e.g. a missing slice); None when regular. :func:`load_dicom` warns with it and
    ``inspect`` reports it."""
    gaps = np.abs(np.asarray(gaps, dtype=np.float64))
    if gaps.size == 0:
        return None
    median = float(np.median(gaps))
    dup = int((gaps < 1e-3 * max(median, 1e-3)).sum())
    if dup:
        return "duplicate_slices", f"{dup} pair(s) of slices share a position."
    if gaps.max() - gaps.min() > max(0.05 * median, 0.01):
        return "inconsistent_spacing", (
            f"slice gaps range from {gaps.min():.3f} to {gaps.max():.3f} mm (median {median:.3f}): a slice may be "
            "missing; resampling will assume the mean gap."
        )
    return None


def _meta(
    data: np.ndarray, affine: np.ndarray, files: list[Path], headers: list, source: Path, frames: int, gaps: list
) -> dict:
    first = headers[0]
    n_spatial = data.ndim - 1
    return {
        "filename_or_obj": str(source),
        "format": "dicom_series" if len(files) > 1 else "dicom",
        "affine": affine,
        "spacing": tuple(float(v) for v in np.linalg.norm(affine[:3, :n_spatial], axis=0)),
        "spatial_shape": tuple(data.shape[1:]),
        "modality": str(first.get("Modality", "")) or None,
        "num_files": len(files),
        "num_frames": frames,
        "files": [str(f) for f in files],
        "slice_gaps": gaps,
        "photometric_interpretation": str(first.get("PhotometricInterpretation", "")) or None,
        "dtype": f"{'int' if int(first.get('PixelRepresentation', 0) or 0) else 'uint'}"
        f"{int(first.get('BitsAllocated', 16) or 16)}",
        "series_instance_uid": str(first.get("SeriesInstanceUID", "")) or None,
        "burned_in_annotation": str(first.get("BurnedInAnnotation", "")) or None,
        "geometry": _plane(first) is not None,
        "transfer_syntax": str(getattr(_transfer_syntax(first), "name", "")) or None,
    }


def load_cine_dicom(path: str | os.PathLike, color: str = "rgb") -> tuple[np.ndarray, dict]:
    """Read a multi-frame (cine) DICOM, e.g. ultrasound or cardiac MR, as a 2D+t clip.

    YBR colour (e.g. JPEG-compressed ultrasound) is converted to RGB; palette colour is expanded.

    Args:
        path: the DICOM file (single-frame files give ``T = 1``).
        color: ``"rgb"`` keeps colour (``C = 3`` for colour files, 1 for grayscale ones); ``"gray"`` converts colour
            frames to luminance (ITU-R BT.601 weights), ``C = 1``.

    Returns:
        ``(clip, meta)``: float32 array ``(C, T, H, W)`` (``H`` rows, ``W`` columns) with the stored intensities
        (rescaled for grayscale), and a dict with ``num_frames``, ``frame_time_ms`` and ``fps`` (when the file says),
        ``spacing`` (row, column spacing in mm, or None), ``photometric_interpretation``, ``modality``,
        ``filename_or_obj``.

    Raises:
        MissingFileError, UnreadableFileError (corrupt file, or a compression with no installed decoder: the message
        names the package to install), InvalidImageError (no pixel data).

    Example::

        clip, meta = load_cine_dicom("echo.dcm", color="gray")  # (1, T, H, W)
    """
    color = look_up_option(color, ("rgb", "gray"))
    path = Path(path)
    ds = read_header(path, stop_before_pixels=False)
    try:
        frames = _decode(ds, path)  # (T, H, W, C)
        if color == "gray" and frames.shape[-1] == 3:
            frames = (frames @ np.asarray(_LUMA, dtype=np.float32))[..., None]
        clip = np.ascontiguousarray(frames.transpose(3, 0, 1, 2))
        frame_time = ds.get("FrameTime")
        if frame_time is None and ds.get("CineRate"):
            frame_time = 1000.0 / float(ds.CineRate)
        spacing = _tag(ds, "PixelSpacing") or ds.get("ImagerPixelSpacing")
        meta = {
            "filename_or_obj": str(path),
            "num_frames": clip.shape[1],
            "frame_time_ms": float(frame_time) if frame_time else None,
            "fps": 1000.0 / float(frame_time) if frame_time else None,
            "spacing": tuple(float(s) for s in spacing) if spacing is not None else None,
            "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")) or None,
            "modality": str(ds.get("Modality", "")) or None,
        }
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UnreadableFileError(f"{path}: inconsistent DICOM header ({type(e).__name__}: {e}).", path) from e
    return clip, meta
