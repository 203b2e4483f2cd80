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
"""DICOM Segmentation (SEG) objects from label maps, so that results go back into a hospital's PACS next to the
series they were computed on."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_jepa.data.dicom import read_header, sort_series
from monai_jepa.data.errors import InvalidImageError, ShapeMismatchError
from monai_jepa.utils.fileio import atomic_write
from monai_jepa.utils.module import require_package

__all__ = ["write_dicom_seg"]

_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def write_dicom_seg(
    label: Any,
    source_files: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    class_names: Sequence[str],
    label_values: Sequence[int] | None = None,
    series_description: str = "monai_jepa segmentation",
    algorithm_name: str = "monai_jepa",
    algorithm_version: str | None = None,
    series_number: int = 900,
) -> Path:
    """Write a label map computed on a DICOM series as a binary DICOM SEG object that references that series.

    The label map is on the grid of :func:`~monai_jepa.data.load_dicom` for the same files (``X`` columns, ``Y``
    rows, ``Z`` slices in :func:`~monai_jepa.data.dicom.sort_series` order), e.g. a bundle's prediction inverted to
    the input grid. One segment per class (``class_names[k]`` for ``label_values[k]``, default ``1 .. K``); the SEG
    shares the series' study, patient and frame of reference, and each frame references its source slice. Written
    with ``highdicom``, atomically.

    Args:
        label: integer label map ``(X, Y, Z)`` or ``(1, X, Y, Z)`` (array or tensor).
        source_files: the DICOM files of the series (any order).
        out: the SEG file to write (its folder is created).
        class_names: a name per segmented class (background excluded).
        label_values: the label value of each class (default ``1 .. len(class_names)``).
        series_description: Series Description of the SEG.
        algorithm_name: the algorithm named in each segment.
        algorithm_version: its version (default: ``monai_jepa.__version__``).
        series_number: Series Number of the SEG.

    Returns:
        ``out`` as a ``Path``.

    Raises:
        ShapeMismatchError: the label map does not have the series' grid (``columns x rows x slices``).
        InvalidImageError: no class name, or as many label values as names is not given.

    Example::

        volume, meta = load_dicom(series_files("ct/series_3"), source="ct/series_3")
        write_dicom_seg(prediction, meta["files"], "ct_seg.dcm", ["liver"])
    """
    hd = require_package("highdicom", "monai_jepa.data.write_dicom_seg", "DICOM SEG output")
    codes = require_package("pydicom.sr.codedict", "monai_jepa.data.write_dicom_seg", "DICOM SEG output").codes
    from monai_jepa import __version__

    names = [str(n) for n in class_names]
    values = list(range(1, len(names) + 1)) if label_values is None else [int(v) for v in label_values]
    if not names or len(values) != len(names):
        raise InvalidImageError(f"write_dicom_seg needs a name per class: got {names} for label values {values}.", out)
    files, headers, _ = sort_series(list(source_files), [read_header(f) for f in source_files])
    lab = np.asarray(label.detach().cpu() if hasattr(label, "detach") else label)
    lab = lab[0] if lab.ndim == 4 and lab.shape[0] == 1 else lab
    grid = (int(headers[0].Columns), int(headers[0].Rows), len(files))
    if lab.shape != grid:
        raise ShapeMismatchError(
            f"label map of shape {lab.shape} does not match the series in {Path(files[0]).parent} "
            f"(columns x rows x slices = {grid}).",
            out,
        )
    masks = np.stack([lab == v for v in values], axis=-1).transpose(2, 1, 0, 3)  # (slices, rows, columns, classes)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, version=algorithm_version or __version__, family=codes.cid7162.ArtificialIntelligence
    )
    segments = [
        hd.seg.SegmentDescription(
            segment_number=k + 1,
            segment_label=name,
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for k, name in enumerate(names)
    ]
    sources = [read_header(f, stop_before_pixels=False) for f in files]
    for ds in sources:  # type 2 attributes of the patient and study modules, absent from some exports: empty
        for keyword in _TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments,
        series_instance_uid=hd.UID(),
        series_number=int(series_number),
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="monai_jepa",
        manufacturer_model_name=algorithm_name,
        software_versions=algorithm_version or __version__,
        device_serial_number="0",
        series_description=series_description,
        omit_empty_frames=False,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, lambda f: seg.save_as(f, enforce_file_format=True))
