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
"""Intensity harmonisation across sites and scanners, as array / dictionary pairs.

MONAI normalises each image on its own statistics (``NormalizeIntensity``, ``ScaleIntensityRangePercentiles``) or
equalises its histogram (``HistogramNormalize``). What it lacks, and what this module adds:

* :class:`SiteNormalizeIntensity` / :class:`SiteNormalizeIntensityd`: z-score or percentile scaling with statistics
  fitted once on the images of each site (pooled over the site's images), stored as JSON and reused; the scaling
  itself is MONAI's ``NormalizeIntensity`` / ``ScaleIntensityRange``.
* :class:`HistogramStandardize` / :class:`HistogramStandardized`: Nyul & Udupa's histogram standardisation (IEEE TMI
  1999; Nyul, Udupa & Zhang, IEEE TMI 2000): intensity landmarks (percentiles of the foreground) of each image are
  mapped piecewise linearly onto standard landmarks learned from a set of training images, so that tissue classes
  land on similar intensities whatever the scanner's gain or contrast curve.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, NormalizeIntensity, ScaleIntensityRange, Transform
from monai.utils import convert_to_dst_type, convert_to_numpy, look_up_option

from monai_jepa.utils.fileio import atomic_write_text

__all__ = [
    "DEFAULT_QUANTILES",
    "FOREGROUND_MODES",
    "HistogramStandardize",
    "HistogramStandardized",
    "HistogramStandardizeD",
    "HistogramStandardizeDict",
    "SITE_MODES",
    "SiteNormalizeIntensity",
    "SiteNormalizeIntensityd",
    "SiteNormalizeIntensityD",
    "SiteNormalizeIntensityDict",
]

DEFAULT_QUANTILES = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
"""Nyul's landmarks: the 1st and 99th percentiles (ends of the mapped range) and the deciles in between."""
FOREGROUND_MODES = ("nonzero", "mean", "all")
SITE_MODES = ("zscore", "percentile")


def _channels(img: Any) -> np.ndarray:
    arr = convert_to_numpy(img, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(f"expected a channel-first image (C, *spatial), got shape {tuple(arr.shape)}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"the image (shape {tuple(arr.shape)}) holds NaN or infinite intensities.")
    return arr.reshape(arr.shape[0], -1)


def _foreground(values: np.ndarray, mode: str) -> np.ndarray:
    """The voxels of one channel's ``values`` (flat) that the statistics are computed on."""
    if mode == "nonzero":
        fg = values[values != 0]
    elif mode == "mean":  # Nyul's background removal: voxels above the image mean
        fg = values[values > values.mean()]
    else:
        fg = values
    if fg.size == 0:
        raise ValueError(f"the image has no foreground voxels under foreground={mode!r} (all voxels are excluded).")
    return fg


class HistogramStandardize(Transform):
    """Nyul & Udupa histogram standardisation: a monotone piecewise-linear intensity mapping per channel.

    Fitting (:meth:`fit`): for each training image and channel, the landmarks are the ``quantiles`` of the foreground
    intensities; the first and last landmark (e.g. 1st and 99th percentile) are mapped linearly onto
    ``standard_range`` and the standard landmarks are the mean of the mapped landmarks over the images. Applying: the
    image's own landmarks are mapped onto the standard landmarks, linearly in between and with the first / last
    segment's slope beyond them; the mapping is non-decreasing. With ``foreground="nonzero"`` voxels equal to 0
    (padding, background) stay 0.

    Args:
        standard_landmarks: fitted landmarks, ``(C, L)`` (one row per channel) or ``(L,)`` for one channel; None
            until :meth:`fit` or :meth:`load`.
        quantiles: the ``L`` increasing quantiles in (0, 1) that define the landmarks.
        standard_range: the standard scale onto which the first and last landmarks are mapped.
        foreground: voxels the landmarks are computed on: ``"nonzero"``, ``"mean"`` (above the image's mean,
            Nyul's choice for MRI with a dark background) or ``"all"``.

    Example::

        harmonise = HistogramStandardize().fit([img_a, img_b, img_c])  # each (C, H, W, D)
        harmonise.save("landmarks.json")
        out = HistogramStandardize.load("landmarks.json")(img_new)
    """

    def __init__(
        self,
        standard_landmarks: Sequence | np.ndarray | None = None,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        standard_range: Sequence[float] = (0.0, 100.0),
        foreground: str = "nonzero",
    ) -> None:
        q = np.asarray(quantiles, dtype=np.float64)
        if q.ndim != 1 or q.size < 2 or np.any(q <= 0) or np.any(q >= 1) or np.any(np.diff(q) <= 0):
            raise ValueError(f"quantiles must be at least 2 strictly increasing values in (0, 1), got {quantiles!r}.")
        if len(standard_range) != 2 or not float(standard_range[0]) < float(standard_range[1]):
            raise ValueError(f"standard_range must be (low, high) with low < high, got {standard_range!r}.")
        self.quantiles = q
        self.standard_range = (float(standard_range[0]), float(standard_range[1]))
        self.foreground = look_up_option(foreground, FOREGROUND_MODES)
        self.standard_landmarks: np.ndarray | None = None
        if standard_landmarks is not None:
            self.standard_landmarks = self._check_landmarks(np.asarray(standard_landmarks, dtype=np.float64))

    def _check_landmarks(self, lm: np.ndarray, source: str = "standard_landmarks") -> np.ndarray:
        lm = lm[None] if lm.ndim == 1 else lm
        if lm.ndim != 2 or lm.shape[1] != self.quantiles.size:
            raise ValueError(
                f"{source} must have shape (C, {self.quantiles.size}) (one landmark per quantile), got {lm.shape}."
            )
        if not np.all(np.isfinite(lm)) or np.any(np.diff(lm, axis=1) <= 0):
            raise ValueError(f"{source} must be finite and strictly increasing along each row, got {lm.tolist()}.")
        return lm

    def image_landmarks(self, img: Any) -> np.ndarray:
        """The landmarks ``(C, L)`` of one image ``(C, *spatial)``: quantiles of each channel's foreground, with ties
        (images with few distinct intensities) broken by a nudge of 1e-6 of the range so they stay increasing."""
        flat = _channels(img)
        out = np.empty((flat.shape[0], self.quantiles.size))
        for c, values in enumerate(flat):
            lm = np.quantile(_foreground(values, self.foreground), self.quantiles)
            span = lm[-1] - lm[0]
            if not span > 0:
                raise ValueError(
                    f"channel {c} has a constant foreground (landmarks {lm[0]:g} .. {lm[-1]:g}): "
                    "histogram standardisation needs an intensity range."
                )
            for i in range(1, lm.size):  # break ties, keep order
                lm[i] = max(lm[i], lm[i - 1] + 1e-6 * span)
            out[c] = lm
        return out

    def fit(self, images: Sequence[Any]) -> HistogramStandardize:
        """Learn the standard landmarks from ``images`` (each ``(C, *spatial)``, the same ``C``); returns ``self``."""
        if len(images) == 0:
            raise ValueError("fit needs at least one image, got an empty sequence.")
        lo, hi = self.standard_range
        mapped = []
        for i, img in enumerate(images):
            try:
                lm = self.image_landmarks(img)
            except ValueError as e:
                raise ValueError(f"images[{i}]: {e}") from None
            if mapped and lm.shape[0] != mapped[0].shape[0]:
                raise ValueError(f"images[{i}] has {lm.shape[0]} channels, images[0] has {mapped[0].shape[0]}.")
            mapped.append(lo + (lm - lm[:, :1]) / (lm[:, -1:] - lm[:, :1]) * (hi - lo))
        self.standard_landmarks = self._check_landmarks(np.mean(mapped, axis=0))
        return self

    def __call__(self, img: Any) -> Any:
        """Standardise ``img`` ``(C, *spatial)``; returns the same array type and shape (float)."""
        if self.standard_landmarks is None:
            raise RuntimeError("HistogramStandardize has no standard landmarks: call fit() or load() first.")
        arr = convert_to_numpy(img, dtype=np.float64)
        lms = self.image_landmarks(arr)
        std = self.standard_landmarks
        if lms.shape[0] != std.shape[0]:
            raise ValueError(f"the image has {lms.shape[0]} channels, the standard landmarks {std.shape[0]}.")
        out = np.empty_like(arr)
        for c in range(arr.shape[0]):
            out[c] = _piecewise_linear(arr[c], lms[c], std[c])
            if self.foreground == "nonzero":
                out[c][arr[c] == 0] = 0.0
        dtype: Any = None
        if isinstance(img, np.ndarray):
            dtype = img.dtype if np.issubdtype(img.dtype, np.floating) else np.float32
        elif isinstance(img, torch.Tensor):
            dtype = img.dtype if img.dtype.is_floating_point else torch.float32
        return convert_to_dst_type(out, img, dtype=dtype)[0]

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-ready values."""
        if self.standard_landmarks is None:
            raise RuntimeError("HistogramStandardize has no standard landmarks to save: call fit() first.")
        return {
            "transform": "HistogramStandardize",
            "quantiles": self.quantiles.tolist(),
            "standard_range": list(self.standard_range),
            "foreground": self.foreground,
            "standard_landmarks": self.standard_landmarks.tolist(),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted state to a JSON file (atomically)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=4) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> HistogramStandardize:
        """A transform with the state written by :meth:`save`."""
        state = _read_json(path, ("quantiles", "standard_range", "foreground", "standard_landmarks"))
        try:
            return cls(state["standard_landmarks"], state["quantiles"], state["standard_range"], state["foreground"])
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _piecewise_linear(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp`` inside ``[xp[0], xp[-1]]``, continued with the end segments' slopes outside."""
    y = np.interp(x, xp, fp)
    lo, hi = x < xp[0], x > xp[-1]
    y[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    y[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return y


def _read_json(path: str | os.PathLike, required: Sequence[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"harmonisation file {path} does not exist.")
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a valid JSON file: {e}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(state).__name__}.")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; expected {list(required)}.")
    return state


class SiteNormalizeIntensity(Transform):
    """Intensity normalisation with statistics fitted per site (scanner, hospital, protocol) and reused.

    ``"zscore"``: ``(x - mean) / std``, mean and std of the site's pooled foreground voxels, per channel (MONAI's
    ``NormalizeIntensity`` with fixed ``subtrahend`` / ``divisor``). ``"percentile"``: ``lower`` / ``upper``
    percentiles of the site's pooled foreground mapped to 0 / 1, no clipping (MONAI's ``ScaleIntensityRange``). Unlike
    per-image normalisation, the statistics of a site are fitted once (e.g. on its training images) so that a
    difference between images of one site (a larger lesion, more background) is kept.

    Args:
        statistics: ``{site: {"mean": [C], "std": [C]}}`` (zscore) or ``{site: {"low": [C], "high": [C]}}``
            (percentile); None until :meth:`fit` or :meth:`load`.
        mode: ``"zscore"`` or ``"percentile"``.
        lower: lower percentile (0-100) of the percentile mode.
        upper: upper percentile of the percentile mode.
        foreground: voxels the statistics are computed on and that are normalised with ``"nonzero"`` (zeros stay
            0); ``"mean"`` or ``"all"`` normalise every voxel.

    Example::

        norm = SiteNormalizeIntensity(mode="zscore").fit({"siteA": imgs_a, "siteB": imgs_b})
        norm.save("site_stats.json")
        x = norm(img, site="siteB")
    """

    def __init__(
        self,
        statistics: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
        mode: str = "zscore",
        lower: float = 1.0,
        upper: float = 99.0,
        foreground: str = "nonzero",
    ) -> None:
        self.mode = look_up_option(mode, SITE_MODES)
        if not 0.0 <= float(lower) < float(upper) <= 100.0:
            raise ValueError(f"need 0 <= lower < upper <= 100, got lower={lower}, upper={upper}.")
        self.lower, self.upper = float(lower), float(upper)
        self.foreground = look_up_option(foreground, FOREGROUND_MODES)
        self.statistics: dict[str, dict[str, list[float]]] = {}
        for site, stats in (statistics or {}).items():
            self.statistics[str(site)] = self._check_stats(str(site), stats)

    def _check_stats(self, site: str, stats: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
        keys = ("mean", "std") if self.mode == "zscore" else ("low", "high")
        if not isinstance(stats, Mapping) or any(k not in stats for k in keys):
            raise ValueError(f"statistics of site {site!r} must be a mapping with keys {keys}, got {stats!r}.")
        a, b = (np.asarray(stats[k], dtype=np.float64).reshape(-1) for k in keys)
        if a.size != b.size or not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)):
            raise ValueError(f"statistics of site {site!r}: {keys} must be finite and of one length, got {stats!r}.")
        if (self.mode == "zscore" and np.any(b <= 0)) or (self.mode == "percentile" and np.any(b <= a)):
            what = "std > 0" if self.mode == "zscore" else "high > low"
            raise ValueError(f"statistics of site {site!r} need {what} in every channel, got {stats!r}.")
        return {keys[0]: a.tolist(), keys[1]: b.tolist()}

    def fit(self, images_by_site: Mapping[str, Sequence[Any]]) -> SiteNormalizeIntensity:
        """Fit (or refit) the statistics of each site from its images (each ``(C, *spatial)``); returns ``self``."""
        if not images_by_site:
            raise ValueError("fit needs {site: [images]} with at least one site.")
        for site, images in images_by_site.items():
            if len(images) == 0:
                raise ValueError(f"site {site!r} has no images to fit statistics on.")
            per_channel: list[list[np.ndarray]] = []
            for i, img in enumerate(images):
                flat = _channels(img)
                if per_channel and flat.shape[0] != len(per_channel):
                    raise ValueError(
                        f"site {site!r}, image {i}: {flat.shape[0]} channels, expected {len(per_channel)}."
                    )
                per_channel = per_channel or [[] for _ in range(flat.shape[0])]
                try:
                    for c, values in enumerate(flat):
                        per_channel[c].append(_foreground(values, self.foreground))
                except ValueError as e:
                    raise ValueError(f"site {site!r}, image {i}: {e}") from None
            pooled = [np.concatenate(v) for v in per_channel]
            if self.mode == "zscore":
                stats = {"mean": [float(v.mean()) for v in pooled], "std": [float(v.std()) for v in pooled]}
            else:
                stats = {
                    "low": [float(np.percentile(v, self.lower)) for v in pooled],
                    "high": [float(np.percentile(v, self.upper)) for v in pooled],
                }
            self.statistics[str(site)] = self._check_stats(str(site), stats)
        return self

    def __call__(self, img: Any, site: Hashable) -> Any:
        """Normalise ``img`` ``(C, *spatial)`` with the statistics of ``site``."""
        if str(site) not in self.statistics:
            raise ValueError(f"no intensity statistics for site {site!r}; fitted sites: {sorted(self.statistics)}.")
        stats = self.statistics[str(site)]
        first = next(iter(stats.values()))
        if int(img.shape[0]) != len(first):
            raise ValueError(f"the image has {img.shape[0]} channels, the statistics of site {site!r} {len(first)}.")
        nonzero = self.foreground == "nonzero"
        if self.mode == "zscore":
            norm = NormalizeIntensity(
                subtrahend=np.asarray(stats["mean"]),
                divisor=np.asarray(stats["std"]),
                nonzero=nonzero,
                channel_wise=True,
            )
            return norm(img)
        out = []
        for c in range(len(first)):
            scale = ScaleIntensityRange(stats["low"][c], stats["high"][c], 0.0, 1.0, clip=False)
            ch = scale(img[c : c + 1])
            if nonzero:
                ch = ch * (img[c : c + 1] != 0)
            out.append(ch)
        return torch.cat(out) if isinstance(out[0], torch.Tensor) else np.concatenate(out)

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-ready values."""
        return {
            "transform": "SiteNormalizeIntensity",
            "mode": self.mode,
            "lower": self.lower,
            "upper": self.upper,
            "foreground": self.foreground,
            "statistics": self.statistics,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted state to a JSON file (atomically)."""
        if not self.statistics:
            raise RuntimeError("SiteNormalizeIntensity has no statistics to save: call fit() first.")
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=4) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> SiteNormalizeIntensity:
        """A transform with the state written by :meth:`save`."""
        state = _read_json(path, ("mode", "lower", "upper", "foreground", "statistics"))
        try:
            return cls(state["statistics"], state["mode"], state["lower"], state["upper"], state["foreground"])
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _transform_or_file(transform: Any, cls: type) -> Any:
    if isinstance(transform, (str, os.PathLike)):
        return cls.load(transform)
    if not isinstance(transform, cls):
        raise TypeError(f"expected a {cls.__name__} or the path of its JSON file, got {type(transform).__name__}.")
    return transform


class HistogramStandardized(MapTransform):
    """Dictionary version of :class:`HistogramStandardize`.

    Args:
        keys: keys of the images to standardise.
        transform: a fitted :class:`HistogramStandardize` or the path of its JSON file.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        transform: HistogramStandardize | str | os.PathLike,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.standardize = _transform_or_file(transform, HistogramStandardize)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.standardize(d[key])
        return d


class SiteNormalizeIntensityd(MapTransform):
    """Dictionary version of :class:`SiteNormalizeIntensity`: the site of each item is read from ``site_key``.

    Args:
        keys: keys of the images to normalise.
        transform: a fitted :class:`SiteNormalizeIntensity` or the path of its JSON file.
        site_key: key of the item's site name.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        transform: SiteNormalizeIntensity | str | os.PathLike,
        site_key: str = "site",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.normalize = _transform_or_file(transform, SiteNormalizeIntensity)
        self.site_key = site_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.site_key not in d:
            raise KeyError(f"the item has no site key {self.site_key!r} (keys: {sorted(map(str, d))}).")
        for key in self.key_iterator(d):
            d[key] = self.normalize(d[key], d[self.site_key])
        return d


HistogramStandardizeD = HistogramStandardizeDict = HistogramStandardized
SiteNormalizeIntensityD = SiteNormalizeIntensityDict = SiteNormalizeIntensityd
