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
"""Datalist builders for MRI layouts: BraTS (2021 and 2023 naming), ACDC (cardiac cine MRI: ED / ES volumes and cine
clips) and the Sunnybrook Cardiac Data (cine DICOM with LV contours)."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.utils import look_up_option, optional_import

from monai_jepa.data.cine import dicom_cine_clips
from monai_jepa.data.datalist import dataset_root, make_datalist, patient_split, register_datalist, skip_or_raise
from monai_jepa.data.errors import DataError, LayoutError, MissingFileError, UnreadableFileError

nib, _ = optional_import("nibabel")

__all__ = [
    "BRATS_SEQUENCES",
    "BRATS_LABELS",
    "ACDC_GROUPS",
    "ACDC_LABELS",
    "brats_datalist",
    "read_info_cfg",
    "acdc_datalist",
    "acdc_cine_datalist",
    "sunnybrook_datalist",
]

#: file suffixes of the four sequences, in the fixed channel order T1, T1 post-contrast, T2, FLAIR
BRATS_SEQUENCES = {"2021": ("t1", "t1ce", "t2", "flair"), "2023": ("t1n", "t1c", "t2w", "t2f")}
#: segmentation labels: BraTS 2021 codes enhancing tumour as 4, BraTS 2023 as 3
BRATS_LABELS = {
    "2021": {
        "0": "background",
        "1": "necrotic tumour core (NCR)",
        "2": "peritumoral oedema (ED)",
        "4": "enhancing tumour (ET)",
    },
    "2023": {
        "0": "background",
        "1": "necrotic tumour core (NCR)",
        "2": "surrounding non-enhancing FLAIR hyperintensity (SNFH)",
        "3": "enhancing tumour (ET)",
    },
}
_BRATS_CASE = {
    "2021": re.compile(r"BraTS(2021|20)_(Training_|Validation_)?\d+"),
    "2023": re.compile(r"BraTS-[A-Z]+-\d{5}-\d{3}"),
}
#: ACDC diagnostic groups, in label order
ACDC_GROUPS = {
    "DCM": "dilated cardiomyopathy",
    "HCM": "hypertrophic cardiomyopathy",
    "MINF": "previous myocardial infarction",
    "NOR": "normal",
    "RV": "abnormal right ventricle",
}
#: ACDC segmentation labels of the ``_gt`` files
ACDC_LABELS = {"0": "background", "1": "right ventricle cavity", "2": "myocardium", "3": "left ventricle cavity"}


def _case_dirs(root: Path, pattern: re.Pattern, depth: int = 2) -> list[Path]:
    """Folders named like ``pattern`` at most ``depth`` levels below ``root``, sorted by path."""
    found = []
    for dirpath, dirs, _ in os.walk(root):
        level = len(Path(dirpath).relative_to(root).parts)
        for d in list(dirs):
            if pattern.fullmatch(d):
                found.append(Path(dirpath) / d)
                dirs.remove(d)
        if level + 1 >= depth:
            dirs[:] = []
    return sorted(found)


def _nifti(folder: Path, stem: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def _in_testing(rel: Path) -> bool:
    return "testing" in {p.lower() for p in rel.parts[:-1]}


@register_datalist("brats")
def brats_datalist(
    root: str | os.PathLike,
    version: str = "auto",
    require_label: bool = True,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    skip_bad: bool = False,
) -> dict:
    """Datalist of a BraTS glioma (or 2023 meningioma / metastasis / paediatric ...) training folder.

    Layouts (case folders at most two levels below ``root``), detected from the case names:

    - 2021 (and 2020): ``BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz``;
    - 2023: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz``; the last number is the time
      point, so ``BraTS-GLI-00000`` is the patient and its time points stay in one split.

    Args:
        root: folder holding the case folders.
        version: ``"auto"``, ``"2021"`` or ``"2023"``.
        require_label: a case without ``seg`` is an error (set False for validation folders: items then have no
            ``"label"``).
        fractions: train / validation / test fractions of the patients.
        seed: seed of the split.
        skip_bad: record incomplete cases under ``"skipped"`` instead of raising.

    Returns:
        a datalist (task ``"segmentation"``, labels :data:`BRATS_LABELS` of the version) with items ``{"image":
        [t1, t1ce | t1c, t2, flair | t2f] paths, "label": seg path, "patient_id", "case_id", "split"}`` and the extra
        keys ``"version"`` and ``"sequences"`` (the channel order).

    Raises:
        MissingFileError: a case lacks a sequence (named with the case) or its segmentation.
        LayoutError: no case folder, or cases of both naming schemes.

    Example::

        datalist = build_datalist("brats", "/data/BraTS2021_Training_Data")
        # LoadImaged(keys="image") stacks the four sequences into 4 channels
    """
    root = dataset_root(root)
    version = look_up_option(str(version), ("auto", "2021", "2023"))
    cases = {v: _case_dirs(root, p) for v, p in _BRATS_CASE.items()}
    if version == "auto":
        found = [v for v, c in cases.items() if c]
        if len(found) != 1:
            what = "no BraTS case folder" if not found else "case folders of both the 2021 and 2023 naming"
            raise LayoutError(
                f"BraTS: found {what} under {root}; expected e.g. BraTS2021_00000/ or BraTS-GLI-00000-000/.", root
            )
        version = found[0]
    if not cases[version]:
        raise LayoutError(f"BraTS: no BraTS {version} case folder under {root}.", root)
    sequences = BRATS_SEQUENCES[version]
    sep = "_" if version == "2021" else "-"
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    for folder in cases[version]:
        case = folder.name
        try:
            paths = []
            for seq in (*sequences, "seg"):
                path = _nifti(folder, f"{case}{sep}{seq}")
                if path is None and (seq != "seg" or require_label):
                    expected = folder / f"{case}{sep}{seq}.nii.gz"
                    raise MissingFileError(
                        f"BraTS case {case}: missing sequence {seq!r} (expected {expected}).", expected
                    )
                paths.append(path)
        except DataError as e:
            skip_or_raise(e, sink)
            continue
        item: dict[str, Any] = {
            "image": [p.relative_to(root).as_posix() for p in paths[:4]],
            "patient_id": case if version == "2021" else case.rsplit("-", 1)[0],
            "case_id": case,
        }
        if paths[4] is not None:
            item["label"] = paths[4].relative_to(root).as_posix()
        items.append(item)
    items = patient_split(items, fractions=fractions, seed=seed)
    description = f"BraTS {version} multi-sequence brain MRI; image channels {list(sequences)}"
    datalist = make_datalist(
        "brats", root, items, "segmentation", BRATS_LABELS[version], description, skipped if skip_bad else None
    )
    datalist["version"], datalist["sequences"] = version, list(sequences)
    return datalist


def read_info_cfg(path: str | os.PathLike) -> dict[str, str]:
    """Read an ACDC ``Info.cfg`` (lines ``Key: value``) into ``{key: value}`` strings.

    Args:
        path: the ``Info.cfg`` file.

    Returns:
        e.g. ``{"ED": "1", "ES": "12", "Group": "DCM", "Height": "184.0", "NbFrame": "30", "Weight": "95.0"}``.

    Example::

        frames = {k: int(v) for k, v in read_info_cfg("patient001/Info.cfg").items() if k in ("ED", "ES")}
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"ACDC: missing {path}.", path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UnreadableFileError(f"ACDC: cannot read {path}: {e}", path) from e
    info = {}
    for line in lines:
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


def _number(info: dict[str, str], key: str, path: Path, required: bool = True) -> float | None:
    if key not in info and not required:
        return None
    try:
        return float(info[key])
    except (KeyError, ValueError) as e:
        raise LayoutError(f"ACDC: {path} has no valid {key!r} entry (got {info.get(key)!r}).", path) from e


@register_datalist("acdc")
def acdc_datalist(
    root: str | os.PathLike,
    task: str = "segmentation",
    require_cine: bool = True,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    skip_bad: bool = False,
) -> dict:
    """Datalist of ACDC (Bernard et al. 2018), cardiac cine MRI: one item per end-diastole and end-systole frame.

    Layout: ``patient001/Info.cfg`` (``ED: 1``, ``ES: 12``, ``Group: DCM``, ``Height``, ``NbFrame``, ``Weight``),
    ``patient001/patient001_4d.nii.gz`` (the cine), ``patient001_frame01.nii.gz`` and ``patient001_frame01_gt.nii.gz``
    for the ED and ES frames; patient folders at most two levels below ``root`` (``training/``, ``testing/``). Cases
    under ``testing`` keep the official test split; the others are split by patient, stratified by group.

    Args:
        root: the ACDC ``database`` folder (or one holding the patient folders).
        task: ``"segmentation"`` (label = ``_gt`` path) or ``"classification"`` (label = group index, 0-4 in the
            order of :data:`ACDC_GROUPS`; the ``_gt`` path moves to ``"seg"``).
        require_cine: a case without ``_4d`` cine is an error (else ``"cine"`` is None).
        fractions: train / validation / test fractions of the patients.
        seed: seed of the split.
        skip_bad: record incomplete cases under ``"skipped"`` instead of raising.

    Returns:
        a datalist (task ``"segmentation"`` with :data:`ACDC_LABELS`, or ``"multiclass"`` with the groups) with items
        ``{"image": frame path, "label", "patient_id", "phase": "ED" | "ES", "frame": int, "cine": 4D path,
        "group": "DCM" ..., "group_label": 0-4, "height", "weight", "num_frames", "split"}``.

    Example::

        datalist = build_datalist("acdc", "/data/ACDC/database", task="classification")
    """
    root = dataset_root(root)
    task = look_up_option(task, ("segmentation", "classification"))
    groups = list(ACDC_GROUPS)
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    cases = _case_dirs(root, re.compile(r"patient\d{3}"))
    if not cases:
        raise LayoutError(f"ACDC: no patientNNN folder at most two levels below {root}.", root)
    for folder in cases:
        case, cfg = folder.name, folder / "Info.cfg"
        try:
            info = read_info_cfg(cfg)
            frames = {phase: int(_number(info, phase, cfg)) for phase in ("ED", "ES")}
            height, weight, num_frames = (
                _number(info, k, cfg, required=False) for k in ("Height", "Weight", "NbFrame")
            )
            group = info.get("Group", "").upper()
            if group not in groups:
                raise LayoutError(f"ACDC: {cfg} has Group {info.get('Group')!r}, expected one of {groups}.", cfg)
            cine = _nifti(folder, f"{case}_4d")
            if cine is None and require_cine:
                raise MissingFileError(f"ACDC case {case}: missing cine {folder / f'{case}_4d.nii.gz'}.", folder)
            paths = {}
            for phase, frame in frames.items():
                for kind in ("", "_gt"):
                    path = _nifti(folder, f"{case}_frame{frame:02d}{kind}")
                    if path is None:
                        expected = folder / f"{case}_frame{frame:02d}{kind}.nii.gz"
                        raise MissingFileError(f"ACDC case {case}: missing {phase} file {expected}.", expected)
                    paths[phase, kind] = path.relative_to(root).as_posix()
        except DataError as e:
            skip_or_raise(e, sink)
            continue
        common = {
            "patient_id": case,
            "cine": None if cine is None else cine.relative_to(root).as_posix(),
            "group": group,
            "group_label": groups.index(group),
            "height": height,
            "weight": weight,
            "num_frames": None if num_frames is None else int(num_frames),
        }
        if _in_testing(folder.relative_to(root)):
            common["split"] = "test"
        for phase, frame in frames.items():
            item = {"image": paths[phase, ""], "phase": phase, "frame": frame, **common}
            if task == "segmentation":
                item["label"] = paths[phase, "_gt"]
            else:
                item["label"], item["seg"] = groups.index(group), paths[phase, "_gt"]
            items.append(item)
    items = patient_split(items, fractions=fractions, seed=seed, stratify_key="group")
    labels = (
        ACDC_LABELS if task == "segmentation" else {str(i): f"{g}: {d}" for i, (g, d) in enumerate(ACDC_GROUPS.items())}
    )
    datalist_task = "segmentation" if task == "segmentation" else "multiclass"
    description = "ACDC cardiac cine MRI, end-diastole and end-systole frames"
    return make_datalist("acdc", root, items, datalist_task, labels, description, skipped if skip_bad else None)


def _image_number(path: str) -> int:
    return int(Path(path).stem)


@register_datalist("sunnybrook")
def sunnybrook_datalist(root: str | os.PathLike, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> dict:
    """Datalist of the Sunnybrook Cardiac Data layout: one clip per slice, LV cavity labels on the ED and ES frames.

    Layout: ``dicoms/<patient>/<n>.dcm`` (``n`` = InstanceNumber), ``contourfiles/<original id>/i-contours/
    IM-0001-<nnnn>-icontour-manual.txt`` (endocardium, on the ED and ES frames) and ``o-contours`` (epicardium, on
    ED only), ``link.csv`` mapping ``patient_id`` to ``original_id``. A slice with endocardium contours on two frames
    gets ``label_frames`` ``{"ed": t, "es": t}`` (ED: the frame that also has an epicardium contour, else the later
    one) and ``label_ed`` / ``label_es``; the other slices are unlabelled clips (for pretraining).

    Raises:
        LayoutError: no ``dicoms`` folder or ``link.csv``; the errors of :func:`dicom_cine_clips`.
    """
    root = dataset_root(root)
    link = root / "link.csv"
    if not (root / "dicoms").is_dir() or not link.is_file():
        raise LayoutError(f"{root}: a Sunnybrook folder needs dicoms/ and link.csv.", root)
    with open(link, newline="") as f:
        original = {r["patient_id"]: r["original_id"] for r in csv.DictReader(f)}
    items = []
    for pid in sorted(original):
        folder = root / "dicoms" / pid
        if not folder.is_dir():
            raise LayoutError(f"{folder}: listed in {link} but missing.", folder)
        contours = root / "contourfiles" / original[pid]
        for clip in dicom_cine_clips(folder):
            clip["patient_id"] = pid
            frame_of = {_image_number(p): t for t, p in enumerate(clip["image"])}
            inner = {
                frame_of[n]: str(p)
                for p in sorted((contours / "i-contours").glob("IM-0001-*-icontour-manual.txt"))
                if (n := int(p.name.split("-")[2])) in frame_of
            }
            outer = {
                frame_of[int(p.name.split("-")[2])]
                for p in (contours / "o-contours").glob("IM-0001-*-ocontour-manual.txt")
                if int(p.name.split("-")[2]) in frame_of
            }
            if len(inner) == 2:
                ed = next((t for t in inner if t in outer), max(inner))
                es = next(t for t in inner if t != ed)
                clip.update(label_frames={"ed": ed, "es": es}, label_ed=inner[ed], label_es=inner[es])
            items.append(clip)
    return make_datalist(
        "sunnybrook",
        root,
        patient_split(items, fractions, seed),
        "segmentation",
        ["background", "lv_cavity"],
        "Sunnybrook Cardiac Data (CC0 1.0; Radau et al., MIDAS J. 2009): short-axis cine MRI, LV endocardium "
        "contours on the ED and ES frames.",
    )


@register_datalist("acdc_cine")
def acdc_cine_datalist(
    root: str | os.PathLike, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0, label_value: int = 3
) -> dict:
    """Datalist of the ACDC layout: one clip per slice of each 4D cine, the ED / ES labels from the ground truth.

    Layout (under ``root``, at any depth): ``<patient>/Info.cfg`` (``ED: n`` and ``ES: n``, 1-based frame numbers),
    ``<patient>/<patient>_4d.nii.gz`` ``(H, W, Z, T)`` and ``<patient>_frame<nn>_gt.nii.gz`` ``(H, W, Z)`` for the
    ED and ES frames (classes 1 RV, 2 myocardium, 3 LV cavity). Items: ``image`` (the 4D file), ``slice_index``,
    and, with both label files, ``label_frames`` ``{"ed": t, "es": t}`` (0-based), ``label_ed`` / ``label_es`` and
    ``label_value`` (the class :func:`load_frame_mask` keeps).

    Raises:
        LayoutError: no ``Info.cfg``, an ``Info.cfg`` without ED / ES, a missing ``_4d`` file, or ED / ES outside the
            cine; each names the file.
    """
    root = dataset_root(root)
    configs = sorted(root.rglob("Info.cfg"))
    if not configs:
        raise LayoutError(f"{root}: an ACDC folder needs <patient>/Info.cfg and <patient>/<patient>_4d.nii.gz.", root)
    items = []
    for cfg in configs:
        pid, info = cfg.parent.name, read_info_cfg(cfg)
        cine = cfg.parent / f"{pid}_4d.nii.gz"
        if not cine.is_file() or not {"ED", "ES"} <= set(info):
            raise LayoutError(f"{cfg}: expected 'ED: n' and 'ES: n' lines and {cine.name} beside it.", cfg)
        shape = nib.load(str(cine)).shape
        frames = {p: int(info[p.upper()]) - 1 for p in ("ed", "es")}
        if len(shape) != 4 or not all(0 <= t < shape[3] for t in frames.values()):
            raise LayoutError(
                f"{cfg}: ED / ES {frames} (0-based) must be frames of {cine.name} {shape} (H, W, Z, T).", cfg
            )
        gts = {p: cfg.parent / f"{pid}_frame{t + 1:02d}_gt.nii.gz" for p, t in frames.items()}
        labelled = all(g.is_file() for g in gts.values())
        for z in range(shape[2]):
            item: dict[str, Any] = {"image": str(cine), "slice_index": z, "patient_id": pid}
            if labelled:
                item.update(
                    label_frames=frames, label_value=label_value, **{f"label_{p}": str(g) for p, g in gts.items()}
                )
            items.append(item)
    return make_datalist(
        "acdc_cine", root, patient_split(items, fractions, seed), "segmentation", ["background", "lv_cavity"]
    )
