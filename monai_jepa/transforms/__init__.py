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
"""Transforms: LeJEPA multi-view generation (global / local crops), token-grid masks, and the loading and intensity
transforms of the data pipelines (array / dictionary pairs, as in MONAI), and the modality preprocessing presets
(:mod:`~monai_jepa.transforms.presets`)."""

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
    FutureFrameMask,
    MaskGenerator,
    MultiBlockMaskGenerator,
    RandBlockMask,
    RandBlockMaskd,
    RandomTubeMask,
    indices_to_mask,
)

__all__ += [
    "AnatomyAwareMaskGenerator",
    "FutureFrameMask",
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

from .cine import (  # noqa: E402
    LoadCine,
    LoadCineD,
    LoadCined,
    LoadCineDict,
    LoadFrameLabelsD,
    LoadFrameLabelsd,
    LoadFrameLabelsDict,
    TemporalSample,
    TemporalSampleD,
    TemporalSampled,
    TemporalSampleDict,
)

__all__ += [
    "LoadCine",
    "LoadCineD",
    "LoadCineDict",
    "LoadCined",
    "LoadFrameLabelsD",
    "LoadFrameLabelsDict",
    "LoadFrameLabelsd",
    "TemporalSample",
    "TemporalSampleD",
    "TemporalSampleDict",
    "TemporalSampled",
]

from .intensity import (  # noqa: E402
    InvertMonochrome1,
    InvertMonochrome1D,
    InvertMonochrome1d,
    InvertMonochrome1Dict,
    MatchChannels,
    MatchChannelsD,
    MatchChannelsd,
    MatchChannelsDict,
    match_channels,
)
from .io import (  # noqa: E402
    LoadCineDicom,
    LoadCineDicomD,
    LoadCineDicomd,
    LoadCineDicomDict,
    LoadCXRDicom,
    LoadCXRDicomD,
    LoadCXRDicomd,
    LoadCXRDicomDict,
    LoadVolume,
    LoadVolumeD,
    LoadVolumed,
    LoadVolumeDict,
    SaveDicomSeg,
    SaveDicomSegD,
    SaveDicomSegd,
    SaveDicomSegDict,
    StackSequences,
    StackSequencesD,
    StackSequencesd,
    StackSequencesDict,
    load_cxr_dicom,
)

__all__ += [
    "SaveDicomSeg",
    "SaveDicomSegD",
    "SaveDicomSegDict",
    "SaveDicomSegd",
    "InvertMonochrome1",
    "InvertMonochrome1D",
    "InvertMonochrome1Dict",
    "InvertMonochrome1d",
    "LoadCXRDicom",
    "LoadCXRDicomD",
    "LoadCXRDicomDict",
    "LoadCXRDicomd",
    "LoadCineDicom",
    "LoadCineDicomD",
    "LoadCineDicomDict",
    "LoadCineDicomd",
    "LoadVolume",
    "LoadVolumeD",
    "LoadVolumeDict",
    "LoadVolumed",
    "MatchChannels",
    "MatchChannelsD",
    "MatchChannelsDict",
    "MatchChannelsd",
    "StackSequences",
    "StackSequencesD",
    "StackSequencesDict",
    "StackSequencesd",
    "load_cxr_dicom",
    "match_channels",
]

from .harmonize import (  # noqa: E402
    HistogramStandardize,
    HistogramStandardizeD,
    HistogramStandardized,
    HistogramStandardizeDict,
    SiteNormalizeIntensity,
    SiteNormalizeIntensityD,
    SiteNormalizeIntensityd,
    SiteNormalizeIntensityDict,
)

__all__ += [
    "HistogramStandardize",
    "HistogramStandardizeD",
    "HistogramStandardizeDict",
    "HistogramStandardized",
    "SiteNormalizeIntensity",
    "SiteNormalizeIntensityD",
    "SiteNormalizeIntensityDict",
    "SiteNormalizeIntensityd",
]

from .presets import (  # noqa: E402
    RAS_LABELS,
    ct_preset,
    cxr_preset,
    get_preset,
    image_preprocessing,
    is_nonzero,
    mri_preset,
    rgb_preset,
    volume_preprocessing,
)

__all__ += [
    "RAS_LABELS",
    "ct_preset",
    "cxr_preset",
    "get_preset",
    "image_preprocessing",
    "is_nonzero",
    "mri_preset",
    "rgb_preset",
    "volume_preprocessing",
]
