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
"""Datalists: one JSON format for every public dataset layout, patient-level splits and a registry of builders.

A datalist is a dict in the Medical Segmentation Decathlon style, readable by
``monai.data.load_decathlon_datalist(path, data_list_key="training", base_dir=datalist["root"])``::

    {
        "name": "chestxray14",
        "description": "...",
        "task": "multilabel",                  # binary | multiclass | multilabel | ordinal | segmentation | unlabelled
        "labels": {"0": "Atelectasis", ...},   # class (or segmentation label) index -> name
        "root": "/abs/path/to/dataset",
        "training": [{"image": "images/00000001_000.png", "label": [0, 1, ...], "patient_id": "1",
                      "split": "training"}, ...],
        "validation": [...],
        "test": [...],
        "skipped": [{"path": "...", "reason": "..."}]   # only when a builder ran with skip_bad=True
    }

``"image"`` is a path relative to ``root`` (or a list of paths for multi-sequence cases); ``"label"`` is an int, a
list of ints (multi-label) or a path (segmentation). A builder is a function ``builder(root, **options) -> dict``
registered with :func:`register_datalist`; :func:`build_datalist` finds it by name. Every data problem raises one of
the errors of :mod:`monai_jepa.data.errors`.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import importlib.util
import io
import json
import logging
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import look_up_option

from monai_jepa.utils.fileio import atomic_write

from .errors import DataError, EmptyDatasetError, LayoutError, MissingFileError, UnreadableFileError

__all__ = [
    "SPLITS",
    "DATALIST_BUILDERS",
    "BUILDER_MODULES",
    "register_datalist",
    "build_datalist",
    "list_datalists",
    "normalize_split",
    "patient_split",
    "make_datalist",
    "split_and_make_datalist",
    "write_datalist",
    "check_no_patient_leak",
    "read_table",
    "encode_labels",
    "skip_or_raise",
    "dataset_root",
    "index_files",
]

logger = logging.getLogger(__name__)

#: the split keys of a datalist, in order; every item's ``"split"`` is one of them.
SPLITS: tuple[str, str, str] = ("training", "validation", "test")

_SPLIT_ALIASES = {
    "training": "training",
    "train": "training",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "validate": "validation",
    "test": "test",
    "testing": "test",
}

#: builder name -> builder function ``builder(root, **options) -> datalist dict``.
DATALIST_BUILDERS: dict[str, Callable[..., dict]] = {}

#: modules that register builders (generic layouts here, public datasets in :mod:`monai_jepa.apps.datasets`);
#: imported on first use of the registry.
BUILDER_MODULES: tuple[str, ...] = (
    "monai_jepa.data.generic",
    "monai_jepa.apps.datasets.cxr",
    "monai_jepa.apps.datasets.histopathology",
    "monai_jepa.apps.datasets.retina",
    "monai_jepa.apps.datasets.dermatology",
    "monai_jepa.apps.datasets.ct",
    "monai_jepa.apps.datasets.mri",
)


def register_datalist(name: str) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Decorator registering a datalist builder under ``name`` in :data:`DATALIST_BUILDERS`.

    Args:
        name: the dataset name used by :func:`build_datalist` (e.g. ``"chestxray14"``).

    Returns:
        the decorator; it returns the builder unchanged.

    Raises:
        ValueError: when ``name`` is empty or already taken by a different builder.

    Example::

        @register_datalist("my_layout")
        def my_layout_datalist(root, seed=0):
            ...
            return make_datalist("my_layout", root, patient_split(items, seed=seed), "binary", ["normal", "lesion"])
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"`name` must be a non-empty string, got {name!r}.")

    def decorator(fn: Callable[..., dict]) -> Callable[..., dict]:
        existing = DATALIST_BUILDERS.get(name)
        if existing is not None and (existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(
                f"datalist builder name {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}; choose another name."
            )
        DATALIST_BUILDERS[name] = fn
        return fn

    return decorator


def _import_builders() -> None:
    """Import the builder modules that exist; a module that exists but fails to import raises its error."""
    for name in BUILDER_MODULES:
        if name in sys.modules or importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name)


def list_datalists() -> list[str]:
    """Names of the registered datalist builders, sorted.

    Returns:
        the names accepted by :func:`build_datalist`.

    Example::

        list_datalists()  # ['chestxray14', 'chexpert', 'dicom_cxr', 'dicom_series', 'image_csv', ...]
    """
    _import_builders()
    return sorted(DATALIST_BUILDERS)


def build_datalist(dataset: str, root: str | os.PathLike, out: str | os.PathLike | None = None, **kwargs: Any) -> dict:
    """Build the datalist of a dataset folder with the registered builder ``dataset``.

    Args:
        dataset: a name from :func:`list_datalists`.
        root: the dataset folder, in the layout the builder expects.
        out: when given, the datalist is also written there as 4-space-indented JSON (atomically).
        kwargs: options of the builder (e.g. ``seed``, ``skip_bad``).

    Returns:
        the datalist dict (see the module docstring).

    Raises:
        ValueError: for an unknown ``dataset`` (with the closest name).
        DataError: any data problem found by the builder.

    Example::

        datalist = build_datalist("chexpert", "/data/CheXpert-v1.0-small", out="chexpert.json", frontal_only=True)
        train = load_decathlon_datalist("chexpert.json", data_list_key="training", base_dir=datalist["root"])
    """
    _import_builders()
    builder = look_up_option(dataset, DATALIST_BUILDERS)
    datalist = builder(root, **kwargs)
    if out is not None:
        write_datalist(datalist, out)
    return datalist


def dataset_root(root: str | os.PathLike) -> Path:
    """Absolute path of a dataset folder, checked to exist.

    Args:
        root: the dataset folder.

    Returns:
        the absolute (not symlink-resolved) path.

    Raises:
        MissingFileError: when ``root`` is not an existing folder.
    """
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if not path.is_dir():
        raise MissingFileError(f"dataset root {path} does not exist or is not a folder.", path=path)
    return path


def index_files(root: str | os.PathLike, folders: Sequence[str], suffixes: Sequence[str]) -> dict[str, str]:
    """Map file stem -> POSIX path relative to ``root`` for the files under ``folders`` with one of ``suffixes``.

    The folders are searched recursively; when none of them exists, all of ``root`` is. Suffixes match case-blind
    (give them lower-case, with the dot); when one stem has several suffixes, the earliest in ``suffixes`` wins.
    macOS resource files (``._*``) are ignored.

    Args:
        root: dataset folder.
        folders: sub-folders of ``root`` to search.
        suffixes: accepted file suffixes, by preference, e.g. ``(".jpg", ".png")``.

    Returns:
        ``{stem: relative path}``.

    Example::

        images = index_files(root, ["train", "test"], (".jpeg", ".jpg", ".png"))  # {"10_left": "train/10_left.jpeg"}
    """
    root = Path(root)
    dirs = [root / d for d in folders if (root / d).is_dir()] or [root]
    rank = {e: i for i, e in enumerate(suffixes)}
    found: dict[str, tuple[int, str]] = {}
    for top in dirs:
        for dirpath, _, files in os.walk(top):
            for name in files:
                stem, ext = os.path.splitext(name)
                if ext.lower() in rank and not name.startswith("._"):
                    rel = Path(dirpath, name).relative_to(root).as_posix()
                    if stem not in found or rank[ext.lower()] < found[stem][0]:
                        found[stem] = (rank[ext.lower()], rel)
    return {stem: rel for stem, (_, rel) in found.items()}


def normalize_split(split: str) -> str:
    """Map a split name (``train``, ``val``, ``validate``, ``valid``, ``testing``, ...) to one of :data:`SPLITS`.

    Args:
        split: a split name, any case.

    Returns:
        ``"training"``, ``"validation"`` or ``"test"``.

    Raises:
        LayoutError: for any other name.
    """
    key = str(split).strip().lower()
    if key not in _SPLIT_ALIASES:
        raise LayoutError(f"unknown split {split!r}; expected one of {sorted(_SPLIT_ALIASES)}.")
    return _SPLIT_ALIASES[key]


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_hashable(v) for v in value)
    return value


def _split_counts(num: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder counts summing to ``num``; every split with a positive fraction gets one when possible."""
    total = float(sum(fractions))
    exact = [num * f / total for f in fractions]
    counts = [int(math.floor(e)) for e in exact]
    for k in sorted(range(len(counts)), key=lambda k: (counts[k] - exact[k], k))[: num - sum(counts)]:
        counts[k] += 1
    positive = [k for k, f in enumerate(fractions) if f > 0]
    if num >= len(positive):
        for k in positive:
            if counts[k] == 0:
                donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[k] += 1
    return counts


def patient_split(
    items: Sequence[Mapping[str, Any]],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    group_key: str = "patient_id",
    stratify_key: str | None = None,
) -> list[dict[str, Any]]:
    """Assign a ``"split"`` to every item so that no group (patient) is in two splits.

    Items that already have a ``"split"`` (an official split) keep it (its name normalised by
    :func:`normalize_split`); the other items of their group join the same split. The remaining groups are shuffled
    with ``seed`` and divided by *number of groups* in the proportions ``fractions`` (largest remainder; each split
    with a positive fraction gets at least one group when there are enough groups). With ``stratify_key`` each
    stratum (a group's most common value of that key) is divided in the same proportions. An item without
    ``group_key`` forms its own group.

    Args:
        items: dicts with at least ``group_key`` (when known); they are copied, not modified.
        fractions: ``(training, validation, test)`` proportions, non-negative, not all zero (normalised to sum 1);
            they apply to the items without a split.
        seed: seed of the shuffle; the same items and seed always give the same splits.
        group_key: the item key whose value must not cross splits.
        stratify_key: optional item key to stratify on (e.g. ``"label"``; list labels are compared as tuples).

    Returns:
        new item dicts, in the input order, each with ``"split"`` in :data:`SPLITS`.

    Raises:
        ValueError: for invalid ``fractions``.
        LayoutError: for an unknown official split name.

    Example::

        items = [{"image": "a.png", "patient_id": "p1"}, {"image": "b.png", "patient_id": "p1"}, ...]
        items = patient_split(items, fractions=(0.8, 0.1, 0.1), seed=0, stratify_key="label")
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(not math.isfinite(f) or f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"`fractions` must be 3 non-negative numbers, not all zero, got {fractions!r}.")
    out = [dict(item) for item in items]
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(out):
        if item.get("split") in (None, ""):
            item.pop("split", None)
        else:
            item["split"] = normalize_split(item["split"])
        gid = item.get(group_key)
        groups.setdefault(f"\0item{i:09d}" if gid in (None, "") else str(gid), []).append(i)

    free = []
    for gid, indices in groups.items():
        assigned = Counter(out[i]["split"] for i in indices if "split" in out[i])
        if not assigned:
            free.append(gid)
            continue
        split = max(SPLITS, key=lambda s: (assigned[s], -SPLITS.index(s)))
        for i in indices:
            out[i].setdefault("split", split)
    if not free:
        return out

    rng = random.Random(seed)
    strata: dict[Any, list[str]] = {}
    for gid in sorted(free):
        if stratify_key is None:
            stratum = None
        else:
            values = Counter(_hashable(out[i].get(stratify_key)) for i in groups[gid])
            stratum = sorted(values.items(), key=lambda kv: (-kv[1], repr(kv[0])))[0][0]
        strata.setdefault(stratum, []).append(gid)
    # spread each shuffled stratum evenly over [0, 1]; consecutive blocks of the merged order then take the same
    # proportion of every stratum
    order = []
    for stratum in sorted(strata, key=repr):
        members = strata[stratum]
        rng.shuffle(members)
        order += [((j + 0.5) / len(members), rng.random(), gid) for j, gid in enumerate(members)]
    order.sort()
    start = 0
    for split, count in zip(SPLITS, _split_counts(len(order), fractions)):
        for _, _, gid in order[start : start + count]:
            for i in groups[gid]:
                out[i]["split"] = split
        start += count
    return out


def _to_json(value: Any) -> Any:
    """Recursively convert numpy scalars/arrays, paths and tuples to JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _relative(path: Any, root: Path) -> Any:
    """A path (or list of paths) relative to ``root`` in POSIX form; absolute paths outside ``root`` stay absolute."""
    if isinstance(path, (list, tuple)):
        return [_relative(p, root) for p in path]
    if not isinstance(path, (str, os.PathLike)):
        return path
    p = Path(path)
    if p.is_absolute():
        try:
            p = Path(os.path.abspath(p)).relative_to(root)
        except ValueError:
            return str(p)
    return p.as_posix()


def _label_names(labels: Mapping[Any, Any] | Sequence[str] | None) -> dict[str, str]:
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        return {str(k): str(v) for k, v in labels.items()}
    if isinstance(labels, str):
        raise ValueError(f"`labels` must be a mapping or a sequence of class names, got the string {labels!r}.")
    return {str(i): str(name) for i, name in enumerate(labels)}


def make_datalist(
    name: str,
    root: str | os.PathLike,
    items: Sequence[Mapping[str, Any]],
    task: str,
    labels: Mapping[Any, Any] | Sequence[str] | None,
    description: str = "",
    skipped: Sequence[Mapping[str, Any]] | None = None,
) -> dict:
    """Assemble a datalist dict from split items and check it for patient leaks.

    Args:
        name: dataset name.
        root: dataset root; stored absolute. Item paths may be relative to it or absolute under it (stored relative).
        items: dicts with ``"image"`` and ``"split"`` (see :func:`patient_split`), plus ``"label"``,
            ``"patient_id"`` and any metadata when known. Copied; numpy values become JSON types.
        task: the task vocabulary used by the builders: ``"binary"``, ``"multiclass"``, ``"multilabel"``,
            ``"ordinal"``, ``"segmentation"``, ``"unlabelled"`` (other strings are accepted).
        labels: class names, as ``{index: name}`` or a sequence indexed by class; ``None`` for none.
        description: free text (source, licence, conventions such as the meaning of ``-1`` labels).
        skipped: when given (``skip_bad`` mode), stored under ``"skipped"`` as ``[{"path", "reason"}]``.

    Returns:
        the datalist dict with keys ``name, description, task, labels, root, training, validation, test``
        (and ``skipped``).

    Raises:
        ValueError: for an empty ``name`` or ``task``.
        EmptyDatasetError: when ``items`` is empty.
        LayoutError: an item without ``"image"`` or ``"split"``, or a patient in two splits.

    Example::

        items = patient_split([{"image": "a.png", "label": 1, "patient_id": "p1"}, ...], seed=0)
        datalist = make_datalist("my_cxr", "/data/my_cxr", items, "binary", ["normal", "pneumonia"])
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string, got {name!r}.")
    if not isinstance(task, str) or not task:
        raise ValueError(f"`task` must be a non-empty string, got {task!r}.")
    root_path = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if len(items) == 0:
        raise EmptyDatasetError(f"dataset {name!r} at {root_path} has no usable case.", path=root_path)
    lists: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for i, item in enumerate(items):
        if "image" not in item:
            raise LayoutError(f"dataset {name!r}: item {i} has no 'image' key (keys: {sorted(item)}).")
        if item.get("split") in (None, ""):
            raise LayoutError(
                f"dataset {name!r}: item {i} ({item['image']}) has no 'split'; assign splits with patient_split first."
            )
        entry = _to_json(dict(item))
        entry["split"] = normalize_split(entry["split"])
        entry["image"] = _relative(entry["image"], root_path)
        if isinstance(entry.get("label"), (str, list)) and not _is_int_list(entry["label"]):
            entry["label"] = _relative(entry["label"], root_path)
        for key in [k for k in entry if k.startswith("label_") and isinstance(entry[k], str)]:
            entry[key] = _relative(entry[key], root_path)  # per-frame masks (``label_ed``) of cine clips
        lists[entry["split"]].append(entry)
    datalist: dict[str, Any] = {
        "name": name,
        "description": description,
        "task": task,
        "labels": _label_names(labels),
        "root": str(root_path),
        **lists,
    }
    if skipped is not None:
        datalist["skipped"] = [{"path": str(s["path"]), "reason": str(s["reason"])} for s in skipped]
    check_no_patient_leak(datalist)
    return datalist


def split_and_make_datalist(
    name: str,
    root: Path,
    items: list[dict[str, Any]],
    task: str,
    labels: Mapping[Any, Any] | Sequence[str] | None,
    description: str,
    skipped: list[dict[str, str]],
    fractions: Sequence[float],
    seed: int,
    skip_bad: bool,
) -> dict:
    """Split ``items`` by patient, stratified by ``"label"`` (:func:`patient_split`), and assemble the datalist.

    Args:
        name: dataset name.
        root: dataset root.
        items: dicts with ``"image"``, ``"label"`` and ``"patient_id"`` (and any metadata), without ``"split"``.
        task: task vocabulary (see :func:`make_datalist`).
        labels: class names (see :func:`make_datalist`).
        description: free text.
        skipped: the ``{"path", "reason"}`` records of skipped rows; stored when ``skip_bad`` or when not empty.
        fractions: train / validation / test fractions of the patients.
        seed: seed of the split.
        skip_bad: whether the builder runs in ``skip_bad`` mode.

    Returns:
        the datalist dict (see :func:`make_datalist`).

    Raises:
        EmptyDatasetError: when ``items`` is empty.

    Example::

        datalist = split_and_make_datalist("toy", root, items, "binary", None, "", [], (0.8, 0.1, 0.1), 0, False)
    """
    if not items:
        raise EmptyDatasetError(f"{name}: no usable image under {root}.", root)
    items = patient_split(items, fractions=fractions, seed=seed, stratify_key="label")
    return make_datalist(name, root, items, task, labels, description, skipped if skip_bad or skipped else None)


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON serialisable: {value!r}")


def write_datalist(datalist: Mapping[str, Any], out: str | os.PathLike) -> Path:
    """Write a datalist as 4-space-indented JSON, atomically (temporary file in the same folder + ``os.replace``).

    Args:
        datalist: a dict from :func:`make_datalist` (must hold the :data:`SPLITS` keys).
        out: the JSON file to write; missing parent folders are created.

    Returns:
        the path written.

    Raises:
        LayoutError: when a split key is missing.

    Example::

        write_datalist(datalist, "datalists/chestxray14.json")
    """
    missing = [k for k in SPLITS if k not in datalist]
    if missing:
        raise LayoutError(f"datalist to write to {out} lacks the split key(s) {missing}.", path=out)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def _write(f: Any) -> None:
        json.dump(datalist, f, indent=4, default=_json_default)
        f.write("\n")

    return atomic_write(out_path, _write, text=True)


def check_no_patient_leak(datalist: Mapping[str, Any], group_key: str = "patient_id") -> None:
    """Check that no patient (value of ``group_key``) appears in two splits of a datalist.

    Args:
        datalist: a datalist dict; items without ``group_key`` are not checked.
        group_key: the item key identifying a patient.

    Raises:
        LayoutError: naming (up to 5 of) the leaking patients and their splits.

    Example::

        check_no_patient_leak(json.load(open("chestxray14.json")))
    """
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        for item in datalist.get(split, []):
            if isinstance(item, Mapping) and item.get(group_key) not in (None, ""):
                seen.setdefault(str(item[group_key]), set()).add(split)
    leaks = {pid: sorted(splits, key=SPLITS.index) for pid, splits in seen.items() if len(splits) > 1}
    if leaks:
        shown = ", ".join(f"{pid!r} in {splits}" for pid, splits in sorted(leaks.items())[:5])
        raise LayoutError(
            f"datalist {datalist.get('name', '')!r}: {len(leaks)} {group_key} value(s) appear in several splits "
            f"({shown}); a patient must stay in one split."
        )


def read_table(
    path: str | os.PathLike, required_columns: Iterable[str] = (), delimiter: str | None = None
) -> list[dict[str, str]]:
    """Read a CSV (or ``.csv.gz``, or tab-separated ``.tsv``) table with the standard library.

    Header names and cells are stripped of surrounding whitespace; a UTF-8 byte-order mark is ignored.

    Args:
        path: the table file.
        required_columns: columns that must be present.
        delimiter: field separator; default ``","`` (``"\\t"`` for ``.tsv`` / ``.tsv.gz``).

    Returns:
        one ``{column: value}`` dict per row (values are strings; blank cells are ``""``).

    Raises:
        MissingFileError: when the file does not exist.
        UnreadableFileError: when it cannot be decoded as text or parsed as CSV.
        LayoutError: when it has no header or lacks required columns (all of them are named).

    Example::

        rows = read_table("Data_Entry_2017.csv", ["Image Index", "Finding Labels", "Patient ID"])
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"table {path} does not exist.", path=path)
    name = path.name.lower()
    if delimiter is None:
        delimiter = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
    try:
        if name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                text = f.read().decode("utf-8-sig")
        else:
            text = path.read_bytes().decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as e:
        raise UnreadableFileError(f"table {path} cannot be read as a UTF-8 CSV: {e}", path=path) from e
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise LayoutError(f"table {path} is empty or has no header row.", path=path)
    header = [cell.strip() for cell in rows[0]]
    missing = [c for c in required_columns if c not in header]
    if missing:
        raise LayoutError(f"table {path} lacks the required column(s) {missing}; found columns {header}.", path=path)
    table = []
    for row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row] + [""] * (len(header) - len(row))
        table.append(dict(zip(header, cells)))
    return table


def encode_labels(
    values: Sequence[str], classes: Sequence[str] | None = None, source: str = "labels"
) -> tuple[list[int], dict[str, str]]:
    """Turn class labels read from a table into integer indices and a ``{index: name}`` mapping.

    Args:
        values: one label per row, as read (e.g. ``"1"`` or ``"pneumonia"``).
        classes: ordered class names; ``values`` must be among them (index = position). Without it, integer
            strings are taken as indices (names ``"0"``, ``"1"``, ... up to the largest) and any other strings
            are sorted alphabetically.
        source: what the values are (file and column), for error messages.

    Returns:
        ``(indices, names)``.

    Raises:
        LayoutError: for a blank label, a value outside ``classes`` or a negative integer label.

    Example::

        encode_labels(["nevus", "melanoma", "nevus"])  # ([1, 0, 1], {"0": "melanoma", "1": "nevus"})
    """
    values = [str(v).strip() for v in values]
    blank = [i for i, v in enumerate(values) if v == ""]
    if blank:
        raise LayoutError(f"{source}: blank label in {len(blank)} row(s) (first: row {blank[0] + 1}).")
    if classes is not None:
        index = {str(c): i for i, c in enumerate(classes)}
        unknown = sorted({v for v in values if v not in index})
        if unknown:
            raise LayoutError(f"{source}: label(s) {unknown[:5]} are not among the classes {list(index)}.")
        return [index[v] for v in values], {str(i): str(c) for i, c in enumerate(classes)}
    try:
        ints = [int(float(v)) if float(v).is_integer() else None for v in values]
    except ValueError:
        ints = None
    if ints is not None and None not in ints:
        if min(ints) < 0:
            raise LayoutError(f"{source}: negative class index {min(ints)}; expected indices >= 0.")
        return ints, {str(i): str(i) for i in range(max(ints) + 1)}
    names = sorted(set(values))
    index = {v: i for i, v in enumerate(names)}
    return [index[v] for v in values], {str(i): v for i, v in enumerate(names)}


def skip_or_raise(error: DataError, skipped: list[dict[str, str]] | None) -> None:
    """Raise ``error``, or (``skip_bad`` mode, ``skipped`` is a list) log it and record ``{"path", "reason"}``.

    Args:
        error: the data error found.
        skipped: ``None`` to raise, else the list collecting the skipped cases.

    Raises:
        DataError: ``error`` itself when ``skipped`` is ``None``.

    Example::

        skipped = [] if skip_bad else None
        try:
            header = read_header(path)
        except DataError as e:
            skip_or_raise(e, skipped)
    """
    if skipped is None:
        raise error
    logger.warning("skipping %s: %s", error.path, error)
    skipped.append({"path": "" if error.path is None else str(error.path), "reason": str(error)})
