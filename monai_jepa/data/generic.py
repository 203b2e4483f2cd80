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
"""Datalist builders for layouts that are not one public dataset: NIfTI folders, image + CSV folders, DICOM series.

* ``nifti_folder``: ``imagesTr/`` (+ ``labelsTr/`` matched by case name), the Decathlon / nnU-Net layout; nnU-Net
  channel files ``case_0000.nii.gz, case_0001.nii.gz`` become one multi-channel item.
* ``image_csv``: PNG / JPEG files + a CSV with image, label (one column, or several 0/1 columns for multi-label),
  optional patient and split columns.
* ``dicom_series``: a folder tree of DICOM files; one item per series (``SeriesInstanceUID``), slices in the order
  of :func:`~monai_jepa.data.dicom.sort_series`.

With ``skip_bad=True`` a bad case (missing partner file, unreadable header, shape mismatch) is logged, left out and
recorded under ``datalist["skipped"]``; otherwise it raises the documented error of :mod:`monai_jepa.data.errors`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.utils import look_up_option, optional_import

from monai_jepa.utils.module import require_package

from .datalist import (
    dataset_root,
    encode_labels,
    make_datalist,
    normalize_split,
    patient_split,
    read_table,
    register_datalist,
    skip_or_raise,
)
from .dicom import find_dicom_files, read_header, sort_series
from .errors import (
    DataError,
    EmptyDatasetError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)

nib, _ = optional_import("nibabel")
PILImage, _ = optional_import("PIL.Image")

__all__ = [
    "IMAGE_SUFFIXES",
    "nifti_folder_datalist",
    "image_csv_datalist",
    "dicom_series_datalist",
]

logger = logging.getLogger(__name__)

#: file suffixes accepted as 2D images by ``image_csv``.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_NNUNET_CHANNEL = re.compile(r"^(.*)_(\d{4})$")


@register_datalist("dicom_series")
def dicom_series_datalist(
    root: str | os.PathLike,
    image_as: str = "auto",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    skip_bad: bool = False,
    name: str = "dicom_series",
    description: str = "DICOM series found recursively; one item per SeriesInstanceUID.",
) -> dict:
    """Datalist of a folder tree of DICOM files: one item per series, split by ``PatientID``.

    Each item holds ``"image"`` (the series folder, or the sorted list of its files), ``"patient_id"``,
    ``"study_uid"``, ``"series_uid"``, ``"modality"``, ``"series_description"``, ``"study_date"`` and
    ``"num_files"``. Items load with :func:`~monai_jepa.data.dicom.load_dicom` (or MONAI's ``LoadImage``).

    Args:
        root: the folder tree.
        image_as: ``"auto"`` (the folder when it holds exactly this series' DICOM files, else the file list),
            ``"folder"`` (always; a folder shared by several series is a :class:`LayoutError`) or ``"files"``.
        fractions: ``(training, validation, test)`` patient fractions for :func:`patient_split`.
        seed: seed of the split.
        skip_bad: skip (and record) unreadable files and inconsistent series instead of raising.
        name: datalist name.
        description: datalist description.

    Returns:
        the datalist dict, task ``"unlabelled"``.

    Raises:
        MissingFileError: ``root`` missing.
        EmptyDatasetError: no DICOM file, or none usable.
        UnreadableFileError: an unreadable DICOM header.
        LayoutError: a file without ``SeriesInstanceUID`` or ``PatientID``, or a shared folder with ``"folder"``.
        ShapeMismatchError: slices of one series with different sizes.

    Example::

        datalist = build_datalist("dicom_series", "/data/tcia_brain_tumor_progression", out="series.json")
        datalist["training"][0]  # {"image": "11-19-1991/3-T1post-11045", "patient_id": "PGBM-001", ...}
    """
    image_as = look_up_option(image_as, ("auto", "folder", "files"))
    root = dataset_root(root)
    files = find_dicom_files(root)
    if not files:
        raise EmptyDatasetError(f"no DICOM file found under {root}.", path=root)
    skipped: list[dict[str, str]] | None = [] if skip_bad else None
    per_folder: dict[Path, int] = defaultdict(int)
    series: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    for path in files:
        per_folder[path.parent] += 1
        try:
            header = read_header(path)
            uid = str(header.get("SeriesInstanceUID", "") or "")
            if not uid:
                raise LayoutError(f"DICOM file {path} has no SeriesInstanceUID.", path=path)
            if not str(header.get("PatientID", "") or "").strip():
                raise LayoutError(
                    f"DICOM file {path} has an empty PatientID; a patient-level split needs one.", path=path
                )
        except DataError as e:
            skip_or_raise(e, skipped)
            continue
        series[uid].append((path, header))

    items = []
    for uid, members in sorted(series.items()):
        paths, headers = [m[0] for m in members], [m[1] for m in members]
        try:
            ordered = sort_series(paths, headers)[0]
            folders = {p.parent for p in paths}
            pure = len(folders) == 1 and per_folder[paths[0].parent] == len(paths)
            if image_as == "folder" and not pure:
                raise LayoutError(
                    f"DICOM series {uid} cannot be given as a folder: its files are in {sorted(map(str, folders))}, "
                    "shared with other files; use image_as='files' or 'auto'.",
                    path=paths[0].parent,
                )
        except DataError as e:
            skip_or_raise(e, skipped)
            continue
        first = headers[0]
        items.append(
            {
                "image": paths[0].parent if image_as != "files" and pure else ordered,
                "patient_id": str(first.get("PatientID")).strip(),
                "study_uid": str(first.get("StudyInstanceUID", "") or ""),
                "series_uid": uid,
                "modality": str(first.get("Modality", "") or ""),
                "series_description": str(first.get("SeriesDescription", "") or ""),
                "study_date": str(first.get("StudyDate", "") or ""),
                "num_files": len(paths),
            }
        )
    if not items:
        raise EmptyDatasetError(f"no usable DICOM series under {root} ({len(files)} files tried).", path=root)
    items = patient_split(items, fractions=fractions, seed=seed)
    return make_datalist(name, root, items, "unlabelled", None, description, skipped=skipped)


def _case_name(path: Path, extensions: Sequence[str]) -> str | None:
    lower = path.name.lower()
    for ext in sorted(extensions, key=len, reverse=True):
        if lower.endswith(ext.lower()):
            return path.name[: len(path.name) - len(ext)]
    return None


def _list_cases(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    cases = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            case = _case_name(path, extensions)
            if case is not None:
                cases[case] = path
    return cases


def _nifti_shape(path: Path) -> tuple[int, ...] | None:
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return None
    require_package("nibabel", "monai_jepa.data.nifti_folder_datalist", "NIfTI input")
    try:
        return tuple(int(s) for s in nib.load(str(path)).shape)
    except Exception as e:
        raise UnreadableFileError(f"NIfTI header of {path} cannot be read: {type(e).__name__}: {e}", path=path) from e


@register_datalist("nifti_folder")
def nifti_folder_datalist(
    root: str | os.PathLike,
    images: str = "imagesTr",
    labels: str | None = "labelsTr",
    label_names: dict[str, str] | Sequence[str] | None = None,
    patient_regex: str | None = None,
    extensions: Sequence[str] = (".nii.gz", ".nii"),
    check_headers: bool = True,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    skip_bad: bool = False,
    name: str = "nifti_folder",
    description: str = "",
) -> dict:
    """Datalist of a folder of NIfTI images with an optional folder of label maps matched by case name.

    The case name is the file name without its extension. When every image name ends in ``_XXXX`` (4 digits, the
    nnU-Net channel convention), files sharing a case name form one item whose ``"image"`` is the list of channel
    files and whose label is ``<case>.nii.gz``. A ``dataset.json`` in ``root`` (Decathlon) provides the label names
    unless ``label_names`` is given.

    Args:
        root: the dataset folder.
        images: the images folder, relative to ``root``.
        labels: the labels folder, relative to ``root``; ``None`` for an unlabelled folder.
        label_names: segmentation label names (``{index: name}`` or a list), overriding ``dataset.json``.
        patient_regex: regular expression whose first group, searched in the case name, is the patient id
            (e.g. ``r"^(sub-\\d+)"``); default: every case is its own patient.
        extensions: image file extensions.
        check_headers: read the NIfTI headers: unreadable files and image/label spatial shape mismatches are found
            here, not during training.
        fractions: ``(training, validation, test)`` patient fractions.
        seed: seed of the split.
        skip_bad: skip (and record) bad cases instead of raising.
        name: datalist name.
        description: datalist description (default: ``dataset.json``'s when present).

    Returns:
        the datalist dict, task ``"segmentation"`` (``"unlabelled"`` without ``labels``).

    Raises:
        MissingFileError: a missing folder, a label without its image or an image without its label.
        EmptyDatasetError: no image file.
        UnreadableFileError: an unreadable NIfTI header.
        ShapeMismatchError: image and label spatial shapes differ, or channel files of one case differ.
        LayoutError: ``patient_regex`` does not match a case name.

    Example::

        datalist = build_datalist("nifti_folder", "/data/Task04_Hippocampus", seed=0)
        datalist["training"][0]  # {"image": "imagesTr/hippocampus_001.nii.gz", "label": "labelsTr/...", ...}
    """
    root = dataset_root(root)
    images_dir = root / images
    if not images_dir.is_dir():
        raise MissingFileError(f"images folder {images_dir} does not exist.", path=images_dir)
    labels_dir = None if labels is None else root / labels
    if labels_dir is not None and not labels_dir.is_dir():
        raise MissingFileError(
            f"labels folder {labels_dir} does not exist; pass labels=None for an unlabelled folder.", path=labels_dir
        )
    image_files = _list_cases(images_dir, extensions)
    if not image_files:
        raise EmptyDatasetError(f"no image with extension {list(extensions)} in {images_dir}.", path=images_dir)
    cases: dict[str, list[Path]] = defaultdict(list)
    channel_split = all(_NNUNET_CHANNEL.match(c) for c in image_files)
    for case, path in sorted(image_files.items()):
        cases[_NNUNET_CHANNEL.match(case).group(1) if channel_split else case].append(path)
    label_files = _list_cases(labels_dir, extensions) if labels_dir is not None else {}

    dataset_json = root / "dataset.json"
    meta = {}
    if dataset_json.is_file():
        try:
            meta = json.loads(dataset_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UnreadableFileError(f"{dataset_json} is not valid JSON: {e}", path=dataset_json) from e
    if label_names is None and labels_dir is not None:
        label_names = meta.get("labels") if isinstance(meta.get("labels"), dict) else None

    skipped: list[dict[str, str]] | None = [] if skip_bad else None
    for case in sorted(set(label_files) - set(cases)):
        skip_or_raise(
            MissingFileError(
                f"label {label_files[case]} has no image {case}{extensions[0]} in {images_dir}.",
                path=label_files[case],
            ),
            skipped,
        )
    items = []
    for case, paths in sorted(cases.items()):
        try:
            item: dict[str, Any] = {"image": paths if channel_split else paths[0]}
            if labels_dir is not None:
                if case not in label_files:
                    raise MissingFileError(
                        f"image {paths[0]} has no label {case}{extensions[0]} in {labels_dir}.", path=paths[0]
                    )
                item["label"] = label_files[case]
            if patient_regex is not None:
                match = re.search(patient_regex, case)
                if match is None:
                    raise LayoutError(
                        f"case name {case!r} ({paths[0]}) does not match patient_regex {patient_regex!r}.",
                        path=paths[0],
                    )
                item["patient_id"] = match.group(1) if match.groups() else match.group(0)
            else:
                item["patient_id"] = case
            if check_headers:
                shapes = [_nifti_shape(p) for p in paths]
                spatial = {s[:3] for s in shapes if s is not None}
                if len(spatial) > 1:
                    raise ShapeMismatchError(
                        f"channel files of case {case} have different spatial shapes {sorted(spatial)}.", path=paths[0]
                    )
                label_shape = _nifti_shape(item["label"]) if "label" in item else None
                if label_shape is not None and spatial and label_shape[:3] != next(iter(spatial)):
                    raise ShapeMismatchError(
                        f"label {item['label']} has spatial shape {label_shape[:3]} but image {paths[0]} has "
                        f"{next(iter(spatial))}; expected equal shapes.",
                        path=item["label"],
                    )
        except DataError as e:
            skip_or_raise(e, skipped)
            continue
        items.append(item)
    if not items:
        raise EmptyDatasetError(f"no usable case in {images_dir}.", path=images_dir)
    items = patient_split(items, fractions=fractions, seed=seed)
    task = "segmentation" if labels_dir is not None else "unlabelled"
    description = description or str(meta.get("description", "") or meta.get("name", ""))
    return make_datalist(name, root, items, task, label_names, description, skipped=skipped)


def _table_labels(
    rows: Sequence[dict[str, str]], label_column: str | Sequence[str], classes: Sequence[str] | None, source: str
) -> tuple[list[Any], dict[str, str], str]:
    """Labels of table rows: one class column (binary / multiclass) or several 0/1 columns (multilabel)."""
    if isinstance(label_column, str):
        indices, names = encode_labels(
            [r[label_column] for r in rows], classes, source=f"{source} column {label_column!r}"
        )
        return indices, names, "binary" if len(names) <= 2 else "multiclass"
    vectors = []
    for i, row in enumerate(rows):
        vector = []
        for column in label_column:
            value = row[column]
            try:
                number = float(value)
            except ValueError:
                number = None
            if number not in (0.0, 1.0):
                raise LayoutError(f"{source} column {column!r}, row {i + 2}: {value!r} is not 0 or 1.")
            vector.append(int(number))
        vectors.append(vector)
    return vectors, {str(i): c for i, c in enumerate(label_column)}, "multilabel"


@register_datalist("image_csv")
def image_csv_datalist(
    root: str | os.PathLike,
    csv: str | os.PathLike = "labels.csv",
    image_column: str = "image",
    label_column: str | Sequence[str] | None = "label",
    patient_column: str | None = None,
    split_column: str | None = None,
    image_dir: str = "",
    image_suffix: str = "",
    classes: Sequence[str] | None = None,
    check_files: bool = True,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify: bool = True,
    skip_bad: bool = False,
    name: str = "image_csv",
    description: str = "",
) -> dict:
    """Datalist of 2D images (PNG / JPEG / BMP / TIFF) listed in a CSV with their labels.

    Args:
        root: the dataset folder.
        csv: the table, relative to ``root`` or absolute.
        image_column: column of image paths, relative to ``root / image_dir``.
        label_column: a class column (integer indices or class names), a list of 0/1 columns (multi-label), or
            ``None`` (unlabelled).
        patient_column: patient id column; without it every image is its own patient (image-level split).
        split_column: optional official split column (``train`` / ``val`` / ``test`` ...); blank cells are filled by
            :func:`patient_split`.
        image_dir: folder of the images, relative to ``root``.
        image_suffix: appended to every image value (for tables that store ids without extension).
        classes: ordered class names for a class-name column (default: sorted names, or integer indices).
        check_files: check that every image exists and that its header can be read.
        fractions: ``(training, validation, test)`` patient fractions.
        seed: seed of the split.
        stratify: stratify the split on the label.
        skip_bad: skip (and record) rows whose image is missing or unreadable instead of raising.
        name: datalist name.
        description: datalist description.

    Returns:
        the datalist dict, task ``"binary"``, ``"multiclass"``, ``"multilabel"`` or ``"unlabelled"``.

    Raises:
        MissingFileError: the table or an image is missing.
        LayoutError: a missing column, a bad label, a bad split name or a file type other than a 2D image.
        UnreadableFileError: an image header cannot be read.
        EmptyDatasetError: no usable row.

    Example::

        datalist = build_datalist("image_csv", "/data/my_cxr", csv="labels.csv", label_column="diagnosis",
                                  patient_column="patient")
    """
    root = dataset_root(root)
    table = Path(csv) if Path(csv).is_absolute() else root / csv
    label_columns = [] if label_column is None else [label_column] if isinstance(label_column, str) else label_column
    required = [image_column, *label_columns] + [c for c in (patient_column, split_column) if c is not None]
    rows = read_table(table, required)
    if not rows:
        raise EmptyDatasetError(f"table {table} has no row.", path=table)
    skipped: list[dict[str, str]] | None = [] if skip_bad else None
    items, kept = [], []
    for i, row in enumerate(rows):
        try:
            if not row[image_column]:
                raise LayoutError(f"table {table}, row {i + 2}: column {image_column!r} is blank.", path=table)
            path = root / image_dir / f"{row[image_column]}{image_suffix}"
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise LayoutError(
                    f"table {table}, row {i + 2}: {path.name} is not a 2D image file; "
                    f"expected a suffix in {IMAGE_SUFFIXES}.",
                    path=path,
                )
            if check_files:
                if not path.is_file():
                    raise MissingFileError(f"image {path} (table {table}, row {i + 2}) does not exist.", path=path)
                require_package("PIL", "monai_jepa.data.image_csv_datalist", "checking PNG / JPEG files")
                try:
                    with PILImage.open(path) as im:
                        im.size
                except Exception as e:
                    raise UnreadableFileError(f"image {path} cannot be read: {type(e).__name__}: {e}", path=path) from e
        except DataError as e:
            skip_or_raise(e, skipped)
            continue
        item: dict[str, Any] = {"image": path}
        if patient_column is not None:
            item["patient_id"] = row[patient_column]
        if split_column is not None and row[split_column]:
            try:
                item["split"] = normalize_split(row[split_column])
            except LayoutError as e:
                raise LayoutError(f"table {table}, row {i + 2}, column {split_column!r}: {e}", path=table) from None
        items.append(item)
        kept.append(row)
    if not items:
        raise EmptyDatasetError(f"no usable row in {table}.", path=table)
    task, names = "unlabelled", None
    if label_column is not None:
        labels, names, task = _table_labels(kept, label_column, classes, f"table {table}")
        for item, label in zip(items, labels):
            item["label"] = label
    if patient_column is None:
        logger.info("%s: no patient column; the split is image-level.", table)
    items = patient_split(
        items, fractions=fractions, seed=seed, stratify_key="label" if stratify and label_column is not None else None
    )
    return make_datalist(name, root, items, task, names, description, skipped=skipped)
