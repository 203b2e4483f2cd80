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
"""Synthetic BraTS-style multi-sequence brain MRI for demos and tests (no download, seeded, deterministic)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from monai.utils import optional_import

from monai_jepa.utils.module import require_package

gaussian_filter, _ = optional_import("scipy.ndimage", name="gaussian_filter")

__all__ = ["make_demo_brats", "brats_dir_or_demo", "DEMO_BRATS_CONTRASTS"]

logger = logging.getLogger(__name__)

#: per-sequence intensities of (background, csf, grey/white tissue, oedema, necrosis, enhancing rim)
DEMO_BRATS_CONTRASTS = {
    "t1": (0.0, 250.0, 700.0, 500.0, 300.0, 650.0),
    "t1ce": (0.0, 250.0, 700.0, 520.0, 280.0, 1400.0),
    "t2": (0.0, 1500.0, 600.0, 1200.0, 1600.0, 900.0),
    "flair": (0.0, 200.0, 600.0, 1300.0, 400.0, 900.0),
}


def _ellipsoid(grid: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return (((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0)


def make_demo_brats(
    root: str | os.PathLike, num_cases: int = 8, size: Sequence[int] = (48, 48, 48), seed: int = 0
) -> list[Path]:
    """Write a BraTS 2021-style folder of synthetic cases (``<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``).

    Each case is a brain ellipsoid (random size and position) with smooth tissue texture and a CSF-like core, and a
    tumour: an oedema shell (label 2) around an enhancing rim (label 4) around a necrotic core (label 1). The four
    sequences share the label map but have different contrasts (:data:`DEMO_BRATS_CONTRASTS`), e.g. a bright enhancing
    rim in T1ce and bright oedema in FLAIR, plus Rician-like noise. All volumes of a case have the same 1 mm affine
    (RAS, origin at the volume centre). The data are synthetic and only meant to exercise pipelines.

    Args:
        root: output folder (created); existing case files are overwritten.
        num_cases: number of cases (>= 1).
        size: volume shape ``(X, Y, Z)``, each >= 16.
        seed: seed of the generator; the same arguments give the same files.

    Returns:
        the case folders, sorted.

    Example::

        make_demo_brats("/tmp/demo_brats", num_cases=4, size=(32, 32, 32))
        datalist = build_datalist("brats", "/tmp/demo_brats")  # 4 cases, 4 sequences each
    """
    nib = require_package("nibabel", "monai_jepa.data.make_demo_brats", "writing the NIfTI demo volumes")
    require_package("scipy", "monai_jepa.data.make_demo_brats", "the demo volumes' smooth texture")
    size = tuple(int(s) for s in size)
    if len(size) != 3 or any(s < 16 for s in size):
        raise ValueError(f"`size` must be 3 ints >= 16, got {size!r}.")
    if int(num_cases) < 1:
        raise ValueError(f"`num_cases` must be >= 1, got {num_cases!r}.")
    root = Path(root)
    logger.warning(
        f"SYNTHETIC DATA: writing {num_cases} synthetic BraTS-style demo cases of shape {size} to {root}; "
        "these are not real MRI and results on them mean nothing clinically."
    )
    rng = np.random.RandomState(seed)
    shape = np.asarray(size, dtype=float)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in size], indexing="ij"))
    affine = np.eye(4)
    affine[:3, 3] = -(shape - 1) / 2.0
    folders = []
    for i in range(int(num_cases)):
        case = f"BraTS2021_{i:05d}"
        folder = root / case
        folder.mkdir(parents=True, exist_ok=True)
        centre = shape / 2 + rng.uniform(-0.05, 0.05, 3) * shape
        radii = shape * rng.uniform(0.36, 0.44, 3)
        brain = _ellipsoid(grid, centre, radii) <= 1.0
        csf = _ellipsoid(grid, centre, radii * rng.uniform(0.15, 0.25, 3)) <= 1.0
        # tumour centre inside the brain, away from its border
        t_centre = centre + rng.uniform(-0.4, 0.4, 3) * radii
        t_radius = float(rng.uniform(0.12, 0.18) * shape.min())
        dist = np.sqrt(_ellipsoid(grid, t_centre, np.full(3, t_radius)))
        seg = np.zeros(size, dtype=np.uint8)
        seg[(dist <= 1.8) & brain] = 2
        seg[(dist <= 1.0) & brain] = 4
        seg[(dist <= 0.6) & brain] = 1
        texture = gaussian_filter(rng.standard_normal(size), sigma=2.0)
        texture /= texture.std() + 1e-8
        for seq, (bg, c_csf, c_tissue, c_ed, c_ncr, c_et) in DEMO_BRATS_CONTRASTS.items():
            img = np.full(size, bg)
            img[brain] = c_tissue * (1.0 + 0.08 * texture[brain])
            img[brain & csf] = c_csf
            for label, value in ((2, c_ed), (4, c_et), (1, c_ncr)):
                img[seg == label] = value * (1.0 + 0.05 * texture[seg == label])
            img = gaussian_filter(img, sigma=0.7)
            noise = rng.standard_normal((2, *size)) * 20.0
            img = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)  # Rician-like, non-negative
            img[~brain] = 0.0  # skull-stripped, as distributed by BraTS
            nib.save(nib.Nifti1Image(img.astype(np.float32), affine), folder / f"{case}_{seq}.nii.gz")
        nib.save(nib.Nifti1Image(seg, affine), folder / f"{case}_seg.nii.gz")
        folders.append(folder)
    return folders


def brats_dir_or_demo(
    dataset_dir: str | os.PathLike | None,
    demo_dir: str | os.PathLike,
    num_cases: int = 8,
    size: Sequence[int] = (48, 48, 48),
    seed: int = 0,
) -> str:
    """``dataset_dir`` when it is an existing folder, else a synthetic demo folder written to ``demo_dir``.

    Bundles call this so that they run end to end without data; the fallback is logged as synthetic.

    Args:
        dataset_dir: a BraTS folder, or None / a missing path for the demo data.
        demo_dir: where to write the demo cases (see :func:`make_demo_brats`).
        num_cases: number of demo cases.
        size: demo volume shape.
        seed: demo seed.

    Returns:
        the folder to read, as a string.

    Example::

        root = brats_dir_or_demo("/data/BraTS2021_Training_Data", "./outputs/demo_data")
    """
    if dataset_dir is not None and Path(dataset_dir).is_dir():
        return str(dataset_dir)
    logger.warning(f"dataset_dir {dataset_dir!r} is not a folder: using SYNTHETIC demo BraTS data in {demo_dir}.")
    make_demo_brats(demo_dir, num_cases=num_cases, size=size, seed=seed)
    return str(demo_dir)
