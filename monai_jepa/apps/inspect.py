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
"""Inspect an image file or folder before training: geometry, intensities, and the problems that would bite later.

:func:`inspect_path` describes a NIfTI / DICOM / PNG / JPEG / npz file, a DICOM series folder, or a whole export
folder (every DICOM series, grouped by ``SeriesInstanceUID``, and every other image file found below it), and lists
problems: unreadable or truncated files, NaN / inf voxels, empty folders, constant images, irregular or duplicated
slice positions, mixed slice sizes, declared burned-in annotations. :func:`format_report` renders it for a terminal;
``python -m monai_jepa inspect <path>`` prints it and exits non-zero when there is a problem.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_jepa.data.dicom import is_dicom_file, load_dicom, read_header, slice_gap_problem
from monai_jepa.data.errors import (
    DataError,
    EmptyDatasetError,
    InvalidImageError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)
from monai_jepa.data.io import IMAGE_SUFFIXES, _suffix, detect_format, load_checked
from monai_jepa.utils.module import require_package

__all__ = ["inspect_path", "format_report", "PROBLEM_CODES"]

#: problem codes that :func:`inspect_path` reports, with what they mean
PROBLEM_CODES = {
    "unreadable": "the file cannot be parsed or decoded (truncated, corrupt, or no installed decoder)",
    "invalid": "the decoded content is unusable (no pixel data, empty array)",
    "non_finite": "NaN or infinite voxels",
    "empty": "no image file where images were expected",
    "constant": "every voxel has the same value",
    "inconsistent_spacing": "the distances between consecutive slices differ (missing slice?)",
    "duplicate_slices": "two slices of a series share one position",
    "shape_mismatch": "slices of one series differ in size or orientation",
    "layout": "files that cannot be read as one image (several series, multi-frame file inside a series)",
    "burned_in": "the DICOM header declares burned-in annotations (patient data in the pixels)",
}
_ERROR_CODES = (
    (UnreadableFileError, "unreadable"),
    (InvalidImageError, "invalid"),
    (ShapeMismatchError, "shape_mismatch"),
    (LayoutError, "layout"),
    (EmptyDatasetError, "empty"),
)


def _problem(code: str, message: str, path: Any = None) -> dict:
    return {"code": code, "message": message, "path": None if path is None else str(path)}


def _error_problem(e: DataError) -> dict:
    code = next((c for cls, c in _ERROR_CODES if isinstance(e, cls)), "unreadable")
    return _problem(code, str(e), e.path)


def _orientation(affine: np.ndarray, n_spatial: int) -> str | None:
    nib = require_package("nibabel", "monai_jepa.apps.inspect.inspect_path", "the orientation codes")
    try:
        codes = nib.orientations.aff2axcodes(affine)
    except Exception:  # noqa: BLE001 - degenerate affine
        return None
    return "".join(c or "?" for c in codes[: max(n_spatial, 1)])


def _base_report(path: Path, fmt: str) -> dict:
    return {
        "path": str(path),
        "kind": "file",
        "format": fmt,
        "modality": None,
        "shape": None,
        "spatial_shape": None,
        "channels": None,
        "spacing": None,
        "orientation": None,
        "affine": None,
        "dtype": None,
        "num_files": 1,
        "num_frames": None,
        "intensity": None,
        "problems": [],
    }


def _describe(report: dict, arr: np.ndarray, meta: dict, percentiles: Sequence[float]) -> dict:
    """Fill ``report`` from a loaded ``(C, *spatial)`` array and its metadata."""
    n_spatial = arr.ndim - 1
    report.update(
        format=meta.get("format", report["format"]),
        modality=meta.get("modality"),
        shape=list(arr.shape),
        spatial_shape=list(arr.shape[1:]),
        channels=int(arr.shape[0]),
        spacing=[round(float(s), 6) for s in meta.get("spacing", ())] or None,
        dtype=meta.get("dtype"),
        num_files=int(meta.get("num_files") or 1),
        num_frames=meta.get("num_frames"),
    )
    if report["format"] in ("nifti", "dicom", "dicom_series") and meta.get("geometry", True) and "affine" in meta:
        report["orientation"] = _orientation(np.asarray(meta["affine"]), n_spatial)
        report["affine"] = np.round(np.asarray(meta["affine"], dtype=np.float64), 6).tolist()
    finite = np.isfinite(arr)
    n_bad = int(arr.size - np.count_nonzero(finite))
    if n_bad:
        nan = int(np.isnan(arr).sum())
        report["problems"].append(
            _problem("non_finite", f"{n_bad} of {arr.size} voxels are not finite ({nan} NaN, {n_bad - nan} inf).")
        )
    values = arr[finite] if n_bad else arr.ravel()
    if values.size:
        qs = np.percentile(values, list(percentiles))
        report["intensity"] = {
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean(dtype=np.float64)),
            "std": float(values.std(dtype=np.float64)),
            **{f"p{p:g}": float(q) for p, q in zip(percentiles, qs)},
        }
        if values.min() == values.max():
            report["problems"].append(_problem("constant", f"every voxel equals {float(values.min()):g}."))
    gaps = np.asarray(meta.get("slice_gaps") or [], dtype=np.float64)
    if gaps.size:
        report["slice_gaps"] = {"min": float(gaps.min()), "max": float(gaps.max()), "median": float(np.median(gaps))}
        problem = slice_gap_problem(gaps)
        if problem is not None:
            report["problems"].append(_problem(*problem))
    if str(meta.get("burned_in_annotation") or "").upper() == "YES":
        report["problems"].append(
            _problem("burned_in", "BurnedInAnnotation is YES: patient data may be in the pixels (check before use).")
        )
    return report


def _inspect_file(path: Path, percentiles: Sequence[float], npz_key: str | None = None) -> dict:
    fmt = detect_format(path)
    if fmt == "npz" and npz_key is None:
        keys = _npz_keys(path)
        if len(keys) > 1:  # e.g. MedMNIST: train / val / test images and labels, each described
            items = [_inspect_file(path, percentiles, key) for key in keys]
            return _folder_report(path, items, [], 0, "npz")
    report = _base_report(path, fmt)
    if npz_key is not None:
        report["path"] = f"{path}[{npz_key}]"
    try:
        arr, meta = load_checked(path, check_finite=False, npz_key=npz_key)
    except DataError as e:
        report["problems"].append(_error_problem(e))
        return report
    return _describe(report, arr, meta, percentiles)


def _npz_keys(path: Path) -> list[str]:
    """The array names of an npz archive (none when it cannot be opened: the loader then reports why)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    except Exception:
        return []


def _inspect_series(folder: Path, files: list[Path], percentiles: Sequence[float]) -> dict:
    report = _base_report(folder, "dicom_series" if len(files) > 1 else "dicom")
    report["kind"] = "dicom_series" if len(files) > 1 else "file"
    report["num_files"] = len(files)
    try:
        with warnings.catch_warnings():  # irregular slice gaps: reported below as a problem, not warned about
            warnings.simplefilter("ignore")
            arr, meta = load_dicom(files, source=folder if len(files) > 1 else files[0])
    except DataError as e:
        report["problems"].append(_error_problem(e))
        return report
    if len(files) == 1:
        report["path"] = str(files[0])
    return _describe(report, arr, meta, percentiles)


def _scan_folder(folder: Path) -> tuple[dict[tuple[str, str], list[Path]], list[Path], list[dict], int]:
    """Group DICOM files by (folder, SeriesInstanceUID); list other images; collect unreadable headers."""
    series: dict[tuple[str, str], list[Path]] = defaultdict(list)
    others: list[Path] = []
    problems: list[dict] = []
    ignored = 0
    files: list[Path] = []

    def unreadable(e: OSError) -> None:  # os.walk skips a folder it cannot list: report it instead
        where = e.filename or folder
        problems.append(_problem("unreadable", f"{where}: folder cannot be listed ({e.strerror or e}).", where))

    for parent, _, names in os.walk(folder, onerror=unreadable):
        files += [Path(parent) / n for n in names]
    for f in sorted(p for p in files if p.is_file()):
        if f.name.upper() == "DICOMDIR":
            ignored += 1
            continue
        fmt = IMAGE_SUFFIXES.get(_suffix(f))
        if fmt == "dicom" or (fmt is None and is_dicom_file(f)):
            try:
                ds = read_header(f)
            except DataError as e:
                problems.append(_error_problem(e))
                continue
            if "Rows" not in ds and "SOPClassUID" in ds:  # a non-image object (structured report, RT structure set)
                ignored += 1
                continue
            uid = str(ds.get("SeriesInstanceUID", "") or f"<no SeriesInstanceUID: {f.name}>")
            series[(str(f.parent), uid)].append(f)
        elif fmt is not None:
            others.append(f)
        else:
            ignored += 1
    return series, others, problems, ignored


def inspect_path(path: str | os.PathLike, percentiles: Sequence[float] = (1, 50, 99)) -> dict:
    """Describe an image file or folder and list its problems.

    Args:
        path: a NIfTI / DICOM / PNG / JPEG / npz / npy file, a DICOM series folder, or any folder (searched
            recursively; DICOM files are grouped into series by folder and ``SeriesInstanceUID``).
        percentiles: intensity percentiles to report.

    Returns:
        a JSON-serialisable dict. For one image (a file or a folder holding exactly one DICOM series): ``path``,
        ``kind`` (``"file"`` / ``"dicom_series"``), ``format``, ``modality`` (DICOM ``Modality``, else None),
        ``shape`` (channel first), ``spatial_shape``, ``channels``, ``spacing`` (mm), ``orientation`` (axis codes such
        as ``"RAS"``, for NIfTI / DICOM), ``affine`` (4x4 RAS, NIfTI / DICOM), ``dtype`` (as stored), ``num_files``,
        ``num_frames``, ``intensity`` (``min``, ``max``, ``mean``, ``std``, ``p1``, ``p50``, ``p99``, over finite
        voxels), ``slice_gaps`` (series),
        and ``problems``: a list of ``{"code", "message", "path"}`` with codes from :data:`PROBLEM_CODES`.
        For a folder of several images: ``path``, ``kind="folder"``, ``num_files``, ``num_items``,
        ``ignored_files``, ``items`` (one report per image or series) and ``problems`` (all of them, each naming
        its file or series; the NIfTI volumes of one folder, the sequences of a case, must agree in spatial shape
        and affine and hold one channel each, and a folder that cannot be listed is reported as ``unreadable``).
        An npz archive of several arrays (MedMNIST: images and labels of each split) gives the
        same with ``kind="npz"`` and one item per array (``path`` ``"<file>[<array>]"``).

    Raises:
        MissingFileError: ``path`` does not exist. Problems inside the data are reported, not raised.

    Example::

        report = inspect_path("export/")
        bad = [p["message"] for p in report["problems"]]
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file or folder.", path)
    if path.is_file():
        return _inspect_file(path, percentiles)
    series, others, problems, ignored = _scan_folder(path)
    items = [_inspect_series(Path(parent), files, percentiles) for (parent, _), files in sorted(series.items())]
    items += [_inspect_file(f, percentiles) for f in others]
    problems += _sibling_problems(items)
    if len(items) == 1 and not problems and ignored == 0:
        return items[0]
    if not items and not problems:
        problems.append(_problem("empty", f"{path}: no image file in this folder (or below it).", path))
    return _folder_report(path, items, problems, ignored, "folder")


def _sibling_problems(items: list[dict], atol: float = 1e-3) -> list[dict]:
    """The volumes of one folder (the sequences of one case: ``t1``, ``t2``, ``flair``, ``seg``) must share their
    spatial shape, affine and a single channel, as the loaders stack them: report each file that does not (against
    the first of the folder)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        if item.get("format") == "nifti" and item.get("spatial_shape") is not None and item.get("kind") == "file":
            groups[str(Path(item["path"]).parent)].append(item)
    problems = []
    for group in groups.values():
        if len(group) < 2:
            continue
        ref = group[0]
        for item in group:
            if item["channels"] != 1:
                problems.append(_problem(
                    "shape_mismatch", f"{item['path']}: {item['channels']} channels (a 4D NIfTI) beside "
                    f"{len(group) - 1} other volume(s) in its folder; one 3D volume per sequence file is expected "
                    "(a 4D file would be stacked as several channels).", item["path"]))  # fmt: skip
            elif item["spatial_shape"] != ref["spatial_shape"]:
                problems.append(_problem(
                    "shape_mismatch", f"{item['path']} and {ref['path']} (same case folder) differ in spatial shape: "
                    f"{_fmt(ref['spatial_shape'])} vs {_fmt(item['spatial_shape'])}.", item["path"]))  # fmt: skip
            elif (
                item.get("affine") is not None
                and ref.get("affine") is not None
                and not np.allclose(item["affine"], ref["affine"], atol=atol)
            ):
                problems.append(_problem(
                    "shape_mismatch", f"{item['path']} and {ref['path']} (same case folder) differ in affine "
                    "(spacing, orientation or origin): the sequences would not be voxel-aligned.",
                    item["path"]))  # fmt: skip
    return problems


def _folder_report(path: Path, items: list[dict], problems: list[dict], ignored: int, kind: str) -> dict:
    """A report of several images (a folder, or the arrays of one npz archive); every item's problems are listed."""
    problems = list(problems)
    for item in items:
        for p in item["problems"]:
            problems.append({**p, "path": p["path"] or item["path"]})
    num_files = (
        1 if kind == "npz" else sum(i["num_files"] for i in items) + sum(p["code"] == "unreadable" for p in problems)
    )
    return {
        "path": str(path),
        "kind": kind,
        "format": kind,
        "num_files": num_files,
        "num_items": len(items),
        "ignored_files": ignored,
        "items": items,
        "problems": problems,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return " x ".join(_fmt(v) for v in value)
    return str(value)


def _format_item(report: dict, indent: str = "") -> list[str]:
    lines = [f"{indent}{report['path']}"]
    if report.get("shape") is not None:
        lines.append(
            f"{indent}  {report['format']}, modality {_fmt(report['modality'])}, {report['channels']} channel(s), "
            f"{len(report['spatial_shape'])}D {_fmt(report['spatial_shape'])}, dtype {_fmt(report['dtype'])}"
        )
        geo = f"{indent}  spacing {_fmt(report['spacing'])} mm, orientation {_fmt(report['orientation'])}"
        geo += f", {report['num_files']} file(s)"
        if report.get("num_frames"):
            geo += f", {report['num_frames']} frame(s)/slice(s)"
        lines.append(geo)
        if report.get("intensity"):
            it = report["intensity"]
            pcts = ", ".join(f"{k} {_fmt(v)}" for k, v in it.items() if k.startswith("p"))
            lines.append(
                f"{indent}  intensity min {_fmt(it['min'])}, max {_fmt(it['max'])}, mean {_fmt(it['mean'])}, {pcts}"
            )
    for p in report.get("problems", []):
        lines.append(f"{indent}  PROBLEM [{p['code']}] {p['message']}")
    return lines


def format_report(report: dict) -> str:
    """A readable multi-line rendering of an :func:`inspect_path` report."""
    if report.get("kind") not in ("folder", "npz"):
        lines = _format_item(report)
    else:
        what = "array(s)" if report["kind"] == "npz" else "image(s) / series"
        lines = [
            f"{report['path']}: {report['num_items']} {what} in {report['num_files']} file(s)"
            + (f", {report['ignored_files']} other file(s) ignored" if report.get("ignored_files") else "")
        ]
        for item in report["items"]:
            lines += _format_item(item, indent="  ")
        in_items = {(p["code"], p["message"]) for item in report["items"] for p in item["problems"]}
        for p in report["problems"]:
            if (p["code"], p["message"]) not in in_items:
                lines.append(f"  PROBLEM [{p['code']}] {p['message']}")
    n = len(report.get("problems", []))
    lines.append(f"{n} problem(s) found." if n else "no problem found.")
    return "\n".join(lines)
