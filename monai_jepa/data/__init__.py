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
"""Data: datalists, one source resolver, MedMNIST, demo data, readers and preprocessing.

Datalist builders are registered by name (see :func:`list_datalists`) and used through :func:`build_datalist` or the
command line ``python -m monai_jepa datalist <dataset> <root> --out <json>``: the generic layouts (a NIfTI folder, a
DICOM tree, an image table) here, the public datasets' layouts (ChestX-ray14, CheXpert, MIMIC-CXR, MSD, LIDC-IDRI,
BraTS, ACDC, Sunnybrook, PCam, CAMELYON, fundus and dermoscopy sets) in :mod:`monai_jepa.apps.datasets`.
:func:`resolve_source` (2D: :func:`resolve_image_source`, 3D: :func:`resolve_volume_source`) turns any supported path
into a dataset. DICOM is read through :mod:`monai_jepa.data.dicom`. Every data problem raises a subclass of
:class:`DataError` naming the file or key and what was expected. The loading transforms and the preprocessing presets
are in :mod:`monai_jepa.transforms`.
"""

from monai_jepa.transforms.io import load_cxr_dicom  # moved to monai_jepa.transforms; still importable from here
from monai_jepa.transforms.presets import (  # still importable from here
    ct_preset,
    cxr_preset,
    get_preset,
    mri_preset,
    rgb_preset,
)

from .cache import FailSafeCacheDataset
from .cine import (
    CINE_SOURCE_KINDS,
    cine_datalist,
    dicom_cine_clips,
    load_cine,
    load_frame_mask,
    make_demo_cine,
    rasterize_contour,
)
from .datalist import (
    DATALIST_BUILDERS,
    build_datalist,
    check_no_patient_leak,
    index_files,
    list_datalists,
    make_datalist,
    patient_split,
    read_table,
    register_datalist,
    split_and_make_datalist,
    write_datalist,
)
from .demo import DemoDataset, make_demo_images
from .demo3d import brats_dir_or_demo, make_demo_brats
from .dicom import (
    DICOM_SUFFIXES,
    find_dicom_files,
    is_dicom_file,
    load_cine_dicom,
    load_dicom,
    read_header,
    series_files,
    sort_series,
)
from .dicom_seg import write_dicom_seg
from .errors import (
    BurnedInAnnotationError,
    DataError,
    EmptyDatasetError,
    InvalidImageError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)
from .io import check_datalist, load_checked
from .medmnist import MedMNISTDataset, load_medmnist
from .sources import (
    SOURCE_KINDS,
    VOLUME_SOURCE_KINDS,
    ImageSource,
    VolumeSource,
    detect_kind,
    detect_source_kind,
    detect_volume_source_kind,
    image_preprocessing,
    image_source_info,
    resolve_image_source,
    resolve_source,
    resolve_volume_source,
    volume_datalist,
    volume_intensity,
    volume_preprocessing,
)
from .video import VIDEO_SUFFIXES, is_video, load_video, video_clips

#: names that moved to :mod:`monai_jepa.apps`; still importable from here, with a deprecation warning.
_MOVED = {
    **dict.fromkeys(
        ("CHESTXRAY14_FINDINGS", "CHEXPERT_OBSERVATIONS", "chestxray14_datalist", "chexpert_datalist",
         "dicom_cxr_datalist", "mimic_cxr_datalist", "acdc_cine_datalist", "sunnybrook_datalist"),
        "monai_jepa.apps.datasets",
    ),
    **dict.fromkeys(("format_report", "inspect_path"), "monai_jepa.apps.inspect"),
}  # fmt: skip


def __getattr__(name: str):
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(f"monai_jepa.data.{name} moved to {_MOVED[name]}.{name}.", DeprecationWarning, 2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
