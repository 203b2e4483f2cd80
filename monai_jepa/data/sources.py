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
"""One entry point from "a path the user gave" to a MONAI dataset of preprocessed 2D images.

:func:`resolve_image_source` accepts a MedMNIST ``.npz`` file (or a folder holding exactly one), a folder in one of the
chest X-ray layouts (ChestX-ray14, CheXpert, MIMIC-CXR-JPG, a DICOM tree), a plain folder of PNG / JPEG images (with an
optional ``labels.csv``), or a missing / empty path, for which it generates seeded synthetic demo images and says so
loudly. Every item is ``{"image": (C, *image_size) float32 tensor in [0, 1], "label": ..., "id": str}``. Files are
read lazily (MONAI ``LoadImaged`` and friends, optionally through a ``CacheDataset``), so large folders need no
up-front conversion.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from monai.data import CacheDataset, Dataset, PILReader
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Lambdad,
    LoadImaged,
    Resized,
    ScaleIntensityd,
)
from monai.utils import ensure_tuple_rep, look_up_option

from monai_jepa.data.demo import make_demo_images
from monai_jepa.data.errors import EmptyDatasetError, InvalidImageError, LayoutError, MissingFileError
from monai_jepa.utils.module import require_package

__all__ = [
    "ImageSource",
    "SOURCE_KINDS",
    "detect_source_kind",
    "image_preprocessing",
    "match_channels",
    "resolve_image_source",
]

logger = logging.getLogger(__name__)

SOURCE_KINDS = ("medmnist", "chestxray14", "chexpert", "mimic_cxr", "dicom_cxr", "folder", "demo")
"""The source kinds :func:`detect_source_kind` recognises (``"auto"`` asks it to choose)."""

_SPLITS = {"training": "training", "train": "training", "validation": "validation", "val": "validation", "test": "test"}
_MEDMNIST_SPLITS = {"training": "train", "validation": "val", "test": "test"}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_LUMA = (0.299, 0.587, 0.114)
# share of the demo set generated for each split (of ``demo_num_images``) and the offset added to the seed
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


def match_channels(img: Any, channels: int | None) -> Any:
    """Convert a channel-first image to ``channels`` channels (numpy array or tensor, ``(C, *spatial)``).

    RGB / RGBA to one channel uses the ITU-R 601 luma weights (the alpha channel is dropped); one channel to three
    repeats it; RGBA to RGB drops alpha. ``channels=None`` or an equal count returns ``img`` unchanged.

    Args:
        img: image of shape ``(C, *spatial)``.
        channels: wanted channel count, or None.

    Returns:
        the image with ``channels`` channels, of the same array type.

    Raises:
        InvalidImageError: for any other conversion (e.g. 2 channels to 1).

    Example::

        gray = match_channels(np.random.rand(3, 64, 64), 1)  # (1, 64, 64)
    """
    c = int(img.shape[0])
    if channels is None or c == channels:
        return img
    if channels == 1 and c in (3, 4):
        w = _LUMA
        return w[0] * img[0:1] + w[1] * img[1:2] + w[2] * img[2:3]
    if channels == 3 and c == 1:
        return torch.cat([img] * 3) if isinstance(img, torch.Tensor) else np.concatenate([img] * 3)
    if channels == 3 and c == 4:
        return img[:3]
    raise InvalidImageError(
        f"cannot convert an image with {c} channels (shape {tuple(img.shape)}) to {channels} channels; "
        "expected 1, 3 (RGB) or 4 (RGBA) channels."
    )


def image_preprocessing(
    image_size: int | Sequence[int] = 64,
    in_channels: int | None = 1,
    keys: str | Sequence[str] = "image",
    load: bool = True,
    reader: Any = None,
    scale_intensity: bool | None = None,
    spatial_dims: int = 2,
    loader: Callable | None = None,
) -> Compose:
    """The deterministic preprocessing of :func:`resolve_image_source`, usable on its own (e.g. by MONAI Label).

    ``load=True`` (files): ``LoadImaged`` (PNG / JPEG through ``PILReader`` in row-major order, or ``reader``) ->
    ``EnsureChannelFirstd`` -> channel conversion (:func:`match_channels`) -> ``Resized`` to ``image_size``
    (bilinear, anti-aliased) -> per-image min-max scaling to [0, 1] -> float32 tensor without metadata.
    ``load=False`` (in-memory ``(C, *spatial)`` arrays already in [0, 1]): the same without loading and, by default,
    without rescaling.

    Args:
        image_size: output spatial size, an int for every axis or one per axis.
        in_channels: output channel count (see :func:`match_channels`); None keeps the input's.
        keys: keys of the images in the item dictionaries.
        load: whether the items hold file paths to load.
        reader: MONAI image reader (name or instance) for ``LoadImaged``; default ``PILReader(reverse_indexing=False)``.
        scale_intensity: min-max scale each image to [0, 1]; default ``load``.
        spatial_dims: number of spatial axes (2 for X-rays).
        loader: a dictionary transform that loads channel-first images (e.g. ``LoadCXRDicomd(keys="image")``); it
            replaces ``LoadImaged`` + ``EnsureChannelFirstd`` when ``load`` is True.

    Returns:
        a MONAI ``Compose``.

    Example::

        pre = image_preprocessing(image_size=224)
        item = pre({"image": "/data/cxr/00000001_000.png"})  # item["image"]: (1, 224, 224) float32
    """
    size = ensure_tuple_rep(image_size, spatial_dims)
    if any(int(s) < 1 for s in size):
        raise ValueError(f"`image_size` must be positive, got {image_size!r}.")
    transforms: list[Callable] = []
    if load and loader is not None:
        transforms.append(loader)
    elif load:
        if reader is None:
            require_package("PIL", "monai_jepa.data.image_preprocessing", "PNG / JPEG input")
        transforms += [
            LoadImaged(keys, reader=PILReader(reverse_indexing=False) if reader is None else reader, image_only=True),
            EnsureChannelFirstd(keys),
        ]
    transforms += [
        Lambdad(keys, func=partial(match_channels, channels=in_channels)),
        Resized(keys, spatial_size=size, mode="bilinear", anti_aliasing=True),
    ]
    if load if scale_intensity is None else scale_intensity:
        transforms.append(ScaleIntensityd(keys, minv=0.0, maxv=1.0))
    transforms.append(EnsureTyped(keys, data_type="tensor", dtype=torch.float32, track_meta=False))
    return Compose(transforms)


def _has_file(folder: Path, suffixes: Sequence[str]) -> bool:
    for _, _, files in os.walk(folder):
        if any(f.lower().endswith(tuple(suffixes)) for f in files):
            return True
    return False


def _read_header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def detect_source_kind(dataset_dir: str | os.PathLike | None) -> str:
    """Recognise the layout of ``dataset_dir`` (one of :data:`SOURCE_KINDS`).

    Rules, in order: missing path, None or empty folder -> ``"demo"``; a ``.npz`` file, or a folder holding a single
    ``.npz`` file and nothing else -> ``"medmnist"``; ``Data_Entry_2017.csv`` -> ``"chestxray14"``; ``train.csv``
    with a ``Path`` column -> ``"chexpert"``; ``mimic-cxr-2.0.0-metadata.csv`` (or ``.csv.gz``) -> ``"mimic_cxr"``;
    any ``*.dcm`` in the tree -> ``"dicom_cxr"``; any PNG / JPEG in the tree -> ``"folder"``; finally a folder with
    exactly one ``.npz`` file (among other files) -> ``"medmnist"``.

    Args:
        dataset_dir: the path given by the user.

    Returns:
        the kind.

    Raises:
        LayoutError: when a non-empty folder or a file matches none of the rules.
    """
    if dataset_dir is None or str(dataset_dir) == "":
        return "demo"
    path = Path(dataset_dir)
    if not path.exists():
        return "demo"
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "medmnist"
        raise LayoutError(f"`dataset_dir` '{path}' is a file but not a MedMNIST .npz file.", path)
    entries = list(path.iterdir())
    if not entries:
        return "demo"
    names = {p.name for p in entries}
    npz = [p for p in entries if p.suffix.lower() == ".npz" and p.is_file()]
    if len(npz) == 1 and len(entries) == 1:
        return "medmnist"
    if "Data_Entry_2017.csv" in names:
        return "chestxray14"
    if "train.csv" in names and "Path" in _read_header(path / "train.csv"):
        return "chexpert"
    if {"mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz"} & names:
        return "mimic_cxr"
    if _has_file(path, (".dcm",)):
        return "dicom_cxr"
    if _has_file(path, _IMAGE_SUFFIXES):
        return "folder"
    if len(npz) == 1:
        return "medmnist"
    raise LayoutError(
        f"`dataset_dir` '{path}' matches no supported layout: expected a MedMNIST .npz file, a ChestX-ray14 folder "
        "(Data_Entry_2017.csv), a CheXpert folder (train.csv with a 'Path' column), a MIMIC-CXR-JPG folder "
        "(mimic-cxr-2.0.0-metadata.csv), a tree of .dcm files, or a folder of PNG / JPEG images.",
        path,
    )


def _warn_synthetic(dataset_dir: Any, split: str, num_images: int) -> None:
    bar = "=" * 100
    logger.warning(
        f"\n{bar}\n"
        f"  NO REAL DATA: `dataset_dir` '{dataset_dir}' does not exist or is empty.\n"
        f"  Using {num_images} SYNTHETIC demo images for the '{split}' split (seeded blobs, not medical images).\n"
        "  Results on these images say nothing about chest X-rays; they only show that the pipeline runs.\n"
        "  To use real data, point `dataset_dir` at a MedMNIST .npz file, a ChestX-ray14 / CheXpert / MIMIC-CXR-JPG\n"
        "  folder, a folder of DICOM files, or a folder of PNG / JPEG images (optional labels.csv), e.g.\n"
        "      python -m monai.bundle run training --config_file bundles/cxr_lejepa/configs/train.json "
        "--dataset_dir /path/to/data\n"
        f"{bar}"
    )


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
    from monai_jepa.data.medmnist import load_medmnist  # imported here: the MedMNIST reader is optional

    if path.is_dir():
        path = next(p for p in path.iterdir() if p.suffix.lower() == ".npz")
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
                splits[name] = look_up_option(row["split"].strip().lower(), _SPLITS)
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
    return items, {"task": task, "num_classes": num_classes, "labels": class_names, "name": root.name}


def _cxr_items(kind: str, root: Path, split: str, **datalist_kwargs: Any) -> tuple[list[dict], dict[str, Any], Any]:
    from monai_jepa.data.datalist import build_datalist  # the CXR datalist builders register themselves there

    datalist = build_datalist(kind, root, **datalist_kwargs)
    base = Path(datalist.get("root", root))
    items = []
    for i, entry in enumerate(datalist.get(split, [])):
        item = dict(entry)
        item["id"] = str(entry.get("id", entry["image"]))
        item["image"] = str(base / entry["image"])
        label = entry.get("label", -1)
        item["label"] = np.asarray(label, dtype=np.int64) if isinstance(label, (list, tuple, np.ndarray)) else label
        items.append(item)
    names = datalist.get("labels", [])
    names = [names[k] for k in sorted(names, key=int)] if isinstance(names, dict) else list(names)
    task = _normalize_task(str(datalist.get("task", "unlabelled")))
    loader = None
    if kind == "dicom_cxr":
        from monai_jepa.data.cxr import LoadCXRDicomd

        loader = LoadCXRDicomd(keys="image")
    meta = {"task": task, "num_classes": len(names), "labels": names, "name": str(datalist.get("name", kind))}
    return items, meta, loader


def resolve_image_source(
    dataset_dir: str | os.PathLike | None,
    split: str = "training",
    image_size: int | Sequence[int] = 64,
    in_channels: int | None = None,
    kind: str = "auto",
    transform: Callable | None = None,
    cache: bool | float = False,
    num_workers: int = 0,
    max_items: int | None = None,
    demo_num_images: int = 512,
    demo_num_classes: int = 2,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
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
        in_channels: output channel count; None: 1 for X-ray folders, the data's own count otherwise.
        kind: ``"auto"`` (detect) or one of :data:`SOURCE_KINDS` to force a layout.
        transform: optional extra transform applied after the preprocessing (e.g. random augmentation).
        cache: cache the preprocessed items in memory (``True`` or a cache rate in (0, 1]) with a ``CacheDataset``.
        num_workers: workers used to fill the cache.
        max_items: keep only the first ``max_items`` items of the split (quick runs, tests).
        demo_num_images: size of the synthetic training split.
        demo_num_classes: classes of the synthetic images.
        seed: seed of the synthetic images and of the random folder split.
        val_fraction: validation share of a plain folder without a ``split`` column.
        test_fraction: test share of a plain folder without a ``split`` column.
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
    split = look_up_option(str(split).lower(), _SPLITS)
    kind = detect_source_kind(dataset_dir) if kind == "auto" else look_up_option(kind, SOURCE_KINDS)
    if max_items is not None and int(max_items) < 1:
        raise ValueError(f"`max_items` must be None or >= 1, got {max_items!r}.")
    if isinstance(cache, bool):
        cache_rate = 1.0 if cache else 0.0
    elif 0.0 <= float(cache) <= 1.0:
        cache_rate = float(cache)
    else:
        raise ValueError(f"`cache` must be a bool or a cache rate in [0, 1], got {cache!r}.")
    spatial_dims = len(image_size) if isinstance(image_size, Sequence) else 2
    size = tuple(int(s) for s in ensure_tuple_rep(image_size, spatial_dims))
    root = Path(dataset_dir) if dataset_dir not in (None, "") else None
    load, loader = False, None
    if kind == "demo":
        n = int(demo_num_images if max_items is None else min(demo_num_images, max_items))
        items = _demo_items(split, size, n, demo_num_classes, seed)
        _warn_synthetic(dataset_dir, split, len(items))
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
        load, meta["in_channels"] = True, 1
    else:
        assert root is not None
        items, meta, loader = _cxr_items(kind, root, split, **datalist_kwargs)
        load, meta["in_channels"] = True, 1
    if max_items is not None:
        items = items[: int(max_items)]
    if not items:
        raise EmptyDatasetError(f"the '{split}' split of '{dataset_dir}' ({kind}) holds no image.", dataset_dir)
    channels = meta["in_channels"] if in_channels is None else int(in_channels)
    size = tuple(int(s) for s in ensure_tuple_rep(image_size, spatial_dims))
    pre = image_preprocessing(size, channels, load=load, spatial_dims=spatial_dims, loader=loader)
    # one flat Compose, so that a CacheDataset caches every deterministic step before the first random one
    full = Compose([*pre.transforms, transform]) if transform is not None else pre
    if cache_rate > 0:
        ds: Dataset = CacheDataset(items, full, cache_rate=cache_rate, num_workers=num_workers, progress=False)
    else:
        ds = Dataset(items, full)
    info = {
        **meta,
        "in_channels": channels,
        "source": kind,
        "is_synthetic": kind == "demo",
        "image_size": size,
        "split": split,
        "num_items": len(items),
        "dataset_dir": None if root is None else str(root),
    }
    return ImageSource(ds, info)
