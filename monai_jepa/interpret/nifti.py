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
"""Maps written as NIfTI in the scanner space of their image, so they open in 3D Slicer / ITK-SNAP over the scan."""

from __future__ import annotations

import gzip
import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import optional_import

from monai_jepa.utils.fileio import atomic_write_bytes, output_name
from monai_jepa.utils.module import require_package

__all__ = ["SaveMapNiftid", "SaveMapNiftiD", "SaveMapNiftiDict", "save_map_nifti"]

nib, _ = optional_import("nibabel")


def save_map_nifti(heatmap: Any, path: str | os.PathLike, affine: Any = None) -> str:
    """Write a map ``(1, *spatial)`` or ``(*spatial)`` (2D or 3D) as float32 NIfTI, atomically.

    Args:
        heatmap: the map; a ``MetaTensor`` brings its own affine.
        path: output file (``.nii`` or ``.nii.gz``); its folder is created if needed.
        affine: 4x4 voxel-to-world matrix in MONAI's RAS convention; default: the ``MetaTensor`` 's, else identity.

    Returns:
        ``path`` as a string.
    """
    require_package("nibabel", "monai_jepa.interpret.save_map_nifti", "NIfTI maps")
    if affine is None and isinstance(heatmap, MetaTensor):
        affine = heatmap.affine
    data = heatmap.detach().float().cpu().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap)
    if data.ndim in (3, 4) and data.shape[0] == 1:
        data = data[0]
    if data.ndim not in (2, 3):
        raise ValueError(f"map must be (1, *spatial) or (*spatial) with 2 or 3 spatial axes, got {data.shape}.")
    matrix = np.eye(4) if affine is None else np.asarray(torch.as_tensor(affine).double().cpu(), dtype=np.float64)
    if matrix.shape != (4, 4):  # 2D affines (3x3) are embedded in 3D
        full = np.eye(4)
        full[: matrix.shape[0] - 1, : matrix.shape[1] - 1] = matrix[:-1, :-1]
        full[: matrix.shape[0] - 1, 3] = matrix[:-1, -1]
        matrix = full
    image = nib.Nifti1Image(data.astype(np.float32), matrix)
    image.header.set_xyzt_units("mm")
    payload = image.to_bytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return str(atomic_write_bytes(path, payload))


class SaveMapNiftid(MapTransform):
    """Dictionary transform writing each key (a map, e.g. ``"pred"`` after ``Invertd``) with :func:`save_map_nifti`.

    The file is ``<output_dir>/<name><output_postfix>.nii.gz``, ``name`` taken from the item's ``name_key`` (e.g. the
    pseudonymous case id of the datalist), so no source file or folder name (which may hold patient data) is reused.
    The data are returned unchanged.

    Args:
        keys: keys of the maps.
        output_dir: output folder.
        output_postfix: appended to the name.
        name_key: item key holding the output name (required in every item).
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        output_postfix: str = "_map",
        name_key: str = "id",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir, self.output_postfix, self.name_key = Path(output_dir), output_postfix, name_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        name = output_name(d, self.name_key, type(self).__name__)
        for key in self.key_iterator(d):
            save_map_nifti(d[key], self.output_dir / f"{name}{self.output_postfix}.nii.gz")
        return d


SaveMapNiftiD = SaveMapNiftiDict = SaveMapNiftid
