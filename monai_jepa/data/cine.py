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
"""Image sequences over time (2D+t): cine DICOM, the Sunnybrook layout, NIfTI clips and synthetic demo cines.

A *clip* is one 2D plane over time, read by :func:`load_cine` as a float32 array ``(C, T, H, W)``. A datalist item
holds the clip's ``image`` (one multi-frame DICOM, an ordered list of single-frame DICOMs, a NIfTI file
``(H, W, T)`` / ``(H, W, Z, T)`` with a ``slice_index``, or a video file, see :mod:`monai_jepa.data.video`) and, when
the frame labels are known, ``label_frames`` (``{"ed": t, "es": t}``) with one mask per labelled frame (``label_ed``,
``label_es``: a mask image or a contour text file, read by :func:`load_frame_mask`).

:func:`cine_datalist` resolves what a user points at: the Sunnybrook layout (``dicoms/`` + ``contourfiles/``), the
ACDC layout (``<patient>/Info.cfg`` + ``<patient>_4d.nii.gz``), any
folder of cine DICOM (single-frame files grouped per series and slice position and ordered by trigger time, or
multi-frame files), a folder of video files (AVI / MP4 ...), a folder of NIfTI clips, or, when nothing is there,
generated demo data.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import look_up_option, optional_import

from monai_jepa.utils.dist import get_rank, is_dist
from monai_jepa.utils.flags import as_bool

from .datalist import build_datalist, make_datalist, patient_split, write_datalist
from .dicom import find_dicom_files, load_cine_dicom, read_header
from .errors import EmptyDatasetError, InvalidImageError, LayoutError, MissingFileError, ShapeMismatchError
from .io import check_datalist, is_nifti
from .sources import _warn_synthetic
from .video import is_video, load_video, video_clips

nib, _ = optional_import("nibabel")

__all__ = [
    "CINE_SOURCE_KINDS",
    "CLIP_TARGETS_FILE",
    "cine_datalist",
    "clip_targets",
    "dicom_cine_clips",
    "load_cine",
    "load_frame_mask",
    "make_demo_cine",
    "rasterize_contour",
]

logger = logging.getLogger(__name__)

#: the layouts :func:`cine_datalist` recognises (``"auto"`` detects them in this order).
CINE_SOURCE_KINDS = ("sunnybrook", "acdc", "dicom", "video", "nifti", "demo")
_LAYOUTS = (
    "a Sunnybrook folder (dicoms/ + contourfiles/ + link.csv), an ACDC folder (<patient>/Info.cfg + _4d.nii.gz), "
    "a cine DICOM folder or file, video files or NIfTI clips"
)
#: per-clip value table of any layout: columns ``image`` (file name, stem or path) and ``target`` (optional ``split``)
CLIP_TARGETS_FILE = "targets.csv"
#: modalities whose multi-frame files are sequences over time (others, e.g. enhanced CT / MR, stack slices)
CINE_MODALITIES = ("US", "IVUS", "XA", "RF", "ES", "GM", "OCT")


# ------------------------------------------------------------------------------------------------------- reading


def load_cine(image: Any, color: str = "gray", slice_index: int | None = None) -> tuple[np.ndarray, dict]:
    """Read one clip as ``(C, T, H, W)`` float32.

    Args:
        image: a multi-frame DICOM file; a list of single-frame DICOM files in time order (every frame must have the
            same size); a NIfTI file ``(H, W, T)``, or ``(H, W, Z, T)`` with ``slice_index``; or a video file
            (:func:`~monai_jepa.data.video.load_video`).
        color: ``"gray"`` (``C = 1``) or ``"rgb"`` (``C = 3`` for colour DICOM).
        slice_index: the plane of a 4D NIfTI.

    Returns:
        ``(clip, meta)``: meta has ``filename_or_obj`` (the first file), ``num_frames`` and, for DICOM, ``spacing``
        and ``frame_time_ms`` when the files say.

    Raises:
        MissingFileError, UnreadableFileError, InvalidImageError (0 frames, wrong number of axes),
        ShapeMismatchError (frames of different sizes): each names the file.
    """
    color = look_up_option(color, ("gray", "rgb"))
    if isinstance(image, (list, tuple)):
        if not image:
            raise InvalidImageError("a cine clip given as a list of frames has 0 frames.", None)
        frames, meta = [], {}
        for k, path in enumerate(image):
            clip, m = load_cine_dicom(path, color=color)
            if clip.shape[1] != 1 or (frames and clip.shape != frames[0].shape):
                raise ShapeMismatchError(
                    f"{path}: frame {k} of the clip has shape {tuple(clip.shape)} (C, T, H, W); expected one frame "
                    f"of {tuple(frames[0].shape) if frames else '(C, 1, H, W)'} like {image[0]}.",
                    path,
                )
            frames.append(clip)
            meta = meta or m
        clip = np.concatenate(frames, axis=1)
        meta = {**meta, "filename_or_obj": str(image[0]), "num_frames": clip.shape[1]}
    elif is_nifti(image):
        path = Path(image)
        if not path.is_file():
            raise MissingFileError(f"{path}: no such cine file.", path)
        data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
        if data.ndim == 4 and slice_index is not None:
            data = data[:, :, int(slice_index)]
        if data.ndim != 3:
            raise InvalidImageError(
                f"{path}: a NIfTI clip must be (H, W, T), or (H, W, Z, T) with a slice_index; got {data.shape}.", path
            )
        clip = np.ascontiguousarray(data.transpose(2, 0, 1)[None])
        meta = {"filename_or_obj": str(path), "num_frames": clip.shape[1]}
    elif is_video(image):
        clip, meta = load_video(image, color=color)
    else:
        clip, meta = load_cine_dicom(image, color=color)
    if clip.shape[1] == 0:
        raise InvalidImageError(f"{meta.get('filename_or_obj', image)}: the clip has 0 frames.", image)
    return clip.astype(np.float32, copy=False), meta


def rasterize_contour(path: str | os.PathLike, shape: Sequence[int]) -> np.ndarray:
    """Fill the polygon of a contour text file (one ``x y`` point per line, in pixels) on an ``(H, W)`` grid.

    A pixel ``(row, col)`` is inside when its centre ``(x = col, y = row)`` is inside the polygon (even-odd rule).

    Raises:
        MissingFileError; InvalidImageError: fewer than 3 points, a line that is not two numbers, or a point outside
        the image (each names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such contour file.", path)
    h, w = int(shape[0]), int(shape[1])
    try:
        pts = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise InvalidImageError(f"{path}: a contour file must hold one 'x y' pair per line ({e}).", path) from e
    if pts.shape[1] != 2 or len(pts) < 3:
        raise InvalidImageError(f"{path}: a contour needs >= 3 'x y' points, got an array {pts.shape}.", path)
    x, y = pts[:, 0], pts[:, 1]
    if x.min() < -0.5 or y.min() < -0.5 or x.max() > w - 0.5 or y.max() > h - 0.5:
        raise InvalidImageError(
            f"{path}: contour points span x {x.min():.1f}..{x.max():.1f}, y {y.min():.1f}..{y.max():.1f}, outside "
            f"the {h}x{w} image.",
            path,
        )
    rows, cols = np.mgrid[0:h, 0:w]
    inside = np.zeros((h, w), dtype=bool)
    x0, y0, x1, y1 = x, y, np.roll(x, -1), np.roll(y, -1)
    for k in range(len(x)):  # ray casting towards +x, one polygon edge at a time
        if y0[k] == y1[k]:
            continue
        crosses = (y0[k] > rows) != (y1[k] > rows)
        x_at = x0[k] + (rows - y0[k]) * (x1[k] - x0[k]) / (y1[k] - y0[k])
        inside ^= crosses & (cols < x_at)
    return inside


def load_frame_mask(
    label: str | os.PathLike, shape: Sequence[int], slice_index: int | None = None, label_value: int | None = None
) -> np.ndarray:
    """The ``(H, W)`` uint8 mask of one labelled frame: a contour ``.txt`` (rasterised) or a NIfTI mask.

    Args:
        label: the contour file, a 2D mask image, or a 3D label volume ``(H, W, Z)`` with ``slice_index``.
        shape: the frame shape ``(H, W)``.
        slice_index: the plane of a 3D label volume.
        label_value: keep only this class of a multi-class label image (e.g. 3, the LV cavity of ACDC); default:
            every non-zero voxel.

    Raises:
        ShapeMismatchError: a mask image whose shape is not ``shape``; the errors of :func:`rasterize_contour`.
    """
    if str(label).lower().endswith(".txt"):
        return rasterize_contour(label, shape).astype(np.uint8)
    path = Path(label)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such mask file.", path)
    mask = np.asarray(nib.load(str(path)).dataobj)
    if slice_index is not None and mask.ndim == 3:
        mask = mask[:, :, int(slice_index)]
    mask = mask.squeeze()
    if mask.shape != tuple(shape):
        raise ShapeMismatchError(f"{path}: mask shape {mask.shape}, expected the frame shape {tuple(shape)}.", path)
    return (mask == label_value if label_value is not None else mask > 0).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------- layouts


def _position(ds: Any) -> tuple[float, ...]:
    pos = ds.get("ImagePositionPatient") or [ds.get("SliceLocation", 0.0)]
    return tuple(round(float(v), 1) for v in pos)


def dicom_cine_clips(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The cine clips of a DICOM folder (recursive), in a stable order.

    Multi-frame files are one clip each when they are sequences over time (a frame time or cine rate, or a modality
    in :data:`CINE_MODALITIES`; enhanced CT / MR volumes are left out). Single-frame files are grouped by patient,
    series and slice position (``ImagePositionPatient``, else ``SliceLocation``) and ordered by ``TriggerTime``
    (else ``InstanceNumber``); groups of one frame are not cine and are left out.

    Returns:
        dicts with ``image`` (a path, or the ordered list of paths), ``patient_id``, ``slice_index`` (order of the
        slice positions within the series), ``num_frames``.

    Raises:
        EmptyDatasetError: no clip. LayoutError: a slice with fewer phases than its ``CardiacNumberOfImages``
        (missing phases; names the folder and the counts).
    """
    root = Path(root)
    clips, groups = [], {}
    for path in [root] if root.is_file() else find_dicom_files(root):
        ds = read_header(path)
        patient = str(ds.get("PatientID", "") or path.parent.name)
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            timed = any(ds.get(k) for k in ("FrameTime", "FrameTimeVector", "CineRate"))
            if not timed and str(ds.get("Modality", "")) not in CINE_MODALITIES:
                continue  # a multi-frame volume (frames are slices), not a sequence
            clips.append({"image": str(path), "patient_id": patient, "num_frames": int(ds.NumberOfFrames)})
            continue
        key = (patient, str(ds.get("SeriesInstanceUID", path.parent)))
        order = (float(ds.get("TriggerTime", 0.0) or 0.0), int(ds.get("InstanceNumber", 0) or 0), str(path))
        groups.setdefault(key, {}).setdefault(_position(ds), []).append((order, path, ds.get("CardiacNumberOfImages")))
    for (patient, _), positions in sorted(groups.items()):
        for slice_index, pos in enumerate(sorted(positions)):
            frames = sorted(positions[pos])
            expected = frames[0][2]
            if expected and len(frames) < int(expected):
                raise LayoutError(
                    f"{frames[0][1].parent}: the cine slice at {pos} has {len(frames)} phases, expected "
                    f"{int(expected)} (CardiacNumberOfImages): missing phases.",
                    frames[0][1].parent,
                )
            if len(frames) > 1:
                files = [str(f[1]) for f in frames]
                clips.append(
                    {"image": files, "patient_id": patient, "slice_index": slice_index, "num_frames": len(files)}
                )
    if not clips:
        raise EmptyDatasetError(f"{root}: no cine clip (multi-frame DICOM or >= 2 phases of one slice) found.", root)
    return clips


def make_demo_cine(
    root: str | os.PathLike, num_cases: int = 6, size: Sequence[int] = (64, 64), num_frames: int = 16, seed: int = 0
) -> list[Path]:
    """Write synthetic beating-heart cine clips: ``case_<k>.nii.gz`` ``(H, W, T)``, ED / ES masks and a per-clip value.

    Each clip is a short-axis-like slice: a bright blood pool (the LV cavity) inside a darker myocardial ring in
    textured tissue, whose radius follows one cardiac cycle (largest at ED, frame 0; smallest at ES, about 40% of the
    cycle, shrunk by a random 20-50 %), at a random position, size and heart rate phase, with noise.
    ``case_<k>_ed.nii.gz`` and ``case_<k>_es.nii.gz`` are the cavity masks of those frames; ``targets.csv`` holds
    each clip's area ejection fraction in percent (``100 * (1 - ES area / ED area)``), a sequence-level value for the
    probes of ``cine_vjepa``'s ``evaluate.json``. Synthetic: only meant to exercise pipelines.

    Returns:
        the clip paths.
    """
    if num_cases < 1 or num_frames < 2 or min(size) < 16:
        raise ValueError(f"need num_cases >= 1, num_frames >= 2 and size >= 16, got {num_cases}, {num_frames}, {size}.")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = int(size[0]), int(size[1])
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    es = int(round(0.4 * num_frames))
    contraction = np.random.default_rng([seed, 7]).uniform(0.2, 0.5, num_cases)  # its own stream: clips keep theirs
    paths, rows_out = [], []
    for k in range(num_cases):
        centre = np.array([h, w]) * rng.uniform(0.4, 0.6, 2)
        r_ed = min(h, w) * rng.uniform(0.12, 0.18)
        wall = r_ed * rng.uniform(0.35, 0.5)
        texture = rng.normal(0.0, 1.0, (h // 4 + 1, w // 4 + 1)).repeat(4, 0).repeat(4, 1)[:h, :w]
        dist = np.hypot(rows - centre[0], cols - centre[1])
        clip, masks = np.zeros((h, w, num_frames), np.float32), {}
        for t in range(num_frames):
            phase = t / es if t <= es else 1.0 - (t - es) / (num_frames - es)
            radius = r_ed * (1.0 - contraction[k] * phase)
            cavity = dist < radius
            frame = 0.3 + 0.05 * texture
            frame[dist < radius + wall * (1.0 + 0.4 * phase)] = 0.15
            frame[cavity] = 0.9
            clip[..., t] = frame + rng.normal(0.0, 0.03, (h, w))
            masks[t] = cavity.astype(np.uint8)
        path = root / f"case_{k:03d}.nii.gz"
        nib.save(nib.Nifti1Image(clip, np.eye(4)), str(path))
        for name, t in (("ed", 0), ("es", es)):
            nib.save(nib.Nifti1Image(masks[t], np.eye(4)), str(root / f"case_{k:03d}_{name}.nii.gz"))
        paths.append(path)
        rows_out.append({"image": path.name, "target": f"{100.0 * (1.0 - masks[es].sum() / masks[0].sum()):.2f}"})
    with open(root / CLIP_TARGETS_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "target"])
        writer.writeheader()
        writer.writerows(rows_out)
    return paths


def _clip_key(image: Any) -> str:
    return Path(str(image)).name.split(".")[0]


def clip_targets(root: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Sequence-level values of the clips of a dataset folder, by clip file stem.

    Read from EchoNet-Dynamic's ``FileList.csv`` (columns ``FileName``, ``EF``, ``Split``: the ejection fraction in
    percent and the official split) when it is in ``root`` (or its parent, for ``root`` = ``Videos/``), else from
    :data:`CLIP_TARGETS_FILE` (columns ``image``: the clip's file name, stem or relative path, ``target``: a number,
    optional ``split``).

    Args:
        root: the dataset folder.

    Returns:
        ``({stem: {"target": float, "split": str (when given)}}, target name)``, or ``({}, None)`` without a table.

    Raises:
        LayoutError: a table without the expected columns or with a value that is not a finite number (the message
            names the file, the row and the column).
    """
    root = Path(root)
    root = root if root.is_dir() else root.parent
    echonet = next((p / "FileList.csv" for p in (root, root.parent) if (p / "FileList.csv").is_file()), None)
    path, key_col, value_col, split_col, name = (
        (echonet, "FileName", "EF", "Split", "EF") if echonet is not None
        else (root / CLIP_TARGETS_FILE, "image", "target", "split", "target")
    )  # fmt: skip
    if not path.is_file():
        return {}, None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {key_col, value_col} <= set(rows[0]):
        raise LayoutError(f"'{path}' must have the columns '{key_col}' and '{value_col}'.", path)
    out: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows, start=2):
        try:
            value = float(row[value_col])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise LayoutError(
                f"'{path}' line {i}: column '{value_col}' must be a finite number, got {row[value_col]!r}.", path
            )
        entry: dict[str, Any] = {"target": value}
        if row.get(split_col):
            entry["split"] = row[split_col].strip().lower()
        out[_clip_key(row[key_col])] = entry
    return out, name


def _nifti_clips(root: Path) -> list[dict[str, Any]]:
    items = []
    for path in sorted(p for p in root.rglob("*") if is_nifti(p)):
        name = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
        if name.endswith(("_ed", "_es")):
            continue
        item: dict[str, Any] = {"image": str(path), "patient_id": name}
        masks = {p: path.with_name(f"{name}_{p}.nii.gz") for p in ("ed", "es")}
        if all(m.is_file() for m in masks.values()):
            n = nib.load(str(path)).shape[-1]
            item.update(label_frames={"ed": 0, "es": int(round(0.4 * n))}, label_ed=str(masks["ed"]))
            item["label_es"] = str(masks["es"])
        items.append(item)
    return items


def cine_datalist(
    dataset_dir: str | os.PathLike | None,
    kind: str = "auto",
    demo_dir: str | os.PathLike | None = None,
    demo_num_cases: int = 6,
    demo_size: Sequence[int] = (64, 64),
    demo_num_frames: int = 16,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    out: str | os.PathLike | None = None,
    validate: bool = False,
    color: str = "gray",
    skip_bad: bool = False,
    validation_cache: str | os.PathLike | None = None,
    validation_report: str | os.PathLike | None = None,
) -> dict:
    """The datalist of the cine clips at ``dataset_dir`` (see the module docstring), written to ``out`` when given.

    Args:
        dataset_dir: a Sunnybrook folder, a DICOM folder, a NIfTI clip folder; a missing path (or ``kind="demo"``)
            falls back to demo clips written to ``demo_dir`` (with a warning, unless ``kind="demo"``).
        kind: ``"auto"`` or one of :data:`CINE_SOURCE_KINDS`.
        demo_dir, demo_num_cases, demo_size, demo_num_frames: the demo data (see :func:`make_demo_cine`).
        fractions: ``(training, validation, test)`` patient fractions.
        seed: seed of the split and of the demo data.
        out: optional JSON path (written atomically, by rank 0 under ``torch.distributed``, the other ranks waiting at
            a barrier); read it back with ``monai.data.load_decathlon_datalist``. Written after the validation: a
            datalist that fails it is not written.
        validate: load every clip of every split with :class:`~monai_jepa.transforms.LoadCined` (``color``) before
            returning (:func:`~monai_jepa.data.check_datalist` with that loader; one channel count across clips), so
            that a bad clip stops a run before its first step, naming the file. Demo clips are not checked.
        color: ``"gray"`` or ``"rgb"``, as the clips will be loaded.
        skip_bad: with ``validate``, drop the bad clips (logged, listed under ``"invalid"`` and in
            ``validation_report``) instead of raising the first error.
        validation_cache: with ``validate``, the cache of clips that passed (by path, size and modification time).
        validation_report: with ``validate``, a JSON / CSV file listing the dropped clips (written when given).

    Returns:
        the datalist, with ``"kind"``; items keep the split of their patient.

    Raises:
        LayoutError: ``kind`` given but not found at ``dataset_dir``; EmptyDatasetError: no clip.
    """
    kind = look_up_option(kind, ("auto",) + CINE_SOURCE_KINDS)
    path = Path(dataset_dir).expanduser().absolute() if dataset_dir is not None else None
    if kind == "demo" or path is None or not path.exists():
        if kind not in ("auto", "demo"):
            raise LayoutError(f"{dataset_dir}: no such folder for a {kind!r} cine dataset.", dataset_dir)
        if demo_dir is None:
            raise ValueError("`demo_dir` is required to write the demo clips.")
        if get_rank() == 0:  # one writer under torch.distributed; the other ranks wait for the files
            if kind == "auto":
                what = f"{demo_num_cases} SYNTHETIC beating-heart demo clips written to {demo_dir}"
                _warn_synthetic(dataset_dir, what, "clips say nothing about real images", _LAYOUTS, "cine_vjepa")
            make_demo_cine(demo_dir, demo_num_cases, demo_size, demo_num_frames, seed)
        if is_dist():
            torch.distributed.barrier()
        path, kind = Path(demo_dir), "demo"
    if kind == "auto":
        has_dicom = bool(find_dicom_files(path)) if path.is_dir() else not (is_nifti(path) or is_video(path))
        kind = "sunnybrook" if (path / "link.csv").is_file() and (path / "dicoms").is_dir() else None
        kind = kind or ("acdc" if path.is_dir() and next(path.rglob("Info.cfg"), None) else None)
        kind = kind or ("dicom" if has_dicom else "video" if video_clips(path) else "nifti")
    if kind == "sunnybrook":
        datalist = build_datalist("sunnybrook", path, fractions=fractions, seed=seed)
    elif kind == "acdc":
        datalist = build_datalist("acdc_cine", path, fractions=fractions, seed=seed)
    else:
        root = path.parent if path.is_file() else path
        if kind == "dicom":
            items = dicom_cine_clips(path)
        elif kind == "video":
            items = video_clips(path)
        else:
            items = [{"image": str(path), "patient_id": path.name}] if path.is_file() else _nifti_clips(root)
        if path.is_file():  # one file: all of it is training data
            items = [{**item, "split": "training"} for item in items]
        if not items:
            raise EmptyDatasetError(f"{path}: no cine clip found for kind {kind!r}.", path)
        targets, target_name = clip_targets(path)
        if targets:  # a value (and an official split, unless one file was given) per clip the table names
            found = [targets.get(_clip_key(item["image"]), {}) for item in items]
            found = [{k: v for k, v in t.items() if k != "split" or path.is_dir()} for t in found]
            items = [{**item, **t} for item, t in zip(items, found)]
        labelled = any("label_frames" in i for i in items)
        task = "segmentation" if labelled else "unlabelled"
        datalist = make_datalist(
            f"cine_{kind}",
            root,
            patient_split(items, fractions, seed),
            task,
            ["background", "lv_cavity"] if labelled else None,
        )
        if targets:
            datalist["target_name"] = target_name
    datalist["kind"] = kind
    if as_bool(validate, "validate") and kind != "demo":
        from monai_jepa.transforms import LoadCined

        datalist, invalid = check_datalist(
            datalist, skip_bad, validation_report, keys=("image",), base_dir=datalist["root"],
            cache=validation_cache, loader=LoadCined("image", color=color),
        )  # fmt: skip
        if invalid:
            datalist["invalid"] = invalid
    if out is not None and get_rank() == 0:
        write_datalist(datalist, out)
    if out is not None and is_dist():
        torch.distributed.barrier()  # the other ranks read the file next
    return datalist
