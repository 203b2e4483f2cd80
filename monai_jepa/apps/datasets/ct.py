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
"""Datalist builders for volumetric layouts: the Medical Segmentation Decathlon and LIDC-IDRI.

``msd`` reads any Decathlon task through its ``dataset.json``. ``lidc_idri`` lists the CT series of LIDC-IDRI with
their nodules: the four radiologists' blinded-then-unblinded readings (``LidcReadMessage`` XML) are grouped into
physical nodules by centroid distance, each with its reader agreement (1-4) and mean malignancy rating (1-5).
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_jepa.data.datalist import dataset_root, make_datalist, patient_split, register_datalist, skip_or_raise
from monai_jepa.data.dicom import DICOM_SUFFIXES, read_header
from monai_jepa.data.errors import DataError, LayoutError, MissingFileError, UnreadableFileError
from monai_jepa.utils.module import require_package

__all__ = ["msd_datalist", "read_lidc_xml", "group_lidc_readings", "lidc_idri_datalist"]


def _case_name(path: str) -> str:
    name = Path(path).name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


def _clean(path: str) -> str:
    """``"./imagesTr/x.nii.gz"`` -> ``"imagesTr/x.nii.gz"``."""
    return Path(os.path.normpath(path)).as_posix()


@register_datalist("msd")
def msd_datalist(
    root: str | os.PathLike,
    dataset_json: str | os.PathLike | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    skip_bad: bool = False,
) -> dict:
    """Datalist of a Medical Segmentation Decathlon task (Antonelli et al. 2022; CC BY-SA 4.0), any of the ten.

    Layout: ``dataset.json`` with ``"training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}]``,
    ``"test": ["./imagesTs/y.nii.gz"]``, ``"labels"`` and ``"modality"``; paths are relative to ``root``. The labelled
    cases are split by case (the case name, e.g. ``hippocampus_001``, is the patient). The unlabelled official test
    images are listed under the extra key ``"unlabelled"`` (usable for self-supervised pretraining).

    Args:
        root: task folder (e.g. ``Task04_Hippocampus``).
        dataset_json: the ``dataset.json`` to use (default ``root/dataset.json``).
        fractions: train / validation / test fractions of the labelled cases.
        seed: seed of the split.
        skip_bad: record cases whose image or label file is missing under ``"skipped"`` instead of raising.

    Returns:
        a datalist (task ``"segmentation"``, labels from ``dataset.json``) with items ``{"image", "label",
        "patient_id", "split"}``, plus ``"modality"`` (``{"0": "MRI", ...}``, channel index -> name) and
        ``"unlabelled"`` (``[{"image", "patient_id"}]``).

    Example::

        datalist = build_datalist("msd", "/data/Task09_Spleen", out="spleen.json")
    """
    root = dataset_root(root)
    path = root / "dataset.json" if dataset_json is None else Path(dataset_json)
    if not path.is_file():
        raise MissingFileError(f"MSD: missing {path} (the task's dataset.json).", path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UnreadableFileError(f"MSD: cannot read {path} as JSON: {e}", path) from e
    if not isinstance(meta, dict) or not isinstance(meta.get("training"), list):
        raise LayoutError(f"MSD: {path} has no 'training' list of {{'image', 'label'}} entries.", path)
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    for i, entry in enumerate(meta["training"]):
        try:
            if not isinstance(entry, dict) or not {"image", "label"} <= set(entry):
                raise LayoutError(f"MSD: {path} training entry {i} is {entry!r}, expected {{'image', 'label'}}.", path)
            image, label = _clean(entry["image"]), _clean(entry["label"])
            for key, rel in (("image", image), ("label", label)):
                if not (root / rel).is_file():
                    raise MissingFileError(
                        f"MSD: {path} lists {key} {rel!r} but {root / rel} does not exist.", root / rel
                    )
        except DataError as e:
            skip_or_raise(e, sink)
            continue
        items.append({"image": image, "label": label, "patient_id": _case_name(image)})
    unlabelled = []
    for i, entry in enumerate(meta.get("test", [])):
        image = entry.get("image") if isinstance(entry, dict) else entry
        try:
            if not isinstance(image, str):
                raise LayoutError(f"MSD: {path} test entry {i} is {entry!r}, expected an image path.", path)
            image = _clean(image)
            if not (root / image).is_file():
                raise MissingFileError(f"MSD: {path} lists test image {image!r} but it does not exist.", root / image)
        except DataError as e:
            skip_or_raise(e, sink)
            continue
        unlabelled.append({"image": image, "patient_id": _case_name(image)})
    items = patient_split(items, fractions=fractions, seed=seed)
    name = str(meta.get("name", "msd"))
    description = f"Medical Segmentation Decathlon {name}: {meta.get('description', '')}".strip()
    datalist = make_datalist(
        "msd", root, items, "segmentation", meta.get("labels", {}), description, skipped if skip_bad else None
    )
    datalist["modality"] = {str(k): str(v) for k, v in dict(meta.get("modality", {})).items()}
    datalist["unlabelled"] = unlabelled
    return datalist


# --------------------------------------------------------------------------------------------------------- LIDC-IDRI
def _strip_namespaces(root: ET.Element) -> ET.Element:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def _text(element: ET.Element | None, tag: str) -> str:
    child = None if element is None else element.find(tag)
    return "" if child is None or child.text is None else child.text.strip()


def read_lidc_xml(path: str | os.PathLike) -> list[dict[str, Any]] | None:
    """Read the nodule readings of one LIDC-IDRI ``LidcReadMessage`` XML (namespaced or not).

    Args:
        path: the XML file of a CT series.

    Returns:
        ``None`` when the file is not a ``LidcReadMessage`` (e.g. a radiograph's ``IdriReadMessage``); else one dict
        per reader nodule: ``{"reader": reading-session index, "nodule_id", "malignancy": 1-5 or None (nodules
        < 3 mm are not rated), "centroid": [x, y, z] (x, y: mean edge-map pixel column / row over the inclusion
        ROIs; z: mean imageZposition in mm), "num_rois", "sop_uids": [...]}``.

    Example::

        readings = read_lidc_xml("LIDC-IDRI-0001/01-01-2000-30178/3000566-03192/069.xml")
        nodules = group_lidc_readings(readings, pixel_spacing=(0.703, 0.703))
    """
    path = Path(path)
    try:
        root = _strip_namespaces(ET.parse(path).getroot())
    except (ET.ParseError, OSError) as e:
        raise UnreadableFileError(f"LIDC-IDRI: cannot parse XML {path}: {e}", path) from e
    if root.tag != "LidcReadMessage":
        return None
    readings = []
    for reader, session in enumerate(root.iter("readingSession")):
        for nodule in session.iter("unblindedReadNodule"):
            malignancy = _text(nodule.find("characteristics"), "malignancy")
            xs, ys, zs, sops = [], [], [], []
            for roi in nodule.iter("roi"):
                if _text(roi, "inclusion").upper() == "FALSE":
                    continue
                try:
                    edges = [(float(_text(e, "xCoord")), float(_text(e, "yCoord"))) for e in roi.iter("edgeMap")]
                    z = float(_text(roi, "imageZposition"))
                except ValueError as e:
                    raise LayoutError(f"LIDC-IDRI: {path}: a roi has a non-numeric coordinate ({e}).", path) from e
                if edges:
                    xs += [p[0] for p in edges]
                    ys += [p[1] for p in edges]
                    zs.append(z)
                    sops.append(_text(roi, "imageSOP_UID"))
            if not zs:
                continue
            readings.append(
                {
                    "reader": reader,
                    "nodule_id": _text(nodule, "noduleID"),
                    "malignancy": int(float(malignancy)) if malignancy else None,
                    "centroid": [float(np.mean(xs)), float(np.mean(ys)), float(np.mean(zs))],
                    "num_rois": len(zs),
                    "sop_uids": sops,
                }
            )
    return readings


def group_lidc_readings(
    readings: Sequence[dict[str, Any]], pixel_spacing: Sequence[float] = (1.0, 1.0), max_distance_mm: float = 10.0
) -> list[dict[str, Any]]:
    """Group the readers' nodules of one series into physical nodules by centroid distance.

    Reader nodules are joined in order of increasing distance (single linkage) when their centroids are at most
    ``max_distance_mm`` apart and the two groups share no reader: a radiologist marks each nodule once, so a group
    holds at most one reading per reader and its size is the reader agreement (1-4).

    Args:
        readings: reader nodules from :func:`read_lidc_xml`.
        pixel_spacing: ``(row, column)`` spacing in mm of the series (DICOM PixelSpacing), to measure x / y in mm.
        max_distance_mm: largest centroid distance of two readings of one nodule.

    Returns:
        one dict per nodule, largest agreement first: ``{"centroid": [x, y, z] (pixel column, pixel row, mm),
        "num_readers", "malignancy": mean rating or None, "malignancy_scores", "at_least_3mm": True when a reader
        rated it (readers outline and rate nodules >= 3 mm only), "readers", "nodule_ids"}``.

    Example::

        nodules = group_lidc_readings(read_lidc_xml(xml_path), pixel_spacing=(0.7, 0.7), max_distance_mm=10.0)
        confident = [n for n in nodules if n["num_readers"] >= 3 and n["at_least_3mm"]]
    """
    num = len(readings)
    scale = np.array([pixel_spacing[1], pixel_spacing[0], 1.0])
    centres = np.array([r["centroid"] for r in readings], dtype=np.float64).reshape(num, 3) * scale
    parent = list(range(num))
    members = {i: {readings[i]["reader"]} for i in range(num)}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = sorted(
        (float(np.linalg.norm(centres[i] - centres[j])), i, j)
        for i in range(num)
        for j in range(i + 1, num)
        if readings[i]["reader"] != readings[j]["reader"]
    )
    for dist, i, j in pairs:
        if dist > max_distance_mm:
            break
        a, b = find(i), find(j)
        if a != b and not members[a] & members[b]:
            parent[b] = a
            members[a] |= members.pop(b)
    groups: dict[int, list[int]] = {}
    for i in range(num):
        groups.setdefault(find(i), []).append(i)
    nodules = []
    for indices in groups.values():
        scores = [readings[i]["malignancy"] for i in indices if readings[i]["malignancy"] is not None]
        nodules.append(
            {
                "centroid": np.mean([readings[i]["centroid"] for i in indices], axis=0).round(2).tolist(),
                "num_readers": len(indices),
                "malignancy": float(np.mean(scores)) if scores else None,
                "malignancy_scores": scores,
                "at_least_3mm": bool(scores),
                "readers": [readings[i]["reader"] for i in indices],
                "nodule_ids": [readings[i]["nodule_id"] for i in indices],
            }
        )
    nodules.sort(key=lambda n: (-n["num_readers"], n["centroid"][2], n["centroid"][0]))
    return nodules


def _lidc_series(root: Path) -> list[tuple[Path, list[str], list[str]]]:
    """``(folder, dicom names, xml names)`` of every folder holding DICOM files (by suffix), sorted."""
    series = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        dicoms = sorted(f for f in files if f.lower().endswith(DICOM_SUFFIXES) and not f.startswith("._"))
        if dicoms:
            series.append((Path(dirpath), dicoms, sorted(f for f in files if f.lower().endswith(".xml"))))
    return sorted(series)


@register_datalist("lidc_idri")
def lidc_idri_datalist(
    root: str | os.PathLike,
    max_distance_mm: float = 10.0,
    min_agreement: int = 3,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    skip_bad: bool = False,
) -> dict:
    """Datalist of the LIDC-IDRI chest CT series (Armato et al. 2011; TCIA, CC BY 3.0), one item per CT series.

    Layout (TCIA download): ``LIDC-IDRI-0001/<study>/<series>/*.dcm`` with the series' ``LidcReadMessage`` XML in the
    same folder. Only CT series are listed (radiograph series are ignored). Each series' reader nodules are grouped
    with :func:`group_lidc_readings`. The split groups by patient (``LIDC-IDRI-NNNN``) and is stratified by label.

    Args:
        root: the ``LIDC-IDRI`` folder.
        max_distance_mm: largest centroid distance of two readings of one nodule.
        min_agreement: readers (1-4) who must mark a nodule >= 3 mm for the series label to be 1 (3 is the LUNA16
            convention).
        fractions: train / validation / test fractions of the patients.
        seed: seed of the split.
        skip_bad: record series with an unreadable header or XML, or without XML, under ``"skipped"`` instead of
            raising.

    Returns:
        a datalist (task ``"detection"``, labels 0 no nodule / 1 nodule) with items ``{"image": series folder,
        "label": 1 if a nodule >= 3 mm has >= min_agreement readers else 0, "patient_id", "study_uid",
        "series_uid", "annotation": XML path, "num_slices", "pixel_spacing": [row, col] mm, "nodules": [...]
        (see :func:`group_lidc_readings`), "split"}``.

    Example::

        datalist = build_datalist("lidc_idri", "/data/LIDC-IDRI", min_agreement=3)
        malignant = [n for item in datalist["training"] for n in item["nodules"] if (n["malignancy"] or 0) > 3]
    """
    root = dataset_root(root)
    if not 1 <= min_agreement <= 4:
        raise ValueError(f"`min_agreement` must be in 1..4, got {min_agreement!r}.")
    if max_distance_mm <= 0:
        raise ValueError(f"`max_distance_mm` must be > 0, got {max_distance_mm!r}.")
    require_package("pydicom", "monai_jepa.apps.datasets.lidc_idri_datalist", "DICOM input")
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    for folder, dicoms, xmls in _lidc_series(root):
        rel = folder.relative_to(root)
        try:
            try:
                header = read_header(folder / dicoms[0])
            except DataError as e:
                raise UnreadableFileError(f"LIDC-IDRI: series {folder}: {e}", folder) from e
            if str(getattr(header, "Modality", "")).upper() != "CT":
                continue
            readings, xml = None, None
            for name in xmls:
                readings = read_lidc_xml(folder / name)
                if readings is not None:
                    xml = folder / name
                    break
            if xml is None or readings is None:
                raise MissingFileError(f"LIDC-IDRI: CT series {folder} has no LidcReadMessage XML.", folder)
            spacing = [float(s) for s in getattr(header, "PixelSpacing", [1.0, 1.0])]
        except DataError as e:
            skip_or_raise(e, sink)
            continue
        nodules = group_lidc_readings(readings, spacing, max_distance_mm)
        match = next((p for p in rel.parts if re.fullmatch(r"LIDC-IDRI-\d+", p)), None)
        positive = any(n["at_least_3mm"] and n["num_readers"] >= min_agreement for n in nodules)
        items.append(
            {
                "image": rel.as_posix(),
                "label": int(positive),
                "patient_id": match or str(getattr(header, "PatientID", rel.parts[0])),
                "study_uid": str(getattr(header, "StudyInstanceUID", "")),
                "series_uid": str(getattr(header, "SeriesInstanceUID", "")),
                "annotation": xml.relative_to(root).as_posix(),
                "num_slices": len(dicoms),
                "pixel_spacing": spacing,
                "nodules": nodules,
            }
        )
    items = patient_split(items, fractions=fractions, seed=seed, stratify_key="label")
    labels = {"0": "no nodule", "1": f"nodule >= 3 mm marked by >= {min_agreement} readers"}
    description = "LIDC-IDRI chest CT series with reader-grouped nodules (agreement 1-4, malignancy 1-5)"
    return make_datalist("lidc_idri", root, items, "detection", labels, description, skipped if skip_bad else None)
