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
"""Encoders (ViT 2D/3D/2D+t, ResNet), projector and the LeJEPA model."""

from monai_jepa.networks.convnet import CONV_ENCODER_ARCHS, ConvEncoder
from monai_jepa.networks.model import SUPPORTED_ENCODERS, LeJEPAModel, PooledEncoder, build_lejepa_model
from monai_jepa.networks.probe_head import ProbeHead
from monai_jepa.networks.projector import Projector
from monai_jepa.networks.vit import JEPA_VIT_PRESETS, JEPAViT, vit_base, vit_small, vit_tiny

__all__ = [
    "CONV_ENCODER_ARCHS",
    "ConvEncoder",
    "JEPA_VIT_PRESETS",
    "JEPAViT",
    "LeJEPAModel",
    "PooledEncoder",
    "ProbeHead",
    "Projector",
    "SUPPORTED_ENCODERS",
    "build_lejepa_model",
    "vit_base",
    "vit_small",
    "vit_tiny",
]

from monai_jepa.networks.predictor import JEPAPredictor  # noqa: E402

__all__ += ["JEPAPredictor"]

from monai_jepa.networks.jepa import MaskedLatentModel, MaskedLatentOutput  # noqa: E402
from monai_jepa.networks.segmentation import (  # noqa: E402
    UNETR_NUM_LAYERS,
    UNETR_PATCH_SIZE,
    JEPASegmenter,
    build_pretrained,
    load_pretrained_encoder,
    unetr_from_jepa_vit,
)

__all__ += [
    "JEPASegmenter",
    "MaskedLatentModel",
    "MaskedLatentOutput",
    "UNETR_NUM_LAYERS",
    "UNETR_PATCH_SIZE",
    "build_pretrained",
    "load_pretrained_encoder",
    "unetr_from_jepa_vit",
]

from monai_jepa.networks.masked_conv import (  # noqa: E402
    MaskedConvEncoder,
    encoder_parameter_names,
    encoder_stages,
    patchify,
)
from monai_jepa.networks.reconstruction import MaskedReconstructionModel  # noqa: E402

__all__ += ["MaskedConvEncoder", "MaskedReconstructionModel", "encoder_parameter_names", "encoder_stages", "patchify"]
