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
"""One entry point from "a path the user gave" to a MONAI dataset of preprocessed 3D volumes.

:func:`resolve_volume_source` is the 3D counterpart of :func:`~monai_jepa.data.sources.resolve_image_source`. It
accepts a BraTS 2021 / 2023 folder, a Medical Segmentation Decathlon task folder (``dataset.json``), a MedMNIST 3D
``.npz`` file (or a folder holding one), a folder tree of DICOM series, a plain folder of NIfTI images (with optional
label maps), or a missing / empty path, for which it writes seeded synthetic BraTS-style demo cases and says so loudly.

The layout is turned into a datalist (:func:`volume_datalist`, the :func:`~monai_jepa.data.build_datalist` format
with a few extra keys), and the datalist into a dataset of items ``{"image": (C, *spatial_size) float32, "label":
(1, *spatial_size) int64 label map or an int class index, "id": str}``. Files are read lazily by
:class:`LoadVolumed` (several files or DICOM series of a case become channels), then oriented to RAS, optionally
resampled, normalised (per-channel z-score on non-zero voxels for MRI, a Hounsfield window for CT), cropped to the
foreground and padded / cropped to a fixed ``spatial_size``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from monai.data import CacheDataset, Dataset, MetaTensor
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureTyped,
    MapLabelValued,
    MapTransform,
    ResampleToMatch,
    ResizeWithPadOrCropd,
)
from monai.utils import ensure_tuple_rep, look_up_option

from monai_jepa.utils.dist import get_rank, is_dist
from monai_jepa.utils.module import require_package

from .datalist import build_datalist, make_datalist, normalize_split, write_datalist
from .demo3d import make_demo_brats
from .errors import EmptyDatasetError, InvalidImageError, LayoutError, ShapeMismatchError
from .io import is_dicom_file, load_checked, load_dicom
from .presets import StackSequencesd, ct_preset, mri_preset

__all__ = [
    "VOLUME_SOURCE_KINDS",
    "VolumeSource",
    "LoadVolumed",
    "detect_volume_source_kind",
    "volume_datalist",
    "volume_preprocessing",
    "resolve_volume_source",
]

logger = logging.getLogger(__name__)

VOLUME_SOURCE_KINDS = ("brats", "msd", "medmnist", "dicom_series", "nifti_folder", "demo")
"""The source kinds :func:`detect_volume_source_kind` recognises (``"auto"`` asks it to choose)."""

_INTENSITY = ("auto", "mri", "ct", "none")
_BRATS_CASE = re.compile(r"BraTS(2021|20)_(Training_|Validation_)?\d+|BraTS-[A-Z]+-\d{5}-\d{3}")
_NIFTI = (".nii.gz", ".nii")
_IMAGE_DIRS = ("imagesTr", "images")
_LABEL_DIRS = ("labelsTr", "labels")
_MASK_PATTERN = r"mask|seg"
_MAX_LABEL_SCAN = 16


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


# ------------------------------------------------------------------------------------------------------- loading


def _same_grid(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    if tuple(a.shape[1:]) != tuple(b.shape[1:]):
        return False
    if isinstance(a, MetaTensor) and isinstance(b, MetaTensor):
        return bool(torch.allclose(a.affine.double(), b.affine.double(), atol=atol, rtol=0.0))
    return True


def _source_name(img: Any) -> str:
    return str((getattr(img, "meta", None) or {}).get("filename_or_obj", "<in memory>"))


class LoadVolumed(MapTransform):
    """Load the volume(s) of a case as one channel-first ``MetaTensor`` with a RAS affine, and its label map.

    The image value is one path (a NIfTI file, possibly 4D with channels last, or a DICOM series folder) or a list of
    channel entries, each a path or the list of DICOM files of one series; the channels are stacked after checking
    that they share a grid (:class:`~monai_jepa.data.StackSequencesd`), or, with ``resample=True``, after resampling
    the others onto the first one's grid (trilinear, MONAI ``ResampleToMatch``). Every file goes through
    :func:`~monai_jepa.data.load_checked`, so unreadable files, NaN voxels and wrong dimensionality raise the
    documented errors naming the file. A label path is loaded as ``(1, *spatial)`` and must share the image grid (or
    is resampled onto it, nearest neighbour, with ``resample=True``); a list of paths as label is the DICOM files of
    one mask series. Values that are not paths (in-memory arrays, class indices) pass unchanged.

    Args:
        image_key: key of the image path(s).
        label_key: key of the optional label map path.
        resample: resample mismatched channels and labels onto the first channel's grid instead of raising.
        atol: tolerance on affine entries (mm) for "same grid".
        allow_missing_keys: don't raise when the image key is missing.

    Raises:
        ShapeMismatchError: channels, or image and label, differ in shape or affine (``resample=False``); the message
            names both files.
        InvalidImageError: a label with more than one channel.

    Example::

        item = LoadVolumed()({"image": ["t1.nii.gz", "flair.nii.gz"], "label": "seg.nii.gz"})
        item["image"].shape, item["label"].shape  # (2, X, Y, Z), (1, X, Y, Z)
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        resample: bool = False,
        atol: float = 1e-3,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(image_key, allow_missing_keys)
        if atol < 0:
            raise ValueError(f"`atol` must be >= 0, got {atol}.")
        self.image_key, self.label_key, self.resample, self.atol = image_key, label_key, resample, atol

    @staticmethod
    def _is_path(value: Any) -> bool:
        return isinstance(value, (str, os.PathLike))

    def load_one(self, entry: Any, channels: int | None = None) -> MetaTensor:
        """One volume: a path, or the DICOM files of one series. Returns ``(C, X, Y, Z)`` with a RAS affine."""
        if isinstance(entry, (list, tuple)):
            arr, meta = load_dicom(entry, source=Path(entry[0]).parent)
            source = str(Path(entry[0]).parent)
        else:
            arr, meta = load_checked(entry, expected_dims=3, expected_channels=channels)
            source = str(entry)
        affine = torch.as_tensor(np.asarray(meta["affine"], dtype=np.float64))
        return MetaTensor(
            torch.as_tensor(np.asarray(arr, dtype=np.float32)), affine=affine, meta={"filename_or_obj": source}
        )

    def load_image(self, value: Any) -> Any:
        """The image of a case (see the class description); non-path values are returned unchanged."""
        if self._is_path(value):
            return self.load_one(value)
        if not isinstance(value, (list, tuple)) or not value:
            return value
        volumes = [self.load_one(v) for v in value]
        if self.resample:
            ref = volumes[0]
            for i, vol in enumerate(volumes[1:], start=1):
                if not _same_grid(vol, ref, self.atol):
                    logger.info(f"resampling {_source_name(vol)} onto the grid of {_source_name(ref)}.")
                    volumes[i] = ResampleToMatch(mode="bilinear", padding_mode="zeros")(vol, ref)
        if len(volumes) == 1:
            return volumes[0]
        stack = StackSequencesd(list(range(len(volumes))), out_key="image", atol=self.atol)
        return stack(dict(enumerate(volumes)))["image"]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.load_image(d[key])
        image, label = d.get(self.image_key), d.get(self.label_key)
        series = isinstance(label, (list, tuple)) and bool(label) and all(self._is_path(v) for v in label)
        if (self._is_path(label) or series) and isinstance(image, torch.Tensor):
            lab = self.load_one(label)
            if lab.shape[0] != 1:
                raise InvalidImageError(
                    f"label {_source_name(lab)} has {lab.shape[0]} channels (shape {tuple(lab.shape)}); expected one "
                    "label map.",
                    _source_name(lab),
                )
            if not _same_grid(lab, image, self.atol):
                if not self.resample:
                    what = "spatial shape" if tuple(lab.shape[1:]) != tuple(image.shape[1:]) else "affine"
                    raise ShapeMismatchError(
                        f"label {_source_name(lab)} and image {_source_name(image)} differ in {what}: "
                        f"{tuple(lab.shape[1:])} vs {tuple(image.shape[1:])} (affines "
                        f"{np.round(lab.affine.numpy(), 4).tolist()} vs {np.round(image.affine.numpy(), 4).tolist()}).",
                        _source_name(lab),
                    )
                lab = ResampleToMatch(mode="nearest", padding_mode="zeros")(lab, image)
            d[self.label_key] = lab
        return d


# ------------------------------------------------------------------------------------------------ preprocessing


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    return x != 0


def volume_preprocessing(
    spatial_size: Sequence[int] | int = 48,
    intensity: str = "mri",
    spacing: Sequence[float] | float | None = None,
    label: bool | str = True,
    load: bool = True,
    resample: bool = False,
    label_values: Sequence[int] | None = None,
    crop_foreground: bool = True,
    ct_window: Sequence[float] = (-1000.0, 400.0),
) -> Compose:
    """The deterministic preprocessing of :func:`resolve_volume_source`, usable on its own (inference, MONAI Label).

    ``load=True`` (file items): :class:`LoadVolumed` -> RAS orientation -> optional resampling to ``spacing``
    (trilinear; nearest for the label) -> intensity (``"mri"``: per-channel z-score on non-zero voxels, background
    kept at 0; ``"ct"``: ``ct_window`` Hounsfield units mapped to [0, 1]; ``"none"``) -> crop to the non-zero
    bounding box of the image -> symmetric zero pad / centre crop to ``spatial_size`` -> label values mapped to
    ``0 .. K-1`` -> float32 image and int64 label without metadata. ``load=False`` (in-memory ``(C, *spatial)``
    arrays, e.g. MedMNIST): only the pad / crop and the typing.

    Args:
        spatial_size: output spatial size (an int for every axis, or three).
        intensity: ``"mri"``, ``"ct"`` or ``"none"``.
        spacing: target voxel size in mm, or None to keep the native grid.
        label: whether items carry a label map (``True`` or ``"map"``); ``False`` or ``"class"`` for none or a class
            index (left unchanged).
        load: whether items hold file paths to load.
        resample: let :class:`LoadVolumed` resample mismatched channels / labels (DICOM series of one study).
        label_values: stored label values, in class order (e.g. ``[0, 1, 2, 4]`` for BraTS 2021), mapped to
            ``0 .. K-1``; None keeps the stored values.
        crop_foreground: crop to the bounding box of the non-zero voxels before padding / cropping.
        ct_window: ``(low, high)`` Hounsfield units of ``"ct"``.

    Returns:
        a MONAI ``Compose``.

    Example::

        pre = volume_preprocessing((64, 64, 64), "mri", spacing=(1.5, 1.5, 1.5), label_values=[0, 1, 2, 4])
        item = pre({"image": ["t1.nii.gz", "t1ce.nii.gz", "t2.nii.gz", "flair.nii.gz"], "label": "seg.nii.gz"})
        # item["image"]: (4, 64, 64, 64) float32; item["label"]: (1, 64, 64, 64) int64 in {0, 1, 2, 3}
    """
    size = tuple(int(s) for s in ensure_tuple_rep(spatial_size, 3))
    if any(s < 1 for s in size):
        raise ValueError(f"`spatial_size` must be 3 positive ints, got {spatial_size!r}.")
    intensity = look_up_option(intensity, _INTENSITY[1:])
    label_map = label is True or label == "map"
    keys = ["image", "label"] if label_map else ["image"]
    transforms: list[Callable] = []
    if load:
        transforms.append(LoadVolumed(resample=resample))
        label_keys = ["label"] if label_map else None
        if intensity == "ct":
            transforms += ct_preset(ct_window, spacing, "RAS", "image", label_keys, load=False).transforms
        else:
            pre = mri_preset(
                "zscore", spacing=spacing, orientation="RAS", keys="image", label_keys=label_keys, load=False
            )
            transforms += pre.transforms if intensity == "mri" else pre.transforms[:-1]
        if crop_foreground:
            transforms.append(CropForegroundd(keys, source_key="image", select_fn=_nonzero, allow_smaller=True))
    transforms.append(ResizeWithPadOrCropd(keys, spatial_size=size))
    if label_map and label_values is not None and list(label_values) != list(range(len(label_values))):
        values = [int(v) for v in label_values]
        transforms.append(MapLabelValued("label", orig_labels=values, target_labels=list(range(len(values)))))
    transforms.append(EnsureTyped("image", data_type="tensor", dtype=torch.float32, track_meta=False))
    if label_map:
        transforms.append(EnsureTyped("label", data_type="tensor", dtype=torch.int64, track_meta=False))
    return Compose(transforms)


# --------------------------------------------------------------------------------------------------- detection


def _visible(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if not p.name.startswith(".")]


def _first_file(root: Path, accept: Callable[[Path], bool]) -> bool:
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(accept(Path(dirpath, f)) for f in files if not f.startswith(".")):
            return True
    return False


def _is_nifti(name: str | Path) -> bool:
    return str(name).lower().endswith(_NIFTI)


def _looks_dicom(path: Path) -> bool:
    """A DICOM suffix, a numeric suffix (UID-named files) or, without a suffix, the ``DICM`` marker."""
    suffix = path.suffix.lower()
    return suffix in (".dcm", ".dicom", ".ima") or suffix[1:].isdigit() or (suffix == "" and is_dicom_file(path))


def _has_brats_cases(root: Path) -> bool:
    for sub in _visible(root):
        if sub.is_dir() and (_BRATS_CASE.fullmatch(sub.name) or any(
            c.is_dir() and _BRATS_CASE.fullmatch(c.name) for c in _visible(sub)
        )):  # fmt: skip
            return True
    return False


def _msd_json(root: Path) -> bool:
    path = root / "dataset.json"
    if not path.is_file():
        return False
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("training"), list) and bool(meta["training"])


def detect_volume_source_kind(dataset_dir: str | os.PathLike | None) -> str:
    """Recognise the layout of ``dataset_dir`` (one of :data:`VOLUME_SOURCE_KINDS`).

    Rules, in order: None, a missing path or an empty folder -> ``"demo"``; a ``.npz`` file, or a folder whose only
    file is one ``.npz`` -> ``"medmnist"``; a ``dataset.json`` with a non-empty ``"training"`` list -> ``"msd"``;
    BraTS case folders (``BraTS2021_00000``, ``BraTS-GLI-00000-000``) at most two levels down -> ``"brats"``; NIfTI
    files in ``imagesTr/``, ``images/`` or the folder itself -> ``"nifti_folder"``; DICOM files anywhere in the tree
    -> ``"dicom_series"``; finally a folder with exactly one ``.npz`` among other files -> ``"medmnist"``.

    Args:
        dataset_dir: the path given by the user.

    Returns:
        the kind.

    Raises:
        LayoutError: a file that is not ``.npz``, or a non-empty folder matching no rule.

    Example::

        detect_volume_source_kind("../shared/data/msd_task04_hippocampus")  # 'nifti_folder' (no dataset.json)
    """
    if dataset_dir is None or str(dataset_dir) == "":
        return "demo"
    path = Path(dataset_dir)
    if not path.exists():
        return "demo"
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "medmnist"
        raise LayoutError(f"`dataset_dir` '{path}' is a file but not a MedMNIST 3D .npz file.", path)
    entries = _visible(path)
    if not entries:
        return "demo"
    npz = [p for p in entries if p.is_file() and p.suffix.lower() == ".npz"]
    if len(npz) == 1 and len(entries) == 1:
        return "medmnist"
    if _msd_json(path):
        return "msd"
    if _has_brats_cases(path):
        return "brats"
    if any((path / d).is_dir() and _first_file(path / d, _is_nifti) for d in _IMAGE_DIRS):
        return "nifti_folder"
    if any(p.is_file() and _is_nifti(p.name) for p in entries):
        return "nifti_folder"
    if _first_file(path, _looks_dicom):
        return "dicom_series"
    if len(npz) == 1:
        return "medmnist"
    raise LayoutError(
        f"`dataset_dir` '{path}' matches no supported 3D layout: expected a BraTS 2021 / 2023 folder (case folders "
        "such as BraTS2021_00000/), a Decathlon task folder with dataset.json, a MedMNIST 3D .npz file, a folder of "
        "NIfTI files (optionally imagesTr/ + labelsTr/), or a tree of DICOM series.",
        path,
    )


# ---------------------------------------------------------------------------------------------------- datalists


def _warn_synthetic(dataset_dir: Any, demo_dir: Path, num_cases: int) -> None:
    bar = "=" * 100
    logger.warning(
        f"\n{bar}\n"
        f"  NO REAL DATA: `dataset_dir` '{dataset_dir}' does not exist or is empty.\n"
        f"  Using {num_cases} SYNTHETIC BraTS-style demo volumes written to {demo_dir} (seeded ellipsoids, not MRI).\n"
        "  Results on these volumes say nothing about real images; they only show that the pipeline runs.\n"
        "  To use real data, point `dataset_dir` at a BraTS 2021 / 2023 folder, a Decathlon task folder, a MedMNIST\n"
        "  3D .npz file, a folder of NIfTI images (imagesTr/ + labelsTr/) or a folder of DICOM series, e.g.\n"
        "      python -m monai.bundle run training --config_file bundles/brats_vjepa/configs/train.json "
        "--dataset_dir /path/to/data\n"
        f"{bar}"
    )


def _nifti_channels(path: Path) -> int:
    nib = require_package("nibabel", "monai_jepa.data.resolve_volume_source", "NIfTI input")

    shape = nib.load(str(path)).shape
    return int(shape[3]) if len(shape) > 3 else 1


def _entry_channels(root: Path, image: Any) -> int:
    entries = image if isinstance(image, (list, tuple)) else [image]
    return sum(_nifti_channels(root / v) if isinstance(v, str) and _is_nifti(v) else 1 for v in entries)


def _scan_label_values(root: Path, labels: Sequence[Any]) -> list[int]:
    """Sorted union of the values of up to :data:`_MAX_LABEL_SCAN` label maps (0 always included)."""
    values = {0}
    for label in labels[:_MAX_LABEL_SCAN]:
        if isinstance(label, (list, tuple)):
            arr, _ = load_dicom([root / f for f in label])
        else:
            arr, _ = load_checked(root / label, expected_dims=3)
        values |= {int(v) for v in np.unique(np.round(arr))}
    return sorted(values)


def _label_values(datalist: dict, root: Path) -> list[int]:
    names = datalist.get("labels") or {}
    if names and all(str(k).lstrip("-").isdigit() for k in names):
        return sorted(int(k) for k in names)
    labels = [i["label"] for s in ("training", "validation", "test") for i in datalist.get(s, []) if "label" in i]
    return _scan_label_values(root, labels)


def _medmnist_datalist(path: Path) -> dict:
    from .medmnist import load_medmnist

    if path.is_dir():
        found = sorted(p for p in _visible(path) if p.is_file() and p.suffix.lower() == ".npz")
        if len(found) != 1:
            raise LayoutError(f"MedMNIST: expected one .npz file in {path}, found {[p.name for p in found]}.", path)
        path = found[0]
    _, _, info = load_medmnist(path, "val")
    if info["spatial_dims"] != 3:
        raise LayoutError(
            f"MedMNIST file {path} holds {info['spatial_dims']}D images; expected a 3D flavour (e.g. "
            "organmnist3d.npz). Use monai_jepa.data.sources.resolve_image_source for 2D files.",
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
        for split, key in (("training", "train"), ("validation", "val"), ("test", "test")):
            labels = np.asarray(npz[f"{key}_labels"]).reshape(len(npz[f"{key}_labels"]), -1).astype(np.int64)
            datalist[split] = [
                {"image": path.name, "index": i, "label": int(lab[0]) if lab.size == 1 else lab.tolist(),
                 "id": f"{path.stem}_{key}_{i:05d}", "split": split}
                for i, lab in enumerate(labels)
            ]  # fmt: skip
    datalist.update(in_channels=int(info["in_channels"]), num_classes=int(info["num_classes"]))
    return datalist


def _dicom_datalist(root: Path, sequences: Sequence[str] | None, mask_pattern: str, seed: int, **kwargs: Any) -> dict:
    """The ``dicom_series`` datalist regrouped by study: image series (one item each, or stacked as channels by
    ``sequences``) with the study's mask series, when there is exactly one, as label."""
    base = build_datalist("dicom_series", root, seed=seed, **kwargs)
    root = Path(base["root"])
    studies: dict[tuple, list[dict]] = defaultdict(list)
    for split in ("training", "validation", "test"):
        for entry in base[split]:
            studies[entry["patient_id"], entry["study_uid"] or entry["series_uid"]].append(entry)
    mask_re = re.compile(mask_pattern, re.IGNORECASE)
    items, skipped = [], []
    for (patient, _), series in sorted(studies.items()):
        masks = [s for s in series if mask_re.search(s["series_description"])]
        images = [s for s in series if s not in masks]
        label = masks[0]["image"] if len(masks) == 1 else None
        common = {"patient_id": patient, "split": series[0]["split"]}
        if label is not None:
            common["label"] = label
        if sequences is None:
            for s in images:
                name = f"{patient}_{s['study_date']}_{s['series_description'] or s['series_uid']}"
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
            reason = f"study {series[0]['study_uid']} has no series matching {missing}"
            skipped.append({"path": str(patient), "reason": reason})
            logger.warning(f"DICOM patient {patient}: {reason}; study left out.")
            continue
        name = f"{patient}_{chosen[0]['study_date']}"
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
    out: str | os.PathLike | None = None,
    **builder_kwargs: Any,
) -> dict:
    """The datalist of a 3D source, in the :func:`~monai_jepa.data.build_datalist` format plus a description.

    Layouts (``kind="auto"``: :func:`detect_volume_source_kind`) and the builders used:

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
        out: also write the datalist there (4-space JSON, atomically; on rank 0 only under ``torch.distributed``).
        builder_kwargs: extra arguments of the datalist builder (e.g. ``version`` for BraTS, ``skip_bad``).

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
    kind = detect_volume_source_kind(dataset_dir) if kind == "auto" else look_up_option(kind, VOLUME_SOURCE_KINDS)
    root = None if dataset_dir in (None, "") else Path(dataset_dir)
    if kind == "demo":
        demo = Path(demo_dir) if demo_dir is not None else Path(tempfile.gettempdir()) / "monai_jepa_demo_brats"
        if get_rank() == 0:  # one writer under torch.distributed; the other ranks wait for the files
            _warn_synthetic(dataset_dir, demo, demo_num_cases)
            make_demo_brats(demo, num_cases=demo_num_cases, size=demo_size, seed=seed)
        if is_dist():
            torch.distributed.barrier()
        datalist = build_datalist("brats", demo, fractions=fractions, seed=seed)
        datalist["name"] = "demo_brats"
    elif root is None:
        raise ValueError(f"`dataset_dir` is required for kind {kind!r}.")
    elif kind == "medmnist":
        datalist = _medmnist_datalist(root)
    elif kind == "dicom_series":
        datalist = _dicom_datalist(
            root, dicom_sequences, dicom_mask_pattern, seed, fractions=fractions, **builder_kwargs
        )
    elif kind == "nifti_folder":
        datalist = _nifti_datalist(root, seed, fractions=fractions, **builder_kwargs)
    else:
        datalist = build_datalist(kind, root, fractions=fractions, seed=seed, **builder_kwargs)
    data_root = Path(datalist["root"])
    if kind in ("brats", "demo"):
        datalist["in_channels"], datalist["modality"] = 4, {str(i): s for i, s in enumerate(datalist["sequences"])}
    elif kind in ("msd", "nifti_folder"):
        modality = datalist.get("modality") or {}
        first = next(i for s in ("training", "validation", "test") for i in datalist[s])
        datalist["in_channels"] = len(modality) if modality else _entry_channels(data_root, first["image"])
        datalist["modality"] = modality
    if datalist["task"] == "segmentation":
        datalist["label_values"] = _label_values(datalist, data_root)
        datalist["num_classes"] = len(datalist["label_values"])
        datalist["labels"] = datalist.get("labels") or {str(v): str(v) for v in datalist["label_values"]}
    elif datalist["task"] == "unlabelled":
        datalist["num_classes"] = 0
    datalist.setdefault("modality", {})
    datalist.update(source=kind, is_synthetic=kind == "demo", dataset_dir=None if root is None else str(root))
    if out is not None and get_rank() == 0:
        write_datalist(datalist, out)
    return datalist


# ------------------------------------------------------------------------------------------------------ sources


def _item_id(entry: Mapping[str, Any]) -> str:
    for key in ("id", "case_id"):
        if entry.get(key):
            return str(entry[key])
    image = entry["image"]
    while isinstance(image, (list, tuple)):
        image = image[0]
    name = Path(str(image)).name
    for ext in _NIFTI:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _absolute(root: Path, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_absolute(root, v) for v in value]
    return str(root / value)


def _intensity(datalist: Mapping[str, Any], intensity: str) -> str:
    intensity = look_up_option(intensity, _INTENSITY)
    if intensity != "auto":
        return intensity
    if datalist.get("source") == "medmnist":
        return "none"
    modality = {str(v).upper() for v in (datalist.get("modality") or {}).values()}
    return "ct" if modality == {"CT"} else "mri"


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
    cache: bool | float = False,
    num_workers: int = 0,
    max_items: int | None = None,
    demo_dir: str | os.PathLike | None = None,
    demo_num_cases: int = 8,
    demo_size: Sequence[int] = (48, 48, 48),
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    dicom_sequences: Sequence[str] | None = None,
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
        cache: cache the preprocessed items in memory (``True`` or a cache rate in (0, 1]) with a ``CacheDataset``.
        num_workers: workers used to fill the cache.
        max_items: keep only the first ``max_items`` items of the split (quick runs, tests).
        demo_dir: where synthetic demo cases are written (see :func:`volume_datalist`).
        demo_num_cases: number of demo cases.
        demo_size: demo volume shape.
        seed: seed of the demo data and of the patient-level split.
        fractions: ``(training, validation, test)`` patient fractions of file layouts.
        dicom_sequences: DICOM series-description patterns stacked as channels (see :func:`volume_datalist`).
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
    if max_items is not None and int(max_items) < 1:
        raise ValueError(f"`max_items` must be None or >= 1, got {max_items!r}.")
    if isinstance(cache, bool):
        cache_rate = 1.0 if cache else 0.0
    elif 0.0 <= float(cache) <= 1.0:
        cache_rate = float(cache)
    else:
        raise ValueError(f"`cache` must be a bool or a cache rate in [0, 1], got {cache!r}.")
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

        key = {"training": "train", "validation": "val", "test": "test"}[split]
        images, _, _ = load_medmnist(root / entries[0]["image"], key)
        items = [{"image": images[e["index"]], "label": e["label"], "id": e["id"]} for e in entries]
        pre = volume_preprocessing(size, "none", label="class", load=False)
    else:
        items = []
        for e in entries:
            item = {"image": _absolute(root, e["image"]), "id": _item_id(e)}
            if task == "segmentation":
                item["label"] = _absolute(root, e["label"])
            items.append(item)
        pre = volume_preprocessing(
            size, _intensity(datalist, intensity), spacing, label=task == "segmentation", load=True,
            resample=source == "dicom_series", label_values=datalist.get("label_values"),
        )  # fmt: skip
    full = Compose([*pre.transforms, transform]) if transform is not None else pre
    if cache_rate > 0:
        ds: Dataset = CacheDataset(items, full, cache_rate=cache_rate, num_workers=num_workers, progress=False)
    else:
        ds = Dataset(items, full)
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
