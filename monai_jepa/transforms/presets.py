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
"""Per-modality preprocessing presets: MONAI ``Compose`` pipelines of dictionary transforms, ready for a dataset.

* :func:`ct_preset`: load, channel first, orientation, optional resampling, HU window to [0, 1] (named windows:
  ``"lung"``, ``"soft_tissue"``, ``"bone"``, ``"brain"``).
* :func:`mri_preset`: load (optionally several sequences stacked as channels), orientation, optional resampling,
  z-score on non-zero voxels or percentile scaling.
* :func:`cxr_preset`: PNG / JPEG / DICOM chest X-rays: grayscale, MONOCHROME1 inversion, percentile (or fixed)
  window to [0, 1], aspect-preserving resize and padding to a square.
* :func:`rgb_preset`: histopathology, dermatology, fundus photographs: RGB in [0, 1], resize, mean / std.
* :func:`get_preset` picks one by modality name.

The loading and intensity transforms they use beyond MONAI's (:class:`~monai_jepa.transforms.InvertMonochrome1d`,
:class:`~monai_jepa.transforms.StackSequencesd`, :class:`~monai_jepa.transforms.LoadCXRDicomd`,
:class:`~monai_jepa.transforms.MatchChannelsd`) live in :mod:`monai_jepa.transforms`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import PILReader, PydicomReader
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapLabelValued,
    NormalizeIntensityd,
    Orientationd,
    Resized,
    ResizeWithPadOrCropd,
    ScaleIntensityd,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
    Spacingd,
    SpatialPadd,
)
from monai.utils import ensure_tuple_rep, look_up_option

from monai_jepa.transforms.intensity import InvertMonochrome1d, MatchChannelsd
from monai_jepa.transforms.io import LoadCXRDicomd, LoadVolumed, StackSequencesd
from monai_jepa.utils.module import require_package

__all__ = [
    "CT_WINDOWS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ct_preset",
    "mri_preset",
    "cxr_preset",
    "rgb_preset",
    "get_preset",
    "image_preprocessing",
    "volume_preprocessing",
    "is_nonzero",
    "RAS_LABELS",
]

#: CT windows as (lowest, highest) Hounsfield units, from the usual (level, width) settings
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-1350.0, 150.0),  # L -600, W 1500
    "soft_tissue": (-160.0, 240.0),  # L 40, W 400
    "bone": (-500.0, 1300.0),  # L 400, W 1800
    "brain": (0.0, 80.0),  # L 40, W 80
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
# axis labels of the orientation codes (passed explicitly: MONAI 1.5 and 1.6 then behave the same)
#: axis labels of ``Orientationd`` for RAS (given explicitly, as MONAI asks)
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------------------- presets


def _as_keys(keys: KeysCollection | None) -> list[Hashable]:
    if keys is None:
        return []
    return [keys] if isinstance(keys, (str, int)) else list(keys)


def _check_pair(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, Sequence) or len(value) != 2 or not float(value[0]) < float(value[1]):
        raise ValueError(f"`{name}` must be a (low, high) pair with low < high, got {value!r}.")
    return float(value[0]), float(value[1])


def _geometry(
    keys: list, label_keys: list, load: bool, reader: Any, orientation: str | None, spacing: Any
) -> list[Callable]:
    """Load + channel first (+ orientation) (+ resampling, nearest for labels)."""
    all_keys = keys + label_keys
    ts: list[Callable] = []
    if load:
        ts += [LoadImaged(all_keys, reader=reader, image_only=True), EnsureChannelFirstd(all_keys)]
    if orientation:
        ts.append(Orientationd(all_keys, axcodes=orientation, labels=RAS_LABELS))
    if spacing is not None:
        modes = ["bilinear"] * len(keys) + ["nearest"] * len(label_keys)
        ts.append(Spacingd(all_keys, pixdim=spacing, mode=modes))
    return ts


def ct_preset(
    window: str | Sequence[float] = (-1000.0, 400.0),
    spacing: Sequence[float] | float | None = None,
    orientation: str | None = "RAS",
    keys: KeysCollection = ("image",),
    label_keys: KeysCollection | None = None,
    clip: bool = True,
    reader: Any = None,
    load: bool = True,
) -> Compose:
    """CT preprocessing: load, channel first, orientation, resampling, Hounsfield window mapped to [0, 1].

    Args:
        window: ``(low, high)`` HU mapped to [0, 1], or a name in :data:`CT_WINDOWS` (``"lung"``, ``"soft_tissue"``,
            ``"bone"``, ``"brain"``).
        spacing: target voxel size in mm (``Spacingd`` pixdim), or None to keep the native grid.
        orientation: axis codes (``"RAS"``), or None to keep the stored orientation.
        keys: image keys (windowed; bilinear resampling).
        label_keys: label keys (nearest-neighbour resampling, values kept).
        clip: clip values outside the window to 0 / 1.
        reader: MONAI image reader for ``LoadImaged`` (None: MONAI's choice by file type).
        load: include ``LoadImaged`` + ``EnsureChannelFirstd`` (False for already-loaded channel-first MetaTensors).

    Returns:
        a ``Compose`` mapping ``{"image": path, ...}`` to float32 images ``(1, X, Y, Z)`` in [0, 1].

    Example::

        t = ct_preset("lung", spacing=(1.0, 1.0, 2.0))
        image = t({"image": "ct_series_folder"})["image"]
    """
    if isinstance(window, str):
        lo, hi = look_up_option(window, CT_WINDOWS)
    else:
        lo, hi = _check_pair("window", window)
    keys, label_keys = _as_keys(keys), _as_keys(label_keys)
    ts = _geometry(keys, label_keys, load, reader, orientation, spacing)
    ts.append(ScaleIntensityRanged(keys, a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=clip))
    return Compose(ts)


def mri_preset(
    normalize: str = "zscore",
    nonzero: bool = True,
    channel_wise: bool = True,
    spacing: Sequence[float] | float | None = None,
    orientation: str | None = "RAS",
    keys: KeysCollection = ("image",),
    label_keys: KeysCollection | None = None,
    sequences: Sequence[str] | None = None,
    percentiles: Sequence[float] = (0.5, 99.5),
    reader: Any = None,
    load: bool = True,
) -> Compose:
    """MRI preprocessing: load (stacking sequences), orientation, resampling, intensity normalisation.

    Args:
        normalize: ``"zscore"`` (``NormalizeIntensityd``: zero mean, unit variance) or ``"percentile"`` (the
            ``percentiles`` of each image mapped to [0, 1], clipped).
        nonzero: z-score statistics from the non-zero voxels only, leaving the zero background at 0 (``"zscore"``).
        channel_wise: normalise each channel (sequence) separately.
        spacing: target voxel size in mm, or None to keep the native grid.
        orientation: axis codes, or None.
        keys: image keys; with ``sequences``, the single key that receives the stacked sequences.
        label_keys: label keys (nearest-neighbour resampling).
        sequences: item keys of the sequences to load and stack as channels with
            :class:`~monai_jepa.transforms.StackSequencesd` (shape and affine checked), e.g. ``("t1", "t2", "flair")``.
        percentiles: ``(lower, upper)`` percentiles for ``"percentile"``.
        reader: MONAI image reader for ``LoadImaged``.
        load: include loading (False for already-loaded channel-first MetaTensors).

    Returns:
        a ``Compose`` giving float32 images ``(C, X, Y, Z)`` (``C`` = number of sequences, else 1).

    Example::

        t = mri_preset("zscore", spacing=(1.0, 1.0, 1.0), sequences=("t1", "flair"))
        image = t({"t1": "t1.nii.gz", "flair": "flair.nii.gz"})["image"]  # (2, X, Y, Z)
    """
    normalize = look_up_option(normalize, ("zscore", "percentile"))
    keys, label_keys = _as_keys(keys), _as_keys(label_keys)
    ts: list[Callable] = []
    if sequences:
        if len(keys) != 1:
            raise ValueError(f"with `sequences`, `keys` must be the single output key, got {keys!r}.")
        seq = list(sequences)
        if load:
            ts += [LoadImaged(seq, reader=reader, image_only=True), EnsureChannelFirstd(seq)]
        ts.append(StackSequencesd(seq, out_key=keys[0], delete_keys=True))
        if load and label_keys:
            ts += [LoadImaged(label_keys, reader=reader, image_only=True), EnsureChannelFirstd(label_keys)]
        ts += _geometry(keys, label_keys, False, reader, orientation, spacing)
    else:
        ts += _geometry(keys, label_keys, load, reader, orientation, spacing)
    if normalize == "zscore":
        ts.append(NormalizeIntensityd(keys, nonzero=nonzero, channel_wise=channel_wise))
    else:
        lo, hi = _check_pair("percentiles", percentiles)
        ts.append(ScaleIntensityRangePercentilesd(keys, lo, hi, 0.0, 1.0, clip=True, channel_wise=channel_wise))
    return Compose(ts)


def _pil_to_rgb(img: Any) -> Any:
    return img.convert("RGB")


def _resize(keys: list, label_keys: list, size: int | Sequence[int] | None, keep_aspect: bool) -> list[Callable]:
    if size is None:
        return []
    size2 = (size, size) if isinstance(size, int) else tuple(size)
    if len(size2) != 2 or min(size2) < 1:
        raise ValueError(f"`size` must be an int or an (H, W) pair of ints >= 1, got {size!r}.")
    modes = ["area"] * len(keys) + ["nearest"] * len(label_keys)
    all_keys = keys + label_keys
    if keep_aspect:
        return [
            Resized(all_keys, spatial_size=max(size2), size_mode="longest", mode=modes),
            SpatialPadd(all_keys, spatial_size=size2),
        ]
    return [Resized(all_keys, spatial_size=size2, mode=modes)]


def cxr_preset(
    size: int | Sequence[int] | None = 224,
    window: str | Sequence[float] = "percentile",
    percentiles: Sequence[float] = (0.5, 99.5),
    keep_aspect: bool = True,
    source: str = "auto",
    keys: KeysCollection = ("image",),
    label_keys: KeysCollection | None = None,
    reader: Any = None,
    load: bool = True,
) -> Compose:
    """Chest X-ray preprocessing for PNG / JPEG and DICOM (CR / DX) files.

    With ``source="auto"``: loads PNG / JPEG through ``PILReader`` and DICOM through ``PydicomReader`` (full
    metadata), converts colour files to grayscale, inverts ``MONOCHROME1`` DICOMs
    (:class:`~monai_jepa.transforms.InvertMonochrome1d`), maps the window to [0, 1]. With ``source="dicom"``
    (DICOM-only datasets): loads with :class:`~monai_jepa.transforms.LoadCXRDicomd`, which applies the header's VOI
    window (or the percentile window), masks unused high bits and inverts ``MONOCHROME1``. Then resizes. Note the axis
    order: MONAI's readers (``"auto"``) give ``(1, W, H)``, ``LoadCXRDicomd`` gives ``(1, H, W)`` (rows first).

    Args:
        size: output ``size`` or ``(H, W)``; None keeps the native size.
        window: ``"percentile"`` (the ``percentiles`` of each image mapped to [0, 1], robust to the very different
            raw ranges of DICOM detectors and 8-bit PNGs) or a fixed ``(low, high)`` range of stored values. With
            ``source="dicom"``: passed to ``LoadCXRDicomd`` (``None``, ``"header"``, ``"percentile"``, ``"full"``,
            ``"minmax"`` or ``(center, width)``).
        percentiles: ``(lower, upper)`` for ``"percentile"``.
        keep_aspect: resize the longest side to ``size`` and zero-pad to the square, instead of stretching.
        source: ``"auto"`` (PNG / JPEG / DICOM) or ``"dicom"`` (DICOM radiographs through ``LoadCXRDicomd``).
        keys: image keys.
        label_keys: label / mask keys (nearest-neighbour resizing, no intensity change).
        reader: reader(s) for ``LoadImaged``; the default reads PNG / JPEG and DICOM as described.
        load: include loading (False for already-loaded channel-first MetaTensors).

    Returns:
        a ``Compose`` giving float32 images ``(1, H, W)`` in [0, 1].

    Example::

        t = cxr_preset(size=256)
        image = t({"image": "cr.dcm"})["image"]  # (1, 256, 256)
    """
    source = look_up_option(source, ("auto", "dicom"))
    keys, label_keys = _as_keys(keys), _as_keys(label_keys)
    ts: list[Callable] = []
    if source == "dicom":
        if load:
            ts.append(LoadCXRDicomd(keys, window=window, percentiles=percentiles))
            if label_keys:
                ts += [LoadImaged(label_keys, image_only=True), EnsureChannelFirstd(label_keys)]
        return Compose(ts + _resize(keys, label_keys, size, keep_aspect))
    if load:
        if reader is None:
            reader = [PydicomReader(prune_metadata=False), PILReader()]  # later = tried first: PIL for .png/.jpg
        ts += [LoadImaged(keys, reader=reader, image_only=True), EnsureChannelFirstd(keys)]
        if label_keys:
            ts += [LoadImaged(label_keys, image_only=True), EnsureChannelFirstd(label_keys)]
    ts += [MatchChannelsd(keys, 1), InvertMonochrome1d(keys)]
    if isinstance(window, str):
        look_up_option(window, ("percentile",))
        lo, hi = _check_pair("percentiles", percentiles)
        ts.append(ScaleIntensityRangePercentilesd(keys, lo, hi, 0.0, 1.0, clip=True))
    else:
        lo, hi = _check_pair("window", window)
        ts.append(ScaleIntensityRanged(keys, a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True))
    ts += _resize(keys, label_keys, size, keep_aspect)
    return Compose(ts)


def rgb_preset(
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    size: int | Sequence[int] | None = 224,
    keep_aspect: bool = False,
    keys: KeysCollection = ("image",),
    label_keys: KeysCollection | None = None,
    reader: Any = None,
    load: bool = True,
) -> Compose:
    """RGB photographs (histopathology tiles, dermoscopy, fundus): RGB in [0, 1], resize, per-channel mean / std.

    Args:
        mean: per-channel mean subtracted after scaling to [0, 1] (default ImageNet's).
        std: per-channel standard deviation divided by (default ImageNet's).
        size: output ``size`` or ``(H, W)``; None keeps the native size.
        keep_aspect: resize the longest side and pad instead of stretching.
        keys: image keys (8-bit PNG / JPEG / TIFF; grayscale and RGBA files are converted to RGB).
        label_keys: mask keys (loaded as stored, nearest-neighbour resizing).
        reader: reader for the images (default ``PILReader`` converting to RGB).
        load: include loading (False for already-loaded channel-first 0-255 MetaTensors).

    Returns:
        a ``Compose`` giving float32 images ``(3, H, W)``, normalised.

    Example::

        t = rgb_preset(size=224)
        image = t({"image": "tile.png"})["image"]  # (3, 224, 224)
    """
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"`mean` and `std` must have 3 entries each, std > 0; got mean={mean!r}, std={std!r}.")
    keys, label_keys = _as_keys(keys), _as_keys(label_keys)
    ts: list[Callable] = []
    if load:
        if reader is None:
            require_package("PIL", "monai_jepa.transforms.rgb_preset", "PNG / JPEG input")
        ts += [LoadImaged(keys, reader=reader or PILReader(converter=_pil_to_rgb), image_only=True)]
        if label_keys:
            ts.append(LoadImaged(label_keys, image_only=True))
        ts.append(EnsureChannelFirstd(keys + label_keys))
    ts.append(ScaleIntensityRanged(keys, a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0))
    ts += _resize(keys, label_keys, size, keep_aspect)
    ts.append(NormalizeIntensityd(keys, subtrahend=list(mean), divisor=list(std), channel_wise=True))
    return Compose(ts)


_PRESETS: dict[str, Callable[..., Compose]] = {
    "ct": ct_preset,
    "mri": mri_preset,
    "mr": mri_preset,
    "cxr": cxr_preset,
    "xr": cxr_preset,
    "xray": cxr_preset,
    "rgb": rgb_preset,
    "histopathology": rgb_preset,
    "dermatology": rgb_preset,
    "fundus": rgb_preset,
}


def get_preset(modality: str, **kwargs: Any) -> Compose:
    """The preset for ``modality``: ``"ct"``, ``"mri"`` / ``"mr"``, ``"cxr"`` / ``"xr"`` / ``"xray"``, ``"rgb"`` /
    ``"histopathology"`` / ``"dermatology"`` / ``"fundus"``.

    Args:
        modality: modality name (case-insensitive).
        kwargs: arguments of the preset function.

    Returns:
        the preset's ``Compose``.

    Example::

        t = get_preset("ct", window="soft_tissue", spacing=(1.5, 1.5, 2.0))
    """
    if not isinstance(modality, str):
        raise ValueError(f"`modality` must be a string, got {modality!r}.")
    return look_up_option(modality.lower(), _PRESETS)(**kwargs)


def image_preprocessing(
    image_size: int | Sequence[int] = 64,
    in_channels: int | None = 1,
    keys: str | Sequence[str] = "image",
    load: bool = True,
    reader: Any = None,
    scale_intensity: bool | None = None,
    spatial_dims: int = 2,
    loader: Callable | None = None,
) -> Compose:
    """The deterministic 2D preprocessing of :func:`~monai_jepa.data.resolve_image_source`, usable on its own (e.g.
    by MONAI Label).

    ``load=True`` (files): ``LoadImaged`` (PNG / JPEG through ``PILReader`` in row-major order, or ``reader``) ->
    ``EnsureChannelFirstd`` -> channel conversion (:class:`~monai_jepa.transforms.MatchChannelsd`) -> ``Resized`` to
    ``image_size`` (bilinear, anti-aliased) -> per-image min-max scaling to [0, 1] -> float32 tensor without metadata.
    ``load=False`` (in-memory ``(C, *spatial)`` arrays already in [0, 1]): the same without loading and, by default,
    without rescaling.

    Args:
        image_size: output spatial size, an int for every axis or one per axis.
        in_channels: output channel count (see :func:`~monai_jepa.transforms.match_channels`); None keeps the input's.
        keys: keys of the images in the item dictionaries.
        load: whether the items hold file paths to load.
        reader: MONAI image reader (name or instance) for ``LoadImaged``; default ``PILReader(reverse_indexing=False)``.
        scale_intensity: min-max scale each image to [0, 1]; default ``load``.
        spatial_dims: number of spatial axes (2 for X-rays).
        loader: a dictionary transform that loads channel-first images (e.g. ``LoadCXRDicomd(keys="image")``); it
            replaces ``LoadImaged`` + ``EnsureChannelFirstd`` when ``load`` is True.

    Returns:
        a MONAI ``Compose``.

    Example::

        pre = image_preprocessing(image_size=224)
        item = pre({"image": "/data/cxr/00000001_000.png"})  # item["image"]: (1, 224, 224) float32
    """
    size = ensure_tuple_rep(image_size, spatial_dims)
    if any(int(s) < 1 for s in size):
        raise ValueError(f"`image_size` must be positive, got {image_size!r}.")
    transforms: list[Callable] = []
    if load and loader is not None:
        transforms.append(loader)
    elif load:
        if reader is None:
            require_package("PIL", "monai_jepa.transforms.image_preprocessing", "PNG / JPEG input")
        transforms += [
            LoadImaged(keys, reader=PILReader(reverse_indexing=False) if reader is None else reader, image_only=True),
            EnsureChannelFirstd(keys),
        ]
    transforms += [
        MatchChannelsd(keys, in_channels),
        Resized(keys, spatial_size=size, mode="bilinear", anti_aliasing=True),
    ]
    if load if scale_intensity is None else scale_intensity:
        transforms.append(ScaleIntensityd(keys, minv=0.0, maxv=1.0))
    transforms.append(EnsureTyped(keys, data_type="tensor", dtype=torch.float32, track_meta=False))
    return Compose(transforms)


def is_nonzero(x: torch.Tensor) -> torch.Tensor:
    """``select_fn`` of ``CropForegroundd`` that keeps every non-zero voxel (z-scored MRI has negative foreground).

    Args:
        x: image ``(C, *spatial)``.

    Returns:
        boolean tensor of the same shape.
    """
    return x != 0


def volume_preprocessing(
    spatial_size: Sequence[int] | int = 48,
    intensity: str = "mri",
    spacing: Sequence[float] | float | None = None,
    label: bool | str = True,
    load: bool = True,
    resample: bool = False,
    label_values: Sequence[int] | None = None,
    crop_foreground: bool = True,
    ct_window: Sequence[float] = (-1000.0, 400.0),
    track_meta: bool = False,
) -> Compose:
    """The deterministic 3D preprocessing of :func:`~monai_jepa.data.resolve_volume_source`, usable on its own
    (inference, MONAI Label).

    ``load=True`` (file items): :class:`~monai_jepa.transforms.LoadVolumed` -> RAS orientation -> optional resampling
    to ``spacing`` (trilinear; nearest for the label) -> intensity (``"mri"``: per-channel z-score on non-zero voxels,
    background kept at 0; ``"ct"``: ``ct_window`` Hounsfield units mapped to [0, 1]; ``"none"``) -> crop to the
    non-zero bounding box of the image -> symmetric zero pad / centre crop to ``spatial_size`` -> label values mapped
    to ``0 .. K-1`` -> float32 image and int64 label without metadata. ``load=False`` (in-memory ``(C, *spatial)``
    arrays, e.g. MedMNIST): only the pad / crop and the typing.

    Args:
        spatial_size: output spatial size (an int for every axis, or three).
        intensity: ``"mri"``, ``"ct"`` or ``"none"``.
        spacing: target voxel size in mm, or None to keep the native grid.
        label: whether items carry a label map (``True`` or ``"map"``); ``False`` or ``"class"`` for none or a class
            index (left unchanged).
        load: whether items hold file paths to load.
        resample: let ``LoadVolumed`` resample mismatched channels / labels (DICOM series of one study).
        label_values: stored label values, in class order (e.g. ``[0, 1, 2, 4]`` for BraTS 2021), mapped to
            ``0 .. K-1``; None keeps the stored values.
        crop_foreground: crop to the bounding box of the non-zero voxels before padding / cropping.
        ct_window: ``(low, high)`` Hounsfield units of ``"ct"``.
        track_meta: keep the outputs as ``MetaTensor`` s with their affine and the record of the applied transforms,
            so MONAI's ``Invertd`` can map a prediction back onto the input grid (inference, interpretation maps).

    Returns:
        a MONAI ``Compose``.

    Example::

        pre = volume_preprocessing((64, 64, 64), "mri", spacing=(1.5, 1.5, 1.5), label_values=[0, 1, 2, 4])
        item = pre({"image": ["t1.nii.gz", "t1ce.nii.gz", "t2.nii.gz", "flair.nii.gz"], "label": "seg.nii.gz"})
        # item["image"]: (4, 64, 64, 64) float32; item["label"]: (1, 64, 64, 64) int64 in {0, 1, 2, 3}
    """
    size = tuple(int(s) for s in ensure_tuple_rep(spatial_size, 3))
    if any(s < 1 for s in size):
        raise ValueError(f"`spatial_size` must be 3 positive ints, got {spatial_size!r}.")
    intensity = look_up_option(intensity, ("mri", "ct", "none"))
    label_map = label is True or label == "map"
    keys = ["image", "label"] if label_map else ["image"]
    transforms: list[Callable] = []
    if load:
        transforms.append(LoadVolumed(resample=resample))
        label_keys = ["label"] if label_map else None
        if intensity == "ct":
            transforms += ct_preset(ct_window, spacing, "RAS", "image", label_keys, load=False).transforms
        else:
            pre = mri_preset(
                "zscore", spacing=spacing, orientation="RAS", keys="image", label_keys=label_keys, load=False
            )
            transforms += pre.transforms if intensity == "mri" else pre.transforms[:-1]
        if crop_foreground:
            transforms.append(CropForegroundd(keys, source_key="image", select_fn=is_nonzero, allow_smaller=True))
    transforms.append(ResizeWithPadOrCropd(keys, spatial_size=size))
    if label_map and label_values is not None and list(label_values) != list(range(len(label_values))):
        values = [int(v) for v in label_values]
        transforms.append(MapLabelValued("label", orig_labels=values, target_labels=list(range(len(values)))))
    transforms.append(EnsureTyped("image", data_type="tensor", dtype=torch.float32, track_meta=track_meta))
    if label_map:
        transforms.append(EnsureTyped("label", data_type="tensor", dtype=torch.int64, track_meta=track_meta))
    return Compose(transforms)
