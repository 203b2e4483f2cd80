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
"""Anatomy-aware multi-block masks: target blocks placed on the body, organ or lesion rather than on background.

Medical images are often mostly background (air around the body, black borders of fundus or echo frames), so
uniformly placed target blocks spend much of the prediction task on empty space. Here the block centres are drawn in
proportion to a probability map on the token grid, computed from

- a label map: the fraction of foreground (label > 0) voxels in each patch (:func:`token_foreground_fraction`);
- the image intensities: a body / brain mask (Otsu or percentile threshold, largest connected component, holes
  filled; :func:`foreground_mask`), then the foreground fraction per patch;
- or a given map.

With ``within_label=True`` each target block is clipped to the labelled structure under its centre, so every block
lies inside one organ. Counts are fixed per sample as for :py:class:`~monai_jepa.transforms.MultiBlockMaskGenerator`;
target top-ups are drawn in proportion to the probability map, so they stay on the anatomy too.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import convert_to_tensor, look_up_option, optional_import

from monai_jepa.transforms.masks import MaskGenerator, MultiBlockMaskGenerator
from monai_jepa.utils.module import require_package

ndimage, _ = optional_import("scipy.ndimage")

__all__ = [
    "otsu_threshold",
    "foreground_mask",
    "token_foreground_fraction",
    "token_label_map",
    "AnatomyAwareMaskGenerator",
    "RandAnatomyBlockMask",
    "RandAnatomyBlockMaskd",
]

SUPPORTED_THRESHOLDS = ("otsu", "percentile")


def _as_channel_first(x: Any, name: str) -> torch.Tensor:
    x = convert_to_tensor(x, track_meta=False)
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4):
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"`{name}` must be channel-first (C, H, W) or (C, D, H, W), got {shape}.")
    return x.detach().cpu()


def _patch_tuple(patch_size: Sequence[int] | int, spatial: tuple[int, ...], name: str) -> tuple[int, ...]:
    patch = (patch_size,) * len(spatial) if isinstance(patch_size, numbers.Integral) else tuple(patch_size)
    if len(patch) != len(spatial) or not all(isinstance(p, numbers.Integral) and p >= 1 for p in patch):
        raise ValueError(f"`patch_size` must be a positive int or {len(spatial)} positive ints, got {patch_size!r}.")
    if any(s % p for s, p in zip(spatial, patch)):
        raise ValueError(f"`{name}` spatial shape {spatial} must be divisible by patch_size {patch}.")
    return tuple(int(p) for p in patch)


def otsu_threshold(values: np.ndarray | torch.Tensor, bins: int = 256) -> float:
    """Otsu's threshold: the histogram split that maximises the between-class variance.

    Args:
        values: intensities of any shape; non-finite values are ignored.
        bins: number of histogram bins.

    Returns:
        the threshold (a bin edge); voxels strictly above it are foreground. For constant input, that constant.

    Example::

        >>> otsu_threshold(np.concatenate([np.zeros(100), np.ones(50)]))  # between 0 and 1
    """
    v = np.asarray(convert_to_tensor(values, track_meta=False).detach().cpu().numpy(), dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("`values` holds no finite intensity.")
    if v.min() == v.max():
        return float(v.min())
    hist, edges = np.histogram(v, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)[:-1].astype(np.float64)
    w1 = v.size - w0
    s0 = np.cumsum(hist * centres)[:-1]
    m0 = s0 / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1 + int(np.argmax(between))])


def foreground_mask(
    image: np.ndarray | torch.Tensor,
    method: str = "otsu",
    percentile: float = 50.0,
    largest_component: bool = True,
    fill_holes: bool = True,
) -> np.ndarray:
    """Body / brain mask from intensities: threshold, keep the largest connected component, fill holes.

    Args:
        image: channel-first image (C, H, W) or (C, D, H, W); channels are averaged.
        method: ``"otsu"`` (:func:`otsu_threshold`) or ``"percentile"`` (voxels above the ``percentile``-th
            percentile of the intensities).
        percentile: percentile in [0, 100) used by ``method="percentile"``.
        largest_component: keep only the largest connected (face-connected) component.
        fill_holes: fill enclosed holes (e.g. dark ventricles or lungs inside the body).

    Returns:
        bool array of the spatial shape (H, W) or (D, H, W).

    Example::

        >>> mask = foreground_mask(ct_slice[None])  # (H, W) bool, the body without the air around it
    """
    if largest_component or fill_holes:
        require_package("scipy", "monai_jepa.transforms.foreground_mask", "connected components and hole filling")
    img = _as_channel_first(image, "image").float().mean(0).numpy()
    if not np.isfinite(img).all():
        raise ValueError("`image` contains NaN or infinite intensities.")
    method = look_up_option(method, SUPPORTED_THRESHOLDS)
    if method == "otsu":
        threshold = otsu_threshold(img)
    else:
        if not 0.0 <= percentile < 100.0:
            raise ValueError(f"`percentile` must lie in [0, 100), got {percentile}.")
        threshold = float(np.percentile(img, percentile))
    mask = img > threshold
    if largest_component and mask.any():
        labels, count = ndimage.label(mask)
        if count > 1:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            mask = labels == int(np.argmax(sizes))
    if fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    return np.asarray(mask, dtype=bool)


def token_foreground_fraction(mask: np.ndarray | torch.Tensor, patch_size: Sequence[int] | int) -> torch.Tensor:
    """Fraction of foreground (non-zero) voxels in each patch: a probability map on the token grid.

    Args:
        mask: channel-first label or mask (1, H, W) or (1, D, H, W) (with several channels, a voxel is foreground
            when any channel is non-zero).
        patch_size: encoder patch size, an int or one int per spatial axis; must divide the spatial shape.

    Returns:
        float32 tensor of the token grid shape ``spatial // patch_size``, values in [0, 1].

    Example::

        >>> token_foreground_fraction(label, patch_size=16)  # label (1, 224, 224) -> (14, 14)
    """
    m = _as_channel_first(mask, "mask")
    patch = _patch_tuple(patch_size, tuple(m.shape[1:]), "mask")
    fg = (m != 0).any(0, keepdim=True).float()[None]
    pool = F.avg_pool2d if fg.ndim == 4 else F.avg_pool3d
    return pool(fg, kernel_size=patch, stride=patch)[0, 0]


def token_label_map(label: np.ndarray | torch.Tensor, patch_size: Sequence[int] | int) -> torch.Tensor:
    """The majority label of each patch (ties go to the smaller label value).

    Args:
        label: channel-first integer label map (1, H, W) or (1, D, H, W).
        patch_size: encoder patch size, an int or one int per spatial axis; must divide the spatial shape.

    Returns:
        int64 tensor of the token grid shape ``spatial // patch_size``.

    Example::

        >>> token_label_map(label, patch_size=(2, 16, 16))  # (1, 16, 224, 224) -> (8, 14, 14)
    """
    lab = _as_channel_first(label, "label")
    if lab.shape[0] != 1:
        raise ValueError(f"`label` must have one channel, got shape {tuple(lab.shape)}.")
    patch = _patch_tuple(patch_size, tuple(lab.shape[1:]), "label")
    lab = lab[0].round().long()
    values = torch.unique(lab)
    onehot = torch.stack([(lab == v).float() for v in values])[None]  # (1, L, *spatial)
    pool = F.avg_pool2d if onehot.ndim == 4 else F.avg_pool3d
    counts = pool(onehot, kernel_size=patch, stride=patch)[0]
    return values[counts.argmax(0)]


class AnatomyAwareMaskGenerator(MultiBlockMaskGenerator):
    """Multi-block masks whose target blocks are centred on the anatomy.

    As :py:class:`~monai_jepa.transforms.MultiBlockMaskGenerator`, except that each target box is placed around a
    centre token drawn with probability proportional to ``prob_map`` (the box is centred there and shifted to lie
    inside the grid; with ``span_axis0`` the box spans axis 0 at the centre's position). With ``within_label`` the
    centre is drawn among labelled tokens only and the box is clipped to the tokens carrying the centre's label, so
    each block lies inside one structure. Target tokens are kept (when subsampling) and added (when topping up) with
    probability proportional to ``prob_map`` (plus a small floor), so fixed counts do not pull targets off the
    anatomy. A zero or missing map falls back to uniform placement.

    Maps can be given at construction (used for every draw and for the default counts) or per draw
    (``sample(prob_map=..., label_map=...)``). The default counts are estimated with the construction map (uniform
    when None); small structures give smaller unions than uniform boxes, so set ``num_target`` explicitly for them.

    Args:
        grid_size: tokens per axis, 2 or 3 ints (2D+t: time first).
        num_blocks: number of target boxes.
        block_scale: (min, max) fraction of the grid (of axes 1.. with ``span_axis0``) covered by one box.
        aspect_ratio: (min, max) ratio of each box axis' extent to the first box axis' extent, log-uniform.
        span_axis0: boxes span the whole first axis (time in 2D+t).
        context_scale: None for context = complement of the targets; else the context box scale.
        num_context: context tokens per sample; None: the expected context size.
        num_target: target tokens per sample; None: the expected target size.
        min_keep: minimum drawn context size before a draw is accepted.
        prob_map: default non-negative map of the grid shape (e.g. :func:`token_foreground_fraction`).
        label_map: default integer map of the grid shape (0 = background) used by ``within_label``; None: derived
            from the probability map as ``prob_map >= 0.5``.
        within_label: clip each target box to the structure under its centre.
        seed: seed of ``self.R``.

    Example::

        >>> prob = token_foreground_fraction(label, patch_size=16)  # (14, 14)
        >>> gen = AnatomyAwareMaskGenerator((14, 14), num_blocks=4, within_label=True, seed=0)
        >>> context_idx, target_idx = gen.sample(prob_map=prob, label_map=token_label_map(label, 16))
    """

    def __init__(
        self,
        grid_size: Sequence[int],
        num_blocks: int = 4,
        block_scale: Sequence[float] = (0.15, 0.2),
        aspect_ratio: Sequence[float] = (0.75, 1.5),
        span_axis0: bool = False,
        context_scale: Sequence[float] | None = None,
        num_context: int | None = None,
        num_target: int | None = None,
        min_keep: int = 10,
        prob_map: np.ndarray | torch.Tensor | None = None,
        label_map: np.ndarray | torch.Tensor | None = None,
        within_label: bool = False,
        seed: int | None = None,
    ) -> None:
        self.within_label = bool(within_label)
        # the grid is validated by the parent; the maps are checked once it is known
        self._grid_for_maps = tuple(grid_size)
        self.prob_map = None if prob_map is None else self._check_prob(prob_map)
        self.label_map = None if label_map is None else self._check_label(label_map)
        super().__init__(
            grid_size,
            num_blocks=num_blocks,
            block_scale=block_scale,
            aspect_ratio=aspect_ratio,
            span_axis0=span_axis0,
            context_scale=context_scale,
            num_context=num_context,
            num_target=num_target,
            min_keep=min_keep,
            seed=seed,
        )

    def _check_prob(self, prob_map: Any) -> np.ndarray:
        p = np.asarray(convert_to_tensor(prob_map, track_meta=False).detach().cpu().numpy(), dtype=np.float64)
        if p.shape != self._grid_for_maps or not np.isfinite(p).all() or (p < 0).any():
            raise ValueError(
                f"`prob_map` must be a finite, non-negative array of the grid shape {self._grid_for_maps}, "
                f"got shape {p.shape}."
            )
        return p

    def _check_label(self, label_map: Any) -> np.ndarray:
        lab = np.asarray(convert_to_tensor(label_map, track_meta=False).detach().cpu().numpy())
        if lab.shape != self._grid_for_maps:
            raise ValueError(f"`label_map` must have the grid shape {self._grid_for_maps}, got shape {lab.shape}.")
        return lab.astype(np.int64)

    def _target_box(self, rng: np.random.RandomState, **maps: Any) -> np.ndarray:
        prob, labels = maps["prob"], maps["labels"]
        extent = self._box_extent(rng, self.block_scale, self.aspect_ratio)
        weights = prob if labels is None else prob * (labels != 0)
        total = weights.sum()
        flat = weights.ravel() / total if total > 0 else None
        centre = np.unravel_index(rng.choice(self.num_tokens, p=flat), self.grid_size)
        sizes = np.array([self.grid_size[a] for a in self._box_axes])
        c = np.array([centre[a] for a in self._box_axes])
        start = np.clip(c - extent // 2, 0, sizes - extent)
        box = self._box_mask(start, extent)
        if labels is not None and total > 0:
            box &= labels == labels[centre]
        return box

    def draw(
        self,
        rng: np.random.RandomState,
        prob_map: np.ndarray | torch.Tensor | None = None,
        label_map: np.ndarray | torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Draw anatomy-placed target boxes and the context set; ``prob_map`` / ``label_map`` override the
        construction maps for this draw."""
        prob = self.prob_map if prob_map is None else self._check_prob(prob_map)
        if prob is None:
            prob = np.ones(self.grid_size)
        labels = None
        if self.within_label:
            if label_map is not None:
                labels = self._check_label(label_map)
            elif prob_map is None and self.label_map is not None:
                labels = self.label_map
            else:
                labels = (prob >= 0.5).astype(np.int64)
        target, context, _ = super().draw(rng, prob=prob, labels=labels)
        return target, context, prob.ravel()


def _mask_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    for name in ("seed", "prob_map", "label_map"):
        if name in kwargs:
            raise ValueError(f"`{name}` is not an argument of the anatomy mask transforms (it is computed per image).")
    return kwargs


class RandAnatomyBlockMask(Randomizable, Transform):
    """Array transform: an anatomy-aware mask ``(context_idx, target_idx)`` for one image.

    The probability map on the token grid (``image spatial shape // patch_size``) comes from, in order of
    preference: a given ``prob_map``; a ``label`` (foreground fraction per patch, majority label per patch for
    ``within_label``); or the image intensities (:func:`foreground_mask`, then the foreground fraction per patch).
    A :py:class:`AnatomyAwareMaskGenerator` is built per grid size and reused; masks are drawn from ``self.R``.

    Args:
        patch_size: encoder patch size, an int or one int per spatial axis.
        threshold: ``"otsu"`` or ``"percentile"``, the intensity threshold of :func:`foreground_mask`.
        percentile: percentile used by ``threshold="percentile"``.
        largest_component: keep the largest connected component of the intensity mask.
        fill_holes: fill holes in the intensity mask.
        kwargs: :py:class:`AnatomyAwareMaskGenerator` arguments (``num_blocks``, ``block_scale``, ``within_label``,
            ``num_target``, ...), not ``seed`` or maps.

    Returns (``__call__``):
        ``(context_idx, target_idx)``: sorted, disjoint int64 tensors ``(K_c,)``, ``(K_t,)``.

    Example::

        >>> t = RandAnatomyBlockMask(patch_size=16, num_blocks=4, within_label=True).set_random_state(0)
        >>> context_idx, target_idx = t(image, label)  # image, label: (1, 224, 224)
    """

    def __init__(
        self,
        patch_size: Sequence[int] | int,
        threshold: str = "otsu",
        percentile: float = 50.0,
        largest_component: bool = True,
        fill_holes: bool = True,
        **kwargs: Any,
    ) -> None:
        self.patch_size = patch_size
        self.threshold = look_up_option(threshold, SUPPORTED_THRESHOLDS)
        self.percentile = float(percentile)
        self.largest_component, self.fill_holes = largest_component, fill_holes
        self.mask_kwargs = _mask_kwargs(dict(kwargs))
        self._generators: dict[tuple[int, ...], AnatomyAwareMaskGenerator] = {}

    def generator_for(self, grid_size: Sequence[int]) -> MaskGenerator:
        """The (cached) generator of a token grid."""
        grid = tuple(int(g) for g in grid_size)
        if grid not in self._generators:
            self._generators[grid] = AnatomyAwareMaskGenerator(grid, **self.mask_kwargs)
        return self._generators[grid]

    def maps(
        self, img: Any, label: Any = None, prob_map: Any = None
    ) -> tuple[tuple[int, ...], torch.Tensor, torch.Tensor | None]:
        """Token grid, probability map and (for ``within_label``) label map of an image.

        Returns:
            ``(grid_size, prob_map, label_map)``; ``label_map`` is None unless derived from ``label``.
        """
        x = _as_channel_first(img, "img")
        grid = tuple(s // p for s, p in zip(x.shape[1:], _patch_tuple(self.patch_size, tuple(x.shape[1:]), "img")))
        if prob_map is not None:
            return grid, convert_to_tensor(prob_map, track_meta=False), None
        if label is not None:
            lab = _as_channel_first(label, "label")
            if tuple(lab.shape[1:]) != tuple(x.shape[1:]):
                raise ValueError(
                    f"`label` spatial shape {tuple(lab.shape[1:])} must match the image's {tuple(x.shape[1:])}."
                )
            within = self.mask_kwargs.get("within_label", False)
            return (
                grid,
                token_foreground_fraction(lab, self.patch_size),
                (token_label_map(lab, self.patch_size) if within else None),
            )
        body = foreground_mask(x, self.threshold, self.percentile, self.largest_component, self.fill_holes)
        return grid, token_foreground_fraction(body[None], self.patch_size), None

    def randomize(self, data: Any = None) -> None:
        pass  # the mask is drawn from self.R in __call__, once the maps are known

    def __call__(self, img: Any, label: Any = None, prob_map: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            img: channel-first image (C, H, W) or (C, D, H, W) (2D+t: (C, T, H, W)).
            label: optional channel-first label map of the same spatial shape.
            prob_map: optional probability map of the token grid shape (takes precedence over ``label``).
        """
        grid, prob, labels = self.maps(img, label, prob_map)
        return self.generator_for(grid).sample(self.R, prob_map=prob, label_map=labels)


class RandAnatomyBlockMaskd(Randomizable, MapTransform):
    """Dictionary form of :py:class:`RandAnatomyBlockMask`: writes ``context_key`` (K_c,) and ``target_key`` (K_t,).

    Args:
        keys: the image key (one key; its spatial shape defines the token grid).
        patch_size: encoder patch size, an int or one int per spatial axis.
        label_key: optional key of a label map of the image's spatial shape.
        prob_key: optional key of a probability map of the token grid shape (takes precedence over ``label_key``).
        context_key: output key of the context indices.
        target_key: output key of the target indices.
        allow_missing_keys: do not raise if the image key is missing (the sample is then returned unchanged).
        kwargs: :py:class:`RandAnatomyBlockMask` arguments (threshold, generator arguments).

    Example::

        >>> t = RandAnatomyBlockMaskd("image", patch_size=16, label_key="label", within_label=True)
        >>> out = t({"image": image, "label": label})  # out["context_idx"], out["target_idx"]
    """

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: Sequence[int] | int,
        label_key: Hashable | None = None,
        prob_key: Hashable | None = None,
        context_key: Hashable = "context_idx",
        target_key: Hashable = "target_idx",
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"`keys` must name exactly one image key, got {self.keys}.")
        if context_key == target_key:
            raise ValueError(f"`context_key` and `target_key` must differ, got {context_key!r} twice.")
        self.label_key, self.prob_key = label_key, prob_key
        self.context_key, self.target_key = context_key, target_key
        self.masker = RandAnatomyBlockMask(patch_size, **kwargs)

    def randomize(self, data: Any = None) -> None:
        pass  # the mask is drawn in __call__

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[self.label_key] if self.label_key is not None else None
            prob = d[self.prob_key] if self.prob_key is not None else None
            self.masker.R = self.R  # one random stream: set_random_state on this transform controls the masks
            d[self.context_key], d[self.target_key] = self.masker(d[key], label=label, prob_map=prob)
        return d
