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
"""Intensity and channel transforms that fill gaps in MONAI, as array / dictionary pairs.

* :class:`InvertMonochrome1` / :class:`InvertMonochrome1d`: DICOM ``MONOCHROME1`` images store bright as dark; invert
  them so that they read like ``MONOCHROME2``.
* :class:`MatchChannels` / :class:`MatchChannelsd`: convert a channel-first image to a wanted channel count (RGB(A)
  to luminance, one channel to three, RGBA to RGB).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

__all__ = [
    "InvertMonochrome1",
    "InvertMonochrome1d",
    "InvertMonochrome1D",
    "InvertMonochrome1Dict",
    "MatchChannels",
    "MatchChannelsd",
    "MatchChannelsD",
    "MatchChannelsDict",
    "match_channels",
]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def _photometric(img: Any) -> str | None:
    """The DICOM PhotometricInterpretation from a MetaTensor's metadata (pydicom / ITK keys) or its source file."""
    meta = getattr(img, "meta", None) or {}
    for key in ("00280004", "0028|0004", "PhotometricInterpretation", "photometric_interpretation"):
        value = meta.get(key)
        if isinstance(value, Mapping):  # pydicom JSON form {"vr": "CS", "Value": ["MONOCHROME1"]}
            value = (value.get("Value") or [None])[0]
        if value is not None:
            return str(value).strip().upper()
    source = meta.get("filename_or_obj")
    if isinstance(source, str) and source:
        from monai_jepa.data.dicom import is_dicom_file, read_header  # the data package imports this module

        if is_dicom_file(source):
            return str(read_header(source).get("PhotometricInterpretation", "")).upper() or None
    return None


class InvertMonochrome1(Transform):
    """Invert a DICOM ``MONOCHROME1`` image (bright stored as dark) so that it reads like ``MONOCHROME2``.

    The image is mapped to ``max + min - image`` (range kept). Images of any other photometric interpretation, and
    images without DICOM metadata (PNG / JPEG), pass unchanged. The interpretation comes from the metadata (pydicom or
    ITK keys), else from the header of the source file.

    Args:
        photometric: force the interpretation instead of reading it from the metadata (``"MONOCHROME1"`` to invert).

    Example::

        img = LoadImage(reader=PydicomReader(prune_metadata=False), ensure_channel_first=True)("cr.dcm")
        img = InvertMonochrome1()(img)  # (1, W, H), bones bright
    """

    def __init__(self, photometric: str | None = None) -> None:
        self.photometric = photometric

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Invert ``img`` (any shape) when it is ``MONOCHROME1``; a MetaTensor then says ``MONOCHROME2``."""
        photometric = self.photometric.upper() if self.photometric else _photometric(img)
        if photometric != "MONOCHROME1":
            return img
        out = img.max() + img.min() - img
        if isinstance(out, MetaTensor):
            out.meta["photometric_interpretation"] = "MONOCHROME2"
        return out


class InvertMonochrome1d(MapTransform):
    """Dictionary version of :class:`InvertMonochrome1`.

    Args:
        keys: keys of the images to invert when they are ``MONOCHROME1``.
        photometric: see :class:`InvertMonochrome1`.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(self, keys: KeysCollection, photometric: str | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.invert = InvertMonochrome1(photometric)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.invert(d[key])
        return d


def match_channels(img: Any, channels: int | None) -> Any:
    """Convert a channel-first image to ``channels`` channels (numpy array or tensor, ``(C, *spatial)``).

    RGB / RGBA to one channel uses the ITU-R 601 luma weights (the alpha channel is dropped); one channel to three
    repeats it; RGBA to RGB drops alpha. ``channels=None`` or an equal count returns ``img`` unchanged.

    Args:
        img: image of shape ``(C, *spatial)``.
        channels: wanted channel count, or None.

    Returns:
        the image with ``channels`` channels, of the same array type.

    Raises:
        InvalidImageError: for any other conversion (e.g. 2 channels to 1).

    Example::

        gray = match_channels(np.random.rand(3, 64, 64), 1)  # (1, 64, 64)
    """
    c = int(img.shape[0])
    if channels is None or c == channels:
        return img
    if channels == 1 and c in (3, 4):
        w = _LUMA
        return w[0] * img[0:1] + w[1] * img[1:2] + w[2] * img[2:3]
    if channels == 3 and c == 1:
        return torch.cat([img] * 3) if isinstance(img, torch.Tensor) else np.concatenate([img] * 3)
    if channels == 3 and c == 4:
        return img[:3]
    from monai_jepa.data.errors import InvalidImageError  # the data package imports this module

    raise InvalidImageError(
        f"cannot convert an image with {c} channels (shape {tuple(img.shape)}) to {channels} channels; "
        "expected 1, 3 (RGB) or 4 (RGBA) channels."
    )


class MatchChannels(Transform):
    """Convert a channel-first image to ``channels`` channels with :func:`match_channels`.

    Args:
        channels: wanted channel count (1 or 3), or None to keep the image's.

    Example::

        gray = MatchChannels(1)(torch.rand(3, 64, 64))  # (1, 64, 64), ITU-R 601 luma
    """

    def __init__(self, channels: int | None) -> None:
        if channels is not None and int(channels) < 1:
            raise ValueError(f"`channels` must be None or >= 1, got {channels!r}.")
        self.channels = None if channels is None else int(channels)

    def __call__(self, img: Any) -> Any:
        """``img`` ``(C, *spatial)`` with ``self.channels`` channels."""
        return match_channels(img, self.channels)


class MatchChannelsd(MapTransform):
    """Dictionary version of :class:`MatchChannels`.

    Args:
        keys: keys of the images to convert.
        channels: wanted channel count, or None.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(self, keys: KeysCollection, channels: int | None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.match = MatchChannels(channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.match(d[key])
        return d


InvertMonochrome1D = InvertMonochrome1Dict = InvertMonochrome1d
MatchChannelsD = MatchChannelsDict = MatchChannelsd
