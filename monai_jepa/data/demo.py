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
"""Seeded synthetic demo images with class structure, for smoke runs, tutorials and tests (no download needed).

Each image is a field of random "tissue" blobs (MONAI's ``create_test_image_2d`` / ``create_test_image_3d``) under a
smooth multiplicative bias field with Gaussian noise. Class ``c >= 1`` images also contain one bright, compact
lesion-like blob whose radius grows with ``c``; class 0 images contain none. The tissue blobs stay darker than any
lesion, so the class is visible to a self-supervised encoder and a linear probe, while position, size jitter,
background and noise vary from image to image.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from monai.data import Dataset, create_test_image_2d, create_test_image_3d

__all__ = ["make_demo_images", "DemoDataset"]

logger = logging.getLogger(__name__)
_warned = False

# intensity layout: tissue blobs in [_TISSUE_LOW, _TISSUE_HIGH], lesions peak in [_LESION_LOW, 1]
_TISSUE_LOW, _TISSUE_HIGH, _LESION_LOW = 0.1, 0.6, 0.85
# lesion radius, as a fraction of the image size, for class 1 and for the last class
_LESION_RADIUS = (0.07, 0.16)


def _warn_once() -> None:
    global _warned
    if not _warned:
        logger.warning("monai_jepa demo data: these are synthetic images generated on the fly, not real medical data.")
        _warned = True


def make_demo_images(
    num_images: int, size: int = 64, spatial_dims: int = 2, num_classes: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a deterministic, class-balanced set of synthetic single-channel images.

    Args:
        num_images: number of images ``N`` (>= 1).
        size: side length of the square (2D) or cubic (3D) images, >= 16.
        spatial_dims: 2 or 3.
        num_classes: number of classes ``K`` (>= 1); labels are ``arange(N) % K`` shuffled, so classes are balanced
            to within one image.
        seed: seed of the generator; the same arguments always give the same arrays.

    Returns:
        ``(images, labels)``: float32 array ``(N, 1, *[size] * spatial_dims)`` with values in [0, 1], and int64
        array ``(N,)`` with values in ``[0, K)``.

    Example::

        images, labels = make_demo_images(100, size=64, spatial_dims=2, seed=0)  # (100, 1, 64, 64), (100,)
    """
    if not isinstance(num_images, (int, np.integer)) or num_images < 1:
        raise ValueError(f"`num_images` must be an int >= 1, got {num_images!r}.")
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"`size` must be an int >= 16, got {size!r}.")
    if spatial_dims not in (2, 3):
        raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims!r}.")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an int >= 1, got {num_classes!r}.")
    _warn_once()
    rs = np.random.RandomState(seed)
    labels = rs.permutation(np.arange(num_images) % num_classes).astype(np.int64)
    shape = (size,) * spatial_dims
    coords = np.stack(np.meshgrid(*[np.arange(size, dtype=np.float32)] * spatial_dims, indexing="ij"))
    radii = np.linspace(*_LESION_RADIUS, max(num_classes - 1, 1)) * size
    rad_max, rad_min = max(2, size // 8), max(1, size // 32)
    images = np.empty((num_images, 1, *shape), dtype=np.float32)
    for i, label in enumerate(labels):
        # random tissue blobs, then (always drawn, so every class consumes the same random numbers) a lesion
        if spatial_dims == 2:
            blobs, _ = create_test_image_2d(size, size, 10, rad_max, rad_min, num_seg_classes=1, random_state=rs)
        else:
            blobs, _ = create_test_image_3d(size, size, size, 10, rad_max, rad_min, num_seg_classes=1, random_state=rs)
        img = _TISSUE_LOW + (_TISSUE_HIGH - _TISSUE_LOW) * blobs.astype(np.float32)
        radius = radii[max(label - 1, 0)] * rs.uniform(0.9, 1.1)
        centre = rs.uniform(radius + 1, size - radius - 1, size=spatial_dims).astype(np.float32)
        amplitude = rs.uniform(_LESION_LOW, 1.0)
        if label > 0:
            dist2 = ((coords - centre.reshape(-1, *(1,) * spatial_dims)) ** 2).sum(0) / radius**2
            img = np.maximum(img, amplitude * np.exp(-(dist2**2)))  # flat-topped, smooth-edged blob
        # smooth multiplicative bias field (low-frequency cosines) and Gaussian acquisition noise
        freq, phase = rs.uniform(0.5, 1.5, spatial_dims), rs.uniform(0, 2 * np.pi, spatial_dims)
        bias = np.cos(
            np.pi * freq.reshape(-1, *(1,) * spatial_dims) * coords / size + phase.reshape(-1, *(1,) * spatial_dims)
        )
        img = img * (1.0 + rs.uniform(0.0, 0.15) * bias.mean(0))
        img = img + rs.normal(0.0, rs.uniform(0.01, 0.04), size=shape)
        images[i, 0] = np.clip(img, 0.0, 1.0)
    return images, labels


class DemoDataset(Dataset):
    """MONAI ``Dataset`` over :func:`make_demo_images`: items ``{"image": (1, *spatial) float32, "label": int}``.

    Args:
        num_images: number of images.
        size: image side length (>= 16).
        spatial_dims: 2 or 3.
        seed: seed of the generator (the dataset is identical for identical arguments).
        transform: optional callable applied to each item dictionary (a copy, so the stored data are never changed).
        num_classes: number of classes.

    Example::

        ds = DemoDataset(200, size=64, spatial_dims=2, seed=0, transform=RandMultiViewd(keys="image"))
        item = ds[0]  # {"image": ..., "label": 0 or 1, "image_global": ..., "image_local": ...}
    """

    def __init__(
        self,
        num_images: int,
        size: int = 64,
        spatial_dims: int = 2,
        seed: int = 0,
        transform: Callable[..., Any] | Sequence[Callable[..., Any]] | None = None,
        num_classes: int = 2,
    ) -> None:
        self.images, self.labels = make_demo_images(num_images, size, spatial_dims, num_classes, seed)
        self.num_classes = num_classes
        data = [{"image": image, "label": int(label)} for image, label in zip(self.images, self.labels)]
        super().__init__(data=data, transform=transform)

    def _transform(self, index: int) -> Any:
        data_i = dict(self.data[index])
        return self.transform(data_i) if self.transform is not None else data_i
