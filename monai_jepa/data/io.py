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
readers (``NibabelReader``, ``PILReader``, ``NumpyReader``), DICOM through :mod:`monai_jepa.data.dicom` (series with
MONAI's ``ITKReader``, axes ``(x = column, y = row, z = slice or frame)``, RAS affine), after header checks that
reject corrupt files (naming them) before their voxels are allocated.

:func:`check_datalist` validates a whole datalist (files exist and decode, image and label agree) and, in
``skip_bad`` mode, keeps the good items and writes a JSON / CSV report of the others.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_jepa.utils.dist import get_rank
from monai_jepa.utils.fileio import atomic_write, atomic_write_text
from monai_jepa.utils.flags import as_bool
from monai_jepa.utils.module import require_package

from .dicom import DICOM_SUFFIXES, is_dicom_file, load_dicom, series_files
from .errors import (
    DataError,
    EmptyDatasetError,
    InvalidImageError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)

__all__ = ["IMAGE_SUFFIXES", "detect_format", "is_nifti", "load_checked", "check_datalist"]

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
    **dict.fromkeys(DICOM_SUFFIXES, "dicom"),
}
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


def is_nifti(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a NIfTI file (``.nii`` or ``.nii.gz``, any case)."""
    return IMAGE_SUFFIXES.get(_suffix(Path(path))) == "nifti"


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
    files = series_files(path)
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
        ``num_files``, ``num_frames`` (plus DICOM details, see :func:`~monai_jepa.data.dicom.load_dicom`).

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
    atol: float | None,
) -> int:
    """Check one item (see :func:`check_datalist`); returns the image's channel count."""
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
        dims, chans = (expected_dims, expected_channels) if key == image_key else (None, 1 if key == "label" else None)
        if len(paths) > 1 and all(p.is_file() and is_dicom_file(p) for p in paths):  # the slices of one series
            arr, meta = load_dicom(paths, source=paths[0].parent)
            _check_loaded(arr, meta, dims, chans)
            loaded.append((key, paths[0].parent, tuple(arr.shape[1:]), meta["affine"], arr.shape[0]))
            continue
        for p in paths:  # one file per sequence: each must be one volume (a 4D file would add channels)
            arr, meta = load_checked(p, dims, chans if len(paths) == 1 else 1)
            loaded.append((key, p, tuple(arr.shape[1:]), meta["affine"], arr.shape[0]))
    ref_key, ref_path, ref_shape, ref_affine, _ = loaded[0]
    for key, p, shape, affine, _ in loaded[1:] if atol is not None else []:
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
    return sum(c for key, *_, c in loaded if key == image_key)


def _load_item(item: Any, keys: Sequence[str], image_key: str, base_dir: Path | None, loader: Callable) -> int:
    """Check one item with the pipeline's own ``loader``; returns the loaded image's channel count."""
    if not isinstance(item, dict) or image_key not in item:
        raise LayoutError(f"datalist item must be a dict with an {image_key!r} key, got {item!r}.")
    data = dict(item)
    for key in keys:
        paths = _item_paths(data.get(key), base_dir)
        if paths is not None:
            data[key] = [str(p) for p in paths] if isinstance(data[key], (list, tuple)) else str(paths[0])
    first = (_item_paths(item[image_key], base_dir) or [item[image_key]])[0]
    try:
        return int(loader(data)[image_key].shape[0])
    except DataError:
        raise
    except Exception as e:  # a decoder's own error: name the item's file
        raise UnreadableFileError(f"{first}: cannot be loaded ({type(e).__name__}: {e}).", first) from e


def _fingerprint(item: Any, keys: Sequence[str], base_dir: Path | None, settings: str) -> str | None:
    """Path, size and modification time of every file of an item (the files of a DICOM folder included), with the
    check's ``settings`` (a pass under other settings does not count), or None when a file is missing (the check then
    reports it)."""
    if not isinstance(item, dict):
        return None
    parts: list = [settings]
    for key in keys:
        for p in _item_paths(item.get(key), base_dir) or []:
            try:
                files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
                parts += [(key, str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
            except OSError:
                return None
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest() if len(parts) > 1 else None


def _read_check_cache(cache: str | os.PathLike | None) -> dict[str, int]:
    if cache is None or not Path(cache).is_file():
        return {}
    try:
        payload = json.loads(Path(cache).read_text())
        return {str(k): int(v) for k, v in payload["passed"].items()} if payload.get("version") == 1 else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        logger.warning("ignoring the unreadable validation cache %s; every item is checked.", cache)
        return {}


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


_SPLIT_NAMES = ("training", "validation", "test", "testing", "train", "val")


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
    same_channels: bool = True,
    same_grid: bool = True,
    cache: str | os.PathLike | None = None,
    loader: Callable[[dict], Mapping] | None = None,
) -> tuple[list | dict, list[dict]]:
    """Validate every item of a datalist: files exist and decode, and the image(s) and label agree.

    Each item's path values under ``keys`` (a string, or a list of strings such as the sequences of one study) are
    loaded with :func:`load_checked` (a list of DICOM files is loaded as the slices of one series); all of them must
    share the image's spatial shape and affine. Non-path values (e.g. an integer class label) are ignored.

    Args:
        datalist: a list of item dicts, a dict of such lists (``{"training": [...], "validation": [...]}``: the
            lists named like a split or holding a dict; other entries, such as a BraTS datalist's ``"sequences"``
            list of names, are kept as they are), or the path of such a JSON file.
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
        same_channels: require one image channel count across all items (they are batched together); False where
            the preprocessing converts channels (2D folders mixing grey and colour files).
        same_grid: require the files of an item to share spatial shape and affine; False where the loader
            resamples them onto the first one's grid (DICOM series of one study).
        cache: a JSON file remembering the items that passed, by the path, size and modification time of each of
            their files and the check's settings: those are not decoded again, so a rerun on an unchanged dataset
            checks in seconds. Written (atomically) only when the check succeeds, with the good items (by rank 0
            under ``torch.distributed``; every rank reads it).
        loader: a dictionary transform that loads an item as the training pipeline does (e.g.
            :class:`~monai_jepa.transforms.LoadCined` for cine clips); each item, its ``keys`` paths made absolute, is
            checked by calling it instead of the file-by-file checks above (any failure becomes an
            :class:`UnreadableFileError` naming the item's first file). The channel count is that of its output.

    Returns:
        ``(ok_items, skipped)``: the datalist with only the good items (same structure as given) and one dict per
        skipped item (``split``, ``index``, ``error`` class name, ``path``, ``message``).

    Raises:
        DataError: the first bad item's error when ``skip_bad`` is False.
        EmptyDatasetError: no item at all, or (with ``skip_bad``) no good item.

    Example::

        ok, skipped = check_datalist("datalist.json", skip_bad=True, report="skipped.csv")
    """
    skip_bad = as_bool(skip_bad, "skip_bad")
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
    if isinstance(datalist, dict):  # lists of items are splits; other lists (e.g. "sequences": ["t1", ...]) are kept
        splits = {
            k: v
            for k, v in datalist.items()
            if isinstance(v, list) and (k in _SPLIT_NAMES or any(isinstance(i, Mapping) and image_key in i for i in v))
        }
    elif isinstance(datalist, list):
        splits = {None: datalist}
    else:
        raise LayoutError(f"datalist must be a list of items or a dict of lists, got {type(datalist).__name__}.")
    total = sum(len(v) for v in splits.values())
    if total == 0:
        raise EmptyDatasetError("the datalist holds no item.")

    skipped: list[dict] = []
    kept: dict = {}
    first: tuple[int, Any] | None = None  # (channels, where) of the first good item: batches need one channel count
    known, passed = _read_check_cache(cache), {}
    settings = repr((keys, image_key, expected_dims, expected_channels, atol, same_grid, type(loader).__name__))
    for split, items in splits.items():
        kept[split] = []
        for i, item in enumerate(items):
            try:
                stamp = _fingerprint(item, keys, base, settings) if cache is not None else None
                channels = known.get(stamp) if stamp is not None else None
                if channels is None and loader is not None:
                    channels = _load_item(item, keys, image_key, base, loader)
                elif channels is None:
                    channels = _check_item(
                        item, keys, image_key, base, expected_dims, expected_channels, atol if same_grid else None
                    )
                if stamp is not None:
                    passed[stamp] = channels
                if not same_channels:
                    pass
                elif first is None:
                    first = (channels, item[image_key])
                elif channels != first[0]:
                    paths = _item_paths(item[image_key], base) or [item[image_key]]
                    raise InvalidImageError(
                        f"{paths[0]}: the image of this item has {channels} channel(s), the first item's "
                        f"({first[1]}) has {first[0]}; every item must have the same channels.",
                        paths[0],
                    )
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
    if cache is not None and get_rank() == 0:  # one writer under torch.distributed; every rank reads it
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(cache), json.dumps({"version": 1, "passed": passed}, indent=1) + "\n")
    if None in kept:
        return kept[None], skipped
    ok = dict(datalist)
    ok.update(kept)
    return ok, skipped
