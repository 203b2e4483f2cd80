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
"""Multi-view (global + local crop) generation for LeJEPA-style pretraining, 2D and 3D.

One batched, dimension-agnostic core (:class:`BatchMultiView`) draws every crop box, flip and small affine for a
whole batch and resamples each view group with a single ``affine_grid`` + ``grid_sample`` call; intensity
augmentation is applied batched as well. :class:`RandMultiView` / :class:`RandMultiViewd` wrap the same core
(batch of one) as MONAI transforms, and :func:`multiview_collate` / :class:`MultiViewCollate` stack per-sample views
into the view-major layout ``(V, B, C, *spatial)`` consumed by the pretraining trainer.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import list_data_collate
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import GridSampleMode, GridSamplePadMode, convert_to_tensor, ensure_tuple, look_up_option
from monai.utils.misc import MAX_SEED

__all__ = ["BatchMultiView", "RandMultiView", "RandMultiViewd", "multiview_collate", "MultiViewCollate"]

# LeJEPA reference resolution: 224 px global crops, 96 px local crops.
_LOCAL_TO_GLOBAL = 96.0 / 224.0
# ITU-R BT.601 luma weights, used for contrast and saturation jitter of RGB inputs.
_LUMA = (0.299, 0.587, 0.114)
_EPS = 1e-8

SizeArg = int | Sequence[int] | None


def _check_prob(value: float, name: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"`{name}` must be a probability in [0, 1], got {value}.")
    return float(value)


def _check_range(value: Sequence[float], name: str, high: float = math.inf) -> tuple[float, float]:
    """Validate a ``(min, max)`` pair with ``0 < min <= max <= high``."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (min, max) of numbers, got {value!r}.") from None
    if not 0.0 < lo <= hi <= high:
        raise ValueError(f"`{name}` must satisfy 0 < min <= max <= {high}, got {value!r}.")
    return lo, hi


def _check_size(value: SizeArg, name: str) -> int | tuple[int, ...] | None:
    if value is None:
        return None
    sizes = ensure_tuple(value)
    if not sizes or not all(isinstance(s, (int, np.integer)) and int(s) >= 1 for s in sizes):
        raise ValueError(f"`{name}` must be a positive int or a sequence of positive ints, got {value!r}.")
    return int(sizes[0]) if isinstance(value, (int, np.integer)) else tuple(int(s) for s in sizes)


def _resolve_size(
    value: int | tuple[int, ...] | None, default: tuple[int, ...], name: str, spatial: tuple[int, ...]
) -> tuple[int, ...]:
    if value is None:
        return default
    if isinstance(value, int):
        return (value,) * len(spatial)
    if len(value) != len(spatial):
        raise ValueError(
            f"`{name}` has {len(value)} entries {value} but the input has {len(spatial)} spatial dims {spatial}."
        )
    return value


def _rotation_matrices(angles: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Compose plane rotations: ``angles`` (N, P) radians, P = 1 (2D) or 3 (3D) -> (N, d, d) in tensor-axis order."""
    n = angles.shape[0]
    rot = torch.eye(spatial_dims, dtype=angles.dtype, device=angles.device).repeat(n, 1, 1)
    planes = [(i, j) for i in range(spatial_dims) for j in range(i + 1, spatial_dims)]
    for p, (i, j) in enumerate(planes):
        cos, sin = torch.cos(angles[:, p]), torch.sin(angles[:, p])
        plane = torch.eye(spatial_dims, dtype=angles.dtype, device=angles.device).repeat(n, 1, 1)
        plane[:, i, i], plane[:, i, j], plane[:, j, i], plane[:, j, j] = cos, -sin, sin, cos
        rot = rot @ plane
    return rot


class BatchMultiView:
    """Batched LeJEPA multi-view generator: ``G`` global and ``L`` local random crops of every image, 2D or 3D.

    For each view a crop box is drawn with volume (2D: area) fraction uniform in ``global_scale`` / ``local_scale``
    and a random aspect ratio: the extent of every spatial axis ``k >= 1`` relative to axis 0 is log-uniform in
    ``aspect_ratio`` (in 2D exactly the width/height ratio of random-resized-crop). When the jittered box would leave
    the image, the aspect jitter is shrunk towards an isotropic box just enough to fit, so the sampled volume fraction
    is always exactly the drawn one. The box position is uniform over all positions inside the image. Then, each with
    its own probability: a flip per spatial axis, a small affine (rotation of up to ``rotate_range`` degrees in every
    plane, isotropic zoom ``1 +/- zoom_range``) about the box centre in pixel units, intensity scale/shift, gamma,
    Gaussian noise and, only for 3-channel (RGB) inputs, colour jitter (brightness, contrast, saturation).

    All boxes, flips and affines of a batch are drawn at once and each view group (global, local) is resampled with
    one ``affine_grid`` + ``grid_sample`` call (bilinear: 4D tensors in 2D, 5D in 3D), on the device of the input.
    Intensity augmentation is batched and scale-free (amounts are relative to each view's own statistics):

        - scale/shift: ``x * (1 + a) + b * std(x)``, ``a ~ U(-intensity_scale, intensity_scale)``,
          ``b ~ U(-intensity_shift, intensity_shift)``;
        - gamma: min-max normalise the view to [0, 1], raise to ``gamma`` (log-uniform in ``gamma_range``) and restore
          the original min and max;
        - noise: ``x + s * std(x) * N(0, 1)``, ``s ~ U(0, noise_std)``;
        - colour (C == 3 only, never otherwise): brightness factor ``U(1 - brightness, 1 + brightness)``, contrast and
          saturation blends towards the luma mean / luma image with factors ``U(1 - v, 1 + v)``. No clamping, so any
          intensity normalisation is kept.

    Randomness comes from one ``torch.Generator`` (CPU, seeded by ``seed`` / :meth:`set_random_state`); the number of
    random draws does not depend on the augmentation settings or channel count, so the same seed gives the same crop
    boxes whatever the augmentation strengths. Noise is drawn on the input's device from a seed taken from that
    generator. Crops are resampled without anti-aliasing.

    Args:
        num_global: number of global views ``G`` (>= 1).
        num_local: number of local views ``L`` (>= 0).
        global_size: output spatial size of global views; int (all axes) or one int per axis. ``None``: the input
            spatial size.
        local_size: output spatial size of local views. ``None``: ``round(input * 96 / 224)`` per axis, at least 1.
        global_scale: (min, max) volume fraction of the input covered by a global crop, in (0, 1].
        local_scale: (min, max) volume fraction covered by a local crop, in (0, 1].
        aspect_ratio: (min, max) ratio of each axis' extent to axis 0's extent, log-uniform; (1, 1) disables it.
        flip_prob: probability of flipping each spatial axis; a float for every axis or one float per axis.
        affine_prob: probability of applying the small rotation + zoom.
        rotate_range: maximum absolute rotation in degrees, per rotation plane.
        zoom_range: isotropic zoom factor drawn uniformly in ``[1 - zoom_range, 1 + zoom_range]``; in [0, 1).
        intensity_prob: probability of the intensity scale/shift.
        intensity_scale: maximum relative intensity scaling, in [0, 1).
        intensity_shift: maximum shift in units of the view's standard deviation.
        gamma_prob: probability of the gamma adjustment.
        gamma_range: (min, max) gamma, both > 0, drawn log-uniformly.
        noise_prob: probability of adding Gaussian noise.
        noise_std: maximum noise standard deviation in units of the view's standard deviation.
        color_prob: probability of colour jitter (only used when the input has 3 channels).
        brightness: brightness jitter strength in [0, 1].
        contrast: contrast jitter strength in [0, 1].
        saturation: saturation jitter strength in [0, 1].
        mode: ``grid_sample`` interpolation, one of ``"bilinear"``, ``"nearest"``, ``"bicubic"`` (2D only).
        padding_mode: ``grid_sample`` padding for samples outside the image (affine zoom/rotation), one of
            ``"reflection"``, ``"border"``, ``"zeros"``.
        seed: seed of the generator; ``None`` for a non-deterministic seed.

    Returns (``__call__``):
        ``(global_views, local_views)``: float32 tensors of shapes ``(G, B, C, *global_size)`` and
        ``(L, B, C, *local_size)`` (view-major: ``[v, b]`` is view ``v`` of image ``b``). With ``num_local=0`` the
        local tensor is empty, of shape ``(0, B, C, *local_size)`` (never ``None``).

    Example::

        views = BatchMultiView(num_global=2, num_local=6, seed=0)
        g, l = views(torch.rand(8, 1, 64, 64))         # g: (2, 8, 1, 64, 64), l: (6, 8, 1, 27, 27)
        g, l = views(torch.rand(2, 1, 32, 32, 32))     # g: (2, 2, 1, 32, 32, 32), l: (6, 2, 1, 14, 14, 14)
    """

    def __init__(
        self,
        num_global: int = 2,
        num_local: int = 6,
        global_size: SizeArg = None,
        local_size: SizeArg = None,
        global_scale: Sequence[float] = (0.3, 1.0),
        local_scale: Sequence[float] = (0.05, 0.3),
        aspect_ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        flip_prob: float | Sequence[float] = 0.5,
        affine_prob: float = 0.5,
        rotate_range: float = 5.0,
        zoom_range: float = 0.1,
        intensity_prob: float = 0.5,
        intensity_scale: float = 0.1,
        intensity_shift: float = 0.1,
        gamma_prob: float = 0.3,
        gamma_range: Sequence[float] = (0.7, 1.5),
        noise_prob: float = 0.2,
        noise_std: float = 0.05,
        color_prob: float = 0.8,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.2,
        mode: str = GridSampleMode.BILINEAR,
        padding_mode: str = GridSamplePadMode.REFLECTION,
        seed: int | None = None,
    ) -> None:
        if not isinstance(num_global, (int, np.integer)) or num_global < 1:
            raise ValueError(f"`num_global` must be an int >= 1, got {num_global!r}.")
        if not isinstance(num_local, (int, np.integer)) or num_local < 0:
            raise ValueError(f"`num_local` must be an int >= 0, got {num_local!r}.")
        self.num_global, self.num_local = int(num_global), int(num_local)
        self.global_size = _check_size(global_size, "global_size")
        self.local_size = _check_size(local_size, "local_size")
        self.global_scale = _check_range(global_scale, "global_scale", 1.0)
        self.local_scale = _check_range(local_scale, "local_scale", 1.0)
        self.aspect_ratio = _check_range(aspect_ratio, "aspect_ratio")
        self.flip_prob = tuple(_check_prob(p, "flip_prob") for p in ensure_tuple(flip_prob))
        if not self.flip_prob:
            raise ValueError("`flip_prob` must be a float or a non-empty sequence of floats.")
        self.affine_prob = _check_prob(affine_prob, "affine_prob")
        if not 0.0 <= rotate_range <= 180.0:
            raise ValueError(f"`rotate_range` must be in [0, 180] degrees, got {rotate_range}.")
        if not 0.0 <= zoom_range < 1.0:
            raise ValueError(f"`zoom_range` must be in [0, 1), got {zoom_range}.")
        self.rotate_range, self.zoom_range = math.radians(float(rotate_range)), float(zoom_range)
        self.intensity_prob = _check_prob(intensity_prob, "intensity_prob")
        if not 0.0 <= intensity_scale < 1.0:
            raise ValueError(f"`intensity_scale` must be in [0, 1), got {intensity_scale}.")
        if intensity_shift < 0.0:
            raise ValueError(f"`intensity_shift` must be >= 0, got {intensity_shift}.")
        self.intensity_scale, self.intensity_shift = float(intensity_scale), float(intensity_shift)
        self.gamma_prob = _check_prob(gamma_prob, "gamma_prob")
        self.gamma_range = _check_range(gamma_range, "gamma_range")
        self.noise_prob = _check_prob(noise_prob, "noise_prob")
        if noise_std < 0.0:
            raise ValueError(f"`noise_std` must be >= 0, got {noise_std}.")
        self.noise_std = float(noise_std)
        self.color_prob = _check_prob(color_prob, "color_prob")
        self.brightness = _check_prob(brightness, "brightness")
        self.contrast = _check_prob(contrast, "contrast")
        self.saturation = _check_prob(saturation, "saturation")
        self._color_strengths = (self.brightness, self.contrast, self.saturation)
        self.mode = look_up_option(mode, GridSampleMode).value
        self.padding_mode = look_up_option(padding_mode, GridSamplePadMode).value
        self.generator = torch.Generator()
        self.set_random_state(seed)

    def set_random_state(self, seed: int | None = None) -> BatchMultiView:
        """Reseed the generator (``None``: a non-deterministic seed). Returns ``self``."""
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed) % MAX_SEED)
        return self

    def output_sizes(self, spatial_size: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Global and local output spatial sizes for an input of spatial size ``spatial_size``."""
        spatial = tuple(int(s) for s in spatial_size)
        local_default = tuple(max(1, round(s * _LOCAL_TO_GLOBAL)) for s in spatial)
        return (
            _resolve_size(self.global_size, spatial, "global_size", spatial),
            _resolve_size(self.local_size, local_default, "local_size", spatial),
        )

    @torch.no_grad()
    def __call__(self, images: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the views of a batch.

        Args:
            images: (B, C, H, W) or (B, C, D, H, W) tensor, numpy array or MetaTensor.

        Returns:
            ``(G, B, C, *global_size)`` and ``(L, B, C, *local_size)`` float32 tensors on the input's device.
        """
        images = convert_to_tensor(images, dtype=torch.float32, track_meta=False)
        if images.ndim not in (4, 5):
            raise ValueError(
                "`images` must be (B, C, H, W) or (B, C, D, H, W) (2 or 3 spatial dims), "
                f"got shape {tuple(images.shape)}."
            )
        if images.shape[0] < 1 or images.shape[1] < 1:
            raise ValueError(f"`images` needs at least one sample and one channel, got shape {tuple(images.shape)}.")
        spatial = tuple(images.shape[2:])
        if len(self.flip_prob) not in (1, len(spatial)):
            raise ValueError(
                f"`flip_prob` has {len(self.flip_prob)} entries but the input has {len(spatial)} spatial dims."
            )
        if self.mode == "bicubic" and len(spatial) == 3:
            raise ValueError("`mode='bicubic'` is only supported for 2D inputs; use 'bilinear' or 'nearest' in 3D.")
        global_size, local_size = self.output_sizes(spatial)
        global_views = self._views(images, self.num_global, global_size, self.global_scale)
        local_views = self._views(images, self.num_local, local_size, self.local_scale)
        return global_views, local_views

    def _views(
        self, images: torch.Tensor, num_views: int, out_size: tuple[int, ...], scale: tuple[float, float]
    ) -> torch.Tensor:
        """Resample ``num_views`` views of every image with one grid_sample call: (V, B, C, *out_size)."""
        b, c, spatial = images.shape[0], images.shape[1], tuple(images.shape[2:])
        d, n = len(spatial), num_views * images.shape[0]
        if n == 0:
            return images.new_zeros((0, b, c, *out_size))
        num_planes = d * (d - 1) // 2
        # one fixed-size draw per view (independent of augmentation settings and channels), then split; the small
        # per-view parameters are computed on the CPU and moved to the input's device once
        widths = [1, d - 1, d, d, 1, num_planes, 1, 4, 7]
        u = torch.rand(n, sum(widths), generator=self.generator, dtype=torch.float64)
        noise_seed = int(torch.randint(0, MAX_SEED, (1,), generator=self.generator))
        u_scale, u_ratio, u_pos, u_flip, u_aff, u_rot, u_zoom, u_apply, u_par = torch.split(u, widths, dim=1)

        theta = self._theta(spatial, scale, u_scale[:, 0], u_ratio, u_pos, u_flip, u_aff[:, 0], u_rot, u_zoom[:, 0])
        theta = theta.to(device=images.device, dtype=images.dtype)
        grid = F.affine_grid(theta, [n, 1, *out_size], align_corners=False)  # (V*B, *out, d)
        # stack the views of one image along the first output axis so the input is never copied
        grid = (
            grid.view(num_views, b, *out_size, d).transpose(0, 1).reshape(b, num_views * out_size[0], *out_size[1:], d)
        )
        out = F.grid_sample(images, grid, mode=self.mode, padding_mode=self.padding_mode, align_corners=False)
        out = out.view(b, c, num_views, *out_size).permute(2, 0, 1, *range(3, 3 + d)).reshape(n, c, *out_size)
        out = self._intensity(out, u_apply.float(), u_par.float(), noise_seed)
        return out.view(num_views, b, c, *out_size)

    def _theta(
        self,
        spatial: tuple[int, ...],
        scale: tuple[float, float],
        u_scale: torch.Tensor,
        u_ratio: torch.Tensor,
        u_pos: torch.Tensor,
        u_flip: torch.Tensor,
        u_aff: torch.Tensor,
        u_rot: torch.Tensor,
        u_zoom: torch.Tensor,
    ) -> torch.Tensor:
        """Affine matrices (N, d, d + 1) mapping output to input normalised coordinates (affine_grid order)."""
        d = len(spatial)
        # crop box: per-axis fractions f with prod(f) = volume fraction, log-offsets of axes k >= 1 vs axis 0
        log_vol = torch.log(scale[0] + (scale[1] - scale[0]) * u_scale)  # (N,) <= 0
        lo, hi = math.log(self.aspect_ratio[0]), math.log(self.aspect_ratio[1])
        offsets = torch.cat([torch.zeros_like(u_ratio[:, :1]), lo + (hi - lo) * u_ratio], dim=1)
        offsets = offsets - offsets.mean(dim=1, keepdim=True)
        base = log_vol / d
        # shrink the aspect jitter (t in [0, 1]) just enough that every fraction stays <= 1
        limit = torch.where(offsets > 0, -base[:, None] / offsets.clamp_min(_EPS), torch.full_like(offsets, math.inf))
        shrink = limit.min(dim=1).values.clamp(max=1.0)
        frac = torch.exp(base[:, None] + shrink[:, None] * offsets)  # (N, d)
        centre = (2.0 * u_pos - 1.0) * (1.0 - frac)  # uniform over positions inside the image, normalised coords
        flips = torch.where(
            u_flip < torch.tensor(self._axis_flip_prob(d), dtype=u_flip.dtype, device=u_flip.device), -1.0, 1.0
        )
        # small affine about the box centre, in pixel units so rotations are rigid for any image aspect
        apply = u_aff < self.affine_prob
        angles = torch.where(apply[:, None], (2.0 * u_rot - 1.0) * self.rotate_range, torch.zeros_like(u_rot))
        zoom = torch.where(apply, 1.0 + (2.0 * u_zoom - 1.0) * self.zoom_range, torch.ones_like(u_zoom))
        half = torch.tensor(spatial, dtype=frac.dtype, device=frac.device) / 2.0
        rot = _rotation_matrices(angles, d)
        matrix = rot * (frac * half * flips * zoom[:, None])[:, None, :] / half[None, :, None]  # diag(1/h) R diag(..)
        # tensor-axis order (D, H, W) -> affine_grid coordinate order (x=W, y=H, z=D)
        matrix = matrix.flip(1).flip(2)
        return torch.cat([matrix, centre.flip(1)[:, :, None]], dim=2)

    def _axis_flip_prob(self, spatial_dims: int) -> tuple[float, ...]:
        return self.flip_prob * spatial_dims if len(self.flip_prob) == 1 else self.flip_prob

    def _intensity(self, x: torch.Tensor, u_apply: torch.Tensor, u_par: torch.Tensor, noise_seed: int) -> torch.Tensor:
        """Batched per-view intensity augmentation of x (N, C, *spatial); per-view draws (N, 4), (N, 7) on CPU."""
        n, c = x.shape[:2]
        bshape = (n,) + (1,) * (x.ndim - 1)
        dims = tuple(range(1, x.ndim))

        def per_view(values: torch.Tensor) -> torch.Tensor:
            return values.to(device=x.device, dtype=x.dtype).view(bshape)

        def per_subset(values: torch.Tensor) -> torch.Tensor:
            return values.to(device=x.device, dtype=x.dtype).view(-1, *bshape[1:])

        def factor(u: torch.Tensor, strength: float, applied: torch.Tensor) -> torch.Tensor:
            return per_view(torch.where(applied, 1.0 + (2.0 * u - 1.0) * strength, torch.ones_like(u)))

        color = u_apply[:, 0] < self.color_prob
        if c == 3 and bool(color.any()):
            # brightness b, contrast c, saturation s compose to one per-view linear map of the pixel and its luma g:
            # s*c*b * x + (1 - s)*c*b * g + (1 - c)*b * mean(g); identity (1, 0, 0) for views without jitter
            bri, con, sat = (factor(u_par[:, k], v, color) for k, v in enumerate(self._color_strengths))
            luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, *(1,) * (x.ndim - 2))
            gray = (x * luma).sum(dim=1, keepdim=True)
            x = (
                sat * con * bri * x
                + (1.0 - sat) * con * bri * gray
                + (1.0 - con) * bri * gray.mean(dim=dims, keepdim=True)
            )
        # scale/shift, gamma and noise only touch the views that draw them
        idx = torch.nonzero(u_apply[:, 1] < self.intensity_prob)[:, 0]
        if len(idx) > 0:
            scale = per_subset(1.0 + (2.0 * u_par[idx, 3] - 1.0) * self.intensity_scale)
            shift = per_subset((2.0 * u_par[idx, 4] - 1.0) * self.intensity_shift)
            sub = x.index_select(0, idx.to(x.device))
            x = x.index_copy(0, idx.to(x.device), sub * scale + shift * sub.std(dim=dims, keepdim=True))
        idx = torch.nonzero(u_apply[:, 2] < self.gamma_prob)[:, 0]
        if len(idx) > 0:
            lo, hi = math.log(self.gamma_range[0]), math.log(self.gamma_range[1])
            gamma = per_subset(torch.exp(lo + (hi - lo) * u_par[idx, 5]))
            sub = x.index_select(0, idx.to(x.device))
            vmin, vmax = sub.amin(dim=dims, keepdim=True), sub.amax(dim=dims, keepdim=True)
            span = (vmax - vmin).clamp_min(_EPS)
            x = x.index_copy(0, idx.to(x.device), ((sub - vmin) / span).clamp(0.0, 1.0).pow(gamma) * span + vmin)
        idx = torch.nonzero(u_apply[:, 3] < self.noise_prob)[:, 0]
        if self.noise_std > 0 and len(idx) > 0:
            sigma = per_subset(u_par[idx, 6] * self.noise_std)
            sub = x.index_select(0, idx.to(x.device))
            gen = torch.Generator(device=x.device).manual_seed(noise_seed)
            noise = torch.randn(sub.shape, generator=gen, device=x.device, dtype=x.dtype)
            x = x.index_copy(0, idx.to(x.device), sub + sigma * sub.std(dim=dims, keepdim=True) * noise)
        return x


class RandMultiView(Randomizable, Transform):
    """Array transform: LeJEPA global and local views of one image ``(C, *spatial)``, 2D or 3D.

    A thin wrapper of :class:`BatchMultiView` (same arguments, applied to a batch of one). MONAI ``Randomizable``
    conventions: every call draws a seed from ``self.R`` (so :meth:`set_random_state` and MONAI's DataLoader worker
    seeding make it reproducible) and reseeds the batched core with it.

    Args:
        num_global: number of global views ``G`` (>= 1).
        num_local: number of local views ``L`` (>= 0).
        kwargs: every other argument of :class:`BatchMultiView` (sizes, scales, augmentation), except ``seed``.

    Returns (``__call__``):
        ``(global_views, local_views)``: float32 tensors ``(G, C, *global_size)`` and ``(L, C, *local_size)``
        (the local tensor is empty, ``(0, C, *local_size)``, when ``num_local=0``).

    Example::

        t = RandMultiView(num_global=2, num_local=4).set_random_state(0)
        g, l = t(np.random.rand(1, 64, 64).astype("float32"))  # g: (2, 1, 64, 64), l: (4, 1, 27, 27)
    """

    def __init__(self, num_global: int = 2, num_local: int = 6, **kwargs: Any) -> None:
        if "seed" in kwargs:
            raise ValueError("`seed` is not an argument of RandMultiView: use `set_random_state(seed)`.")
        self.views = BatchMultiView(num_global=num_global, num_local=num_local, seed=0, **kwargs)
        self._seed: int | None = None

    def randomize(self, data: Any = None) -> None:
        self._seed = int(self.R.randint(MAX_SEED, dtype="uint32"))

    def __call__(self, img: torch.Tensor | np.ndarray, randomize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            img: (C, H, W) or (C, D, H, W) array, tensor or MetaTensor.
            randomize: draw a new seed first (set False to reuse the last one, e.g. for co-registered keys).
        """
        img = convert_to_tensor(img, dtype=torch.float32, track_meta=False)
        if img.ndim not in (3, 4):
            raise ValueError(f"`img` must be channel-first (C, H, W) or (C, D, H, W), got shape {tuple(img.shape)}.")
        if not bool(torch.isfinite(img).all()):
            raise ValueError("`img` contains NaN or infinite intensities.")
        if randomize or self._seed is None:
            self.randomize(None)
        self.views.set_random_state(self._seed)
        global_views, local_views = self.views(img[None])
        return global_views[:, 0], local_views[:, 0]


class RandMultiViewd(Randomizable, MapTransform):
    """Dictionary form of :class:`RandMultiView`: writes ``f"{key}_global"`` (G, C, *gs) and ``f"{key}_local"``
    (L, C, *ls) for every key.

    One seed is drawn per call and shared by all keys, so keys of the same spatial shape (e.g. co-registered
    modalities) get the same crop boxes, flips and affines. Intended for image keys (intensity augmentation is
    applied to every key).

    Args:
        keys: keys of the images to view.
        num_global: number of global views ``G``.
        num_local: number of local views ``L``.
        remove_original: drop ``key`` from the output dictionary (keeps memory low when only views are needed).
        allow_missing_keys: do not raise if a key is missing.
        kwargs: every other argument of :class:`BatchMultiView`, except ``seed``.

    Example::

        t = RandMultiViewd(keys="image", num_global=2, num_local=6)
        out = t({"image": np.random.rand(1, 64, 64), "label": 1})
        # out["image_global"]: (2, 1, 64, 64), out["image_local"]: (6, 1, 27, 27), out["image"], out["label"] kept
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_global: int = 2,
        num_local: int = 6,
        remove_original: bool = False,
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.remove_original = remove_original
        self.multi_view = RandMultiView(num_global=num_global, num_local=num_local, **kwargs)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandMultiViewd:
        super().set_random_state(seed, state)
        self.multi_view.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.multi_view._seed = int(self.R.randint(MAX_SEED, dtype="uint32"))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            d[f"{key}_global"], d[f"{key}_local"] = self.multi_view(d[key], randomize=False)
            if self.remove_original:
                del d[key]
        return d


def multiview_collate(batch: Sequence[Any], keys: KeysCollection | None = None) -> dict[Hashable, Any]:
    """Collate per-sample views into the view-major layout ``(V, B, C, *spatial)``; other keys via MONAI.

    Args:
        batch: list of dictionaries from :class:`RandMultiViewd` (lists of dictionaries are flattened, as in
            ``monai.data.list_data_collate``).
        keys: image keys whose ``f"{key}_global"`` / ``f"{key}_local"`` entries are stacked. ``None``: every entry of
            the first sample whose name ends with ``_global`` or ``_local``.

    Returns:
        a dictionary with ``f"{key}_global"`` (G, B, C, *gs) and ``f"{key}_local"`` (L, B, C, *ls) (``[v, b]`` is view
        ``v`` of sample ``b``), every other key collated by ``monai.data.list_data_collate``.

    Example::

        batch = multiview_collate([t({"image": img, "label": 0}) for img in images])
        batch["image_global"].shape  # (G, B, C, H, W)
    """
    items = [s for item in batch for s in (item if isinstance(item, (list, tuple)) else [item])]
    if not items or not all(isinstance(s, Mapping) for s in items):
        raise ValueError("`batch` must be a non-empty list of dictionaries (output of RandMultiViewd).")
    if keys is None:
        view_keys = [k for k in items[0] if isinstance(k, str) and k.endswith(("_global", "_local"))]
    else:
        view_keys = [f"{k}_{kind}" for k in ensure_tuple(keys) for kind in ("global", "local")]
    out: dict[Hashable, Any] = {}
    for vk in view_keys:
        missing = [i for i, s in enumerate(items) if vk not in s]
        if missing:
            raise ValueError(f"key '{vk}' missing from batch items {missing}; apply RandMultiViewd to every sample.")
        out[vk] = torch.stack([convert_to_tensor(s[vk], track_meta=False) for s in items], dim=1)
    rest = [{k: v for k, v in s.items() if k not in out} for s in items]
    if rest[0]:
        out.update(list_data_collate(rest))
    return out


class MultiViewCollate:
    """DataLoader ``collate_fn`` form of :func:`multiview_collate` (usable as ``_target_`` in a bundle config).

    Args:
        keys: image keys whose ``_global`` / ``_local`` views are stacked view-major; ``None`` detects them.

    Example::

        loader = DataLoader(dataset, batch_size=8, collate_fn=MultiViewCollate(keys="image"))
    """

    def __init__(self, keys: KeysCollection | None = ("image",)) -> None:
        self.keys = keys

    def __call__(self, batch: Sequence[Any]) -> dict[Hashable, Any]:
        return multiview_collate(batch, keys=self.keys)
