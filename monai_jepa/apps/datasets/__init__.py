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
"""Datalist builders for the layouts of public datasets, registered by name for
:func:`monai_jepa.data.build_datalist` and ``python -m monai_jepa datalist <dataset> <root>``.

- :mod:`~monai_jepa.apps.datasets.cxr`: ChestX-ray14, CheXpert, MIMIC-CXR-JPG and any tree of DICOM radiographs;
- :mod:`~monai_jepa.apps.datasets.ct`: the Medical Segmentation Decathlon layout and LIDC-IDRI;
- :mod:`~monai_jepa.apps.datasets.mri`: BraTS 2021 / 2023, ACDC (volumes and cine clips), Sunnybrook cine;
- :mod:`~monai_jepa.apps.datasets.histopathology`: PatchCamelyon and CAMELYON16 tiling plans;
- :mod:`~monai_jepa.apps.datasets.retina`: EyePACS, APTOS 2019, Messidor;
- :mod:`~monai_jepa.apps.datasets.dermatology`: HAM10000, ISIC 2019 and 2020.

Each builder returns the datalist dictionary of :func:`monai_jepa.data.make_datalist` with a patient-level split;
the generic layouts (NIfTI folder, DICOM series tree, image table) stay in :mod:`monai_jepa.data`.
"""

from .ct import group_lidc_readings, lidc_idri_datalist, msd_datalist, read_lidc_xml
from .cxr import (
    CHESTXRAY14_FINDINGS,
    CHEXPERT_OBSERVATIONS,
    UNCERTAIN_POLICIES,
    chestxray14_datalist,
    chexpert_datalist,
    dicom_cxr_datalist,
    mimic_cxr_datalist,
)
from .dermatology import HAM10000_CLASSES, ISIC2019_CLASSES, ham10000_datalist, isic2019_datalist, isic2020_datalist
from .histopathology import (
    PCAM_SPLITS,
    PCamDataset,
    camelyon_datalist,
    expand_tiling_plan,
    pcam_datalist,
    pcam_file,
    points_in_polygon,
    read_asap_polygons,
    read_tiff_size,
)
from .mri import (
    ACDC_GROUPS,
    ACDC_LABELS,
    BRATS_LABELS,
    BRATS_SEQUENCES,
    acdc_cine_datalist,
    acdc_datalist,
    brats_datalist,
    read_info_cfg,
    sunnybrook_datalist,
)
from .retina import ICDR_GRADES, MESSIDOR1_GRADES, aptos2019_datalist, eyepacs_datalist, messidor_datalist
