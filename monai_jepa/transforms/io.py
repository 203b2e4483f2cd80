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
"""Loading transforms, as array / dictionary pairs, on top of the checked readers of :mod:`monai_jepa.data`.

* :class:`LoadVolume` / :class:`LoadVolumed`: the volume(s) of a case (NIfTI files, DICOM series) as one
  channel-first ``MetaTensor`` with a RAS affine, and its label map on the same grid.
* :class:`StackSequences` / :class:`StackSequencesd`: the sequences of one study (T1, T2, FLAIR ...) as channels, after
  checking that they share a grid (the error names the two files that disagree).
* :class:`LoadCXRDicom` / :class:`LoadCXRDicomd` (and :func:`load_cxr_dicom`): a DICOM radiograph windowed to [0, 1].
* :class:`LoadCineDicom` / :class:`LoadCineDicomd`: a multi-frame (cine) DICOM as a ``(C, T, H, W)`` clip.
* :class:`SaveDicomSeg` / :class:`SaveDicomSegd`: a label map predicted on a DICOM series written as a DICOM SEG
  object that references that series (for the hospital's PACS).

Every failure is one of the documented :mod:`monai_jepa.data.errors`, naming the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, ResampleToMatch, Transform
from monai.utils import look_up_option

__all__ = [
    "LoadVolume",
    "LoadVolumed",
    "LoadVolumeD",
    "LoadVolumeDict",
    "StackSequences",
    "StackSequencesd",
    "StackSequencesD",
    "StackSequencesDict",
    "load_cxr_dicom",
    "LoadCXRDicom",
    "LoadCXRDicomd",
    "LoadCXRDicomD",
    "LoadCXRDicomDict",
    "LoadCineDicom",
    "LoadCineDicomd",
    "LoadCineDicomD",
    "LoadCineDicomDict",
    "SaveDicomSeg",
    "SaveDicomSegd",
    "SaveDicomSegD",
    "SaveDicomSegDict",
]

logger = logging.getLogger(__name__)

# the readers and errors live in monai_jepa.data, which imports this module: they are imported where they are used


def _source(img: Any, label: Any = None) -> str:
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj") or (f"<{label}>" if label is not None else "<in memory>"))


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _same_grid(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    if tuple(a.shape[1:]) != tuple(b.shape[1:]):
        return False
    if isinstance(a, MetaTensor) and isinstance(b, MetaTensor):
        return bool(torch.allclose(a.affine.double(), b.affine.double(), atol=atol, rtol=0.0))
    return True


def _check_atol(atol: float) -> float:
    if atol < 0:
        raise ValueError(f"`atol` must be >= 0, got {atol}.")
    return float(atol)


# ---------------------------------------------------------------------------------------------- StackSequences


class StackSequences(Transform):
    """Stack channel-first images (the sequences of one study) along the channel axis, after checking that they agree.

    Spatial shapes must be equal and, with ``check_affine``, affines equal within ``atol``; otherwise a
    :class:`~monai_jepa.data.ShapeMismatchError` names the two files. The output carries the first image's metadata
    (``torch.cat`` of MetaTensors, as MONAI's ``ConcatItemsd``).

    Args:
        check_affine: also require the same affine (spacing, orientation, origin).
        atol: absolute tolerance on affine entries (mm).

    Example::

        image = StackSequences()([t1, t2, flair])  # 3 x (1, X, Y, Z) -> (3, X, Y, Z)
    """

    def __init__(self, check_affine: bool = True, atol: float = 1e-3) -> None:
        self.check_affine, self.atol = check_affine, _check_atol(atol)

    def __call__(self, images: Sequence[Any], names: Sequence[Hashable] | None = None) -> Any:
        """Stack ``images`` (each ``(C_i, *spatial)``) into ``(sum C_i, *spatial)``.

        Args:
            images: channel-first arrays or tensors of one type, in channel order.
            names: what to call each image in errors (e.g. the item keys); default their positions.
        """
        from monai_jepa.data.errors import MissingFileError, ShapeMismatchError

        images = list(images)
        if not images:
            raise MissingFileError("no sequence to stack.")
        names = list(range(len(images))) if names is None else list(names)
        ref = images[0]
        for img, name in zip(images[1:], names[1:]):
            where = f"{_source(ref, names[0])} ({names[0]}) and {_source(img, name)} ({name})"
            if tuple(img.shape[1:]) != tuple(ref.shape[1:]):
                raise ShapeMismatchError(
                    f"{where} differ in spatial shape: {tuple(ref.shape[1:])} vs {tuple(img.shape[1:])}.",
                    _source(img, name),
                )
            if self.check_affine and isinstance(ref, MetaTensor) and isinstance(img, MetaTensor):
                a, b = ref.affine.double(), img.affine.double()
                if a.shape != b.shape or not torch.allclose(a, b, atol=self.atol, rtol=0.0):
                    raise ShapeMismatchError(
                        f"{where} differ in affine (atol {self.atol}): {np.round(a.numpy(), 4).tolist()} vs "
                        f"{np.round(b.numpy(), 4).tolist()}.",
                        _source(img, name),
                    )
        if any(not isinstance(img, type(ref)) for img in images):
            raise TypeError("All images to stack must have the same type.")
        if isinstance(ref, np.ndarray):
            return np.concatenate(images, axis=0)
        return torch.cat(images, dim=0)


class StackSequencesd(MapTransform):
    """Dictionary version of :class:`StackSequences`: stack the sequences under ``keys`` into ``out_key``.

    Every input must be channel first (after ``EnsureChannelFirstd``).

    Args:
        keys: the sequence keys, in channel order.
        out_key: key of the stacked image ``(sum of channels, *spatial)``.
        check_affine: also require the same affine (spacing, orientation, origin).
        atol: absolute tolerance on affine entries (mm).
        delete_keys: remove the sequence keys after stacking.
        allow_missing_keys: stack the sequences present instead of raising
            :class:`~monai_jepa.data.MissingFileError`.

    Example::

        t = StackSequencesd(["t1", "t2", "flair"], out_key="image")  # 3 x (1, X, Y, Z) -> (3, X, Y, Z)
    """

    def __init__(
        self,
        keys: KeysCollection,
        out_key: str = "image",
        check_affine: bool = True,
        atol: float = 1e-3,
        delete_keys: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.stack = StackSequences(check_affine, atol)
        self.out_key, self.delete_keys = out_key, delete_keys

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_jepa.data.errors import MissingFileError

        d = dict(data)
        if not self.allow_missing_keys:
            for key in self.keys:
                if key not in d:
                    raise MissingFileError(f"sequence {key!r} is missing from the item (keys: {sorted(map(str, d))}).")
        keys = list(self.key_iterator(d))
        if not keys:
            raise MissingFileError(f"none of the sequences {list(self.keys)} is in the item.")
        d[self.out_key] = self.stack([d[key] for key in keys], names=keys)
        if self.delete_keys:
            for key in keys:
                if key != self.out_key:
                    d.pop(key)
        return d


# -------------------------------------------------------------------------------------------------- LoadVolume


class LoadVolume(Transform):
    """Load the volume(s) of a case as one channel-first ``MetaTensor`` with a RAS affine.

    The value is one path (a NIfTI file, possibly 4D with channels last, or a DICOM series folder) or a list of channel
    entries, each a path or the list of DICOM files of one series; the channels are stacked with
    :class:`StackSequences` after checking that they share a grid, or, with ``resample=True``, after resampling the
    others onto the first one's grid (trilinear, MONAI ``ResampleToMatch``); each entry of such a list must hold one
    volume (a 4D file there raises :class:`~monai_jepa.data.InvalidImageError` naming it). Every file goes through
    :func:`~monai_jepa.data.load_checked` (DICOM through :mod:`monai_jepa.data.dicom`), so unreadable files, NaN voxels
    and wrong dimensionality raise the documented errors naming the file. Values that are not paths (in-memory arrays,
    class indices) pass unchanged.

    Args:
        resample: resample mismatched channels onto the first channel's grid instead of raising.
        atol: tolerance on affine entries (mm) for "same grid".

    Example::

        image = LoadVolume()(["t1.nii.gz", "flair.nii.gz"])  # MetaTensor (2, X, Y, Z)
    """

    def __init__(self, resample: bool = False, atol: float = 1e-3) -> None:
        self.resample, self.atol = resample, _check_atol(atol)

    @staticmethod
    def load_one(entry: Any, channels: int | None = None) -> MetaTensor:
        """One volume: a path, or the DICOM files of one series. Returns ``(C, X, Y, Z)`` with a RAS affine."""
        from monai_jepa.data.dicom import load_dicom
        from monai_jepa.data.io import load_checked

        if isinstance(entry, (list, tuple)):
            arr, meta = load_dicom(entry, source=Path(entry[0]).parent)
            source = str(Path(entry[0]).parent)
        else:
            arr, meta = load_checked(entry, expected_dims=3, expected_channels=channels)
            source = str(entry)
        affine = torch.as_tensor(np.asarray(meta["affine"], dtype=np.float64))
        return MetaTensor(
            torch.as_tensor(np.asarray(arr, dtype=np.float32)), affine=affine, meta={"filename_or_obj": source}
        )

    def __call__(self, value: Any) -> Any:
        """The image of a case (see the class description); non-path values are returned unchanged."""
        if _is_path(value):
            return self.load_one(value)
        if not isinstance(value, (list, tuple)) or not value:
            return value
        # one volume per sequence file: a 4D file among them would add channels that later batches cannot stack
        volumes = [self.load_one(v, channels=1 if len(value) > 1 else None) for v in value]
        if self.resample:
            ref = volumes[0]
            for i, vol in enumerate(volumes[1:], start=1):
                if not _same_grid(vol, ref, self.atol):
                    logger.info(f"resampling {_source(vol)} onto the grid of {_source(ref)}.")
                    volumes[i] = ResampleToMatch(mode="bilinear", padding_mode="zeros")(vol, ref)
        if len(volumes) == 1:
            return volumes[0]
        return StackSequences(atol=self.atol)(volumes)


class LoadVolumed(MapTransform):
    """Dictionary version of :class:`LoadVolume`: load a case's image and its label map on the same grid.

    The image is loaded with :class:`LoadVolume`. A label path is loaded as ``(1, *spatial)`` and must share the image
    grid (or is resampled onto it, nearest neighbour, with ``resample=True``); a list of paths as label is the DICOM
    files of one mask series.

    Args:
        image_key: key of the image path(s).
        label_key: key of the optional label map path.
        resample: resample mismatched channels and labels onto the first channel's grid instead of raising.
        atol: tolerance on affine entries (mm) for "same grid".
        allow_missing_keys: don't raise when the image key is missing.

    Raises:
        ShapeMismatchError: channels, or image and label, differ in shape or affine (``resample=False``); the message
            names both files.
        InvalidImageError: a label with more than one channel.

    Example::

        item = LoadVolumed()({"image": ["t1.nii.gz", "flair.nii.gz"], "label": "seg.nii.gz"})
        item["image"].shape, item["label"].shape  # (2, X, Y, Z), (1, X, Y, Z)
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        resample: bool = False,
        atol: float = 1e-3,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(image_key, allow_missing_keys)
        self.loader = LoadVolume(resample, atol)
        self.image_key, self.label_key, self.resample, self.atol = image_key, label_key, resample, atol

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from monai_jepa.data.errors import InvalidImageError, ShapeMismatchError

        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        image, label = d.get(self.image_key), d.get(self.label_key)
        series = isinstance(label, (list, tuple)) and bool(label) and all(_is_path(v) for v in label)
        if (_is_path(label) or series) and isinstance(image, torch.Tensor):
            lab = self.loader.load_one(label)
            if lab.shape[0] != 1:
                raise InvalidImageError(
                    f"label {_source(lab)} has {lab.shape[0]} channels (shape {tuple(lab.shape)}); expected one "
                    "label map.",
                    _source(lab),
                )
            if not _same_grid(lab, image, self.atol):
                if not self.resample:
                    what = "spatial shape" if tuple(lab.shape[1:]) != tuple(image.shape[1:]) else "affine"
                    raise ShapeMismatchError(
                        f"label {_source(lab)} and image {_source(image)} differ in {what}: "
                        f"{tuple(lab.shape[1:])} vs {tuple(image.shape[1:])} (affines "
                        f"{np.round(lab.affine.numpy(), 4).tolist()} vs {np.round(image.affine.numpy(), 4).tolist()}).",
                        _source(lab),
                    )
                lab = ResampleToMatch(mode="nearest", padding_mode="zeros")(lab, image)
            d[self.label_key] = lab
        return d


# ------------------------------------------------------------------------------------------------ LoadCXRDicom

_WINDOWS = ("header", "percentile", "full", "minmax")


def _first(value: Any) -> float | None:
    """First value of a (possibly multi-valued) DICOM number, or ``None``."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes, int, float)) and hasattr(value, "__getitem__"):
        value = value[0] if len(value) else None
    return None if value is None else float(value)


def _read_cxr(
    path: str | os.PathLike, window: str | Sequence[float] | None, percentiles: Sequence[float]
) -> tuple[np.ndarray, Any]:
    from monai_jepa.data.dicom import pixel_array, read_header
    from monai_jepa.data.errors import InvalidImageError, LayoutError

    path = Path(path)
    ds = read_header(path, stop_before_pixels=False)
    pixels = pixel_array(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if pixels.ndim != 2 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InvalidImageError(
            f"{path}: pixel array of shape {pixels.shape} ({photometric}); expected one grayscale frame "
            "(MONOCHROME1/2, 2D).",
            path=path,
        )
    bits = int(ds.get("BitsStored", pixels.dtype.itemsize * 8) or pixels.dtype.itemsize * 8)
    if pixels.dtype.kind == "u" and bits < pixels.dtype.itemsize * 8:
        pixels = pixels & np.asarray((1 << bits) - 1, dtype=pixels.dtype)
    slope, intercept = _first(ds.get("RescaleSlope")), _first(ds.get("RescaleIntercept"))
    slope = 1.0 if slope is None or slope == 0 else slope
    intercept = 0.0 if intercept is None else intercept
    values = pixels.astype(np.float64) * slope + intercept
    if not np.isfinite(values).all():
        raise InvalidImageError(f"{path}: non-finite pixel values after rescale.", path=path)

    if window is None or isinstance(window, str):
        mode = "auto" if window is None else look_up_option(window, _WINDOWS)
        center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
        if mode in ("auto", "header") and center is not None and width is not None and width > 0:
            low, high = center - width / 2.0, center + width / 2.0
        elif mode == "header":
            raise LayoutError(f"{path} has no usable Window Center / Width; choose another `window`.", path=path)
        elif mode == "full":
            signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
            stored = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
            low, high = sorted(s * slope + intercept for s in stored)
        elif mode == "minmax":
            low, high = float(values.min()), float(values.max())
        else:
            low, high = (float(v) for v in np.percentile(values, percentiles))
    else:
        if len(window) != 2 or float(window[1]) <= 0:
            raise ValueError(f"`window` must be (center, width) with width > 0, or one of {_WINDOWS}, got {window!r}.")
        low, high = float(window[0]) - float(window[1]) / 2.0, float(window[0]) + float(window[1]) / 2.0
    if high > low:
        image = np.clip((values - low) / (high - low), 0.0, 1.0)
    else:
        image = np.zeros_like(values)
    if photometric == "MONOCHROME1":
        image = 1.0 - image
    return image[None].astype(np.float32), ds


def load_cxr_dicom(
    path: str | os.PathLike, window: str | Sequence[float] | None = None, percentiles: Sequence[float] = (0.5, 99.5)
) -> np.ndarray:
    """Read a DICOM radiograph as a ``(1, H, W)`` float32 array in [0, 1], bone bright.

    Steps: decode (pydicom, through :func:`~monai_jepa.data.dicom.read_header`), mask the unused high bits of unsigned
    data (``BitsStored`` 8 / 12 / 16 ...), Rescale Slope / Intercept, window to [0, 1], invert ``MONOCHROME1``. A VOI
    LUT sequence or a sigmoid VOI LUT function is not applied (the linear window is).

    Args:
        path: the DICOM file (one grayscale frame).
        window: ``None`` (the header's first Window Center / Width when present, else the percentile window),
            ``"header"`` (required), ``"percentile"``, ``"full"`` (the range representable with ``BitsStored``),
            ``"minmax"``, or an explicit ``(center, width)`` in rescaled units.
        percentiles: lower and upper percentiles of the percentile window.

    Returns:
        float32 array ``(1, H, W)`` in [0, 1].

    Raises:
        MissingFileError: the file does not exist.
        UnreadableFileError: not DICOM, or pixel data that cannot be decoded (e.g. a compressed transfer syntax
            without its decoder package).
        InvalidImageError: not one grayscale frame, or non-finite values.
        LayoutError: ``window="header"`` on a file without a window.

    Example::

        image = load_cxr_dicom("RG1_UNCR.dcm")  # (1, 1955, 1841), MONOCHROME1 inverted
    """
    return _read_cxr(path, window, percentiles)[0]


class LoadCXRDicom(Transform):
    """Load a DICOM radiograph with :func:`load_cxr_dicom` as a ``MetaTensor`` ``(1, H, W)``.

    The affine holds the pixel spacing (``PixelSpacing``, else ``ImagerPixelSpacing``, else 1 mm).

    Args:
        window: see :func:`load_cxr_dicom`.
        percentiles: see :func:`load_cxr_dicom`.

    Example::

        image = LoadCXRDicom()("RG1_UNCR.dcm")  # MetaTensor (1, 1955, 1841), meta["filename_or_obj"]
    """

    def __init__(self, window: str | Sequence[float] | None = None, percentiles: Sequence[float] = (0.5, 99.5)) -> None:
        self.window = window
        self.percentiles = tuple(percentiles)

    def __call__(self, path: str | os.PathLike) -> MetaTensor:
        """The radiograph at ``path``, windowed to [0, 1]."""
        image, ds = _read_cxr(path, self.window, self.percentiles)
        spacing = next(
            (s for s in (ds.get("PixelSpacing"), ds.get("ImagerPixelSpacing")) if s and min(map(float, s)) > 0),
            (1.0, 1.0),
        )
        affine = torch.diag(torch.tensor([float(spacing[0]), float(spacing[1]), 1.0, 1.0], dtype=torch.float64))
        meta = {
            "filename_or_obj": str(path),
            "spatial_shape": np.asarray(image.shape[1:]),
            "patient_id": str(ds.get("PatientID", "") or ""),
            "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")),
        }
        return MetaTensor(torch.from_numpy(image), affine=affine, meta=meta)


class LoadCXRDicomd(MapTransform):
    """Dictionary version of :class:`LoadCXRDicom`: replaces the paths under ``keys`` by the loaded images.

    Args:
        keys: keys of the DICOM paths (e.g. ``"image"``).
        window: see :func:`load_cxr_dicom`.
        percentiles: see :func:`load_cxr_dicom`.
        allow_missing_keys: do not raise when a key is absent.

    Example::

        load = LoadCXRDicomd(keys="image")
        item = load({"image": "/data/cxr/0001.dcm", "label": 1})  # item["image"]: MetaTensor (1, H, W)
    """

    def __init__(
        self,
        keys: KeysCollection,
        window: str | Sequence[float] | None = None,
        percentiles: Sequence[float] = (0.5, 99.5),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadCXRDicom(window=window, percentiles=percentiles)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


# ----------------------------------------------------------------------------------------------- LoadCineDicom


class LoadCineDicom(Transform):
    """Load a multi-frame (cine) DICOM as a ``MetaTensor`` clip ``(C, T, H, W)``.

    Reads with :func:`~monai_jepa.data.dicom.load_cine_dicom`; its metadata (``num_frames``, ``fps``, ``spacing``, ...)
    go to the MetaTensor's ``meta``.

    Args:
        color: ``"rgb"`` (``C = 3`` for colour files) or ``"gray"`` (``C = 1``, ITU-R BT.601 luminance).

    Example::

        clip = LoadCineDicom(color="gray")("echo.dcm")  # MetaTensor (1, T, H, W)
    """

    def __init__(self, color: str = "rgb") -> None:
        self.color = look_up_option(color, ("rgb", "gray"))

    def __call__(self, path: str | os.PathLike) -> MetaTensor:
        """The clip at ``path``."""
        from monai_jepa.data.dicom import load_cine_dicom

        clip, meta = load_cine_dicom(path, color=self.color)
        return MetaTensor(torch.from_numpy(clip), meta={k: v for k, v in meta.items() if v is not None})


class LoadCineDicomd(MapTransform):
    """Dictionary version of :class:`LoadCineDicom`.

    Args:
        keys: keys of the DICOM paths.
        color: ``"rgb"`` or ``"gray"``.
        allow_missing_keys: don't raise when a key is missing.

    Example::

        clip = LoadCineDicomd("image", color="gray")({"image": "echo.dcm"})["image"]  # MetaTensor (1, T, H, W)
    """

    def __init__(self, keys: KeysCollection, color: str = "rgb", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadCineDicom(color)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


LoadVolumeD = LoadVolumeDict = LoadVolumed
StackSequencesD = StackSequencesDict = StackSequencesd
LoadCXRDicomD = LoadCXRDicomDict = LoadCXRDicomd
LoadCineDicomD = LoadCineDicomDict = LoadCineDicomd


# ------------------------------------------------------------------------------------------------ SaveDicomSeg


class SaveDicomSeg(Transform):
    """Write a label map predicted on a DICOM series as a DICOM SEG that references the series (highdicom).

    The label map must be on the grid the series was loaded on (:class:`LoadVolume`, i.e. the prediction inverted
    to the input, e.g. by MONAI's ``Invertd``); the series is the one named by the label's ``filename_or_obj``
    (a DICOM series folder, or one DICOM file): for a study whose sequences were stacked as channels, the first
    sequence, onto whose grid the others were resampled. Label maps of other sources (NIfTI files) are returned
    unchanged and nothing is written, so one inference config serves both. See
    :func:`~monai_jepa.data.write_dicom_seg`.

    Args:
        output_dir: folder of the SEG files, named ``<name>_seg.dcm`` (the series folder's name by default).
        class_names: a name per segmented class (background excluded).
        label_values: the label value of each class in the map (default ``1 .. len(class_names)``).
        series_description: Series Description of the SEG objects.

    Example::

        SaveDicomSeg("out", ["tumour core", "oedema", "enhancing"], [1, 2, 4])(pred, name="patient_001_study_1")
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        class_names: Sequence[str],
        label_values: Sequence[int] | None = None,
        series_description: str = "monai_jepa segmentation",
    ) -> None:
        self.output_dir, self.class_names = Path(output_dir), [str(c) for c in class_names]
        self.label_values = None if label_values is None else [int(v) for v in label_values]
        self.series_description = series_description

    def __call__(self, label: Any, name: str | None = None) -> Any:
        """Write the SEG of ``label`` when its source is DICOM (named ``name``, else after the series folder or file,
        as MONAI's ``SaveImage`` names its outputs)."""
        from monai_jepa.data.dicom import is_dicom_file, series_files
        from monai_jepa.data.dicom_seg import write_dicom_seg

        source = Path(_source(label))
        if source.is_dir():
            files = series_files(source)
        elif source.is_file() and is_dicom_file(source):
            files = [source]
        else:
            return label
        out = self.output_dir / f"{name or source.name.split('.dcm')[0]}_seg.dcm"
        write_dicom_seg(label, files, out, self.class_names, self.label_values, self.series_description)
        logger.info(f"saved the DICOM SEG {out}.")
        return label


class SaveDicomSegd(MapTransform):
    """Dictionary version of :class:`SaveDicomSeg`: the SEG file is named after ``data[name_key]`` (a case id such as
    ``patient_001_study_1``, which holds no header value) when the dictionary has one, else after the series folder.

    Args:
        keys: key(s) of the label maps.
        output_dir, class_names, label_values, series_description: see :class:`SaveDicomSeg`.
        name_key: key of the case id that names the file.
        allow_missing_keys: don't raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        class_names: Sequence[str],
        label_values: Sequence[int] | None = None,
        series_description: str = "monai_jepa segmentation",
        name_key: str = "id",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.saver, self.name_key = SaveDicomSeg(output_dir, class_names, label_values, series_description), name_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            name = d.get(self.name_key)
            self.saver(d[key], name=str(name) if name else None)
        return d


SaveDicomSegD = SaveDicomSegDict = SaveDicomSegd
