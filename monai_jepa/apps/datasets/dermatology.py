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
"""Datalist builders for dermoscopy layouts: HAM10000, ISIC 2019 and ISIC 2020.

Several images often show one lesion (HAM10000, ISIC 2019) or one patient (ISIC 2020): the split groups them
(``patient_id`` holds the lesion or patient), so near-identical images never fall on both sides of a split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_jepa.data.datalist import (
    dataset_root,
    index_files,
    read_table,
    register_datalist,
    skip_or_raise,
    split_and_make_datalist,
)
from monai_jepa.data.errors import DataError, LayoutError, MissingFileError

__all__ = [
    "HAM10000_CLASSES",
    "ISIC2019_CLASSES",
    "ham10000_datalist",
    "isic2019_datalist",
    "isic2020_datalist",
]

#: HAM10000 ``dx`` codes, in label order
HAM10000_CLASSES = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}
#: ISIC 2019 ground-truth columns, in label order (UNK has no training image)
ISIC2019_CLASSES = {
    "MEL": "melanoma",
    "NV": "melanocytic nevus",
    "BCC": "basal cell carcinoma",
    "AK": "actinic keratosis",
    "BKL": "benign keratosis",
    "DF": "dermatofibroma",
    "VASC": "vascular lesion",
    "SCC": "squamous cell carcinoma",
    "UNK": "none of the others",
}
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def _find_table(root: Path, names: Sequence[str]) -> Path:
    for name in names:
        if (root / name).is_file():
            return root / name
    raise MissingFileError(f"missing table under {root}: expected one of {list(names)}.", root / names[0])


def _item(name: str, images: dict[str, str], table: Path, root: Path, label: int, group: str, **extra: Any) -> dict:
    if name not in images:
        raise MissingFileError(f"{table} lists image {name!r} but no such image file is under {root}.", root / name)
    return {"image": images[name], "label": label, "patient_id": group, **extra}


@register_datalist("ham10000")
def ham10000_datalist(
    root: str | Path, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, skip_bad: bool = False
) -> dict:
    """Datalist of HAM10000 (Tschandl et al. 2018; CC BY-NC 4.0), 7 diagnostic classes.

    Layout: ``HAM10000_metadata.csv`` (columns ``lesion_id,image_id,dx`` and ``dx_type,age,sex,localization``) and
    images ``HAM10000_images_part_1/<image_id>.jpg`` and ``HAM10000_images_part_2/<image_id>.jpg``. The split groups
    by ``lesion_id`` (``patient_id`` holds it): the images of one lesion never cross splits.

    Args:
        root: dataset folder.
        fractions: train / validation / test fractions of the lesions.
        seed: seed of the split (stratified by class).
        skip_bad: record rows whose image is missing or whose ``dx`` is unknown under ``"skipped"`` instead of raising.

    Returns:
        a datalist (task ``"classification"``, labels 0-6 in the order of :data:`HAM10000_CLASSES`) with items
        ``{"image", "label", "patient_id" (= lesion_id), "lesion_id", "dx", "split"}``.

    Example::

        datalist = build_datalist("ham10000", "/data/ham10000")
    """
    root = dataset_root(root)
    table = _find_table(root, ["HAM10000_metadata.csv", "HAM10000_metadata"])
    images = index_files(root, ["HAM10000_images_part_1", "HAM10000_images_part_2"], _IMAGE_EXTS)
    codes = list(HAM10000_CLASSES)
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    for i, row in enumerate(read_table(table, ["lesion_id", "image_id", "dx"]), start=2):
        dx, lesion = row["dx"].strip().lower(), row["lesion_id"].strip()
        try:
            if dx not in codes:
                raise LayoutError(f"{table}, row {i}: column 'dx' is {row['dx']!r}, expected one of {codes}.", table)
            items.append(
                _item(row["image_id"].strip(), images, table, root, codes.index(dx), lesion, lesion_id=lesion, dx=dx)
            )
        except DataError as e:
            skip_or_raise(e, sink)
    labels = {str(i): f"{c}: {d}" for i, (c, d) in enumerate(HAM10000_CLASSES.items())}
    return split_and_make_datalist(
        "ham10000",
        root,
        items,
        "multiclass",
        labels,
        "HAM10000 dermoscopy, 7 classes",
        skipped,
        fractions,
        seed,
        skip_bad,
    )


@register_datalist("isic2019")
def isic2019_datalist(
    root: str | Path, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, skip_bad: bool = False
) -> dict:
    """Datalist of the ISIC 2019 training set (CC BY-NC 4.0), 8 diagnostic classes (+ UNK, absent from training).

    Layout: ``ISIC_2019_Training_GroundTruth.csv`` (column ``image`` and one-hot columns ``MEL,NV,BCC,AK,BKL,DF,VASC,
    SCC,UNK``), ``ISIC_2019_Training_Metadata.csv`` (columns ``image,lesion_id``; optional) and images
    ``ISIC_2019_Training_Input/<image>.jpg``. The split groups by ``lesion_id``; images without one form their own
    group.

    Args:
        root: dataset folder.
        fractions: train / validation / test fractions of the lesions.
        seed: seed of the split (stratified by class).
        skip_bad: record rows whose image is missing or whose one-hot row is invalid under ``"skipped"``
            instead of raising.

    Returns:
        a datalist (task ``"classification"``, labels 0-8 in the order of :data:`ISIC2019_CLASSES`) with items
        ``{"image", "label", "patient_id" (= lesion_id or image), "lesion_id", "split"}``.

    Example::

        datalist = build_datalist("isic2019", "/data/isic2019")
    """
    root = dataset_root(root)
    table = _find_table(root, ["ISIC_2019_Training_GroundTruth.csv"])
    classes = list(ISIC2019_CLASSES)
    lesions: dict[str, str] = {}
    meta = root / "ISIC_2019_Training_Metadata.csv"
    if meta.is_file():
        lesions = {r["image"].strip(): r["lesion_id"].strip() for r in read_table(meta, ["image", "lesion_id"])}
    images = index_files(root, ["ISIC_2019_Training_Input"], _IMAGE_EXTS)
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    for i, row in enumerate(read_table(table, ["image", *classes]), start=2):
        name = row["image"].strip()
        try:
            try:
                hot = [float(row[c]) for c in classes]
            except ValueError:
                hot = []
            if sorted(hot) != [0.0] * (len(classes) - 1) + [1.0]:
                raise LayoutError(f"{table}, row {i}: expected exactly one 1 among columns {classes}.", table)
            lesion = lesions.get(name, "")
            items.append(_item(name, images, table, root, hot.index(1.0), lesion or name, lesion_id=lesion or None))
        except DataError as e:
            skip_or_raise(e, sink)
    labels = {str(i): f"{c}: {d}" for i, (c, d) in enumerate(ISIC2019_CLASSES.items())}
    return split_and_make_datalist(
        "isic2019",
        root,
        items,
        "multiclass",
        labels,
        "ISIC 2019 dermoscopy, 8 classes",
        skipped,
        fractions,
        seed,
        skip_bad,
    )


@register_datalist("isic2020")
def isic2020_datalist(
    root: str | Path, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, skip_bad: bool = False
) -> dict:
    """Datalist of the ISIC 2020 / SIIM-ISIC melanoma training set (CC BY-NC 4.0), benign vs malignant.

    Layout: ``train.csv`` (Kaggle) or ``ISIC_2020_Training_GroundTruth[_v2].csv`` with columns
    ``image_name,patient_id,target`` (and ``diagnosis``, ``anatom_site_general_challenge``, ...); JPEG images in
    ``jpeg/train/``, ``train/`` or ``ISIC_2020_Training_JPEG/`` (``<image_name>.jpg``). The split groups by patient.

    Args:
        root: dataset folder.
        fractions: train / validation / test fractions of the patients.
        seed: seed of the split (stratified by target).
        skip_bad: record rows whose image is missing or whose target is not 0/1 under ``"skipped"`` instead of raising.

    Returns:
        a datalist (task ``"classification"``, labels 0 benign / 1 malignant) with items ``{"image", "label",
        "patient_id", "diagnosis", "split"}``.

    Example::

        datalist = build_datalist("isic2020", "/data/siim-isic-melanoma")
    """
    root = dataset_root(root)
    names = ["train.csv", "ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv"]
    table = _find_table(root, names)
    images = index_files(root, ["jpeg/train", "train", "ISIC_2020_Training_JPEG"], _IMAGE_EXTS)
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    for i, row in enumerate(read_table(table, ["image_name", "patient_id", "target"]), start=2):
        name, target = row["image_name"].strip(), row["target"].strip()
        try:
            if target not in ("0", "1"):
                raise LayoutError(f"{table}, row {i}: column 'target' is {target!r}, expected 0 or 1.", table)
            patient = row["patient_id"].strip() or name
            items.append(_item(name, images, table, root, int(target), patient, diagnosis=row.get("diagnosis")))
        except DataError as e:
            skip_or_raise(e, sink)
    labels = {"0": "benign", "1": "malignant"}
    return split_and_make_datalist(
        "isic2020",
        root,
        items,
        "binary",
        labels,
        "ISIC 2020 melanoma, benign/malignant",
        skipped,
        fractions,
        seed,
        skip_bad,
    )
