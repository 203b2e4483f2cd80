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
"""PNG overlays of a map (attention, predictor error, attribution) on its image, as a function and a transform."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import optional_import

from monai_jepa.utils.fileio import atomic_write, output_name
from monai_jepa.utils.module import require_package

__all__ = ["SaveOverlayPNGd", "SaveOverlayPNGD", "SaveOverlayPNGDict", "overlay_slice", "save_overlay_png"]

Figure, _ = optional_import("matplotlib.figure", name="Figure")
FigureCanvasAgg, _ = optional_import("matplotlib.backends.backend_agg", name="FigureCanvasAgg")


def _numpy(x: Any) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)


def overlay_slice(
    image: Any, heatmap: Any, axis: int = -1, index: int | None = None
) -> tuple[np.ndarray, np.ndarray, int | None]:
    """The 2D planes of ``image`` and ``heatmap`` to draw.

    Args:
        image: ``(C, *spatial)``; the first channel is drawn.
        heatmap: ``(1, *spatial)`` or ``(*spatial)`` on the image grid.
        axis: spatial axis across which a 3D input is cut (-1: the last, axial in RAS; 0 picks a frame of 2D+t).
        index: plane index along ``axis``; None takes the plane with the largest heat sum.

    Returns:
        ``(image_plane, heat_plane, index)`` (``index`` None for 2D inputs).
    """
    img, heat = _numpy(image)[0], _numpy(heatmap)
    heat = heat.reshape(img.shape) if heat.size == img.size else heat
    if heat.shape != img.shape:
        raise ValueError(f"heatmap of shape {heat.shape} does not match the image grid {img.shape}.")
    if img.ndim == 2:
        return img, heat, None
    if img.ndim != 3:
        raise ValueError(f"image must be (C, H, W) or (C, D, H, W), got spatial shape {img.shape}.")
    axis = axis % 3
    if index is None:
        sums = np.nan_to_num(heat).sum(axis=tuple(a for a in range(3) if a != axis))
        index = int(np.argmax(sums))
    if not 0 <= index < img.shape[axis]:
        raise ValueError(f"index {index} is outside axis {axis} of size {img.shape[axis]}.")
    return np.take(img, index, axis=axis), np.take(heat, index, axis=axis), index


def save_overlay_png(
    image: Any,
    heatmap: Any,
    path: str | os.PathLike,
    axis: int = -1,
    index: int | None = None,
    alpha: float = 0.45,
    title: str = "",
    cmap: str = "jet",
) -> str:
    """Draw ``heatmap`` over ``image`` (one plane of a 3D input, see :func:`overlay_slice`), written atomically as PNG.

    Args:
        image: ``(C, *spatial)`` tensor or array.
        heatmap: map on the image grid, ``(1, *spatial)`` or ``(*spatial)``.
        path: output PNG; its folder is created if needed.
        axis: cut axis of a 3D input.
        index: plane index; None: the plane with the largest heat sum.
        alpha: opacity of the map.
        title: figure title (the plane index is appended for 3D inputs).
        cmap: matplotlib colour map of the heat.

    Returns:
        ``path`` as a string.
    """
    require_package("matplotlib", "monai_jepa.interpret.save_overlay_png", "PNG overlays")
    img, heat, index = overlay_slice(image, heatmap, axis, index)
    fig = Figure(figsize=(4.8, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lo, hi = np.percentile(img, [0.5, 99.5]) if img.size else (0.0, 1.0)
    ax.imshow(img.T, cmap="gray", origin="lower", vmin=lo, vmax=hi if hi > lo else lo + 1)
    shown = ax.imshow(heat.T, cmap=cmap, origin="lower", alpha=alpha)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    ax.set_axis_off()
    ax.set_title(title + ("" if index is None else f" (plane {index} of axis {axis % 3})"), fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return str(path)


class SaveOverlayPNGd(MapTransform):
    """Dictionary transform writing :func:`save_overlay_png` of each key (a map) over ``image_key``.

    The file is ``<output_dir>/<name><output_postfix>.png`` with ``name`` from the item's ``name_key`` (the
    pseudonymous case id of the datalist), so no source file or folder name (which may hold patient data) is reused;
    an item without it is refused. The data are returned unchanged.

    Args:
        keys: keys of the maps (``(1, *spatial)``), e.g. ``"pred"`` in a MONAI evaluator's postprocessing.
        output_dir: output folder.
        image_key: key of the image drawn underneath (same grid as the maps).
        output_postfix: appended to the file name.
        name_key: item key holding the output name.
        axis: cut axis of 3D inputs (see :func:`overlay_slice`).
        alpha: opacity of the map.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        image_key: str = "image",
        output_postfix: str = "_overlay",
        name_key: str = "id",
        axis: int = -1,
        alpha: float = 0.45,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.image_key, self.output_postfix, self.name_key = image_key, output_postfix, name_key
        self.axis, self.alpha = axis, alpha

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        name = output_name(d, self.name_key, type(self).__name__)
        for key in self.key_iterator(d):
            path = self.output_dir / f"{name}{self.output_postfix}.png"
            save_overlay_png(d[self.image_key], d[key], path, axis=self.axis, alpha=self.alpha, title=f"{name}: {key}")
        return d


SaveOverlayPNGD = SaveOverlayPNGDict = SaveOverlayPNGd
