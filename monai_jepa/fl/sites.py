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
"""Partition of one datalist into the datasets of simulated sites (IID or by an image statistic, non-IID)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import look_up_option

__all__ = ["SITE_SPLITS", "image_statistic", "site_datalist"]

#: how :func:`site_datalist` shares the items among the sites
SITE_SPLITS = ("random", "size", "intensity")


def _first_image(item: Mapping[str, Any], root: Path) -> Path:
    image = item["image"]
    image = image[0] if isinstance(image, (list, tuple)) else image
    path = Path(image)
    return path if path.is_absolute() else root / path


def image_statistic(path: str | os.PathLike, statistic: str) -> float:
    """``"size"``: the number of voxels of the image at ``path``; ``"intensity"``: its mean raw intensity over the
    non-zero voxels (read with MONAI's ``LoadImage``)."""
    from monai.transforms import LoadImage

    statistic = look_up_option(statistic, ("size", "intensity"))
    image = LoadImage(image_only=True)(str(path))
    if statistic == "size":
        return float(np.prod(image.shape))
    values = image[image != 0]
    return float(values.float().mean()) if values.numel() else 0.0


def site_datalist(
    datalist: Mapping[str, Any] | str | os.PathLike,
    num_sites: int,
    site_index: int,
    split_by: str = "random",
    seed: int = 0,
    splits: Sequence[str] = ("training", "validation"),
) -> dict:
    """The datalist of one simulated site: each of ``splits`` restricted to the site's share of its items.

    ``split_by="random"`` (IID sites): the items are shuffled with ``seed`` and cut into ``num_sites`` contiguous
    parts of (nearly) equal size. ``"size"`` / ``"intensity"`` (non-IID sites): the items are sorted by the number of
    voxels / the mean non-zero raw intensity of their (first) image (:func:`image_statistic`), then cut the same way:
    site 0 holds the smallest / darkest images, the last site the largest / brightest. Every item belongs to exactly
    one site; the other keys of the datalist are kept, and ``"site"`` records the partition.

    Args:
        datalist: a datalist dict (``root`` and the lists of ``splits``, as written by
            :func:`~monai_jepa.data.volume_datalist`) or the path of its JSON file.
        num_sites: number of sites (1 returns every item).
        site_index: the site, in ``0 .. num_sites - 1``.
        split_by: one of :data:`SITE_SPLITS`.
        seed: seed of the random partition.
        splits: the datalist lists to partition (a missing one stays missing).

    Returns:
        a new datalist dict.

    Raises:
        ValueError: a bad ``num_sites`` / ``site_index``, or a split with fewer items than sites.
        FileNotFoundError: ``datalist`` names a file that does not exist.

    Example::

        site = site_datalist("outputs/datalist.json", num_sites=3, site_index=0, split_by="size")
        len(site["training"]), site["site"]  # 67, {'index': 0, 'num_sites': 3, 'split_by': 'size', 'seed': 0}
    """
    if not isinstance(datalist, Mapping):
        path = Path(datalist)
        if not path.is_file():
            raise FileNotFoundError(f"datalist file {path} does not exist (expected a JSON datalist).")
        datalist = json.loads(path.read_text())
    if int(num_sites) != num_sites or num_sites < 1:
        raise ValueError(f"num_sites must be a positive integer, got {num_sites!r}.")
    if int(site_index) != site_index or not 0 <= site_index < num_sites:
        raise ValueError(f"site_index must be an integer in [0, {num_sites - 1}], got {site_index!r}.")
    split_by = look_up_option(split_by, SITE_SPLITS)
    root = Path(datalist.get("root", "."))
    out = dict(datalist)
    for split in splits:
        items = list(datalist.get(split) or [])
        if split not in datalist:
            continue
        if len(items) < num_sites:
            raise ValueError(f"datalist split '{split}' has {len(items)} items, fewer than num_sites={num_sites}.")
        if split_by == "random":
            order = np.random.default_rng(seed).permutation(len(items))
        else:
            stats = [image_statistic(_first_image(item, root), split_by) for item in items]
            order = np.argsort(np.asarray(stats), kind="stable")
        share = np.array_split(order, num_sites)[int(site_index)]
        out[split] = [items[i] for i in sorted(share)]
    out["site"] = {"index": int(site_index), "num_sites": int(num_sites), "split_by": split_by, "seed": int(seed)}
    return out
