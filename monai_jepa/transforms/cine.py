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
"""Transforms of image sequences (2D+t clips ``(C, T, H, W)``), as array / dictionary pairs.

* :class:`LoadCine` / :class:`LoadCined`: a clip from a cine datalist item (:func:`monai_jepa.data.cine.load_cine`).
* :class:`LoadFrameLabelsd`: the masks of the labelled frames (ED / ES) as a ``(2, T, H, W)`` target: class indices
  and the labelled-frame mask, for :class:`~monai_jepa.losses.FrameMaskedLoss`.
* :class:`TemporalSample` / :class:`TemporalSampled`: a fixed number of frames with a stride, from a random (or the
  first) frame, wrapping around the cycle for cardiac cine (``cyclic=True``) or repeating the last frame.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import look_up_option

__all__ = [
    "LoadCine",
    "LoadCined",
    "LoadCineD",
    "LoadCineDict",
    "LoadFrameLabelsd",
    "LoadFrameLabelsD",
    "LoadFrameLabelsDict",
    "TemporalSample",
    "TemporalSampled",
    "TemporalSampleD",
    "TemporalSampleDict",
]


class LoadCine(Transform):
    """Load one clip as a ``MetaTensor`` ``(C, T, H, W)``: a multi-frame DICOM, a time-ordered list of single-frame
    DICOMs, or a NIfTI clip ``(H, W, T)`` (``(H, W, Z, T)`` with ``slice_index``).

    Args:
        color: ``"gray"`` (``C = 1``) or ``"rgb"``.

    Raises:
        the :mod:`monai_jepa.data.errors` of :func:`~monai_jepa.data.cine.load_cine`, naming the file.

    Example::

        clip = LoadCine()(["1.dcm", "2.dcm", "3.dcm"])  # (1, 3, H, W)
    """

    def __init__(self, color: str = "gray") -> None:
        self.color = look_up_option(color, ("gray", "rgb"))

    def __call__(self, image: Any, slice_index: int | None = None) -> MetaTensor:
        from monai_jepa.data.cine import load_cine

        clip, meta = load_cine(image, self.color, slice_index)
        return MetaTensor(torch.from_numpy(clip), meta={k: v for k, v in meta.items() if v is not None})


class LoadCined(MapTransform):
    """Dictionary version of :class:`LoadCine`; a 4D NIfTI's plane is read from ``data[slice_key]``.

    Args:
        keys: keys of the clip sources.
        color: ``"gray"`` or ``"rgb"``.
        slice_key: item key of the plane index of 4D NIfTI clips.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        color: str = "gray",
        slice_key: str = "slice_index",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader, self.slice_key = LoadCine(color), slice_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], d.get(self.slice_key))
        return d


class LoadFrameLabelsd(MapTransform):
    """Build ``data[label_key]`` ``(2, T, H, W)`` float32 from the frame masks of a cine item.

    Channel 0 holds the mask of each labelled frame (``data["label_<name>"]`` for every ``name, t`` in
    ``data[frames_key]``, a contour file or a mask image, read by :func:`~monai_jepa.data.cine.load_frame_mask` on
    the clip's grid; the plane ``data["slice_index"]`` of a 3D label volume, the class ``data["label_value"]`` when
    the item has one), channel 1 is 1 on those frames. An item without ``frames_key`` gets no labelled frame.

    Args:
        image_key: key of the loaded clip ``(C, T, H, W)`` (for its grid).
        frames_key: key of the ``{name: frame index}`` dict (e.g. ``{"ed": 18, "es": 7}``).
        label_key: output key.

    Raises:
        ValueError: a frame index outside the clip, or a missing ``label_<name>`` (naming the item's image).
    """

    def __init__(self, image_key: str = "image", frames_key: str = "label_frames", label_key: str = "label") -> None:
        super().__init__([image_key])
        self.image_key, self.frames_key, self.label_key = image_key, frames_key, label_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_jepa.data.cine import load_frame_mask

        d = dict(data)
        clip = d[self.image_key]
        t, h, w = (int(v) for v in clip.shape[1:])
        label = torch.zeros(2, t, h, w, dtype=torch.float32)
        source = getattr(clip, "meta", {}).get("filename_or_obj", self.image_key)
        for name, frame in (d.get(self.frames_key) or {}).items():
            if not 0 <= int(frame) < t or f"label_{name}" not in d:
                raise ValueError(
                    f"{source}: labelled frame {name!r} = {frame} needs 0 <= frame < {t} and a 'label_{name}' entry."
                )
            mask = load_frame_mask(d[f"label_{name}"], (h, w), d.get("slice_index"), d.get("label_value"))
            label[0, int(frame)] = torch.from_numpy(mask.astype(np.float32))
            label[1, int(frame)] = 1.0
        d[self.label_key] = label
        return d


class TemporalSample(Randomizable, Transform):
    """``num_frames`` frames ``start, start + stride, ...`` of a clip ``(C, T, H, W)``.

    Args:
        num_frames: frames in the output (a fixed count, so clips batch and the token grid is fixed).
        stride: step between sampled frames (>= 1).
        random_start: draw ``start`` uniformly (from ``self.R``); False: start at frame 0 (inference).
        cyclic: indices wrap around ``T`` (one cardiac cycle is periodic); False: a random start keeps the span
            inside the clip when it fits, and indices past the end repeat the last frame.

    Example::

        TemporalSample(16, stride=1)(clip)  # (C, 20, H, W) -> (C, 16, H, W)
    """

    def __init__(self, num_frames: int, stride: int = 1, random_start: bool = True, cyclic: bool = True) -> None:
        if int(num_frames) < 1 or int(stride) < 1:
            raise ValueError(f"`num_frames` and `stride` must be >= 1, got {num_frames} and {stride}.")
        self.num_frames, self.stride = int(num_frames), int(stride)
        self.random_start, self.cyclic = bool(random_start), bool(cyclic)
        self._start = 0

    def randomize(self, num_input: int) -> None:
        span = (self.num_frames - 1) * self.stride + 1
        high = num_input if self.cyclic else max(1, num_input - span + 1)
        self._start = int(self.R.randint(0, high)) if self.random_start else 0

    def indices(self, num_input: int) -> np.ndarray:
        """The frame indices of the last draw for a clip of ``num_input`` frames."""
        idx = self._start + self.stride * np.arange(self.num_frames)
        return idx % num_input if self.cyclic else np.minimum(idx, num_input - 1)

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1] < 1:
            raise ValueError(f"TemporalSample expects a clip (C, T, H, W) with T >= 1, got shape {tuple(img.shape)}.")
        if randomize:
            self.randomize(int(img.shape[1]))
        return img[:, torch.as_tensor(self.indices(int(img.shape[1])))]


class TemporalSampled(Randomizable, MapTransform):
    """Dictionary version of :class:`TemporalSample`: the same frames for every key; the indices go to
    ``data[indices_key]`` (``(num_frames,)`` int64) so frame labels can follow.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_frames: int,
        stride: int = 1,
        random_start: bool = True,
        cyclic: bool = True,
        indices_key: str = "frame_indices",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.sampler, self.indices_key = TemporalSample(num_frames, stride, random_start, cyclic), indices_key

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> TemporalSampled:
        super().set_random_state(seed, state)
        self.sampler.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        self.sampler.randomize(int(data))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        num = {int(d[k].shape[1]) for k in keys}
        if len(num) != 1:
            raise ValueError(f"the clips {keys} have different frame counts {sorted(num)}.")
        self.randomize(num.pop())
        for key in keys:
            d[key] = self.sampler(d[key], randomize=False)
        d[self.indices_key] = torch.as_tensor(self.sampler.indices(int(data[keys[0]].shape[1])), dtype=torch.int64)
        return d


LoadCineD = LoadCineDict = LoadCined
LoadFrameLabelsD = LoadFrameLabelsDict = LoadFrameLabelsd
TemporalSampleD = TemporalSampleDict = TemporalSampled
