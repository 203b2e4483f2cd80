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
"""Interpretability: ViT attention maps, JEPA predictor error maps, attributions of downstream heads (MONAI GradCAM /
occlusion) with deletion / insertion curves, embedding maps (PCA / UMAP), PNG overlays."""

from .attention import ViTAttentionMap, attention_rollout, capture_attention
from .attribution import attribution_map, deletion_insertion, last_conv_layer
from .embedding_map import embedding_map_from_csv, embedding_projection, plot_embedding_map
from .nifti import SaveMapNiftid, SaveMapNiftiD, SaveMapNiftiDict, save_map_nifti
from .overlay import SaveOverlayPNGd, SaveOverlayPNGD, SaveOverlayPNGDict, overlay_slice, save_overlay_png
from .predictor_error import PredictorErrorMap, region_tiles

__all__ = [
    "PredictorErrorMap",
    "SaveMapNiftiD",
    "SaveMapNiftiDict",
    "SaveMapNiftid",
    "SaveOverlayPNGD",
    "SaveOverlayPNGDict",
    "SaveOverlayPNGd",
    "ViTAttentionMap",
    "attention_rollout",
    "attribution_map",
    "capture_attention",
    "deletion_insertion",
    "embedding_map_from_csv",
    "embedding_projection",
    "last_conv_layer",
    "overlay_slice",
    "plot_embedding_map",
    "region_tiles",
    "save_map_nifti",
    "save_overlay_png",
]
