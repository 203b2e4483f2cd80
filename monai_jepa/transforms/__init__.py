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
"""Transforms: LeJEPA multi-view generation (global / local crops) for 2D and 3D images."""

from .views import BatchMultiView, MultiViewCollate, RandMultiView, RandMultiViewd, multiview_collate

__all__ = ["BatchMultiView", "MultiViewCollate", "RandMultiView", "RandMultiViewd", "multiview_collate"]

from .anatomy import (  # noqa: E402
    AnatomyAwareMaskGenerator,
    RandAnatomyBlockMask,
    RandAnatomyBlockMaskd,
    foreground_mask,
    otsu_threshold,
    token_foreground_fraction,
    token_label_map,
)
from .masks import (  # noqa: E402
    MASK_PRESETS,
    MaskGenerator,
    MultiBlockMaskGenerator,
    RandBlockMask,
    RandBlockMaskd,
    RandomTubeMask,
    indices_to_mask,
)

__all__ += [
    "AnatomyAwareMaskGenerator",
    "MASK_PRESETS",
    "MaskGenerator",
    "MultiBlockMaskGenerator",
    "RandAnatomyBlockMask",
    "RandAnatomyBlockMaskd",
    "RandBlockMask",
    "RandBlockMaskd",
    "RandomTubeMask",
    "foreground_mask",
    "indices_to_mask",
    "otsu_threshold",
    "token_foreground_fraction",
    "token_label_map",
]
