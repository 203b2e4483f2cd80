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
"""Datalist builders for diabetic-retinopathy fundus layouts: EyePACS (Kaggle 2015), APTOS 2019, Messidor-1/-2.

Grade scales (task ``"ordinal"``):

- EyePACS, APTOS 2019 and Messidor-2 (adjudicated grades) use the International Clinical DR scale (ICDR), 0-4:
  0 no DR, 1 mild NPDR, 2 moderate NPDR, 3 severe NPDR, 4 proliferative DR (:data:`ICDR_GRADES`).
- Messidor-1 uses its own "Retinopathy grade", 0-3, counted from lesions (:data:`MESSIDOR1_GRADES`):
  0 no microaneurysm (MA) and no haemorrhage (H); 1 1-5 MA, no H; 2 6-14 MA or 1-4 H, no neovascularisation (NV);
  3 >= 15 MA or >= 5 H or NV. It does not map one-to-one onto ICDR; the two are kept apart on purpose.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.utils import look_up_option

from monai_jepa.data.datalist import (
    dataset_root,
    index_files,
    read_table,
    register_datalist,
    skip_or_raise,
    split_and_make_datalist,
)
from monai_jepa.data.errors import DataError, LayoutError, MissingFileError, UnreadableFileError

__all__ = ["ICDR_GRADES", "MESSIDOR1_GRADES", "eyepacs_datalist", "aptos2019_datalist", "messidor_datalist"]

#: International Clinical Diabetic Retinopathy severity scale
ICDR_GRADES = {
    "0": "no DR",
    "1": "mild non-proliferative DR",
    "2": "moderate non-proliferative DR",
    "3": "severe non-proliferative DR",
    "4": "proliferative DR",
}
#: Messidor-1 "Retinopathy grade" (MA: microaneurysms, H: haemorrhages, NV: neovascularisation)
MESSIDOR1_GRADES = {
    "0": "R0: no MA and no H",
    "1": "R1: 1-5 MA and no H",
    "2": "R2: 6-14 MA or 1-4 H, and no NV",
    "3": "R3: >= 15 MA or >= 5 H or NV",
}
_IMAGE_EXTS = (".jpeg", ".jpg", ".png", ".tif", ".tiff")


def _grade(value: str, table: Path, row: int, column: str, num_grades: int) -> int:
    """Parse an integer grade in ``[0, num_grades)`` (``"2"`` or ``"2.0"``) or raise a LayoutError naming the cell."""
    try:
        grade = int(float(value))
    except ValueError:
        grade = -1
    if not 0 <= grade < num_grades:
        raise LayoutError(
            f"{table}, row {row}: column {column!r} is {value!r}, expected a grade 0-{num_grades - 1}.", table
        )
    return grade


def _image_item(
    name: str, images: dict[str, str], table: Path, root: Path, label: int, patient: str, **extra: Any
) -> dict[str, Any]:
    stem = Path(name).stem if Path(name).suffix.lower() in _IMAGE_EXTS else name
    if stem not in images:
        raise MissingFileError(f"{table} lists image {name!r} but no such image file is under {root}.", root / name)
    return {"image": images[stem], "label": label, "patient_id": patient, **extra}


@register_datalist("eyepacs")
def eyepacs_datalist(
    root: str | Path,
    image_dir: str = "train",
    test_image_dir: str = "test",
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    skip_bad: bool = False,
) -> dict:
    """Datalist of the EyePACS / Kaggle 2015 Diabetic Retinopathy Detection set (ICDR grades 0-4).

    Layout: ``trainLabels.csv`` (columns ``image,level``; images ``<image_dir>/<image>.jpeg``, e.g. ``10_left``);
    when ``retinopathy_solution.csv`` (``image,level,Usage``) is present, the Kaggle test images
    (``<test_image_dir>/<image>.jpeg``) are added with the official split ``"test"``. The patient is the number
    before ``_left`` / ``_right``, so both eyes of a patient stay in one split.

    Args:
        root: dataset folder.
        image_dir: folder of the training images (all of ``root`` is searched when it does not exist).
        test_image_dir: folder of the test images.
        fractions: train / validation / test fractions of the patients of ``trainLabels.csv``.
        seed: seed of the split.
        skip_bad: record rows whose image is missing or whose grade is invalid under ``"skipped"`` instead of raising.

    Returns:
        a datalist (task ``"ordinal"``, labels :data:`ICDR_GRADES`) with items ``{"image", "label", "patient_id",
        "eye": "left" | "right", "split"}``.

    Example::

        datalist = build_datalist("eyepacs", "/data/eyepacs", out="eyepacs.json")
    """
    root = dataset_root(root)
    tables = [(root / "trainLabels.csv", image_dir, None), (root / "retinopathy_solution.csv", test_image_dir, "test")]
    if not tables[0][0].is_file():
        raise MissingFileError(f"EyePACS: missing label table {tables[0][0]}.", tables[0][0])
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    for table, folder, split in tables:
        if not table.is_file():
            continue
        images = index_files(root, [folder], _IMAGE_EXTS)
        for i, row in enumerate(read_table(table, ["image", "level"]), start=2):
            name = row["image"].strip()
            match = re.fullmatch(r"(.+)_(left|right)", name)
            try:
                grade = _grade(row["level"], table, i, "level", 5)
                patient, eye = (match.group(1), match.group(2)) if match else (name, None)
                item = _image_item(name, images, table, root, grade, patient, eye=eye)
            except DataError as e:
                skip_or_raise(e, sink)
                continue
            if split is not None:
                item["split"] = split
            items.append(item)
    return split_and_make_datalist(
        "eyepacs",
        root,
        items,
        "ordinal",
        ICDR_GRADES,
        "EyePACS DR grading (Kaggle 2015)",
        skipped,
        fractions,
        seed,
        skip_bad,
    )


@register_datalist("aptos2019")
def aptos2019_datalist(
    root: str | Path, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, skip_bad: bool = False
) -> dict:
    """Datalist of APTOS 2019 Blindness Detection (ICDR grades 0-4).

    Layout: ``train.csv`` (columns ``id_code,diagnosis``) and ``train_images/<id_code>.png``. APTOS gives no patient
    identifier, so each image is its own group (the set is known to hold near-duplicate images).

    Args:
        root: dataset folder.
        fractions: train / validation / test fractions.
        seed: seed of the split.
        skip_bad: record rows whose image is missing or whose grade is invalid under ``"skipped"`` instead of raising.

    Returns:
        a datalist (task ``"ordinal"``, labels :data:`ICDR_GRADES`) with items ``{"image", "label", "patient_id",
        "split"}``.

    Example::

        datalist = build_datalist("aptos2019", "/data/aptos2019")
    """
    root = dataset_root(root)
    table = root / "train.csv"
    if not table.is_file():
        raise MissingFileError(f"APTOS 2019: missing label table {table}.", table)
    images = index_files(root, ["train_images"], _IMAGE_EXTS)
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    for i, row in enumerate(read_table(table, ["id_code", "diagnosis"]), start=2):
        name = row["id_code"].strip()
        try:
            items.append(
                _image_item(name, images, table, root, _grade(row["diagnosis"], table, i, "diagnosis", 5), name)
            )
        except DataError as e:
            skip_or_raise(e, sink)
    return split_and_make_datalist(
        "aptos2019", root, items, "ordinal", ICDR_GRADES, "APTOS 2019 DR grading", skipped, fractions, seed, skip_bad
    )


def _pair_groups(path: Path, names: set[str]) -> dict[str, str]:
    """Map image stem -> group name from a CSV whose rows list the images of one patient (other cells ignored)."""
    groups: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in csv.reader(f):
                stems = sorted(Path(c.strip()).stem for c in row if Path(c.strip()).stem in names)
                for stem in stems:
                    groups[stem] = stems[0]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UnreadableFileError(f"Messidor: cannot read the pairs table {path}: {e}", path) from e
    return groups


@register_datalist("messidor")
def messidor_datalist(
    root: str | Path,
    version: str = "auto",
    pairs: str | Path | None = None,
    include_ungradable: bool = False,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    skip_bad: bool = False,
) -> dict:
    """Datalist of Messidor-2 (adjudicated ICDR grades 0-4) or Messidor-1 (Messidor grades 0-3).

    Layouts:

    - Messidor-2: ``messidor_data.csv`` (columns ``image_id,adjudicated_dr_grade,adjudicated_dme,
      adjudicated_gradable``, the adjudicated grades of Krause et al. 2018); images anywhere under ``root``, matched by
      file stem. Ungradable images (``adjudicated_gradable`` 0 or no grade) are left out and listed under
      ``"skipped"`` unless ``include_ungradable`` (then their label is -1).
    - Messidor-1: one or more ``Annotation_Base*.csv`` (the Excel sheets saved as CSV) with columns
      ``"Image name"``, ``"Retinopathy grade"`` and optionally ``"Risk of macular edema"``; images (``.tif``) anywhere
      under ``root``.

    Messidor gives the two eyes of an exam as separate images without a patient column: pass ``pairs``, a CSV whose
    rows list the images of one patient (e.g. the Messidor-2 exam pairs sheet saved as CSV), to keep both eyes in one
    split; otherwise each image is its own group.

    Args:
        root: dataset folder.
        version: ``"auto"`` (from the tables found), ``"2"`` or ``"1"``.
        pairs: optional CSV grouping images into patients.
        include_ungradable: keep Messidor-2's ungradable images, labelled -1.
        fractions: train / validation / test fractions.
        seed: seed of the split.
        skip_bad: record rows whose image is missing or whose grade is invalid under ``"skipped"`` instead of raising.

    Returns:
        a datalist (task ``"ordinal"``, labels :data:`ICDR_GRADES` or :data:`MESSIDOR1_GRADES`) with items
        ``{"image", "label", "patient_id", "dme", "split"}`` (``dme``: adjudicated DME 0/1 for Messidor-2, risk of
        macular oedema 0-2 for Messidor-1; None when absent).

    Example::

        datalist = build_datalist("messidor", "/data/messidor-2", pairs="/data/messidor-2/pairs.csv")
    """
    root = dataset_root(root)
    version = look_up_option(str(version), ("auto", "1", "2"))
    table2 = root / "messidor_data.csv"
    tables1 = sorted(root.rglob("Annotation_Base*.csv"))
    if version == "auto":
        version = "2" if table2.is_file() else "1" if tables1 else "none"
    if version == "none" or (version == "2" and not table2.is_file()) or (version == "1" and not tables1):
        raise MissingFileError(
            f"Messidor: no Messidor-2 'messidor_data.csv' / Messidor-1 'Annotation_Base*.csv' under {root}.",
            root,
        )
    images = index_files(root, [], _IMAGE_EXTS)
    groups = _pair_groups(Path(pairs), set(images)) if pairs is not None else {}
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    if version == "2":
        columns = ["image_id", "adjudicated_dr_grade", "adjudicated_dme", "adjudicated_gradable"]
        rows = [(table2, i, r) for i, r in enumerate(read_table(table2, columns), start=2)]
        grade_col, dme_col, num_grades, labels = "adjudicated_dr_grade", "adjudicated_dme", 5, ICDR_GRADES
    else:
        rows = []
        for table in tables1:
            try:
                table_rows = read_table(table, ["Image name", "Retinopathy grade"])
            except LayoutError:  # Excel in many locales saves CSV with ";" separators
                table_rows = read_table(table, ["Image name", "Retinopathy grade"], delimiter=";")
            rows += [(table, i, r) for i, r in enumerate(table_rows, start=2)]
        grade_col, dme_col, num_grades, labels = "Retinopathy grade", "Risk of macular edema", 4, MESSIDOR1_GRADES
    for table, i, row in rows:
        name = row["image_id" if version == "2" else "Image name"].strip()
        stem = Path(name).stem
        try:
            dme = int(float(row[dme_col])) if row.get(dme_col) else None
        except ValueError:
            dme = None
        try:
            if version == "2" and (row["adjudicated_gradable"].strip() in ("0", "0.0") or not row[grade_col].strip()):
                if not include_ungradable:
                    skipped.append({"path": name, "reason": f"{table}, row {i}: ungradable (adjudicated_gradable=0)"})
                    continue
                grade = -1
            else:
                grade = _grade(row[grade_col], table, i, grade_col, num_grades)
            items.append(_image_item(name, images, table, root, grade, groups.get(stem, stem), dme=dme))
        except DataError as e:
            skip_or_raise(e, sink)
    desc = "Messidor-2 DR grading (adjudicated ICDR grades)" if version == "2" else "Messidor-1 DR grading (R0-R3)"
    return split_and_make_datalist("messidor", root, items, "ordinal", labels, desc, skipped, fractions, seed, skip_bad)
