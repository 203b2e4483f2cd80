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
"""Chest X-ray: datalist builders for the public CXR layouts.

Builders (registered for :func:`~monai_jepa.data.datalist.build_datalist`):

* ``chestxray14``: NIH ChestX-ray14 (``images*/**/*.png``, ``Data_Entry_2017.csv``, ``train_val_list.txt``,
  ``test_list.txt``); 14 findings as a multi-label vector in :data:`CHESTXRAY14_FINDINGS` order; official test
  split, validation carved patient-level from ``train_val``.
* ``chexpert``: CheXpert (``train.csv`` / ``valid.csv``); the 14 :data:`CHEXPERT_OBSERVATIONS`; the official
  ``valid.csv`` (radiologist-consensus labels) becomes the test split, validation is carved from ``train.csv``.
* ``mimic_cxr``: MIMIC-CXR-JPG (``mimic-cxr-2.0.0-{metadata,chexpert,split}.csv[.gz]``, ``files/pXX/pID/sID/``).
* ``dicom_cxr``: any folder of DICOM radiographs, patient id from ``PatientID``, labels from an optional CSV.

CheXpert-style labels (CheXpert, MIMIC-CXR): ``1`` positive, ``0`` negative, blank (not mentioned) -> ``0``, and
``-1`` (uncertain) -> ``1`` (``uncertain_policy="ones"``), ``0`` (``"zeros"``) or kept as ``-1``
(``"ignore"``: a mask value, leave these entries out of the loss).

DICOM radiographs load with :class:`~monai_jepa.transforms.LoadCXRDicomd` (stored bits masked, Rescale Slope /
Intercept, window to [0, 1], ``MONOCHROME1`` inverted).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from monai.utils import look_up_option

from monai_jepa.data.datalist import (
    dataset_root,
    make_datalist,
    patient_split,
    read_table,
    register_datalist,
    skip_or_raise,
)
from monai_jepa.data.dicom import find_dicom_files, read_header
from monai_jepa.data.errors import (
    DataError,
    EmptyDatasetError,
    InvalidImageError,
    LayoutError,
    MissingFileError,
    UnreadableFileError,
)
from monai_jepa.data.generic import _table_labels

__all__ = [
    "CHESTXRAY14_FINDINGS",
    "CHEXPERT_OBSERVATIONS",
    "UNCERTAIN_POLICIES",
    "chestxray14_datalist",
    "chexpert_datalist",
    "mimic_cxr_datalist",
    "dicom_cxr_datalist",
]

logger = logging.getLogger(__name__)

#: the 14 ChestX-ray14 findings, in the official order of the multi-label vector.
CHESTXRAY14_FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)

#: the 14 CheXpert labeller observations (CheXpert and MIMIC-CXR-JPG column names), in table order.
CHEXPERT_OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: what an uncertain (-1) CheXpert label becomes.
UNCERTAIN_POLICIES: dict[str, int] = {"ones": 1, "zeros": 0, "ignore": -1}

_CHEXPERT_DESCRIPTION = (
    "Labels: 1 positive, 0 negative or not mentioned; uncertain (-1) mapped by uncertain_policy={policy!r} "
    "(-1 kept means: mask this entry out of the loss)."
)


def _check_fraction(val_fraction: float) -> tuple[float, float, float]:
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"`val_fraction` must be in [0, 1), got {val_fraction!r}.")
    return (1.0 - float(val_fraction), float(val_fraction), 0.0)


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise MissingFileError(f"official split list {path} does not exist (it ships with the dataset).", path=path)
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UnreadableFileError(f"split list {path} cannot be read: {e}", path=path) from e


@register_datalist("chestxray14")
def chestxray14_datalist(
    root: str | os.PathLike,
    val_fraction: float = 0.1,
    seed: int = 0,
    check_files: bool = True,
    skip_bad: bool = False,
    name: str = "chestxray14",
) -> dict:
    """Datalist of NIH ChestX-ray14 with its official patient-level test split.

    Args:
        root: folder holding ``Data_Entry_2017.csv`` (or ``Data_Entry_2017_v2020.csv``), ``train_val_list.txt``,
            ``test_list.txt`` and the ``images*/`` folders (``images/`` or ``images_001/images/`` ...).
        val_fraction: fraction of the ``train_val`` patients moved to validation.
        seed: seed of the validation split.
        check_files: require every listed image to exist under ``images*/``.
        skip_bad: skip (and record) rows with a missing image, an unknown finding or no official split.
        name: datalist name.

    Returns:
        the datalist dict, task ``"multilabel"``; items ``{"image", "label": 14 ints, "patient_id", "view",
        "split"}`` ("No Finding" is the all-zero vector).

    Raises:
        MissingFileError: a missing table, split list or image.
        LayoutError: a missing column, an unknown finding, or an image in neither split list.

    Example::

        datalist = build_datalist("chestxray14", "/data/ChestXray-NIHCC", out="cxr14.json")
    """
    fractions = _check_fraction(val_fraction)
    root = dataset_root(root)
    tables = [root / "Data_Entry_2017.csv", root / "Data_Entry_2017_v2020.csv"]
    table = next((t for t in tables if t.is_file()), None)
    if table is None:
        raise MissingFileError(f"ChestX-ray14 table not found: expected {tables[0]} (or {tables[1].name}).", path=root)
    rows = read_table(table, ["Image Index", "Finding Labels", "Patient ID"])
    official = {image: None for image in _read_list(root / "train_val_list.txt")}
    official.update({image: "test" for image in _read_list(root / "test_list.txt")})
    files = {p.name: p for p in root.glob("images*/**/*.png")}
    index = {finding: k for k, finding in enumerate(CHESTXRAY14_FINDINGS)}
    skipped: list[dict[str, str]] | None = [] if skip_bad else None
    items = []
    for i, row in enumerate(rows):
        image = row["Image Index"]
        try:
            label = [0] * len(CHESTXRAY14_FINDINGS)
            for finding in row["Finding Labels"].split("|"):
                finding = finding.strip()
                if finding == "No Finding":
                    continue
                if finding not in index:
                    raise LayoutError(
                        f"{table}, row {i + 2} ({image}): unknown finding {finding!r}; expected 'No Finding' or "
                        f"one of {list(CHESTXRAY14_FINDINGS)}.",
                        path=table,
                    )
                label[index[finding]] = 1
            if image not in official:
                raise LayoutError(
                    f"{image} ({table}, row {i + 2}) is in neither train_val_list.txt nor test_list.txt.", path=image
                )
            path = files.get(image)
            if path is None:
                if check_files:
                    raise MissingFileError(f"image {image} (listed in {table}) not found under {root}/images*/.", image)
                path = root / "images" / image
        except DataError as e:
            skip_or_raise(e, skipped)
            continue
        item = {"image": path, "label": label, "patient_id": row["Patient ID"], "split": official[image]}
        if "View Position" in row:
            item["view"] = row["View Position"]
        items.append(item)
    if not items:
        raise EmptyDatasetError(f"no usable ChestX-ray14 image under {root}.", path=root)
    items = patient_split(items, fractions=fractions, seed=seed)
    description = "NIH ChestX-ray14 (Wang et al., CVPR 2017); 14 findings, official test split."
    return make_datalist(name, root, items, "multilabel", CHESTXRAY14_FINDINGS, description, skipped=skipped)


def _chexpert_labels(row: Mapping[str, str], policy: int, source: str) -> list[int]:
    """The 14 observations of a CheXpert-style table row as ints (blank -> 0, -1 -> ``policy``)."""
    vector = []
    for column in CHEXPERT_OBSERVATIONS:
        value = row[column]
        number = 0.0 if value == "" else _float_or_none(value)
        if number not in (1.0, 0.0, -1.0):
            raise LayoutError(f"{source}, column {column!r}: {value!r} is not 1, 0, -1 or blank.")
        vector.append(policy if number == -1.0 else int(number))
    return vector


def _float_or_none(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _chexpert_dir(root: Path) -> Path:
    if (root / "train.csv").is_file():
        return root
    candidates = sorted(p.parent for p in root.glob("*/train.csv"))
    if not candidates:
        raise MissingFileError(f"CheXpert table {root / 'train.csv'} (or */train.csv) does not exist.", path=root)
    if len(candidates) > 1:
        raise LayoutError(f"several CheXpert folders under {root}: {[str(c) for c in candidates]}; pick one.", root)
    return candidates[0]


@register_datalist("chexpert")
def chexpert_datalist(
    root: str | os.PathLike,
    uncertain_policy: str = "ones",
    frontal_only: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    check_files: bool = True,
    skip_bad: bool = False,
    name: str = "chexpert",
) -> dict:
    """Datalist of CheXpert (``CheXpert-v1.0`` or ``-small``).

    ``valid.csv`` (200 studies, radiologist-consensus labels) is the test split; validation is carved
    patient-level from ``train.csv``. Image paths in the tables (``CheXpert-v1.0-small/train/patient00001/study1/
    view1_frontal.jpg``) are stored relative to the CheXpert folder.

    Args:
        root: the CheXpert folder (holding ``train.csv``, ``valid.csv``, ``train/``, ``valid/``) or its parent.
        uncertain_policy: ``"ones"``, ``"zeros"`` or ``"ignore"`` (keep ``-1`` as a mask value).
        frontal_only: keep frontal views only (``Frontal/Lateral`` column, else ``frontal`` in the file name).
        val_fraction: fraction of the ``train.csv`` patients moved to validation.
        seed: seed of the validation split.
        check_files: require every listed image to exist.
        skip_bad: skip (and record) rows with a missing image or a bad label instead of raising.
        name: datalist name.

    Returns:
        the datalist dict, task ``"multilabel"``; items ``{"image", "label": 14 ints, "patient_id", "study",
        "view", "split"}``.

    Raises:
        MissingFileError: a missing table or image.
        LayoutError: a missing column, a label other than 1 / 0 / -1 / blank, a path without ``patientNNNNN``.

    Example::

        datalist = build_datalist("chexpert", "/data/CheXpert-v1.0-small", uncertain_policy="zeros", frontal_only=True)
    """
    policy = look_up_option(uncertain_policy, UNCERTAIN_POLICIES)
    fractions = _check_fraction(val_fraction)
    folder = _chexpert_dir(dataset_root(root))
    skipped: list[dict[str, str]] | None = [] if skip_bad else None
    items = []
    for table_name, split in (("train.csv", None), ("valid.csv", "test")):
        table = folder / table_name
        rows = read_table(table, ["Path", *CHEXPERT_OBSERVATIONS])
        for i, row in enumerate(rows):
            try:
                parts = PurePosixPath(row["Path"].replace("\\", "/")).parts
                if len(parts) > 1 and parts[0] == folder.name:
                    parts = parts[1:]
                relative = PurePosixPath(*parts)
                patient = re.search(r"(patient\d+)", str(relative))
                study = re.search(r"(study\d+)", str(relative))
                if patient is None:
                    raise LayoutError(f"{table}, row {i + 2}: Path {row['Path']!r} has no 'patientNNNNN' part.", table)
                view = row.get("Frontal/Lateral") or ("Frontal" if "frontal" in relative.name.lower() else "Lateral")
                if frontal_only and view != "Frontal":
                    continue
                label = _chexpert_labels(row, policy, f"{table}, row {i + 2}")
                path = folder / relative
                if check_files and not path.is_file():
                    raise MissingFileError(f"image {path} ({table}, row {i + 2}) does not exist.", path=path)
            except DataError as e:
                skip_or_raise(e, skipped)
                continue
            item = {"image": path, "label": label, "patient_id": patient.group(1), "view": view, "split": split}
            item["study"] = f"{patient.group(1)}/{study.group(1)}" if study else patient.group(1)
            items.append(item)
    if not items:
        raise EmptyDatasetError(f"no usable CheXpert image in {folder}.", path=folder)
    items = patient_split(items, fractions=fractions, seed=seed)
    description = "CheXpert (Irvin et al., AAAI 2019); official valid.csv as test. " + _CHEXPERT_DESCRIPTION.format(
        policy=uncertain_policy
    )
    return make_datalist(name, folder, items, "multilabel", CHEXPERT_OBSERVATIONS, description, skipped=skipped)


def _mimic_table(root: Path, base: str) -> Path:
    for suffix in (".csv", ".csv.gz"):
        if (root / f"{base}{suffix}").is_file():
            return root / f"{base}{suffix}"
    raise MissingFileError(f"MIMIC-CXR-JPG table {root / base}.csv(.gz) does not exist.", path=root / f"{base}.csv")


@register_datalist("mimic_cxr")
def mimic_cxr_datalist(
    root: str | os.PathLike,
    uncertain_policy: str = "ones",
    frontal_only: bool = False,
    labelled_only: bool = True,
    check_files: bool = True,
    skip_bad: bool = False,
    name: str = "mimic_cxr",
) -> dict:
    """Datalist of MIMIC-CXR-JPG with its official (subject-level) split.

    Args:
        root: folder holding ``mimic-cxr-2.0.0-metadata.csv``, ``-chexpert.csv``, ``-split.csv`` (each may be
            ``.csv.gz``) and ``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg``.
        uncertain_policy: ``"ones"``, ``"zeros"`` or ``"ignore"`` (keep ``-1`` as a mask value).
        frontal_only: keep ``ViewPosition`` PA and AP only.
        labelled_only: drop images whose study has no row in the CheXpert table; when ``False`` they are kept
            with all 14 labels ``-1`` (unknown: mask them out of any supervised loss).
        check_files: require every image to exist.
        skip_bad: skip (and record) images with a missing file or metadata row, or a bad label.
        name: datalist name.

    Returns:
        the datalist dict, task ``"multilabel"``; items ``{"image", "label": 14 ints, "patient_id"
        (subject_id), "study_id", "dicom_id", "view", "split"}``.

    Raises:
        MissingFileError: a missing table or image.
        LayoutError: a missing column, an unknown split, a label other than 1 / 0 / -1 / blank, a dicom_id of the
            split table without a metadata row.

    Example::

        datalist = build_datalist("mimic_cxr", "/data/mimic-cxr-jpg/2.0.0", frontal_only=True)
    """
    policy = look_up_option(uncertain_policy, UNCERTAIN_POLICIES)
    root = dataset_root(root)
    meta_table = _mimic_table(root, "mimic-cxr-2.0.0-metadata")
    label_table = _mimic_table(root, "mimic-cxr-2.0.0-chexpert")
    split_table = _mimic_table(root, "mimic-cxr-2.0.0-split")
    meta = {r["dicom_id"]: r for r in read_table(meta_table, ["dicom_id", "subject_id", "study_id", "ViewPosition"])}
    labels = {
        (r["subject_id"], r["study_id"]): r
        for r in read_table(label_table, ["subject_id", "study_id", *CHEXPERT_OBSERVATIONS])
    }
    skipped: list[dict[str, str]] | None = [] if skip_bad else None
    items, unlabelled = [], 0
    for i, row in enumerate(read_table(split_table, ["dicom_id", "study_id", "subject_id", "split"])):
        dicom_id, subject, study = row["dicom_id"], row["subject_id"], row["study_id"]
        try:
            if dicom_id not in meta:
                raise LayoutError(
                    f"{split_table}, row {i + 2}: dicom_id {dicom_id} has no row in {meta_table}.", dicom_id
                )
            view = meta[dicom_id]["ViewPosition"]
            if frontal_only and view not in ("PA", "AP"):
                continue
            label_row = labels.get((subject, study))
            if label_row is None:
                unlabelled += 1
                if labelled_only:
                    continue
                label = [-1] * len(CHEXPERT_OBSERVATIONS)
            else:
                label = _chexpert_labels(label_row, policy, f"{label_table}, study {study}")
            path = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg"
            if check_files and not path.is_file():
                raise MissingFileError(f"image {path} ({split_table}, row {i + 2}) does not exist.", path=path)
        except DataError as e:
            skip_or_raise(e, skipped)
            continue
        items.append(
            {
                "image": path,
                "label": label,
                "patient_id": subject,
                "study_id": study,
                "dicom_id": dicom_id,
                "view": view,
                "split": row["split"],
            }
        )
    if unlabelled:
        logger.info(
            "%s: %d image(s) of studies without CheXpert labels %s.",
            root,
            unlabelled,
            "dropped" if labelled_only else "kept with labels -1",
        )
    if not items:
        raise EmptyDatasetError(f"no usable MIMIC-CXR-JPG image under {root}.", path=root)
    items = patient_split(items)  # normalises the official split names; every item already has one
    description = "MIMIC-CXR-JPG 2.0.0 (Johnson et al., 2019); official split. " + _CHEXPERT_DESCRIPTION.format(
        policy=uncertain_policy
    )
    return make_datalist(name, root, items, "multilabel", CHEXPERT_OBSERVATIONS, description, skipped=skipped)


@register_datalist("dicom_cxr")
def dicom_cxr_datalist(
    root: str | os.PathLike,
    labels_csv: str | os.PathLike | None = None,
    image_column: str = "image",
    label_column: str | Sequence[str] = "label",
    classes: Sequence[str] | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    stratify: bool = True,
    skip_bad: bool = False,
    name: str = "dicom_cxr",
    description: str = "",
    phi_ids: bool = False,
) -> dict:
    """Datalist of a folder of DICOM radiographs (searched recursively), split by ``PatientID``.

    Items hold no header value unless ``phi_ids``: patients are ``patient_001``, ``patient_002``, ... (in Patient ID
    order) and images ``patient_001_image_001``, ... (in file order), since ids reach logs, TensorBoard, embedding
    tables and reports; the study and series UIDs are left out.

    Args:
        root: the folder.
        labels_csv: optional table (relative to ``root`` or absolute) whose ``image_column`` holds each file's
            path relative to ``root`` (or its file name) and whose ``label_column`` holds a class (index or name),
            or several 0/1 columns (multi-label). Without it the datalist is unlabelled.
        image_column: image column of ``labels_csv``.
        label_column: label column(s) of ``labels_csv``.
        classes: ordered class names for a class-name column.
        fractions: ``(training, validation, test)`` patient fractions.
        seed: seed of the split.
        stratify: stratify the split on the label.
        skip_bad: skip (and record) unreadable or non-radiograph files and unmatched rows instead of raising.
        name: datalist name.
        description: datalist description.
        phi_ids: keep the Patient ID as ``patient_id``, the file path as the id and the ``study_uid`` /
            ``series_uid`` of each item, as read from the headers.

    Returns:
        the datalist dict; items ``{"image", "id", "patient_id", "modality", "view", "split"}`` (+ ``"label"``; with
        ``phi_ids`` ``"study_uid"`` and ``"series_uid"`` instead of ``"id"``).

    Raises:
        EmptyDatasetError: no DICOM file.
        UnreadableFileError: an unreadable header.
        InvalidImageError: a file that is not a single-frame grayscale image.
        LayoutError: an empty ``PatientID``, a file without a row in ``labels_csv``, a bad label.
        MissingFileError: a ``labels_csv`` row without its file.

    Example::

        datalist = build_datalist("dicom_cxr", "/data/site_a_cxr", labels_csv="labels.csv", label_column="finding")
    """
    root = dataset_root(root)
    files = find_dicom_files(root)
    if not files:
        raise EmptyDatasetError(f"no DICOM file found under {root}.", path=root)
    skipped: list[dict[str, str]] | None = [] if skip_bad else None
    items = []
    for path in files:
        try:
            header = read_header(path)
            if "Rows" not in header or int(header.get("NumberOfFrames", 1) or 1) > 1:
                raise InvalidImageError(f"DICOM file {path} is not a single-frame image.", path=path)
            if int(header.get("SamplesPerPixel", 1) or 1) != 1:
                raise InvalidImageError(
                    f"DICOM file {path} has {header.SamplesPerPixel} samples per pixel; expected a grayscale "
                    "radiograph (1).",
                    path=path,
                )
            patient = str(header.get("PatientID", "") or "").strip()
            if not patient:
                raise LayoutError(f"DICOM file {path} has an empty PatientID; a patient-level split needs one.", path)
        except DataError as e:
            skip_or_raise(e, skipped)
            continue
        items.append(
            {
                "image": path,
                "patient_id": patient,
                "study_uid": str(header.get("StudyInstanceUID", "") or ""),
                "series_uid": str(header.get("SeriesInstanceUID", "") or ""),
                "modality": str(header.get("Modality", "") or ""),
                "view": str(header.get("ViewPosition", "") or ""),
            }
        )
    task, names = "unlabelled", None
    if labels_csv is not None:
        items, task, names = _attach_labels(root, items, labels_csv, image_column, label_column, classes, skipped)
    if not items:
        raise EmptyDatasetError(f"no usable DICOM radiograph under {root}.", path=root)
    if not phi_ids:
        pseudonyms = {p: f"patient_{i + 1:03d}" for i, p in enumerate(sorted({it["patient_id"] for it in items}))}
        counts: dict[str, int] = {}
        for it in items:
            patient = pseudonyms[it.pop("patient_id")]
            counts[patient] = counts.get(patient, 0) + 1
            del it["study_uid"], it["series_uid"]
            it.update(id=f"{patient}_image_{counts[patient]:03d}", patient_id=patient)
    stratify_key = "label" if stratify and labels_csv is not None else None
    items = patient_split(items, fractions=fractions, seed=seed, stratify_key=stratify_key)
    return make_datalist(name, root, items, task, names, description, skipped=skipped)


def _attach_labels(
    root: Path,
    items: list[dict[str, Any]],
    labels_csv: str | os.PathLike,
    image_column: str,
    label_column: str | Sequence[str],
    classes: Sequence[str] | None,
    skipped: list[dict[str, str]] | None,
) -> tuple[list[dict[str, Any]], str, dict[str, str]]:
    """Match table rows to items by relative path (or unique file name) and add their labels."""
    table = Path(labels_csv) if Path(labels_csv).is_absolute() else root / labels_csv
    columns = [label_column] if isinstance(label_column, str) else list(label_column)
    rows = read_table(table, [image_column, *columns])
    by_key: dict[str, int] = {}
    names = [Path(item["image"]).name for item in items]
    for k, item in enumerate(items):
        by_key[Path(item["image"]).relative_to(root).as_posix()] = k
        if names.count(names[k]) == 1:
            by_key.setdefault(names[k], k)
    matched: dict[int, dict[str, str]] = {}
    for i, row in enumerate(rows):
        k = by_key.get(row[image_column].replace("\\", "/"))
        if k is None:
            skip_or_raise(
                MissingFileError(f"{table}, row {i + 2}: no DICOM file {row[image_column]!r} under {root}.", table),
                skipped,
            )
            continue
        matched[k] = row
    for k, item in enumerate(items):
        if k not in matched:
            skip_or_raise(LayoutError(f"DICOM file {item['image']} has no row in {table}.", item["image"]), skipped)
    keep = sorted(matched)
    labels, label_names, task = _table_labels([matched[k] for k in keep], label_column, classes, f"table {table}")
    labelled = [{**items[k], "label": label} for k, label in zip(keep, labels)]
    return labelled, task, label_names
