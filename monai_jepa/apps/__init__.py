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
"""Applications built next to the JEPA layers, each in its own module or subpackage, imported on demand.

- :mod:`monai_jepa.apps.deid`: DICOM de-identification (PS3.15 Annex E Basic Application Level Confidentiality
  Profile), behind ``python -m monai_jepa anonymize``.
- :mod:`monai_jepa.apps.datasets`: datalist builders for the layouts of public datasets (ChestX-ray14, CheXpert,
  MIMIC-CXR, MSD, LIDC-IDRI, BraTS, ACDC, Sunnybrook, PCam, CAMELYON, fundus and dermoscopy sets), behind
  ``python -m monai_jepa datalist``.
- :mod:`monai_jepa.apps.inspect`: what a file, DICOM series or folder holds and what is wrong with it (shape,
  spacing, orientation, intensities, NaNs, slice gaps, mismatched sequences), behind ``python -m monai_jepa inspect``.
"""

__all__: list[str] = []
