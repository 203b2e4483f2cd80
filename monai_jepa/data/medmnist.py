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
"""MedMNIST v2 ``.npz`` files (any flavour: 2D grayscale, 2D RGB, 3D) as channel-first float arrays and a Dataset.

A MedMNIST file holds ``{train,val,test}_images`` (``(N, H, W)``, ``(N, H, W, 3)`` or ``(N, D, H, W)``, uint8) and
``{train,val,test}_labels`` (``(N, 1)`` class index, or ``(N, K)`` 0/1 for multi-label ChestMNIST). Files are read
locally; nothing is downloaded. MedMNIST is CC BY 4.0 (Yang et al., MedMNIST v2, Sci Data 2023); cite it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import Dataset
from monai.transforms import Resize
from monai.utils import convert_to_numpy, ensure_tuple_rep, look_up_option

from .errors import InvalidImageError, LayoutError, MissingFileError, ShapeMismatchError, UnreadableFileError

__all__ = ["MEDMNIST_FLAVOURS", "MEDMNIST_TASKS", "load_medmnist", "MedMNISTDataset"]

#: the MedMNIST v2 flavours: name -> (task, number of classes, spatial dims); file names may add ``_64`` etc.
MEDMNIST_FLAVOURS: dict[str, tuple[str, int, int]] = {
    "pathmnist": ("multiclass", 9, 2),
    "chestmnist": ("multilabel", 14, 2),
    "dermamnist": ("multiclass", 7, 2),
    "octmnist": ("multiclass", 4, 2),
    "pneumoniamnist": ("binary", 2, 2),
    "retinamnist": ("ordinal", 5, 2),
    "breastmnist": ("binary", 2, 2),
    "bloodmnist": ("multiclass", 8, 2),
    "tissuemnist": ("multiclass", 8, 2),
    "organamnist": ("multiclass", 11, 2),
    "organcmnist": ("multiclass", 11, 2),
    "organsmnist": ("multiclass", 11, 2),
    "organmnist3d": ("multiclass", 11, 3),
    "nodulemnist3d": ("binary", 2, 3),
    "adrenalmnist3d": ("binary", 2, 3),
    "fracturemnist3d": ("multiclass", 3, 3),
    "vesselmnist3d": ("binary", 2, 3),
    "synapsemnist3d": ("binary", 2, 3),
}
#: the label tasks of :func:`load_medmnist`.
MEDMNIST_TASKS = ("binary", "multiclass", "ordinal", "multilabel")
_SPLITS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _flavour(path: Path) -> str | None:
    stem = path.name.lower()
    stem = stem[:-4] if stem.endswith(".npz") else stem
    stem = re.sub(r"_\d+$", "", stem)
    return stem if stem in MEDMNIST_FLAVOURS else None


def _channel_first(images: np.ndarray, spatial_dims: int | None, path: Path, key: str) -> np.ndarray:
    """``(N, H, W)`` / ``(N, H, W, C)`` / ``(N, D, H, W)`` / ``(N, D, H, W, C)`` -> ``(N, C, *spatial)``."""
    channel_last = images.ndim >= 4 and images.shape[-1] in (1, 3)
    if spatial_dims is None:
        spatial_dims = 3 if images.ndim == 5 or images.ndim == 4 and not channel_last else 2
    if images.ndim == spatial_dims + 1:
        return images[:, None]
    if images.ndim == spatial_dims + 2 and channel_last:
        return np.moveaxis(images, -1, 1)
    expected = {2: "(N, H, W) or (N, H, W, 1|3)", 3: "(N, D, H, W) or (N, D, H, W, 1|3)"}
    raise InvalidImageError(
        f"{path} key {key!r}: image array of shape {images.shape}; expected " f"{expected[spatial_dims]}.",
        path=path,
    )


def _to_unit_range(images: np.ndarray, path: Path, key: str) -> np.ndarray:
    if images.dtype == np.bool_:
        return images.astype(np.float32)
    if np.issubdtype(images.dtype, np.integer):
        if images.size and images.min() < 0:
            raise InvalidImageError(f"{path} key {key!r}: negative intensities; expected unsigned images.", path)
        scale = 255.0 if images.dtype == np.uint8 else float(np.iinfo(images.dtype).max)
        return images.astype(np.float32) / scale
    if not np.issubdtype(images.dtype, np.floating):
        raise InvalidImageError(f"{path} key {key!r}: image dtype {images.dtype}; expected integers or floats.", path)
    if not np.isfinite(images).all():
        raise InvalidImageError(f"{path} key {key!r}: NaN or infinite intensities.", path=path)
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
    if low < 0 or high > 255:
        raise InvalidImageError(
            f"{path} key {key!r}: intensities in [{low}, {high}]; expected [0, 1] or [0, 255].", path
        )
    return (images / 255.0 if high > 1.0 else images).astype(np.float32)


def _as_int_labels(labels: np.ndarray, path: Path, key: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2:
        raise LayoutError(f"{path} key {key!r}: labels of shape {labels.shape}; expected (N,), (N, 1) or (N, K).", path)
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)):
        if not np.issubdtype(labels.dtype, np.floating) or not np.all(np.mod(labels, 1) == 0):
            raise LayoutError(f"{path} key {key!r}: labels must be integers, got dtype {labels.dtype}.", path=path)
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise LayoutError(f"{path} key {key!r}: negative label {labels.min()}; expected class indices >= 0.", path)
    return labels


def load_medmnist(
    npz_path: str | os.PathLike, split: str = "train", task: str | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Load one split of a MedMNIST ``.npz`` file as channel-first float32 images in [0, 1] and integer labels.

    The flavour (and so the task and class count) is recognised from the file name (``pneumoniamnist.npz``,
    ``organmnist3d_64.npz``, see :data:`MEDMNIST_FLAVOURS`); for other files it is inferred: several label columns
    -> ``"multilabel"``, else ``"binary"`` / ``"multiclass"`` from the largest label over all splits of the file.
    ``"ordinal"`` is used for RetinaMNIST or when the caller says so.

    Args:
        npz_path: the ``.npz`` file.
        split: ``"train"``, ``"val"`` or ``"test"`` (``"training"``, ``"validation"`` are accepted).
        task: force the task (one of :data:`MEDMNIST_TASKS`), e.g. ``"ordinal"`` for an ordinal custom file.

    Returns:
        ``(images, labels, info)``: float32 ``(N, C, *spatial)`` in [0, 1]; int64 ``(N,)`` (class indices) or
        ``(N, K)`` (multi-label 0/1); ``info`` with ``task``, ``num_classes``, ``spatial_dims``, ``in_channels``,
        ``size`` (last spatial side), ``spatial_shape``, ``num_samples``, ``flavour`` (or ``None``), ``split``,
        ``path``.

    Raises:
        ValueError: an unknown ``split`` or ``task``.
        MissingFileError: the file does not exist.
        UnreadableFileError: not a readable ``.npz``.
        LayoutError: a missing ``{split}_images`` / ``{split}_labels`` key, or labels that do not fit the task.
        ShapeMismatchError: different numbers of images and labels.
        InvalidImageError: an image array of unexpected shape, dtype or range.

    Example::

        images, labels, info = load_medmnist("pneumoniamnist.npz", "train")
        # images (4708, 1, 28, 28) float32, labels (4708,) int64, info["task"] == "binary"
    """
    split = look_up_option(split, _SPLITS)
    if task is not None:
        task = look_up_option(task, MEDMNIST_TASKS)
    path = Path(npz_path)
    if not path.is_file():
        raise MissingFileError(f"MedMNIST file {path} does not exist.", path=path)
    flavour = _flavour(path)
    known = MEDMNIST_FLAVOURS.get(flavour) if flavour else None
    image_key, label_key = f"{split}_images", f"{split}_labels"
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            missing = [k for k in (image_key, label_key) if k not in keys]
            if missing:
                raise LayoutError(f"MedMNIST file {path} lacks the key(s) {missing}; found keys {keys}.", path=path)
            raw_images, raw_labels = npz[image_key], npz[label_key]
            all_labels = {k: npz[k] for k in keys if k.endswith("_labels")} if known is None else {}
    except LayoutError:
        raise
    except Exception as e:
        raise UnreadableFileError(f"MedMNIST file {path} cannot be read: {type(e).__name__}: {e}", path=path) from e

    images = _channel_first(raw_images, known[2] if known else None, path, image_key)
    images = np.ascontiguousarray(_to_unit_range(images, path, image_key))
    labels = _as_int_labels(raw_labels, path, label_key)
    if len(labels) != len(images):
        raise ShapeMismatchError(
            f"{path}: {len(images)} images under {image_key!r} but {len(labels)} labels under {label_key!r}.", path
        )
    if task is None:
        task = known[0] if known else ("multilabel" if labels.shape[1] > 1 else None)
    if task == "multilabel":
        num_classes = labels.shape[1]
        if labels.size and labels.max() > 1:
            raise LayoutError(f"{path} key {label_key!r}: multi-label values must be 0 or 1, got {labels.max()}.", path)
    else:
        if labels.shape[1] != 1:
            raise LayoutError(
                f"{path} key {label_key!r}: labels of shape {raw_labels.shape} for task {task!r}; expected (N, 1).",
                path=path,
            )
        if known is not None:
            num_classes = known[1]
        else:
            others = [_as_int_labels(v, path, k) for k, v in all_labels.items()]
            num_classes = max(2, 1 + max(int(v.max()) for v in [labels, *others] if v.size))
        task = task or ("binary" if num_classes == 2 else "multiclass")
        if labels.size and labels.max() >= num_classes:
            raise LayoutError(
                f"{path} key {label_key!r}: label {labels.max()} out of range for {num_classes} classes.", path=path
            )
        labels = labels[:, 0]
    info = {
        "task": task,
        "num_classes": int(num_classes),
        "spatial_dims": images.ndim - 2,
        "in_channels": int(images.shape[1]),
        "size": int(images.shape[-1]),
        "spatial_shape": tuple(int(s) for s in images.shape[2:]),
        "num_samples": len(images),
        "flavour": flavour,
        "split": split,
        "path": str(path),
    }
    return images, labels, info


class MedMNISTDataset(Dataset):
    """MONAI ``Dataset`` over one split of a MedMNIST file: items ``{"image": (C, *spatial) float32, "label"}``.

    ``"label"`` is an ``int`` (binary, multiclass, ordinal) or an int64 ``(K,)`` array (multi-label).

    Args:
        npz_path: the ``.npz`` file.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: optional callable applied to a copy of each item.
        image_size: optional spatial size (an int for every side, or one per spatial dim); images are resized
            (bilinear / trilinear with anti-aliasing) when an item is read, and stay in [0, 1].
        task: force the task, see :func:`load_medmnist`.

    Attributes:
        images, labels, info: as returned by :func:`load_medmnist` (``info["size"]`` is the original size).

    Example::

        ds = MedMNISTDataset("pneumoniamnist.npz", "train", image_size=64)
        ds[0]["image"].shape  # (1, 64, 64)
    """

    def __init__(
        self,
        npz_path: str | os.PathLike,
        split: str = "train",
        transform: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        image_size: int | Sequence[int] | None = None,
        task: str | None = None,
    ) -> None:
        self.images, self.labels, self.info = load_medmnist(npz_path, split, task)
        self.num_classes = self.info["num_classes"]
        spatial_dims = self.info["spatial_dims"]
        self.resize: Resize | None = None
        if image_size is not None:
            size = ensure_tuple_rep(image_size, spatial_dims)
            if not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
                raise ValueError(f"`image_size` must be positive int(s) for {spatial_dims} dims, got {image_size!r}.")
            mode = "bilinear" if spatial_dims == 2 else "trilinear"
            self.resize = Resize(spatial_size=size, mode=mode, align_corners=False, anti_aliasing=True)
        multilabel = self.info["task"] == "multilabel"
        data = [
            {"image": image, "label": label.copy() if multilabel else int(label)}
            for image, label in zip(self.images, self.labels)
        ]
        super().__init__(data=data, transform=transform)

    def _transform(self, index: int) -> Any:
        item = dict(self.data[index])
        if self.resize is not None:
            item["image"] = np.clip(convert_to_numpy(self.resize(item["image"])), 0.0, 1.0).astype(np.float32)
        return self.transform(item) if self.transform is not None else item
