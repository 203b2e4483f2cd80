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
"""Attribution maps of downstream classifiers (MONAI GradCAM / occlusion) and their deletion / insertion curves."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
from monai.utils import look_up_option
from monai.visualize import GradCAM, OcclusionSensitivity

__all__ = ["attribution_map", "deletion_insertion", "last_conv_layer"]

SUPPORTED_ATTRIBUTIONS = ("gradcam", "occlusion")


def last_conv_layer(net: nn.Module) -> str:
    """Name (as in ``net.named_modules()``) of the last convolution of ``net``: the default GradCAM target layer.

    Raises:
        ValueError: ``net`` holds no convolution.
    """
    names = [name for name, m in net.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not names:
        raise ValueError(f"{type(net).__name__} has no convolution layer; pass target_layers or use 'occlusion'.")
    return names[-1]


def attribution_map(
    net: nn.Module,
    x: torch.Tensor,
    method: str = "gradcam",
    class_idx: int | None = None,
    target_layers: str | None = None,
    mask_size: int = 8,
    overlap: float = 0.5,
) -> torch.Tensor:
    """Attribution of a classifier's score to the input, by MONAI's ``GradCAM`` or ``OcclusionSensitivity``.

    Args:
        net: classifier ``(B, C, *spatial) -> (B, K)`` logits (e.g. :class:`~monai_jepa.evaluation.EncoderClassifier`).
        x: input ``(B, C, *spatial)``, 2D or 3D (2D+t: time as the first spatial axis).
        method: ``"gradcam"`` (needs a convolution layer) or ``"occlusion"`` (model-agnostic, ``mask_size`` boxes
            replaced by the image mean).
        class_idx: class to explain; None explains each sample's highest-scoring class.
        target_layers: GradCAM layer name; default :func:`last_conv_layer`.
        mask_size: occlusion box size in voxels per axis.
        overlap: occlusion box overlap in [0, 1).

    Returns:
        ``(B, 1, *spatial)`` float32 map, higher where the evidence for the class is. GradCAM maps are scaled to
        [0, 1] per sample (MONAI's default); occlusion maps are the drop of the class logit when the region is hidden.
    """
    method = look_up_option(method, SUPPORTED_ATTRIBUTIONS)
    was_training = net.training
    net.eval()
    try:
        if method == "gradcam":
            cam = GradCAM(nn_module=net, target_layers=target_layers or last_conv_layer(net))
            return cam(x, class_idx=class_idx).float()
        with torch.no_grad():
            logits = net(x)
        idx = logits.argmax(dim=1) if class_idx is None else torch.full((x.shape[0],), int(class_idx))
        occ = OcclusionSensitivity(
            net, mask_size=mask_size, overlap=overlap, mode="mean_img", activate=False, verbose=False
        )
        occ_map, _ = occ(x)
        chosen = torch.stack([occ_map[b, int(idx[b])] for b in range(x.shape[0])]).unsqueeze(1)
        base = logits.gather(1, idx.view(-1, 1).to(logits.device)).view(-1, *([1] * (x.ndim - 1)))
        return (base - chosen).float()
    finally:
        net.train(was_training)


def _auc(values: np.ndarray) -> float:
    return float((values[1:] + values[:-1]).sum() / (2 * (len(values) - 1)))


def deletion_insertion(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    saliency: torch.Tensor,
    steps: int = 20,
    baseline: torch.Tensor | float = 0.0,
    batch_size: int = 8,
) -> dict[str, np.ndarray | float]:
    """Deletion and insertion curves of a saliency map (Petsiuk et al., RISE, BMVC 2018).

    Deletion replaces the most salient voxels first by ``baseline`` and follows the class score as more are removed
    (a good map makes it fall fast: low area); insertion starts from ``baseline`` and puts the most salient voxels back
    first (a good map makes it rise fast: high area). Compare with the curves of a random map (e.g.
    ``torch.rand_like(saliency)``) of the same input.

    Args:
        score_fn: ``(N, C, *spatial) -> (N,)`` score of the explained class (e.g. its probability).
        x: one input as a batch of one, ``(1, C, *spatial)``.
        saliency: its map with ``prod(spatial)`` values (``(*spatial)`` or ``(1, 1, *spatial)``), shared by all
            channels.
        steps: number of equal fractions between 0 and 1 (``steps + 1`` points).
        baseline: the value (or a tensor like ``x``, e.g. a blurred copy) that stands for removed content.
        batch_size: perturbed inputs scored per call.

    Returns:
        ``{"fractions", "deletion", "insertion"}`` arrays of ``steps + 1`` values and their areas under the curve
        ``"deletion_auc"`` and ``"insertion_auc"`` (trapezoid over the fraction in [0, 1]).
    """
    if x.ndim < 3 or x.shape[0] != 1:
        raise ValueError(f"x must be one input of shape (1, C, *spatial), got {tuple(x.shape)}.")
    image = x[0]
    spatial = image.shape[1:]
    sal = saliency.reshape(-1)
    if sal.numel() != int(np.prod(spatial)):
        raise ValueError(
            f"saliency has {sal.numel()} values, the input's spatial size {tuple(spatial)} needs one each."
        )
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    base = torch.as_tensor(baseline, dtype=image.dtype, device=image.device).expand_as(image)
    order = torch.argsort(sal.to(image.device), descending=True, stable=True)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = [int(round(f * sal.numel())) for f in fractions]
    curves = {}
    for name, start, fill in (("deletion", image, base), ("insertion", base, image)):
        inputs = []
        for k in counts:
            keep = torch.zeros(sal.numel(), dtype=torch.bool, device=image.device)
            keep[order[:k]] = True
            inputs.append(torch.where(keep.reshape(1, *spatial), fill, start))
        with torch.no_grad():
            scores = [score_fn(torch.stack(inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)]
        curves[name] = torch.cat(scores).float().cpu().numpy()
    return {
        "fractions": fractions,
        "deletion": curves["deletion"],
        "insertion": curves["insertion"],
        "deletion_auc": _auc(curves["deletion"]),
        "insertion_auc": _auc(curves["insertion"]),
    }
