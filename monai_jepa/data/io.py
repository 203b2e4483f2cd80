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
"""Checked image loading: every failure becomes one of the documented :mod:`monai_jepa.data.errors`.

:func:`load_checked` reads a NIfTI file, a DICOM file, a DICOM series folder, a PNG / JPEG or an npz / npy file and
returns a channel-first float32 array with its geometry. NIfTI, PNG / JPEG and NumPy files go through MONAI's
readers (``NibabelReader``, ``PILReader``, ``NumpyReader``); DICOM goes through pydicom directly, so that every error
names the slice that caused it, multi-frame and colour files keep their axes, and the volume matches MONAI's
``PydicomReader`` / ``ITKReader`` conventions (axes ``(x = column, y = row, z = slice or frame)``, RAS affine).
Only pure-Python decoders are used, so a corrupt file raises an error instead of crashing the process.

:func:`check_datalist` validates a whole datalist (files exist and decode, image and label agree) and, in
``skip_bad`` mode, keeps the good items and writes a JSON / CSV report of the others. :func:`load_cine_dicom`
reads a multi-frame (cine) DICOM as a 2D+t clip ``(C, T, H, W)``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_jepa.utils.fileio import atomic_write, atomic_write_text
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

__all__ = [
    "IMAGE_SUFFIXES",
    "detect_format",
    "is_dicom_file",
    "read_dicom",
    "load_dicom",
    "load_checked",
    "load_cine_dicom",
    "check_datalist",
]

logger = logging.getLogger(__name__)

#: file suffixes (lower case) recognised as images, by format
IMAGE_SUFFIXES = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".npz": "npz",
    ".npy": "npy",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".ima": "dicom",
}
# packages that decode each family of compressed DICOM transfer syntaxes with pydicom
_DECODER_PACKAGES = (
    ("JPEG 2000", "pylibjpeg pylibjpeg-openjpeg"),
    ("High-Throughput JPEG", "pylibjpeg pylibjpeg-openjpeg"),
    ("JPEG", "pylibjpeg pylibjpeg-libjpeg"),  # baseline, extended, lossless, JPEG-LS
    ("RLE", "pylibjpeg pylibjpeg-rle"),
)
# the optional package that each MONAI ImageReader needs, and what for
_READER_PACKAGES = {
    "NibabelReader": ("nibabel", "NIfTI input"),
    "PILReader": ("PIL", "PNG / JPEG input"),
    "ITKReader": ("itk", "MONAI's ITKReader"),
    "PydicomReader": ("pydicom", "MONAI's PydicomReader"),
}
# a deflate stream expands at most ~1032x: a gzip NIfTI whose header declares more voxel bytes is corrupt
_MAX_GZIP_RATIO = 1100


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file with a DICOM suffix or the ``DICM`` marker at byte 128 (files without a suffix)."""
    path = Path(path)
    if not path.is_file():
        return False
    if IMAGE_SUFFIXES.get(_suffix(path)) == "dicom":
        return True
    if path.suffix:  # some other known extension: not DICOM
        return False
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def detect_format(path: str | os.PathLike) -> str:
    """The format of ``path``: ``"nifti"``, ``"dicom"``, ``"png"``, ``"jpeg"``, ``"npz"``, ``"npy"``, ``"folder"``.

    Args:
        path: a file or folder.

    Returns:
        the format name; ``"unknown"`` for a file of another type.

    Raises:
        MissingFileError: when ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file or folder.", path)
    if path.is_dir():
        return "folder"
    fmt = IMAGE_SUFFIXES.get(_suffix(path))
    if fmt is not None:
        return fmt
    return "dicom" if is_dicom_file(path) else "unknown"


def _dicom_files_in(folder: Path) -> list[Path]:
    """The DICOM files directly in ``folder`` (by suffix or ``DICM`` marker), sorted; ``DICOMDIR`` is left out."""
    return sorted(f for f in folder.iterdir() if f.name.upper() != "DICOMDIR" and is_dicom_file(f))


# ----------------------------------------------------------------------------------------------------------- DICOM


def _pydicom():
    # imported on first use, to keep `python -m monai_jepa --help` fast
    return require_package("pydicom", "monai_jepa.data.read_dicom", "DICOM input")


def _pixel_utils():
    try:  # pydicom >= 3
        from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import apply_color_lut, apply_modality_lut, convert_color_space
    return apply_color_lut, apply_modality_lut, convert_color_space


def _decoder_hint(transfer_syntax: Any) -> str:
    name = getattr(transfer_syntax, "name", str(transfer_syntax))
    for family, packages in _DECODER_PACKAGES:
        if family.lower() in name.lower():
            return f"install a decoder for {name}: `pip install {packages}`"
    return f"install a decoder for {name} (`pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg` or gdcm)"


def _check_decoder(ds: Any, path: Path) -> None:
    """Raise :class:`UnreadableFileError` naming the package to install when no decoder can read ``ds``'s pixels."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None or not ts.is_compressed:
        return
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom 2.x: the decode error itself is translated in _decode_dicom
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


def read_dicom(path: str | os.PathLike, stop_before_pixels: bool = True) -> Any:
    """Read one DICOM file (header only by default) with pydicom; any failure becomes :class:`UnreadableFileError`.

    Every element is parsed here, so a corrupt value fails now, naming the file, rather than later.

    Args:
        path: the DICOM file.
        stop_before_pixels: skip the pixel data (fast header-only read).

    Returns:
        the ``pydicom.Dataset``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such DICOM file.", path)
    pydicom = _pydicom()
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
            # parse the elements now, so that corrupt values fail here and not later
            for elem in ds.iterall():
                _ = elem.value
    except InvalidDicomError:
        raise UnreadableFileError(f"{path}: not a DICOM file (no 'DICM' marker at byte 128).", path) from None
    except Exception as e:  # noqa: BLE001 - every decoder failure is a corrupt file
        raise UnreadableFileError(f"{path}: cannot read DICOM ({type(e).__name__}: {e}).", path) from e
    if len(ds) == 0:
        raise UnreadableFileError(f"{path}: DICOM file holds no data element after its header (truncated?).", path)
    return ds


def _tag(ds: Any, name: str, default: Any = None) -> Any:
    """``ds.<name>``, else the value in the shared, then first per-frame, functional groups (enhanced multi-frame)."""
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


def _frame_positions(ds: Any) -> list[np.ndarray] | None:
    """Per-frame ImagePositionPatient of an enhanced multi-frame file, or None."""
    groups = ds.get("PerFrameFunctionalGroupsSequence")
    if not groups:
        return None
    positions = []
    for frame in groups:
        seq = frame.get("PlanePositionSequence")
        if not seq or "ImagePositionPatient" not in seq[0]:
            return None
        positions.append(np.asarray(seq[0].ImagePositionPatient, dtype=np.float64))
    return positions


def _decode_dicom(ds: Any, path: Path) -> np.ndarray:
    """Decoded pixels of one DICOM file as ``(frames, rows, columns, samples)`` float32, rescaled, RGB for colour."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InvalidImageError(f"{path}: DICOM file holds no pixel data (SOP class {ds.get('SOPClassUID')}).", path)
    _check_decoder(ds, path)
    apply_color_lut, apply_modality_lut, convert_color_space = _pixel_utils()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
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
            elif photometric.startswith("YBR") and not ds.file_meta.TransferSyntaxUID.is_compressed:
                if int(_pydicom().__version__.split(".")[0]) < 3:  # 2.x returns YBR; 3.x already converted to RGB
                    arr = convert_color_space(arr, photometric, "RGB")
            arr = np.asarray(arr, dtype=np.float32).reshape(frames, int(ds.Rows), int(ds.Columns), spp)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        msg = f"{path}: cannot decode DICOM pixel data ({type(e).__name__}: {e})"
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if ts is not None and ts.is_compressed and any(w in str(e).lower() for w in ("missing", "handler", "plugin")):
            msg += f"; {_decoder_hint(ts)}"
        raise UnreadableFileError(msg + ".", path) from e
    return arr


def _dicom_geometry(ds: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]] | None:
    """(row direction, column direction, first position, (row spacing, column spacing)) in LPS, or None."""
    iop, ipp = _tag(ds, "ImageOrientationPatient"), _tag(ds, "ImagePositionPatient")
    spacing = _tag(ds, "PixelSpacing") or ds.get("ImagerPixelSpacing")
    if iop is None or ipp is None or len(iop) != 6 or len(ipp) != 3:
        return None
    iop, ipp = np.asarray(iop, dtype=np.float64), np.asarray(ipp, dtype=np.float64)
    sp = tuple(float(s) for s in spacing) if spacing is not None and len(spacing) == 2 else (1.0, 1.0)
    if not (np.isfinite(iop).all() and np.isfinite(ipp).all() and np.isfinite(sp).all()):
        return None
    return iop[:3], iop[3:], ipp, sp


def _affine_ras(row_dir, col_dir, origin, spacing_rc, slice_step) -> np.ndarray:
    """RAS affine for axes (x = column index, y = row index, z = slice / frame), from LPS DICOM geometry."""
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing_rc[1]  # moving along a row = next column
    lps[:3, 1] = col_dir * spacing_rc[0]  # moving along a column = next row
    lps[:3, 2] = slice_step
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def load_dicom(files: Sequence[str | os.PathLike], source: str | os.PathLike | None = None) -> tuple[np.ndarray, dict]:
    """Load one DICOM file or the single-frame files of one series as a channel-first volume.

    Slices are sorted by their position along the slice normal (``InstanceNumber`` when positions are missing).
    A multi-frame file keeps its frames along the last axis. Colour (RGB / YBR / palette) images have 3 channels.

    Args:
        files: the DICOM files (one multi-frame or single-frame file, or the slices of one series).
        source: the path to name in errors and metadata (the series folder); defaults to the first file.

    Returns:
        ``(array, meta)``: float32 array ``(C, X, Y)`` for one single-frame file or ``(C, X, Y, Z)`` for a series or
        multi-frame file (``X`` columns, ``Y`` rows, ``Z`` slices / frames), and a dict with ``affine`` (4x4 RAS),
        ``spacing``, ``spatial_shape``, ``format``, ``modality``, ``num_files``, ``num_frames``, ``files`` (in slice
        order), ``slice_gaps`` (distances between consecutive slices, mm), ``photometric_interpretation``, ``dtype``
        (stored type), ``series_instance_uid``, ``burned_in_annotation``.

    Raises:
        EmptyDatasetError: no file given. UnreadableFileError: a file does not parse or decode.
        InvalidImageError: a file has no pixel data. ShapeMismatchError: slices differ in size or orientation.
        LayoutError: the files belong to more than one series.
    """
    files = [Path(f) for f in files]
    if not files:
        raise EmptyDatasetError(f"{source}: no DICOM file to load.", source)
    source = Path(source) if source is not None else files[0]
    _pydicom()  # before the try, which would report a missing pydicom as an inconsistent header
    try:
        return _load_dicom(files, source)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - corrupt values (orientation, spacing, sizes) of a parsed header
        raise UnreadableFileError(f"{source}: inconsistent DICOM header ({type(e).__name__}: {e}).", source) from e


def _load_dicom(files: list[Path], source: Path) -> tuple[np.ndarray, dict]:
    headers = [read_dicom(f, stop_before_pixels=False) for f in files]
    uids = {str(ds.get("SeriesInstanceUID", "")) for ds in headers}
    if len(uids) > 1:
        raise LayoutError(
            f"{source}: the files belong to {len(uids)} DICOM series; pass one series folder at a time "
            "(`python -m monai_jepa inspect` lists them).",
            source,
        )
    first = headers[0]
    if len(files) > 1:
        for ds, f in zip(headers, files):
            if int(ds.get("NumberOfFrames", 1) or 1) > 1:
                raise LayoutError(f"{f}: multi-frame file inside a series of {len(files)} files.", f)
    # slice order: along the normal of the first slice's orientation
    geoms = [_dicom_geometry(ds) for ds in headers]
    if all(g is not None for g in geoms):
        normal = np.cross(geoms[0][0], geoms[0][1])
        for g, f in zip(geoms[1:], files[1:]):
            if not np.allclose(np.concatenate(g[:2]), np.concatenate(geoms[0][:2]), atol=1e-3):
                raise ShapeMismatchError(f"{files[0]} and {f} have different image orientations.", f)
        keys = [float(np.dot(normal, g[2])) for g in geoms]
    else:
        normal, keys = None, [float(ds.get("InstanceNumber", i) or i) for i, ds in enumerate(headers)]
    order = sorted(range(len(files)), key=lambda i: (keys[i], str(files[i])))
    headers, files, keys = [headers[i] for i in order], [files[i] for i in order], [keys[i] for i in order]
    geoms = [geoms[i] for i in order]

    arrays = []
    for ds, f in zip(headers, files):
        arr = _decode_dicom(ds, f)
        if arrays and arr.shape[1:] != arrays[0].shape[1:]:
            raise ShapeMismatchError(
                f"{files[0]} and {f} differ in size: {arrays[0].shape[1:3]} vs {arr.shape[1:3]} (rows, columns) "
                f"with {arrays[0].shape[3]} vs {arr.shape[3]} samples per pixel.",
                f,
            )
        arrays.append(arr)
    vol = np.concatenate(arrays, axis=0)  # (Z, rows, cols, C)
    num_frames = vol.shape[0]
    data = np.ascontiguousarray(vol.transpose(3, 2, 1, 0))  # (C, X=cols, Y=rows, Z)
    if num_frames == 1:
        data = data[..., 0]

    geom = geoms[0]
    gaps = np.diff(keys).tolist() if len(files) > 1 and normal is not None else []
    if geom is not None:
        row_dir, col_dir, origin, sp = geom
        if len(files) > 1:
            step = (geoms[-1][2] - origin) / (len(files) - 1)
        else:
            positions = _frame_positions(first)
            if positions is not None and len(positions) > 1:
                step = (positions[-1] - positions[0]) / (len(positions) - 1)
                origin = positions[0]
            else:
                thickness = _tag(first, "SpacingBetweenSlices") or _tag(first, "SliceThickness") or 1.0
                step = np.cross(row_dir, col_dir) * float(thickness)
        affine = _affine_ras(row_dir, col_dir, origin, sp, step)
    else:  # no patient geometry (X-ray, ultrasound, secondary capture): pixel spacing only, LPS axes as ITK does
        sp = (1.0, 1.0)
        for name in ("PixelSpacing", "ImagerPixelSpacing"):
            try:
                cand = tuple(float(s) for s in _tag(first, name))
            except (TypeError, ValueError):
                continue
            if len(cand) == 2 and all(np.isfinite(c) and c > 0 for c in cand):
                sp = cand
                break
        affine = np.diag([-sp[1], -sp[0], 1.0, 1.0])
    n_spatial = data.ndim - 1
    spacing_out = tuple(float(v) for v in np.linalg.norm(affine[:3, :n_spatial], axis=0))
    meta = {
        "filename_or_obj": str(source),
        "format": "dicom_series" if len(files) > 1 else "dicom",
        "affine": affine,
        "spacing": spacing_out,
        "spatial_shape": tuple(data.shape[1:]),
        "modality": str(first.get("Modality", "")) or None,
        "num_files": len(files),
        "num_frames": num_frames,
        "files": [str(f) for f in files],
        "slice_gaps": gaps,
        "photometric_interpretation": str(first.get("PhotometricInterpretation", "")) or None,
        "dtype": f"{'int' if int(first.get('PixelRepresentation', 0) or 0) else 'uint'}"
        f"{int(first.get('BitsAllocated', 16) or 16)}",
        "series_instance_uid": str(first.get("SeriesInstanceUID", "")) or None,
        "burned_in_annotation": str(first.get("BurnedInAnnotation", "")) or None,
        "geometry": geom is not None,
        "transfer_syntax": str(getattr(getattr(first.file_meta, "TransferSyntaxUID", None), "name", "")) or None,
    }
    return data, meta


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
    from monai.utils import look_up_option

    color = look_up_option(color, ("rgb", "gray"))
    path = Path(path)
    ds = read_dicom(path, stop_before_pixels=False)
    try:
        return _cine(ds, path, color)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UnreadableFileError(f"{path}: inconsistent DICOM header ({type(e).__name__}: {e}).", path) from e


def _cine(ds: Any, path: Path, color: str) -> tuple[np.ndarray, dict]:
    frames = _decode_dicom(ds, path)  # (T, H, W, C)
    if color == "gray" and frames.shape[-1] == 3:
        frames = frames @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        frames = frames[..., None]
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
    return clip, meta


# -------------------------------------------------------------------------------------------------- other formats


def _check_nifti_header(path: Path) -> None:
    """Reject a NIfTI whose header declares more voxel bytes than the file can hold (before allocating them)."""
    nib = require_package("nibabel", "monai_jepa.data.load_checked", "NIfTI input")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = nib.load(str(path))
            shape = tuple(int(s) for s in img.header.get_data_shape())
            itemsize = np.dtype(img.header.get_data_dtype()).itemsize
            offset = int(img.header.get("vox_offset", 0) or 0) if hasattr(img.header, "get") else 0
    except Exception as e:  # noqa: BLE001
        raise UnreadableFileError(f"{path}: cannot read NIfTI header ({type(e).__name__}: {e}).", path) from e
    if any(s < 0 for s in shape):
        raise UnreadableFileError(f"{path}: NIfTI header declares a negative size {shape}.", path)
    n_bytes = math.prod(shape) * itemsize
    size = path.stat().st_size
    if _suffix(path) == ".nii.gz":
        if n_bytes > _MAX_GZIP_RATIO * size + (1 << 20):
            raise UnreadableFileError(
                f"{path}: NIfTI header declares {shape} voxels ({n_bytes} bytes), more than a {size}-byte gzip file "
                "can hold: corrupt header.",
                path,
            )
    elif n_bytes + offset > size:
        raise UnreadableFileError(
            f"{path}: truncated NIfTI: the header declares {n_bytes} bytes of voxels from offset {offset}, "
            f"the file holds {size} bytes.",
            path,
        )


def _npz_key(path: Path, key: str | None) -> str:
    """Check an npz archive's members against their stored sizes; return the member to load."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i for i in zf.infolist()}
            if not infos:
                raise EmptyDatasetError(f"{path}: the npz archive holds no array.", path)
            if key is None:
                if len(infos) > 1:
                    raise LayoutError(f"{path}: the npz archive holds {sorted(infos)}: pass `npz_key`.", path)
                key = next(iter(infos))
            if key not in infos:
                raise LayoutError(f"{path}: no array {key!r} in the npz archive (found {sorted(infos)}).", path)
            with zf.open(infos[key]) as f:
                version = np.lib.format.read_magic(f)
                reader = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = reader(f)
            if dtype.hasobject:
                raise InvalidImageError(f"{path}: array {key!r} holds Python objects, not numbers.", path)
            if math.prod(shape) * dtype.itemsize > infos[key].file_size:
                raise UnreadableFileError(f"{path}: array {key!r} is truncated (corrupt npz).", path)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UnreadableFileError(f"{path}: cannot read npz archive ({type(e).__name__}: {e}).", path) from e
    return key


def _require_reader(name: str) -> None:
    """Raise an ``OptionalImportError`` naming the extra when the package of MONAI's reader ``name`` is missing."""
    needs = _READER_PACKAGES.get(name)
    if needs is not None:
        require_package(needs[0], "monai_jepa.data.load_checked", needs[1])


def _monai_reader(fmt: str, npz_key: str | None = None) -> Any:
    from monai.data import NibabelReader, NumpyReader, PILReader

    if fmt == "nifti":
        _require_reader("NibabelReader")
        return NibabelReader()
    if fmt in ("png", "jpeg"):
        _require_reader("PILReader")  # MONAI's PILReader() raises without pillow
        return PILReader()
    return NumpyReader(npz_keys=[npz_key] if npz_key else None)


def _read_with(reader: Any, path: Path, fmt: str) -> tuple[np.ndarray, dict]:
    """Read ``path`` with a MONAI ``ImageReader``; channel first; any failure -> UnreadableFileError."""
    _require_reader(type(reader).__name__)  # before the try, which would report a missing package as a corrupt file
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr, meta = reader.get_data(reader.read(str(path)))
            arr = np.asarray(arr)
            ch = meta.get("original_channel_dim")
            if ch is None or ch == "no_channel" or (isinstance(ch, float) and math.isnan(ch)):
                arr = arr[None]
            else:
                arr = np.moveaxis(arr, int(ch), 0)
            stored = str(arr.dtype)
            arr = np.ascontiguousarray(arr, dtype=np.float32)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UnreadableFileError(f"{path}: cannot read {fmt} file ({type(e).__name__}: {e}).", path) from e
    n_spatial = arr.ndim - 1
    affine = np.asarray(meta.get("affine", np.eye(4)), dtype=np.float64)
    if affine.shape != (4, 4):  # 2D readers give a 3x3 affine
        full = np.eye(4)
        k = min(affine.shape[0] - 1, 3)
        full[:k, :k], full[:k, 3] = affine[:k, :k], affine[:k, -1]
        affine = full
    out = {
        "filename_or_obj": str(path),
        "format": fmt,
        "affine": affine,
        "spacing": tuple(float(v) for v in np.linalg.norm(affine[:3, : min(n_spatial, 3)], axis=0)),
        "spatial_shape": tuple(arr.shape[1:]),
        "modality": None,
        "num_files": 1,
        "num_frames": None,
        "dtype": stored,
    }
    return arr, out


# ------------------------------------------------------------------------------------------------- load_checked


def _resolve_dicom_folder(path: Path) -> list[Path]:
    files = _dicom_files_in(path)
    if files:
        return files
    others = [f for f in path.iterdir() if f.is_file() and _suffix(f) in IMAGE_SUFFIXES]
    if others:
        raise LayoutError(
            f"{path}: a folder can be loaded only as a DICOM series; it holds {len(others)} other image file(s) "
            f"(e.g. {others[0].name}): load them one by one.",
            path,
        )
    if any(f.is_dir() for f in path.iterdir()):
        raise LayoutError(f"{path}: no DICOM file directly in this folder; pass one series subfolder.", path)
    raise EmptyDatasetError(f"{path}: the folder holds no image file.", path)


def _check_loaded(
    arr: np.ndarray, meta: dict, expected_dims: Any, expected_channels: Any, check_finite: bool = True
) -> None:
    """The content checks of :func:`load_checked` (empty, non-finite, dimensionality, channels)."""
    path = meta["filename_or_obj"]
    if arr.size == 0:
        raise InvalidImageError(f"{path}: empty image (shape {arr.shape}).", path)
    if check_finite and not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise InvalidImageError(f"{path}: {bad} of {arr.size} voxels are NaN or infinite.", path)
    if expected_dims is not None:
        dims = (expected_dims,) if isinstance(expected_dims, int) else tuple(expected_dims)
        if arr.ndim - 1 not in dims:
            raise InvalidImageError(
                f"{path}: expected a {' or '.join(f'{d}D' for d in dims)} image, got {arr.ndim - 1}D "
                f"(channel-first shape {arr.shape}).",
                path,
            )
    if expected_channels is not None:
        chans = (expected_channels,) if isinstance(expected_channels, int) else tuple(expected_channels)
        if arr.shape[0] not in chans:
            raise InvalidImageError(
                f"{path}: expected {' or '.join(map(str, chans))} channel(s), got {arr.shape[0]} "
                f"(channel-first shape {arr.shape}).",
                path,
            )


def load_checked(
    path: str | os.PathLike,
    expected_dims: int | Sequence[int] | None = None,
    expected_channels: int | Sequence[int] | None = None,
    reader: Any = None,
    *,
    check_finite: bool = True,
    npz_key: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Load one image and check it, turning every failure into a documented :class:`DataError`.

    Args:
        path: a NIfTI (``.nii`` / ``.nii.gz``), DICOM file, DICOM series folder, PNG / JPEG, ``.npz`` / ``.npy`` file.
        expected_dims: accepted number(s) of spatial dimensions (2, 3, ...), or None for any.
        expected_channels: accepted channel count(s), or None for any.
        reader: a MONAI ``ImageReader`` (instance or name such as ``"ITKReader"``) to use instead of the built-in
            choice by format.
        check_finite: raise :class:`InvalidImageError` when voxels are NaN or infinite.
        npz_key: the array to read from an npz archive holding several.

    Returns:
        ``(array, meta)``: float32 channel-first array ``(C, *spatial)`` and a dict with ``filename_or_obj``,
        ``format``, ``affine`` (4x4, RAS), ``spacing``, ``spatial_shape``, ``dtype`` (as stored), ``modality``,
        ``num_files``, ``num_frames`` (plus DICOM details, see :func:`load_dicom`).

    Raises:
        MissingFileError: ``path`` does not exist.
        EmptyDatasetError: an empty folder.
        UnreadableFileError: a truncated / corrupt file (naming it), an unknown format, a missing DICOM decoder.
        InvalidImageError: NaN / inf voxels (with their count), wrong dimensionality or channel count, empty array.
        ShapeMismatchError: slices of a series that do not agree. LayoutError: a folder of several series.

    Example::

        image, meta = load_checked("case_001.nii.gz", expected_dims=3, expected_channels=1)  # (1, X, Y, Z)
    """
    path = Path(path)
    fmt = detect_format(path)
    if reader is not None:
        if isinstance(reader, str):
            from monai.data import image_reader

            _require_reader(reader)
            try:
                reader = getattr(image_reader, reader)()
            except AttributeError:
                raise ValueError(f"`reader` must name a MONAI ImageReader, got {reader!r}.") from None
        arr, meta = _read_with(reader, path, fmt)
    elif fmt == "folder":
        arr, meta = load_dicom(_resolve_dicom_folder(path), source=path)
    elif fmt == "dicom":
        arr, meta = load_dicom([path])
    elif fmt == "unknown":
        raise UnreadableFileError(
            f"{path}: unknown image format (expected {', '.join(sorted(set(IMAGE_SUFFIXES.values())))}).", path
        )
    else:
        if fmt == "nifti":
            _check_nifti_header(path)
        if fmt == "npz":
            npz_key = _npz_key(path, npz_key)
        arr, meta = _read_with(_monai_reader(fmt, npz_key), path, fmt)

    _check_loaded(arr, meta, expected_dims, expected_channels, check_finite)
    return arr, meta


# ------------------------------------------------------------------------------------------------ check_datalist


def _item_paths(value: Any, base_dir: Path | None) -> list[Path] | None:
    """The file path(s) of one item value (a string or a list of strings), or None for a non-path value."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or not all(isinstance(v, (str, os.PathLike)) for v in values):
        return None
    paths = [Path(v) for v in values]
    return [p if p.is_absolute() or base_dir is None else base_dir / p for p in paths]


def _check_item(
    item: dict,
    keys: Sequence[str],
    image_key: str,
    base_dir: Path | None,
    expected_dims: Any,
    expected_channels: Any,
    atol: float,
) -> None:
    if not isinstance(item, dict):
        raise LayoutError(f"datalist item must be a dict, got {type(item).__name__}: {item!r}.")
    if image_key not in item:
        raise LayoutError(f"item has no {image_key!r} key (keys: {sorted(item)}): {item!r}.")
    loaded: list[tuple[str, Path, tuple, np.ndarray]] = []
    for key in keys:
        if key not in item:
            continue
        paths = _item_paths(item[key], base_dir)
        if paths is None:  # e.g. an integer class label
            continue
        for p in paths:
            if not p.exists():
                what = "image" if key == image_key else key
                raise MissingFileError(f"{p}: {what} file of this item does not exist (item {item!r}).", p)
        dims, chans = (expected_dims, expected_channels) if key == image_key else (None, None)
        if len(paths) > 1 and all(p.is_file() and is_dicom_file(p) for p in paths):  # the slices of one series
            arr, meta = load_dicom(paths, source=paths[0].parent)
            _check_loaded(arr, meta, dims, chans)
            loaded.append((key, paths[0].parent, tuple(arr.shape[1:]), meta["affine"]))
            continue
        for p in paths:
            arr, meta = load_checked(p, dims, chans)
            loaded.append((key, p, tuple(arr.shape[1:]), meta["affine"]))
    ref_key, ref_path, ref_shape, ref_affine = loaded[0]
    for key, p, shape, affine in loaded[1:]:
        if shape != ref_shape:
            raise ShapeMismatchError(
                f"{ref_path} ({ref_key}) and {p} ({key}) differ in spatial shape: {ref_shape} vs {shape}.", p
            )
        if not np.allclose(affine, ref_affine, atol=atol):
            raise ShapeMismatchError(
                f"{ref_path} ({ref_key}) and {p} ({key}) differ in affine (spacing, orientation or origin; atol "
                f"{atol}):\n{np.round(ref_affine, 4)}\nvs\n{np.round(affine, 4)}.",
                p,
            )


def _write_report(report: Path, checked: int, skipped: list[dict]) -> None:
    report.parent.mkdir(parents=True, exist_ok=True)
    fields = ["split", "index", "error", "path", "message"]
    if report.suffix.lower() == ".csv":

        def _write_csv(f: Any) -> None:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for row in skipped:
                writer.writerow({k: row.get(k) for k in fields})

        atomic_write(report, _write_csv, text=True)
    else:
        payload = {"checked": checked, "ok": checked - len(skipped), "skipped": skipped}
        atomic_write_text(report, json.dumps(payload, indent=4, default=str) + "\n")


def check_datalist(
    datalist: list | dict | str | os.PathLike,
    skip_bad: bool = False,
    report: str | os.PathLike | None = None,
    *,
    keys: Sequence[str] = ("image", "label"),
    image_key: str = "image",
    base_dir: str | os.PathLike | None = None,
    expected_dims: int | Sequence[int] | None = None,
    expected_channels: int | Sequence[int] | None = None,
    atol: float = 1e-3,
) -> tuple[list | dict, list[dict]]:
    """Validate every item of a datalist: files exist and decode, and the image(s) and label agree.

    Each item's path values under ``keys`` (a string, or a list of strings such as the sequences of one study) are
    loaded with :func:`load_checked` (a list of DICOM files is loaded as the slices of one series); all of them must
    share the image's spatial shape and affine. Non-path values (e.g. an integer class label) are ignored.

    Args:
        datalist: a list of item dicts, a dict of such lists (``{"training": [...], "validation": [...]}``;
            other entries are kept as they are), or the path of such a JSON file.
        skip_bad: log and skip bad items instead of raising the first error.
        report: where to write what was skipped and why: ``.csv`` (columns split, index, error, path, message) or
            JSON (``{"checked", "ok", "skipped": [...]}``). Written whenever given, also when nothing was skipped.
        keys: the item keys that hold file paths.
        image_key: the key that every item must have.
        base_dir: folder that relative paths are relative to; defaults to the datalist's ``"root"`` entry, else the
            JSON file's folder, else the current folder.
        expected_dims: accepted spatial dimensionality of the image(s), see :func:`load_checked`.
        expected_channels: accepted channel count(s) of each image file.
        atol: tolerance on affine entries when comparing image and label.

    Returns:
        ``(ok_items, skipped)``: the datalist with only the good items (same structure as given) and one dict per
        skipped item (``split``, ``index``, ``error`` class name, ``path``, ``message``).

    Raises:
        DataError: the first bad item's error when ``skip_bad`` is False.
        EmptyDatasetError: no item at all, or (with ``skip_bad``) no good item.

    Example::

        ok, skipped = check_datalist("datalist.json", skip_bad=True, report="skipped.csv")
    """
    if isinstance(datalist, (str, os.PathLike)):
        src = Path(datalist)
        if not src.is_file():
            raise MissingFileError(f"{src}: no such datalist file.", src)
        try:
            datalist = json.loads(src.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UnreadableFileError(f"{src}: not a readable JSON datalist ({e}).", src) from e
        if base_dir is None and not (isinstance(datalist, dict) and isinstance(datalist.get("root"), str)):
            base_dir = src.parent
    if base_dir is None and isinstance(datalist, dict) and isinstance(datalist.get("root"), str):
        base_dir = datalist["root"]
    base = Path(base_dir) if base_dir is not None else None
    keys = list(dict.fromkeys([image_key, *keys]))
    if isinstance(datalist, dict):
        splits = {k: v for k, v in datalist.items() if isinstance(v, list)}
    elif isinstance(datalist, list):
        splits = {None: datalist}
    else:
        raise LayoutError(f"datalist must be a list of items or a dict of lists, got {type(datalist).__name__}.")
    total = sum(len(v) for v in splits.values())
    if total == 0:
        raise EmptyDatasetError("the datalist holds no item.")

    skipped: list[dict] = []
    kept: dict = {}
    for split, items in splits.items():
        kept[split] = []
        for i, item in enumerate(items):
            try:
                _check_item(item, keys, image_key, base, expected_dims, expected_channels, atol)
            except DataError as e:
                if not skip_bad:
                    raise
                where = f"{split}[{i}]" if split is not None else f"item {i}"
                logger.warning("skipping %s: %s: %s", where, type(e).__name__, e)
                skipped.append(
                    {"split": split, "index": i, "error": type(e).__name__, "path": e.path, "message": str(e)}
                )
                continue
            kept[split].append(item)
    if report is not None:
        _write_report(Path(report), total, skipped)
    if skip_bad and total == len(skipped):
        raise EmptyDatasetError(f"all {total} datalist items are bad" + (f"; see {report}." if report else "."))
    if None in kept:
        return kept[None], skipped
    ok = dict(datalist)
    ok.update(kept)
    return ok, skipped
