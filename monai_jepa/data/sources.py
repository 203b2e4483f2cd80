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
"""The source resolver: from "a path the user gave" to a MONAI dataset of preprocessed 2D images or 3D volumes.

:func:`resolve_source` is the one entry point (``spatial_dims`` 2 or 3); :func:`resolve_image_source` (2D) and
:func:`resolve_volume_source` (3D) are its two forms, and :func:`detect_source_kind` /
:func:`detect_volume_source_kind` the two forms of :func:`detect_kind`. What every dimensionality shares is written
once here: the layout detection (a missing or empty path is demo data, a lone ``.npz`` file is MedMNIST, then the
rules of the dimensionality, see :data:`SOURCE_KINDS` / :data:`VOLUME_SOURCE_KINDS`), the loud warning about synthetic
data, MedMNIST files, the split names, caching and the info dict.

* 2D (:func:`resolve_image_source`): a MedMNIST ``.npz`` file (or a folder holding one), a chest X-ray layout
  (ChestX-ray14, CheXpert, MIMIC-CXR-JPG, a DICOM tree), a plain folder of PNG / JPEG images (with an optional
  ``labels.csv``), or a missing / empty path, for which seeded synthetic images are generated. Items are
  ``{"image": (C, *image_size) float32 tensor in [0, 1], "label": ..., "id": str}``.
* 3D (:func:`resolve_volume_source`, :func:`volume_datalist`): a BraTS 2021 / 2023 folder, a Medical Segmentation
  Decathlon task folder (``dataset.json``), a MedMNIST 3D ``.npz`` file, a tree of DICOM series, a folder of NIfTI
  images (with optional label maps), or a missing / empty path, for which synthetic BraTS-style cases are written. The
  layout becomes a datalist (the :func:`~monai_jepa.data.build_datalist` format), then items ``{"image":
  (C, *spatial_size) float32, "label": (1, *spatial_size) int64 label map or an int class index, "id": str}``, loaded
  by :class:`~monai_jepa.transforms.LoadVolumed` (several files or DICOM series of a case become channels), oriented to
  RAS, optionally resampled, normalised, cropped to the foreground and padded / cropped to ``spatial_size``.

Files are read lazily by the preprocessing (:func:`image_preprocessing`, :func:`volume_preprocessing`), optionally
through a ``CacheDataset``, so large folders need no up-front conversion. A new dimensionality (2D+t cine) adds its
kinds and layout rules to ``_RULES`` and its items next to the 2D and 3D ones; the shared parts stay as they are.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from monai.data import Dataset
from monai.transforms import Compose
from monai.utils import ensure_tuple_rep, look_up_option

from monai_jepa.transforms.io import LoadCXRDicomd
from monai_jepa.transforms.presets import image_preprocessing, volume_preprocessing
from monai_jepa.utils.dist import get_rank, is_dist
from monai_jepa.utils.flags import as_bool
from monai_jepa.utils.module import require_package

from .cache import FailSafeCacheDataset
from .datalist import build_datalist, make_datalist, normalize_split, write_datalist
from .demo import make_demo_images
from .demo3d import make_demo_brats
from .dicom import is_dicom_file, load_dicom
from .errors import EmptyDatasetError, LayoutError, MissingFileError
from .io import _suffix, check_datalist, is_nifti, load_checked

__all__ = [
    "SOURCE_KINDS",
    "VOLUME_SOURCE_KINDS",
    "ImageSource",
    "VolumeSource",
    "detect_kind",
    "detect_source_kind",
    "detect_volume_source_kind",
    "folder_channels",
    "image_source_info",
    "image_preprocessing",
    "volume_preprocessing",
    "volume_datalist",
    "resolve_source",
    "resolve_image_source",
    "resolve_volume_source",
    "volume_intensity",
]

logger = logging.getLogger(__name__)

SOURCE_KINDS = ("medmnist", "chestxray14", "chexpert", "mimic_cxr", "dicom_cxr", "folder", "demo")
"""The 2D source kinds :func:`detect_source_kind` recognises (``"auto"`` asks it to choose)."""
VOLUME_SOURCE_KINDS = ("brats", "msd", "medmnist", "dicom_series", "nifti_folder", "datalist", "demo")
"""The 3D source kinds :func:`detect_volume_source_kind` recognises (``"auto"`` asks it to choose)."""

_MEDMNIST_SPLITS = {"training": "train", "validation": "val", "test": "test"}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_IMAGE_DIRS = ("imagesTr", "images")
_LABEL_DIRS = ("labelsTr", "labels")
_BRATS_CASE = re.compile(r"BraTS(2021|20)_(Training_|Validation_)?\d+|BraTS-[A-Z]+-\d{5}-\d{3}")
_INTENSITY = ("auto", "mri", "ct", "none")
_MASK_PATTERN = r"mask|seg"
_MAX_LABEL_SCAN = 16
# share of the 2D demo set generated for each split (of ``demo_num_images``) and the offset added to the seed
_DEMO_SPLITS = {"training": (1.0, 0), "validation": (0.25, 1), "test": (0.5, 2)}


class ImageSource(NamedTuple):
    """What :func:`resolve_image_source` returns: the dataset and a description of it.

    Attributes:
        dataset: MONAI ``Dataset`` (or ``CacheDataset``) of ``{"image": (C, *spatial) float32, "label", "id"}``.
        info: ``{"source": kind, "name": dataset name (file stem, folder or datalist name, or "demo"),
            "is_synthetic": bool, "task": "binary" | "multiclass" | "ordinal" | "multilabel" | "unlabelled",
            "num_classes": int, "labels": list of class names, "in_channels": int, "image_size": tuple, "split": str,
            "num_items": int, "dataset_dir": str or None}``.
    """

    dataset: Dataset
    info: dict[str, Any]


class VolumeSource(NamedTuple):
    """What :func:`resolve_volume_source` returns: the dataset and a description of it.

    Attributes:
        dataset: MONAI ``Dataset`` (or ``CacheDataset``) of ``{"image": (C, *spatial_size) float32, "label", "id"}``.
        info: ``{"source": kind, "name": dataset name, "is_synthetic": bool, "task": "segmentation" | "binary" |
            "multiclass" | "unlabelled", "num_classes": int (segmentation: label values including background),
            "labels": list of class names, "label_values": stored label values (segmentation only), "in_channels":
            int, "spatial_size": tuple, "spacing": tuple or None, "split": str, "num_items": int, "dataset_dir": str
            or None, "data_root": the folder (or file) actually read}``.
    """

    dataset: Dataset
    info: dict[str, Any]


# ------------------------------------------------------------------------------------------------- shared parts


def _visible(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if not p.name.startswith(".")]


def _any_file(root: Path, accept: Callable[[Path], bool]) -> bool:
    """Whether a visible file under ``root`` (recursively, hidden folders skipped) is accepted."""
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(accept(Path(dirpath, f)) for f in files if not f.startswith(".")):
            return True
    return False


def _csv_columns(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def _msd_json(root: Path) -> bool:
    path = root / "dataset.json"
    if not path.is_file():
        return False
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("training"), list) and bool(meta["training"])


def _brats_cases(root: Path) -> bool:
    for sub in _visible(root):
        if sub.is_dir() and (_BRATS_CASE.fullmatch(sub.name) or any(
            c.is_dir() and _BRATS_CASE.fullmatch(c.name) for c in _visible(sub)
        )):  # fmt: skip
            return True
    return False


_MIMIC_TABLES = {"mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz"}


def _nifti_layout(path: Path, names: set) -> bool:
    """NIfTI files in ``imagesTr/``, ``images/`` or the folder itself."""
    if any((path / d).is_dir() and _any_file(path / d, is_nifti) for d in _IMAGE_DIRS):
        return True
    return any(is_nifti(n) and (path / n).is_file() for n in names)


# the layout rules after the shared ones, in order: (kind, test of the folder and of the names in it)
_RULES: dict[int, tuple[tuple[str, Callable[[Path, set], bool]], ...]] = {
    2: (
        ("chestxray14", lambda path, names: "Data_Entry_2017.csv" in names),
        ("chexpert", lambda path, names: "train.csv" in names and "Path" in _csv_columns(path / "train.csv")),
        ("mimic_cxr", lambda path, names: bool(_MIMIC_TABLES & names)),
        ("dicom_cxr", lambda path, names: _any_file(path, is_dicom_file)),
        ("folder", lambda path, names: _any_file(path, lambda f: f.suffix.lower() in _IMAGE_SUFFIXES)),
    ),
    3: (
        ("msd", lambda path, names: _msd_json(path)),
        ("brats", lambda path, names: _brats_cases(path)),
        ("nifti_folder", _nifti_layout),
        ("dicom_series", lambda path, names: _any_file(path, is_dicom_file)),
    ),
}
_EXPECTED = {
    2: "a MedMNIST .npz file, a ChestX-ray14 folder (Data_Entry_2017.csv), a CheXpert folder (train.csv with a 'Path' "
    "column), a MIMIC-CXR-JPG folder (mimic-cxr-2.0.0-metadata.csv), a tree of DICOM files, or a folder of PNG / "
    "JPEG images",
    3: "a BraTS 2021 / 2023 folder (case folders such as BraTS2021_00000/), a Decathlon task folder with dataset.json, "
    "a MedMNIST 3D .npz file, a folder of NIfTI files (optionally imagesTr/ + labelsTr/), a tree of DICOM series, or "
    "a datalist .json file",
}


def detect_kind(dataset_dir: str | os.PathLike | None, spatial_dims: int = 2) -> str:
    """Recognise the layout of ``dataset_dir`` for 2D images or 3D volumes.

    Shared rules first: None, a missing path or an empty folder (hidden entries ignored) -> ``"demo"``; a ``.npz``
    file, or a folder whose only entry is one ``.npz`` file -> ``"medmnist"``. Then, for 2D, in order:
    ``Data_Entry_2017.csv`` -> ``"chestxray14"``; ``train.csv`` with a ``Path`` column -> ``"chexpert"``;
    ``mimic-cxr-2.0.0-metadata.csv`` (or ``.csv.gz``) -> ``"mimic_cxr"``; a DICOM file in the tree -> ``"dicom_cxr"``;
    a PNG / JPEG in the tree -> ``"folder"``. For 3D: a ``dataset.json`` with a non-empty ``"training"`` list ->
    ``"msd"``; BraTS case folders (``BraTS2021_00000``, ``BraTS-GLI-00000-000``) at most two levels down ->
    ``"brats"``; NIfTI files in ``imagesTr/``, ``images/`` or the folder itself -> ``"nifti_folder"``; a DICOM file in
    the tree -> ``"dicom_series"``; a ``.json`` file (3D only) -> ``"datalist"``. Finally a folder with exactly one
    ``.npz`` among other files -> ``"medmnist"``. DICOM files are recognised by
    :func:`~monai_jepa.data.dicom.is_dicom_file`.

    Args:
        dataset_dir: the path given by the user.
        spatial_dims: 2 (kinds :data:`SOURCE_KINDS`) or 3 (kinds :data:`VOLUME_SOURCE_KINDS`).

    Returns:
        the kind.

    Raises:
        LayoutError: a file that is not ``.npz``, or a non-empty folder matching no rule.

    Example::

        detect_kind("../shared/data/msd_task04_hippocampus", spatial_dims=3)  # 'nifti_folder' (no dataset.json)
    """
    if spatial_dims not in _RULES:
        raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims!r}.")
    if dataset_dir is None or str(dataset_dir) == "":
        return "demo"
    path = Path(dataset_dir)
    if not path.exists():
        return "demo"
    three_d = " 3D" if spatial_dims == 3 else ""
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "medmnist"
        if spatial_dims == 3 and path.suffix.lower() == ".json":
            return "datalist"
        json_file = " or a datalist .json file" if spatial_dims == 3 else ""
        raise LayoutError(f"`dataset_dir` '{path}' is a file but not a MedMNIST{three_d} .npz file{json_file}.", path)
    entries = _visible(path)
    if not entries:
        return "demo"
    npz = [p for p in entries if p.is_file() and p.suffix.lower() == ".npz"]
    if len(npz) == 1 and len(entries) == 1:
        return "medmnist"
    names = {p.name for p in entries}
    for kind, rule in _RULES[spatial_dims]:
        if rule(path, names):
            return kind
    if len(npz) == 1:
        return "medmnist"
    raise LayoutError(
        f"`dataset_dir` '{path}' matches no supported{three_d} layout: expected {_EXPECTED[spatial_dims]}.", path
    )


def detect_source_kind(dataset_dir: str | os.PathLike | None) -> str:
    """The 2D form of :func:`detect_kind`: one of :data:`SOURCE_KINDS`."""
    return detect_kind(dataset_dir, spatial_dims=2)


def detect_volume_source_kind(dataset_dir: str | os.PathLike | None) -> str:
    """The 3D form of :func:`detect_kind`: one of :data:`VOLUME_SOURCE_KINDS`.

    Example::

        detect_volume_source_kind("../shared/data/msd_task04_hippocampus")  # 'nifti_folder' (no dataset.json)
    """
    return detect_kind(dataset_dir, spatial_dims=3)


def _warn_synthetic(dataset_dir: Any, what: str, subject: str, layouts: str, bundle: str) -> None:
    bar = "=" * 100
    logger.warning(
        f"\n{bar}\n"
        f"  NO REAL DATA: `dataset_dir` '{dataset_dir}' does not exist or is empty.\n"
        f"  Using {what}.\n"
        f"  Results on these {subject}; they only show that the pipeline runs.\n"
        f"  To use real data, point `dataset_dir` at {layouts}, e.g.\n"
        f"      python -m monai.bundle run training --config_file bundles/{bundle}/configs/train.json "
        "--dataset_dir /path/to/data\n"
        f"{bar}"
    )


def _medmnist_file(path: Path) -> Path:
    """The MedMNIST file: ``path`` itself, or the one ``.npz`` file in the folder ``path``."""
    if not path.is_dir():
        return path
    found = sorted(p for p in _visible(path) if p.is_file() and p.suffix.lower() == ".npz")
    if len(found) != 1:
        raise LayoutError(f"MedMNIST: expected one .npz file in {path}, found {[p.name for p in found]}.", path)
    return found[0]


def _normalize_task(task: str) -> str:
    """MedMNIST / datalist task names -> the evaluation vocabulary (binary, multiclass, ordinal, multilabel)."""
    t = task.lower().replace("_", "-")
    if t.startswith("multi-label") or t == "multilabel":
        return "multilabel"
    if t.startswith("ordinal"):
        return "ordinal"
    if t.startswith("binary"):
        return "binary"
    if t.startswith("multi-class") or t == "multiclass":
        return "multiclass"
    return t


def _cache_rate(cache: bool | float, max_items: int | None) -> float:
    if max_items is not None and int(max_items) < 1:
        raise ValueError(f"`max_items` must be None or >= 1, got {max_items!r}.")
    if isinstance(cache, (bool, str)):
        try:
            return 1.0 if as_bool(cache, "cache") else 0.0
        except ValueError:
            pass
    try:
        if 0.0 <= float(cache) <= 1.0:
            return float(cache)
    except (TypeError, ValueError):
        pass
    raise ValueError(f"`cache` must be true, false or a cache rate in [0, 1], got {cache!r}.")


def _as_compose(preprocessing: Callable | Sequence[Callable]) -> Compose:
    if isinstance(preprocessing, Compose):
        return preprocessing
    return Compose(list(preprocessing) if isinstance(preprocessing, Sequence) else [preprocessing])


def _dataset(items: list, pre: Compose, transform: Callable | None, cache_rate: float, num_workers: int) -> Dataset:
    # one flat Compose, so that a CacheDataset caches every deterministic step before the first random one
    full = Compose([*pre.transforms, transform]) if transform is not None else pre
    if cache_rate > 0:
        return FailSafeCacheDataset(items, full, cache_rate=cache_rate, num_workers=num_workers, progress=False)
    return Dataset(items, full)


# ---------------------------------------------------------------------------------------------------- 2D items


def _demo_items(split: str, image_size: tuple[int, ...], num_images: int, num_classes: int, seed: int) -> list[dict]:
    share, offset = _DEMO_SPLITS[split]
    n = max(1, int(round(num_images * share)))
    size, dims = max(16, max(image_size)), len(image_size)
    images, labels = make_demo_images(n, size=size, spatial_dims=dims, num_classes=num_classes, seed=seed + offset)
    return [
        {"image": img, "label": int(lab), "id": f"demo_{split}_{i:05d}"}
        for i, (img, lab) in enumerate(zip(images, labels))
    ]


def _medmnist_items(path: Path, split: str) -> tuple[list[dict], dict[str, Any]]:
    from .medmnist import load_medmnist

    path = _medmnist_file(path)
    images, labels, info = load_medmnist(path, _MEDMNIST_SPLITS[split])
    labels = np.asarray(labels)
    task = _normalize_task(str(info.get("task", "multiclass")))
    multi_label = task == "multilabel"
    items = []
    for i, img in enumerate(images):
        lab = labels[i]
        lab = lab.astype(np.int64) if multi_label else int(np.asarray(lab).reshape(-1)[0])
        items.append({"image": np.asarray(img, dtype=np.float32), "label": lab, "id": f"{path.stem}_{split}_{i:05d}"})
    num_classes = int(info["num_classes"])
    meta = {
        "task": task,
        "num_classes": num_classes,
        "labels": [str(k) for k in range(num_classes)],
        "name": str(info.get("flavour") or path.stem),
        "in_channels": int(info.get("in_channels", images.shape[1])),
        "spatial_dims": int(info.get("spatial_dims", images.ndim - 2)),
    }
    return items, meta


def _folder_items(
    root: Path, split: str, val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[dict], dict[str, Any]]:
    """PNG / JPEG files under ``root``; labels and splits from an optional ``labels.csv`` (image, label[, split])."""
    files = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()
    )
    labels: dict[str, Any] = {}
    splits: dict[str, str] = {}
    class_names: list[str] = []
    csv_path = root / "labels.csv"
    if csv_path.is_file():
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"image", "label"} <= set(rows[0]):
            raise LayoutError(f"'{csv_path}' must have the columns 'image' and 'label' (optional 'split').", csv_path)
        raw = [r["label"].strip() for r in rows]
        if all(v.lstrip("-").isdigit() for v in raw):
            values: list[Any] = [int(v) for v in raw]
            class_names = [str(c) for c in sorted({v for v in values if v >= 0})]
        else:
            class_names = sorted(set(raw))
            values = [class_names.index(v) for v in raw]
        for row, value in zip(rows, values):
            name = row["image"].strip()
            if not (root / name).is_file():
                raise MissingFileError(f"'{csv_path}' lists image '{name}', which does not exist in '{root}'.", name)
            labels[name] = value
            if row.get("split"):
                splits[name] = normalize_split(row["split"])
        files = [f for f in files if f in labels]
    if not files:
        raise EmptyDatasetError(f"no PNG / JPEG image found under '{root}'.", root)
    if len(splits) < len(files):  # seeded split of the files the table does not place
        rest = [f for f in files if f not in splits]
        order = np.random.RandomState(seed).permutation(len(rest))
        n_test, n_val = int(round(len(rest) * test_fraction)), int(round(len(rest) * val_fraction))
        for rank, idx in enumerate(order):
            splits[rest[idx]] = "test" if rank < n_test else "validation" if rank < n_test + n_val else "training"
    items = [{"image": str(root / f), "label": labels.get(f, -1), "id": f} for f in files if splits[f] == split]
    num_classes = len(class_names)
    task = "unlabelled" if not labels else "binary" if num_classes == 2 else "multiclass"
    meta = {"task": task, "num_classes": num_classes, "labels": class_names, "name": root.name}
    return items, {**meta, "in_channels": folder_channels([root / f for f in files])}


def folder_channels(files: Sequence[str | os.PathLike], max_files: int = 16, tolerance: float = 2.0) -> int:
    """Channel count a folder of PNG / JPEG images should be read with: 3 when it holds colour, else 1.

    The first ``max_files`` files (in the given order) are opened with PIL (unreadable ones are passed over: the
    validation or the loader names them): an image is colour when its mode carries
    colour (``RGB``, ``RGBA``, ``P``, ``CMYK``, ...) *and* its channels differ, i.e. the mean absolute deviation of
    R, G and B from their mean exceeds ``tolerance`` grey levels (of 255), so grey radiographs or ultrasound frames
    saved as RGB JPEG stay one-channel while fundus photographs, dermoscopy and histology tiles stay RGB.

    Args:
        files: image paths, in a deterministic order (the same for every split of a dataset).
        max_files: how many files to inspect.
        tolerance: grey-level difference (0-255) between channels below which an RGB file counts as grey.

    Returns:
        1 or 3.
    """
    require_package("PIL", "monai_jepa.data.folder_channels", "PNG / JPEG input")
    from PIL import Image

    for path in list(files)[: int(max_files)]:
        try:
            with Image.open(path) as img:
                if img.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F", "LA"):
                    continue
                rgb = np.asarray(img.convert("RGB"), dtype=np.float32)
        except (OSError, ValueError, SyntaxError):  # unreadable: the validation (or the loader) names it later
            continue
        if np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).mean() > tolerance:
            return 3
    return 1


def _cxr_items(kind: str, root: Path, split: str, **datalist_kwargs: Any) -> tuple[list[dict], dict[str, Any], Any]:
    datalist = build_datalist(kind, root, **datalist_kwargs)
    base = Path(datalist.get("root", root))
    items = []
    for entry in datalist.get(split, []):
        item = dict(entry)
        item["id"] = str(entry.get("id", entry["image"]))
        item["image"] = str(base / entry["image"])
        label = entry.get("label", -1)
        item["label"] = np.asarray(label, dtype=np.int64) if isinstance(label, (list, tuple, np.ndarray)) else label
        items.append(item)
    names = datalist.get("labels", [])
    names = [names[k] for k in sorted(names, key=int)] if isinstance(names, dict) else list(names)
    task = _normalize_task(str(datalist.get("task", "unlabelled")))
    loader = LoadCXRDicomd(keys="image") if kind == "dicom_cxr" else None
    meta = {"task": task, "num_classes": len(names), "labels": names, "name": str(datalist.get("name", kind))}
    return items, meta, loader


# ---------------------------------------------------------------------------------------------- 3D datalists


def _nifti_channels(path: Path) -> int:
    nib = require_package("nibabel", "monai_jepa.data.resolve_volume_source", "NIfTI input")

    shape = nib.load(str(path)).shape
    return int(shape[3]) if len(shape) > 3 else 1


def _entry_channels(root: Path, image: Any) -> int:
    entries = image if isinstance(image, (list, tuple)) else [image]
    return sum(_nifti_channels(root / v) if isinstance(v, str) and is_nifti(v) else 1 for v in entries)


def _label_values(datalist: dict, root: Path) -> list[int]:
    """The stored label values: the numeric label names, else the sorted union of the values of up to
    :data:`_MAX_LABEL_SCAN` label maps (0 always included)."""
    names = datalist.get("labels") or {}
    if names and all(str(k).lstrip("-").isdigit() for k in names):
        return sorted(int(k) for k in names)
    labels = [i["label"] for s in ("training", "validation", "test") for i in datalist.get(s, []) if "label" in i]
    values = {0}
    for label in labels[:_MAX_LABEL_SCAN]:
        if isinstance(label, (list, tuple)):
            arr, _ = load_dicom([root / f for f in label])
        else:
            arr, _ = load_checked(root / label, expected_dims=3)
        values |= {int(v) for v in np.unique(np.round(arr))}
    return sorted(values)


def _json_datalist(path: Path) -> dict:
    """A Decathlon-style datalist file: its splits (missing ones empty), ``root`` made absolute (default: its folder),
    ``task`` from the items when absent (``"segmentation"`` when every item has a label)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise LayoutError(f"datalist file '{path}' is not readable JSON ({e}).", path) from e
    splits = ("training", "validation", "test")
    if not isinstance(data, dict) or not any(isinstance(data.get(s), list) and data[s] for s in splits):
        raise LayoutError(
            f"datalist file '{path}' must be a JSON object with a non-empty 'training', 'validation' or 'test' list.",
            path,
        )
    root = Path(str(data.get("root") or "."))
    data["root"] = str(root if root.is_absolute() else (path.parent / root).resolve())
    for split in splits:
        data[split] = list(data.get(split) or [])
    if "task" not in data:
        items = [i for s in splits for i in data[s]]
        data["task"] = "segmentation" if all(isinstance(i, dict) and "label" in i for i in items) else "unlabelled"
    return data


def _medmnist_datalist(path: Path) -> dict:
    from .medmnist import load_medmnist

    path = _medmnist_file(path)
    _, _, info = load_medmnist(path, "val")
    if info["spatial_dims"] != 3:
        raise LayoutError(
            f"MedMNIST file {path} holds {info['spatial_dims']}D images; expected a 3D flavour (e.g. "
            "organmnist3d.npz). Use monai_jepa.data.resolve_image_source for 2D files.",
            path,
        )
    datalist: dict[str, Any] = {
        "name": str(info.get("flavour") or path.stem),
        "description": f"MedMNIST 3D file {path.name}; items index the arrays of their split",
        "task": info["task"],
        "labels": {str(k): str(k) for k in range(info["num_classes"])},
        "root": str(path.parent.resolve()),
    }
    with np.load(path, allow_pickle=False) as npz:
        for split, key in _MEDMNIST_SPLITS.items():
            labels = np.asarray(npz[f"{key}_labels"]).reshape(len(npz[f"{key}_labels"]), -1).astype(np.int64)
            datalist[split] = [
                {"image": path.name, "index": i, "label": int(lab[0]) if lab.size == 1 else lab.tolist(),
                 "id": f"{path.stem}_{key}_{i:05d}", "split": split}
                for i, lab in enumerate(labels)
            ]  # fmt: skip
    datalist.update(in_channels=int(info["in_channels"]), num_classes=int(info["num_classes"]))
    return datalist


def _dicom_datalist(
    root: Path, sequences: Sequence[str] | None, mask_pattern: str, seed: int, phi_ids: bool = False, **kwargs: Any
) -> dict:
    """The ``dicom_series`` datalist regrouped by study: image series (one item each, or stacked as channels by
    ``sequences``) with the study's mask series, when there is exactly one, as label.

    Case ids and patient ids hold no header value unless ``phi_ids``: ``patient_001_study_2_<series description>``
    (patients numbered in the order of their Patient IDs, studies of a patient in the order of their dates), since
    they reach logs, TensorBoard, embedding tables and reports. With ``phi_ids`` they are
    ``<PatientID>_<StudyDate>_<series description>`` and the Patient ID, as read."""
    base = build_datalist("dicom_series", root, seed=seed, **kwargs)
    root = Path(base["root"])
    studies: dict[tuple, list[dict]] = defaultdict(list)
    for split in ("training", "validation", "test"):
        for entry in base[split]:
            studies[entry["patient_id"], entry["study_uid"] or entry["series_uid"]].append(entry)
    patients = {p: f"patient_{i + 1:03d}" for i, p in enumerate(sorted({p for p, _ in studies}))}
    study_index: dict[tuple, int] = {}
    for patient in patients:
        keys = sorted((k for k in studies if k[0] == patient), key=lambda k: (studies[k][0]["study_date"], k[1]))
        study_index.update({k: i + 1 for i, k in enumerate(keys)})
    mask_re = re.compile(mask_pattern, re.IGNORECASE)
    items, skipped = [], []
    for key, series in sorted(studies.items()):
        patient = key[0] if phi_ids else patients[key[0]]
        study = series[0]["study_date"] if phi_ids else f"study_{study_index[key]}"
        masks = [s for s in series if mask_re.search(s["series_description"])]
        images = [s for s in series if s not in masks]
        label = masks[0]["image"] if len(masks) == 1 else None
        common = {"patient_id": patient, "split": series[0]["split"]}
        if label is not None:
            common["label"] = label
        if sequences is None:
            for s in images:
                name = f"{patient}_{study}_{s['series_description'] or s['series_uid']}"
                items.append({"image": [s["image"]], "id": re.sub(r"[^\w.-]+", "_", name), **common})
            continue
        chosen = []
        for pattern in sequences:
            hits = [s for s in images if re.search(pattern, s["series_description"], re.IGNORECASE)]
            if len(hits) > 1:
                raise LayoutError(
                    f"DICOM study {series[0]['study_uid']} of patient {patient}: sequence pattern {pattern!r} matches "
                    f"several series {[h['series_description'] for h in hits]}; make the pattern specific.",
                    root / str(hits[0]["image"] if not isinstance(hits[0]["image"], list) else hits[0]["image"][0]),
                )
            chosen.append(hits[0] if hits else None)
        if None in chosen:
            missing = [p for p, c in zip(sequences, chosen) if c is None]
            reason = f"{patient}_{study} has no series matching {missing}"
            skipped.append({"path": str(patient), "reason": reason})
            logger.warning(f"DICOM {reason}; study left out.")
            continue
        name = f"{patient}_{study}"
        items.append({"image": [c["image"] for c in chosen], "id": re.sub(r"[^\w.-]+", "_", name), **common})
    if not items:
        raise EmptyDatasetError(
            f"no DICOM study under {root} has series matching all of {list(sequences or [])}.", path=root
        )
    labelled = all("label" in i for i in items)
    if not labelled:
        for item in items:
            item.pop("label", None)
    description = "DICOM series grouped by study" + (f"; channels {list(sequences)}" if sequences else "")
    datalist = make_datalist("dicom_series", root, items, "segmentation" if labelled else "unlabelled", None,
                             description, skipped=skipped or None)  # fmt: skip
    if labelled:
        datalist["labels"] = {str(v): str(v) for v in _label_values(datalist, root)}
    datalist["in_channels"] = len(sequences) if sequences else 1
    modalities = {s["modality"] for s in base["training"] + base["validation"] + base["test"]}
    datalist["modality"] = {"0": modalities.pop() if len(modalities) == 1 else "MR"}
    return datalist


def _nifti_datalist(root: Path, seed: int, **kwargs: Any) -> dict:
    images = next((d for d in _IMAGE_DIRS if (root / d).is_dir()), ".")
    labels = next((d for d in _LABEL_DIRS if (root / d).is_dir()), None)
    kwargs = {"images": images, "labels": labels, **kwargs}
    return build_datalist("nifti_folder", root, seed=seed, **kwargs)


def volume_datalist(
    dataset_dir: str | os.PathLike | None,
    kind: str = "auto",
    demo_dir: str | os.PathLike | None = None,
    demo_num_cases: int = 8,
    demo_size: Sequence[int] = (48, 48, 48),
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    dicom_sequences: Sequence[str] | None = None,
    dicom_mask_pattern: str = _MASK_PATTERN,
    dicom_phi_ids: bool = False,
    out: str | os.PathLike | None = None,
    validate: bool = False,
    skip_bad: bool = False,
    validation_cache: str | os.PathLike | None = None,
    validation_report: str | os.PathLike | None = None,
    **builder_kwargs: Any,
) -> dict:
    """The datalist of a 3D source, in the :func:`~monai_jepa.data.build_datalist` format plus a description.

    Layouts (``kind="auto"``: :func:`detect_kind`) and the builders used:

        - ``"brats"``: ``build_datalist("brats")``; 4 channels (T1, T1ce / T1c, T2, FLAIR).
        - ``"msd"``: ``build_datalist("msd")``; one channel per ``dataset.json`` modality (4D NIfTI files).
        - ``"nifti_folder"``: ``build_datalist("nifti_folder")`` on ``imagesTr/`` or ``images/`` (else the folder
          itself) with ``labelsTr/`` or ``labels/`` when present; nnU-Net channel files become channels.
        - ``"dicom_series"``: ``build_datalist("dicom_series")``, regrouped by study: by default one single-channel
          item per image series; with ``dicom_sequences`` (regular expressions searched in the SeriesDescription, in
          channel order, e.g. ``["T1pre", "T1post", "FLAIR", "T2"]``) one item per study stacking the matching
          series (studies lacking one are left out, logged and listed under ``"skipped"``). A study's single series
          whose description matches ``dicom_mask_pattern`` is the label map of its items (task ``"segmentation"``
          when every item has one, else ``"unlabelled"``).
        - ``"datalist"``: a Decathlon-style datalist ``.json`` file, as written by ``python -m monai_jepa datalist`` or
          by an earlier run (``<output_dir>/datalist.json``): its splits are used as they are (paths relative to its
          ``"root"``, else to its folder); a description it lacks (channels, task, label values) is read from the
          files. Its ``"source"`` is kept when it has one.
        - ``"medmnist"``: a MedMNIST 3D ``.npz``; items ``{"image": file name, "index": row in the split's array,
          "label": class, "id"}`` (the official splits).
        - ``"demo"``: ``demo_num_cases`` synthetic BraTS 2021-style cases written to ``demo_dir`` (default: a folder in
          the system temporary directory), announced by a loud warning, then ``"brats"``. Under
          ``torch.distributed`` rank 0 writes them while the other ranks wait at a barrier.

    Args:
        dataset_dir: the user's path (file or folder), or None.
        kind: ``"auto"`` or one of :data:`VOLUME_SOURCE_KINDS`.
        demo_dir: where the demo cases are written.
        demo_num_cases: number of demo cases.
        demo_size: demo volume shape.
        seed: seed of the demo data and of the patient-level splits.
        fractions: ``(training, validation, test)`` patient fractions of the file layouts (MedMNIST keeps its own).
        dicom_sequences: DICOM series-description patterns stacked as channels (see above).
        dicom_mask_pattern: regular expression (case-blind) recognising mask series.
        dicom_phi_ids: name DICOM items by Patient ID, study date and series description (as read) instead of the
            default ``patient_001_study_1_<series description>``, which holds no header value.
        out: also write the datalist there (4-space JSON, atomically; on rank 0 only under ``torch.distributed``),
            after the validation: a datalist that fails it is not written.
        validate: decode every file of every split before returning (:func:`~monai_jepa.data.check_datalist`:
            readable, 3D, finite, the sequences and the label of a case on one grid, one channel count across
            cases), so that bad input stops a run before its first step, naming the file. Not done for MedMNIST and
            demo data (read or generated here).
        skip_bad: with ``validate``, drop the bad cases (logged, listed under ``"invalid"`` and in
            ``validation_report``) instead of raising the first error.
        validation_cache: with ``validate``, the cache of cases that passed (see
            :func:`~monai_jepa.data.check_datalist`), so that reruns decode only new or changed files.
        validation_report: with ``validate``, a JSON / CSV file listing the dropped cases (written when given).
        builder_kwargs: extra arguments of the datalist builder (e.g. ``version`` for BraTS).

    Returns:
        the datalist dict (keys ``name, description, task, labels, root, training, validation, test``) plus
        ``"source"`` (the kind), ``"is_synthetic"``, ``"dataset_dir"``, ``"in_channels"``, ``"num_classes"``,
        ``"modality"`` (channel index -> name; ``{}`` when unknown) and, for segmentation, ``"label_values"`` (the
        stored label values, in class order, background first).

    Raises:
        LayoutError, MissingFileError, EmptyDatasetError, UnreadableFileError, ShapeMismatchError: from the detection
        and the builders, naming the file.

    Example::

        datalist = volume_datalist("/data/Task04_Hippocampus", out="outputs/datalist.json")
        datalist["source"], datalist["in_channels"], datalist["label_values"]  # 'msd', 1, [0, 1, 2]
    """
    kind = detect_kind(dataset_dir, 3) if kind == "auto" else look_up_option(kind, VOLUME_SOURCE_KINDS)
    root = None if dataset_dir in (None, "") else Path(dataset_dir)
    if kind == "demo":
        demo = Path(demo_dir) if demo_dir is not None else Path(tempfile.gettempdir()) / "monai_jepa_demo_brats"
        if get_rank() == 0:  # one writer under torch.distributed; the other ranks wait for the files
            _warn_synthetic(
                dataset_dir,
                f"{demo_num_cases} SYNTHETIC BraTS-style demo volumes written to {demo} (seeded ellipsoids, not MRI)",
                "volumes say nothing about real images",
                _EXPECTED[3],
                "brats_vjepa",
            )
            make_demo_brats(demo, num_cases=demo_num_cases, size=demo_size, seed=seed)
        if is_dist():
            torch.distributed.barrier()
        datalist = build_datalist("brats", demo, fractions=fractions, seed=seed)
        datalist["name"] = "demo_brats"
    elif root is None:
        raise ValueError(f"`dataset_dir` is required for kind {kind!r}.")
    elif kind == "medmnist":
        datalist = _medmnist_datalist(root)
    elif kind == "datalist":
        datalist = _json_datalist(root)
    elif kind == "dicom_series":
        datalist = _dicom_datalist(
            root, dicom_sequences, dicom_mask_pattern, seed, dicom_phi_ids, fractions=fractions, **builder_kwargs
        )
    elif kind == "nifti_folder":
        datalist = _nifti_datalist(root, seed, fractions=fractions, **builder_kwargs)
    else:
        datalist = build_datalist(kind, root, fractions=fractions, seed=seed, **builder_kwargs)
    data_root = Path(datalist["root"])
    if kind in ("brats", "demo"):
        datalist["in_channels"], datalist["modality"] = 4, {str(i): s for i, s in enumerate(datalist["sequences"])}
    elif kind in ("msd", "nifti_folder") or (kind == "datalist" and "in_channels" not in datalist):
        modality = datalist.get("modality") or {}
        first = next(i for s in ("training", "validation", "test") for i in datalist[s])
        datalist["in_channels"] = len(modality) if modality else _entry_channels(data_root, first["image"])
        datalist["modality"] = modality
    if datalist["task"] == "segmentation" and not (kind == "datalist" and "label_values" in datalist):
        datalist["label_values"] = _label_values(datalist, data_root)
        datalist["num_classes"] = len(datalist["label_values"])
        datalist["labels"] = datalist.get("labels") or {str(v): str(v) for v in datalist["label_values"]}
    elif datalist["task"] == "unlabelled":
        datalist["num_classes"] = 0
    datalist.setdefault("modality", {})
    source = str(datalist.get("source") or kind) if kind == "datalist" else kind
    synthetic = bool(datalist.get("is_synthetic", False)) if kind == "datalist" else kind == "demo"
    datalist.update(source=source, is_synthetic=synthetic, dataset_dir=None if root is None else str(root))
    if as_bool(validate, "validate") and source not in ("medmnist", "demo"):
        datalist, invalid = check_datalist(
            datalist, skip_bad, validation_report, base_dir=data_root, expected_dims=3,
            same_grid=source != "dicom_series", cache=validation_cache,
        )  # fmt: skip
        if invalid:
            datalist["invalid"] = invalid
    if out is not None and get_rank() == 0:
        write_datalist(datalist, out)
    return datalist


# ------------------------------------------------------------------------------------------------------ resolvers


def _item_id(entry: Mapping[str, Any]) -> str:
    for key in ("id", "case_id"):
        if entry.get(key):
            return str(entry[key])
    image = entry["image"]
    while isinstance(image, (list, tuple)):
        image = image[0]
    name = Path(str(image)).name
    return name[: -len(_suffix(Path(name)))] if is_nifti(name) else name


def _absolute(root: Path, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_absolute(root, v) for v in value]
    return str(root / value)


def volume_intensity(datalist: Mapping[str, Any], intensity: str = "auto") -> str:
    """The intensity normalisation of a 3D datalist: ``intensity`` itself unless it is ``"auto"``, then ``"none"``
    for MedMNIST arrays, ``"ct"`` when every modality of the datalist is CT, else ``"mri"``.

    Args:
        datalist: a datalist of :func:`volume_datalist` (or any with ``"source"`` / ``"modality"`` keys).
        intensity: ``"auto"``, ``"mri"``, ``"ct"`` or ``"none"``.

    Returns:
        ``"mri"``, ``"ct"`` or ``"none"``.
    """
    intensity = look_up_option(intensity, _INTENSITY)
    if intensity != "auto":
        return intensity
    if datalist.get("source") == "medmnist":
        return "none"
    modality = {str(v).upper() for v in (datalist.get("modality") or {}).values()}
    return "ct" if modality == {"CT"} else "mri"


def image_source_info(
    dataset_dir: str | os.PathLike | None,
    kind: str = "auto",
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> dict[str, Any]:
    """What the preprocessing of a 2D source must know before its dataset is built: its kind and channel count.

    Bundle configs write the preprocessing out and pass it to :func:`resolve_image_source`; this gives the values it
    depends on without building the dataset (the channel count is the one ``resolve_image_source`` reports in
    ``info["in_channels"]`` when ``in_channels`` is None).

    Args:
        dataset_dir: the user's path (file or folder), or None.
        kind: ``"auto"`` or one of :data:`SOURCE_KINDS`.
        seed, val_fraction, test_fraction: as for :func:`resolve_image_source` (a plain folder's split).

    Returns:
        ``{"source": kind, "in_channels": int, "spatial_dims": int, "file_source": bool}`` (``file_source``: the
        items are file paths to load, not arrays in memory).

    Example::

        image_source_info("../shared/data/pneumoniamnist/pneumoniamnist.npz")
        # {'source': 'medmnist', 'in_channels': 1, 'spatial_dims': 2, 'file_source': False}
    """
    kind = detect_kind(dataset_dir, 2) if kind == "auto" else look_up_option(kind, SOURCE_KINDS)
    channels, dims = 1, 2
    if kind == "medmnist":
        _, meta = _medmnist_items(Path(str(dataset_dir)), "validation")
        channels, dims = meta["in_channels"], meta["spatial_dims"]
    elif kind == "folder":
        channels = _folder_items(Path(str(dataset_dir)), "training", val_fraction, test_fraction, seed)[1][
            "in_channels"
        ]
    return {
        "source": kind,
        "in_channels": int(channels),
        "spatial_dims": dims,
        "file_source": kind not in ("medmnist", "demo"),
    }


def resolve_image_source(
    dataset_dir: str | os.PathLike | None,
    split: str = "training",
    image_size: int | Sequence[int] = 64,
    in_channels: int | None = None,
    kind: str = "auto",
    transform: Callable | None = None,
    preprocessing: Callable | Sequence[Callable] | None = None,
    cache: bool | float = False,
    num_workers: int = 0,
    max_items: int | None = None,
    demo_num_images: int = 512,
    demo_num_classes: int = 2,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    validate: bool = False,
    skip_bad: bool = False,
    validation_cache: str | os.PathLike | None = None,
    validation_report: str | os.PathLike | None = None,
    **datalist_kwargs: Any,
) -> ImageSource:
    """Build a MONAI dataset of preprocessed 2D images from whatever ``dataset_dir`` points at.

    Sources (see :func:`detect_source_kind`):

        - ``"medmnist"``: a MedMNIST ``.npz`` file (read by ``monai_jepa.data.medmnist.load_medmnist``); its channels
          are kept (1, or 3 for the RGB sets) unless ``in_channels`` says otherwise; splits train / val / test.
        - ``"chestxray14"``, ``"chexpert"``, ``"mimic_cxr"``, ``"dicom_cxr"``: the datalist builders of
          ``monai_jepa.data.datalist.build_datalist`` (``datalist_kwargs`` are passed to them); images are loaded
          lazily, converted to one grey channel and min-max scaled.
        - ``"folder"``: every PNG / JPEG under ``dataset_dir``; ``labels.csv`` (columns ``image`` (path relative to the
          folder), ``label`` (integer or class name), optional ``split`` (training / validation / test)) gives labels
          and splits, otherwise files are split at random (seeded) with ``val_fraction`` / ``test_fraction``;
          unlabelled images get label -1.
        - ``"demo"`` (missing or empty ``dataset_dir``): seeded synthetic images from
          :func:`monai_jepa.data.make_demo_images` (``demo_num_images`` for training, a quarter for validation, half
          for test), announced by a loud warning.

    Args:
        dataset_dir: the user's path (file or folder), or None.
        split: ``"training"`` / ``"train"``, ``"validation"`` / ``"val"`` or ``"test"``.
        image_size: output spatial size (int or one per axis).
        in_channels: output channel count; None follows the data: 1 for the chest X-ray layouts, the file's count
            for MedMNIST, and for a plain folder 3 when its images hold colour, else 1 (see :func:`folder_channels`).
        kind: ``"auto"`` (detect) or one of :data:`SOURCE_KINDS` to force a layout.
        transform: optional extra transform applied after the preprocessing (e.g. random augmentation).
        preprocessing: the deterministic preprocessing of each item (a transform, or a sequence composed in order),
            replacing :func:`~monai_jepa.transforms.image_preprocessing` and the arguments it reads (``image_size``,
            ``in_channels``); bundles write theirs in ``train.json``. It receives ``{"image": path, "label": ...,
            "id": str}`` for file layouts (``info["source"]`` says which), ``{"image": (C, H, W) array in [0, 1],
            ...}`` for MedMNIST and demo images.
        cache: cache the preprocessed items in memory (``True`` or a cache rate in (0, 1]) with a ``CacheDataset``.
        num_workers: workers used to fill the cache.
        max_items: keep only the first ``max_items`` items of the split (quick runs, tests).
        demo_num_images: size of the synthetic training split.
        demo_num_classes: classes of the synthetic images.
        seed: seed of the synthetic images and of the random folder split.
        val_fraction: validation share of a plain folder without a ``split`` column.
        test_fraction: test share of a plain folder without a ``split`` column.
        validate: decode every image file of the split before building the dataset
            (:func:`~monai_jepa.data.check_datalist`: readable, finite, not empty), so that a bad file stops a run
            before its first step, naming it. MedMNIST and demo images are in memory and not checked.
        skip_bad: with ``validate``, drop the bad files (logged, counted in ``info["num_invalid"]``, listed in
            ``validation_report``) instead of raising the first error.
        validation_cache: with ``validate``, the cache of files that passed (by path, size and modification time), so
            that reruns decode only new or changed files.
        validation_report: with ``validate``, a JSON / CSV file listing the dropped files (written when given).
        datalist_kwargs: extra arguments of the datalist builders (CXR layouts).

    Returns:
        :class:`ImageSource` ``(dataset, info)``; items are ``{"image": (C, *image_size) float32 tensor in [0, 1],
        "label": int (or float32 vector for multi-label tasks, -1 when unlabelled), "id": str}``.

    Raises:
        LayoutError: ``dataset_dir`` matches no layout. EmptyDatasetError: the split holds no item.

    Example::

        ds, info = resolve_image_source("../shared/data/pneumoniamnist/pneumoniamnist.npz", "training", 64)
        ds[0]["image"].shape, info["task"]  # torch.Size([1, 64, 64]), 'binary-class'
    """
    split = normalize_split(split)
    kind = detect_kind(dataset_dir, 2) if kind == "auto" else look_up_option(kind, SOURCE_KINDS)
    cache_rate = _cache_rate(cache, max_items)
    spatial_dims = len(image_size) if isinstance(image_size, Sequence) else 2
    size = tuple(int(s) for s in ensure_tuple_rep(image_size, spatial_dims))
    root = Path(dataset_dir) if dataset_dir not in (None, "") else None
    load, loader = False, None
    if kind == "demo":
        n = int(demo_num_images if max_items is None else min(demo_num_images, max_items))
        items = _demo_items(split, size, n, demo_num_classes, seed)
        _warn_synthetic(
            dataset_dir,
            f"{len(items)} SYNTHETIC demo images for the '{split}' split (seeded blobs, not medical images)",
            "images say nothing about chest X-rays",
            _EXPECTED[2] + " (optional labels.csv)",
            "cxr_lejepa",
        )
        names = [str(c) for c in range(demo_num_classes)]
        meta = {"task": "binary" if demo_num_classes == 2 else "multiclass", "labels": names}
        meta.update(num_classes=demo_num_classes, in_channels=1, name="demo")
    elif kind == "medmnist":
        assert root is not None
        items, meta = _medmnist_items(root, split)
        spatial_dims = meta.pop("spatial_dims", spatial_dims)
    elif kind == "folder":
        assert root is not None
        items, meta = _folder_items(root, split, val_fraction, test_fraction, seed)
        load = True
    else:
        assert root is not None
        items, meta, loader = _cxr_items(kind, root, split, **datalist_kwargs)
        load, meta["in_channels"] = True, 1
    if max_items is not None:
        items = items[: int(max_items)]
    invalid: list[dict] = []
    if as_bool(validate, "validate") and load and items:  # grey and colour files may mix: channels are converted
        items, invalid = check_datalist(
            items, skip_bad, validation_report, keys=("image",), same_channels=False,
            cache=validation_cache,
        )  # fmt: skip
    if not items:
        raise EmptyDatasetError(f"the '{split}' split of '{dataset_dir}' ({kind}) holds no image.", dataset_dir)
    channels = meta["in_channels"] if in_channels is None else int(in_channels)
    size = tuple(int(s) for s in ensure_tuple_rep(image_size, spatial_dims))
    if preprocessing is None:
        pre = image_preprocessing(size, channels, load=load, spatial_dims=spatial_dims, loader=loader)
    else:
        pre = _as_compose(preprocessing)
    ds = _dataset(items, pre, transform, cache_rate, num_workers)
    info = {
        **meta,
        "in_channels": channels,
        "source": kind,
        "is_synthetic": kind == "demo",
        "image_size": size,
        "split": split,
        "num_items": len(items),
        "num_invalid": len(invalid),
        "dataset_dir": None if root is None else str(root),
    }
    return ImageSource(ds, info)


def resolve_volume_source(
    dataset_dir: str | os.PathLike | None = None,
    split: str = "training",
    spatial_size: Sequence[int] | int = (48, 48, 48),
    kind: str = "auto",
    datalist: Mapping[str, Any] | None = None,
    patch_size: Sequence[int] | int | None = None,
    spacing: Sequence[float] | float | None = None,
    intensity: str = "auto",
    transform: Callable | None = None,
    preprocessing: Callable | Sequence[Callable] | None = None,
    cache: bool | float = False,
    num_workers: int = 0,
    max_items: int | None = None,
    demo_dir: str | os.PathLike | None = None,
    demo_num_cases: int = 8,
    demo_size: Sequence[int] = (48, 48, 48),
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    dicom_sequences: Sequence[str] | None = None,
    track_meta: bool = False,
    **builder_kwargs: Any,
) -> VolumeSource:
    """Build a MONAI dataset of preprocessed 3D volumes from whatever ``dataset_dir`` points at.

    The layout and its datalist come from :func:`volume_datalist` (or pass a ``datalist`` it returned, to build
    several splits without rebuilding it); the preprocessing is :func:`volume_preprocessing`. Segmentation labels are
    mapped to ``0 .. num_classes - 1`` in the order of ``info["label_values"]`` (BraTS 2021: 0, 1, 2, 4 -> 0, 1, 2,
    3). DICOM channels and masks are resampled onto the first channel's grid when they differ; every other layout
    requires equal grids and raises :class:`~monai_jepa.data.ShapeMismatchError` naming the files.

    Args:
        dataset_dir: the user's path (file or folder), or None; ignored when ``datalist`` is given.
        split: ``"training"`` / ``"train"``, ``"validation"`` / ``"val"`` or ``"test"``.
        spatial_size: output spatial size (int or three ints).
        kind: ``"auto"`` or one of :data:`VOLUME_SOURCE_KINDS`.
        datalist: a datalist returned by :func:`volume_datalist`.
        patch_size: when given, ``spatial_size`` must be divisible by it on every axis.
        spacing: target voxel size in mm, or None to keep the native grid.
        intensity: ``"auto"`` (``"ct"`` for CT modalities, ``"none"`` for MedMNIST, else ``"mri"``), ``"mri"``,
            ``"ct"`` or ``"none"`` (see :func:`volume_preprocessing`).
        transform: optional extra transform applied after the preprocessing (e.g. random crops).
        preprocessing: the deterministic preprocessing of each item (a transform, or a sequence composed in order),
            replacing :func:`volume_preprocessing` and the arguments it reads (``spatial_size``, ``spacing``,
            ``intensity``, ``track_meta``); bundles write theirs in ``train.json``. It receives file items
            ``{"image": path or paths, "label": path (segmentation), "id": str}`` or MedMNIST items
            ``{"image": (1, D, H, W) array, "label": int, "id": str}``.
        cache: cache the preprocessed items in memory (``True`` or a cache rate in (0, 1]) with a ``CacheDataset``.
        num_workers: workers used to fill the cache.
        max_items: keep only the first ``max_items`` items of the split (quick runs, tests).
        demo_dir: where synthetic demo cases are written (see :func:`volume_datalist`).
        demo_num_cases: number of demo cases.
        demo_size: demo volume shape.
        seed: seed of the demo data and of the patient-level split.
        fractions: ``(training, validation, test)`` patient fractions of file layouts.
        dicom_sequences: DICOM series-description patterns stacked as channels (see :func:`volume_datalist`).
        track_meta: keep file items as ``MetaTensor`` s with their transform record (see :func:`volume_preprocessing`);
            ``ds.transform`` is then what ``Invertd`` needs to map predictions back to the input grid.
        builder_kwargs: extra arguments of the datalist builder.

    Returns:
        :class:`VolumeSource` ``(dataset, info)``.

    Raises:
        ValueError: a ``spatial_size`` not divisible by ``patch_size``, a bad ``max_items`` or ``cache``.
        EmptyDatasetError: the split holds no item. Other :class:`~monai_jepa.data.DataError` s from the layout.

    Example::

        ds, info = resolve_volume_source("/data/BraTS2021_Training_Data", "training", (96, 96, 96), spacing=2.0)
        ds[0]["image"].shape, info["in_channels"], info["label_values"]  # (4, 96, 96, 96), 4, [0, 1, 2, 4]
    """
    split = normalize_split(split)
    size = tuple(int(s) for s in ensure_tuple_rep(spatial_size, 3))
    if patch_size is not None:
        patch = tuple(int(p) for p in ensure_tuple_rep(patch_size, 3))
        if any(s % p for s, p in zip(size, patch)):
            raise ValueError(f"`spatial_size` {size} must be divisible by the patch size {patch} on every axis.")
    cache_rate = _cache_rate(cache, max_items)
    if datalist is None:
        datalist = volume_datalist(dataset_dir, kind, demo_dir, demo_num_cases, demo_size, seed, fractions,
                                   dicom_sequences, **builder_kwargs)  # fmt: skip
    source, task, root = datalist.get("source", kind), datalist["task"], Path(datalist["root"])
    entries = list(datalist.get(split, []))[: None if max_items is None else int(max_items)]
    if not entries:
        raise EmptyDatasetError(
            f"the '{split}' split of '{datalist.get('dataset_dir') or root}' ({source}) holds no volume.", root
        )
    if source == "medmnist":
        from .medmnist import load_medmnist

        images, _, _ = load_medmnist(root / entries[0]["image"], _MEDMNIST_SPLITS[split])
        items = [{"image": images[e["index"]], "label": e["label"], "id": e["id"]} for e in entries]
    else:
        items = []
        for e in entries:
            item = {"image": _absolute(root, e["image"]), "id": _item_id(e)}
            if task == "segmentation":
                item["label"] = _absolute(root, e["label"])
            items.append(item)
    if preprocessing is not None:
        pre = _as_compose(preprocessing)
    elif source == "medmnist":
        pre = volume_preprocessing(size, "none", label="class", load=False)
    else:
        pre = volume_preprocessing(
            size, volume_intensity(datalist, intensity), spacing, label=task == "segmentation", load=True,
            resample=source == "dicom_series", label_values=datalist.get("label_values"), track_meta=track_meta,
        )  # fmt: skip
    ds = _dataset(items, pre, transform, cache_rate, num_workers)
    labels = datalist.get("labels") or {}
    info = {
        "source": source,
        "name": str(datalist.get("name", source)),
        "is_synthetic": bool(datalist.get("is_synthetic", source == "demo")),
        "task": task,
        "num_classes": int(datalist.get("num_classes", len(labels))),
        "labels": [str(v) for v in labels.values()],
        "in_channels": int(datalist["in_channels"]),
        "spatial_size": size,
        "spacing": None if spacing is None else tuple(float(s) for s in ensure_tuple_rep(spacing, 3)),
        "split": split,
        "num_items": len(items),
        "dataset_dir": datalist.get("dataset_dir"),
        "data_root": str(root),
    }
    if task == "segmentation":
        info["label_values"] = list(datalist["label_values"])
    return VolumeSource(ds, info)


def resolve_source(
    dataset_dir: str | os.PathLike | None = None, split: str = "training", spatial_dims: int = 2, **kwargs: Any
) -> ImageSource | VolumeSource:
    """Build a MONAI dataset of preprocessed 2D images or 3D volumes from whatever ``dataset_dir`` points at.

    The one entry point of the resolver: ``spatial_dims=2`` is :func:`resolve_image_source`, ``spatial_dims=3`` is
    :func:`resolve_volume_source` (``kwargs`` are theirs, e.g. ``image_size`` or ``spatial_size``).

    Args:
        dataset_dir: the user's path (file or folder), or None for demo data.
        split: ``"training"`` / ``"train"``, ``"validation"`` / ``"val"`` or ``"test"``.
        spatial_dims: 2 or 3.
        kwargs: the arguments of the resolver of that dimensionality.

    Returns:
        :class:`ImageSource` or :class:`VolumeSource` ``(dataset, info)``.

    Example::

        ds, info = resolve_source("../shared/data/adrenalmnist3d/adrenalmnist3d.npz", "val", 3, spatial_size=28)
        ds[0]["image"].shape, info["source"]  # (1, 28, 28, 28), 'medmnist'
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims!r}.")
    resolver = resolve_image_source if spatial_dims == 2 else resolve_volume_source
    return resolver(dataset_dir, split, **kwargs)
