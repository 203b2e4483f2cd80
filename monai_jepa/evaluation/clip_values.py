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
"""Sequence-level values of cine clips for regression probes: a table's value per clip (read into the datalist by
:func:`~monai_jepa.data.cine.clip_targets`), or the area ejection fraction measured on the clip's ED / ES masks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.utils import look_up_option

from monai_jepa.data.cine import load_cine, load_frame_mask

__all__ = ["clip_area_ef", "clip_values"]


def clip_area_ef(item: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> float | None:
    """Area ejection fraction of a clip with ED and ES masks: ``100 * (1 - ES area / ED area)`` in percent.

    A sequence-level value that a labelled cine dataset carries without a table (Sunnybrook's endocardium contours,
    ACDC's LV cavity with ``label_value=3``): one slice's share of the ventricle's ejection fraction.

    Args:
        item: a datalist item (``image``, ``label_ed``, ``label_es``, optional ``slice_index`` and ``label_value``:
            the class of a multi-class mask to measure, default every non-zero pixel).
        base_dir: the folder relative mask paths start from (the datalist's ``root``).

    Returns:
        the value, or None when the item has no ED / ES masks or the ED mask is empty.
    """
    if not {"label_ed", "label_es"} <= set(item):
        return None
    clip, _ = load_cine(item["image"], slice_index=item.get("slice_index"))
    shape = clip.shape[-2:]
    base = Path(base_dir) if base_dir is not None else Path(".")
    areas = [
        float(load_frame_mask(base / item[k], shape, item.get("slice_index"), item.get("label_value")).sum())
        for k in ("label_ed", "label_es")
    ]
    return None if areas[0] <= 0 else 100.0 * (1.0 - areas[1] / areas[0])


def clip_values(
    items: Sequence[Mapping[str, Any]], base_dir: str | os.PathLike | None = None, source: str = "auto"
) -> tuple[list[dict[str, Any]], list[float]]:
    """The clips of ``items`` that carry a sequence-level value, and the values, for regression probes.

    Args:
        items: datalist items (image paths absolute, e.g. from ``monai.data.load_decathlon_datalist``).
        base_dir: the folder relative mask paths start from (the datalist's ``root``).
        source: ``"table"`` (each item's ``"target"``, from :func:`~monai_jepa.data.cine.clip_targets`), ``"area_ef"``
            (:func:`clip_area_ef` of the ED / ES masks) or ``"auto"`` (``"table"`` when an item has a target, else
            ``"area_ef"``).

    Returns:
        ``(items, values)`` of the clips with a value, in the input order.
    """
    source = look_up_option(source, ("auto", "table", "area_ef"))
    if source == "auto":
        source = "table" if any("target" in i for i in items) else "area_ef"
    kept, values = [], []
    for item in items:
        value = item.get("target") if source == "table" else clip_area_ef(item, base_dir)
        if value is not None:
            kept.append(dict(item))
            values.append(float(value))
    return kept, values
