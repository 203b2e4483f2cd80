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
"""Datalist builders for histopathology layouts: PatchCamelyon (HDF5 patches) and Camelyon16/17 (whole slides).

``pcam`` lists every patch of the official PatchCamelyon HDF5 files as ``"<file>.h5#<index>"`` (the official splits
are kept; they are slide-disjoint by construction) and :class:`PCamDataset` reads those patches lazily with h5py.

``camelyon`` produces a tiling plan for the Camelyon16/17 whole-slide images without decoding them: the slide size is
read from the TIFF header (or given), a regular grid of tiles is laid over it, and each tile is labelled tumour when
its centre falls inside an ASAP XML tumour polygon (and outside the exclusion polygons). :func:`expand_tiling_plan`
turns the plan into per-tile items for MONAI's ``PatchWSIDataset``.
"""

from __future__ import annotations

import csv
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import Dataset
from monai.transforms import apply_transform
from monai.utils import look_up_option, optional_import

from monai_jepa.data.datalist import (
    dataset_root,
    make_datalist,
    patient_split,
    read_table,
    register_datalist,
    skip_or_raise,
)
from monai_jepa.data.errors import DataError, LayoutError, MissingFileError, ShapeMismatchError, UnreadableFileError
from monai_jepa.utils.module import require_package

h5py, _ = optional_import("h5py")

__all__ = [
    "PCAM_SPLITS",
    "pcam_file",
    "pcam_datalist",
    "PCamDataset",
    "read_asap_polygons",
    "read_tiff_size",
    "points_in_polygon",
    "camelyon_datalist",
    "expand_tiling_plan",
]

#: official PatchCamelyon split names and the datalist split each one fills
PCAM_SPLITS = {"train": "training", "valid": "validation", "test": "test"}
_PCAM_LABELS = {"0": "no tumour tissue in the centre 32x32 px", "1": "tumour tissue in the centre 32x32 px"}
_CAMELYON_LABELS = {"0": "normal", "1": "tumour"}
# slide-level labels of Camelyon17 ``stage_labels.csv`` and of the Camelyon16 names / ``reference.csv``
_SLIDE_POSITIVE = {"itc": 1, "micro": 1, "macro": 1, "tumor": 1, "negative": 0, "normal": 0}


# ----------------------------------------------------------------------------------------------------- PatchCamelyon
def pcam_file(split: str, kind: str) -> str:
    """Official PatchCamelyon file name, e.g. ``pcam_file("train", "x") == "camelyonpatch_level_2_split_train_x.h5"``.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        kind: ``"x"`` (images ``(N, 96, 96, 3)`` uint8), ``"y"`` (labels ``(N, 1, 1, 1)``) or ``"meta"`` (CSV).

    Returns:
        the file name.
    """
    split = look_up_option(split, tuple(PCAM_SPLITS))
    kind = look_up_option(kind, ("x", "y", "meta"))
    return f"camelyonpatch_level_2_split_{split}_{kind}." + ("csv" if kind == "meta" else "h5")


def _pcam_path(root: Path, split: str, kind: str) -> Path:
    path = root / pcam_file(split, kind)
    if not path.is_file():
        hint = " (it is gzipped: run `gunzip` on it first)" if path.with_name(path.name + ".gz").is_file() else ""
        raise MissingFileError(f"PatchCamelyon: missing {path}{hint}.", path)
    return path


def _read_h5(path: Path, key: str, shape_tail: tuple[int, ...], read: bool) -> tuple[int, np.ndarray | None]:
    """Check ``path[key]`` has shape ``(N, *shape_tail)``; return ``N`` and, if ``read``, the whole array."""
    require_package("h5py", "monai_jepa.apps.datasets.histopathology", "PatchCamelyon HDF5 files")
    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise LayoutError(f"PatchCamelyon: {path} has no dataset {key!r} (found {sorted(f.keys())}).", path)
            data = f[key]
            if tuple(data.shape[1:]) != shape_tail:
                raise ShapeMismatchError(
                    f"PatchCamelyon: {path}[{key!r}] has shape {data.shape}, expected (N, {shape_tail}).", path
                )
            return int(data.shape[0]), (data[()] if read else None)
    except OSError as e:
        raise UnreadableFileError(f"PatchCamelyon: cannot read {path} as HDF5: {e}", path) from e


@register_datalist("pcam")
def pcam_datalist(
    root: str | Path, splits: Sequence[str] = ("train", "valid", "test"), max_items_per_split: int | None = None
) -> dict:
    """Datalist of the PatchCamelyon benchmark (Veeling et al. 2018; CC0), one item per 96x96 patch.

    Layout (``root``): ``camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5`` (gunzipped), with datasets
    ``"x"`` ``(N, 96, 96, 3)`` uint8 and ``"y"`` ``(N, 1, 1, 1)``; optional ``..._{split}_meta.csv`` whose ``wsi``
    column names the source slide. The official splits are kept (train -> training, valid -> validation,
    test -> test: 262144 / 32768 / 32768 patches); they come from disjoint slides.

    Args:
        root: folder holding the HDF5 files.
        splits: which official splits to list.
        max_items_per_split: list only the first patches of each split (quick experiments); ``None`` lists all.

    Returns:
        a datalist (task ``"binary"``) whose items are ``{"image": "<x file>#<index>", "h5_file": <x file>,
        "index": int, "label": 0 | 1, "patient_id": slide name (from the meta CSV) or "pcam_<split>", "split"}``.

    Example::

        datalist = build_datalist("pcam", "/data/pcam", max_items_per_split=1000)
    """
    root = dataset_root(root)
    if max_items_per_split is not None and max_items_per_split < 1:
        raise ValueError(f"`max_items_per_split` must be None or >= 1, got {max_items_per_split!r}.")
    items: list[dict[str, Any]] = []
    for split in splits:
        split = look_up_option(split, tuple(PCAM_SPLITS))
        x_path, y_path = _pcam_path(root, split, "x"), _pcam_path(root, split, "y")
        num_x, _ = _read_h5(x_path, "x", (96, 96, 3), read=False)
        num_y, labels = _read_h5(y_path, "y", (1, 1, 1), read=True)
        if num_x != num_y:
            raise ShapeMismatchError(f"PatchCamelyon: {x_path} holds {num_x} patches but {y_path} {num_y} labels.")
        slides = [f"pcam_{split}"] * num_x
        meta = root / pcam_file(split, "meta")
        if meta.is_file():
            slides = [row["wsi"] for row in read_table(meta, ["wsi"])]
            if len(slides) != num_x:
                raise ShapeMismatchError(f"PatchCamelyon: {meta} has {len(slides)} rows, expected {num_x}.", meta)
        count = num_x if max_items_per_split is None else min(num_x, max_items_per_split)
        flat = np.asarray(labels).reshape(-1)
        for i in range(count):
            items.append(
                {
                    "image": f"{x_path.name}#{i}",
                    "h5_file": x_path.name,
                    "index": i,
                    "label": int(flat[i]),
                    "patient_id": slides[i],
                    "split": PCAM_SPLITS[split],
                }
            )
    return make_datalist("pcam", root, items, "binary", _PCAM_LABELS, "PatchCamelyon 96x96 lymph-node patches")


class PCamDataset(Dataset):
    """PatchCamelyon patches read lazily from the official HDF5 files (one open handle per worker process).

    Items are ``{"image": float32 (3, 96, 96) in [0, 1], "label": int, "index": int}`` before ``transform``.

    Args:
        root: folder holding ``camelyonpatch_level_2_split_*_{x,y}.h5``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        transform: optional callable applied to each item dictionary.

    Example::

        ds = PCamDataset("/data/pcam", "valid", transform=RandMultiViewd(keys="image"))
        item = ds[0]  # item["image"].shape == (3, 96, 96)
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable[..., Any] | None = None) -> None:
        split = look_up_option(split, tuple(PCAM_SPLITS))
        root = Path(root)
        self.x_path, self.y_path = _pcam_path(root, split, "x"), _pcam_path(root, split, "y")
        num_x, _ = _read_h5(self.x_path, "x", (96, 96, 3), read=False)
        num_y, labels = _read_h5(self.y_path, "y", (1, 1, 1), read=True)
        if num_x != num_y:
            raise ShapeMismatchError(f"PatchCamelyon: {self.x_path} holds {num_x} patches but {self.y_path} {num_y}.")
        self.labels = np.asarray(labels).reshape(-1).astype(np.int64)
        self._x: Any = None
        super().__init__(data=range(num_x), transform=transform)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_x"] = None  # h5py handles cannot be pickled into DataLoader workers
        return state

    def _transform(self, index: int) -> Any:
        if self._x is None:
            self._x = h5py.File(self.x_path, "r")["x"]
        image = np.ascontiguousarray(self._x[index].transpose(2, 0, 1), dtype=np.float32) / 255.0
        item = {"image": image, "label": int(self.labels[index]), "index": int(index)}
        return apply_transform(self.transform, item) if self.transform is not None else item


# ------------------------------------------------------------------------------------------------- Camelyon16 / 17
def read_asap_polygons(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Read the polygons of an ASAP annotation XML (Camelyon16/17 ``lesion_annotations``).

    Args:
        path: XML file with ``<Annotation PartOfGroup=...><Coordinates><Coordinate Order= X= Y=/>...``.

    Returns:
        list of ``(group, vertices)``, ``vertices`` float64 ``(K, 2)`` as ``(x, y)`` level-0 pixels in ``Order``.

    Example::

        polygons = read_asap_polygons("lesion_annotations/tumor_001.xml")  # [("_0", array (K, 2)), ...]
    """
    path = Path(path)
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as e:
        raise UnreadableFileError(f"Camelyon: cannot parse annotation XML {path}: {e}", path) from e
    polygons = []
    for ann in tree.getroot().iter("Annotation"):
        coords = sorted(ann.iter("Coordinate"), key=lambda c: float(c.get("Order", 0)))
        try:
            xy = np.array([[float(c.get("X")), float(c.get("Y"))] for c in coords], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise LayoutError(f"Camelyon: {path} has a Coordinate without numeric X/Y: {e}", path) from e
        if len(xy) >= 3:
            polygons.append((ann.get("PartOfGroup", ""), xy))
    return polygons


def read_tiff_size(path: str | Path) -> tuple[int, int]:
    """Width and height of the first image (level 0) of a TIFF or BigTIFF, read from its header only.

    Args:
        path: a ``.tif`` file (whole-slide pyramids included; no pixel is decoded).

    Returns:
        ``(width, height)`` in pixels.

    Example::

        width, height = read_tiff_size("training/tumor/tumor_001.tif")  # e.g. (97792, 221184)
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            order = {b"II": "<", b"MM": ">"}.get(head[:2])
            if order is None or len(head) < 16:
                raise UnreadableFileError(f"Camelyon: {path} is not a TIFF file.", path)
            magic = struct.unpack(order + "H", head[2:4])[0]
            if magic == 42:  # classic TIFF: 2-byte entry count, 12-byte entries, 4-byte values
                count_fmt, entry_size, value_size = "H", 12, 4
                (offset,) = struct.unpack(order + "I", head[4:8])
            elif magic == 43:  # BigTIFF: 8-byte entry count, 20-byte entries, 8-byte values
                count_fmt, entry_size, value_size = "Q", 20, 8
                (offset,) = struct.unpack(order + "Q", head[8:16])
            else:
                raise UnreadableFileError(f"Camelyon: {path} has an unknown TIFF version {magic}.", path)
            f.seek(offset)
            count_size = struct.calcsize(count_fmt)
            (count,) = struct.unpack(order + count_fmt, f.read(count_size))
            table = f.read(count * entry_size)
    except OSError as e:
        raise UnreadableFileError(f"Camelyon: cannot read the TIFF header of {path}: {e}", path) from e
    size: dict[int, int] = {}
    for i in range(count):
        entry = table[i * entry_size : (i + 1) * entry_size]
        tag, typ = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257) and typ in (3, 4, 16):  # ImageWidth / ImageLength as SHORT, LONG or LONG8
            value = entry[entry_size - value_size :]
            size[tag] = struct.unpack(order + {3: "H", 4: "I", 16: "Q"}[typ], value[: {3: 2, 4: 4, 16: 8}[typ]])[0]
    if 256 not in size or 257 not in size:
        raise UnreadableFileError(f"Camelyon: the first TIFF directory of {path} has no width/height tags.", path)
    return int(size[256]), int(size[257])


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd (ray casting) test of points against a closed polygon.

    Args:
        points: ``(N, 2)`` ``(x, y)`` coordinates.
        polygon: ``(K, 2)`` vertices ``(x, y)``; the last one connects back to the first.

    Returns:
        bool ``(N,)``, True for points inside.

    Example::

        points_in_polygon(np.array([[1.0, 1.0], [5.0, 5.0]]), np.array([[0, 0], [2, 0], [2, 2], [0, 2]]))  # [T, F]
    """
    points, polygon = np.asarray(points, dtype=np.float64), np.asarray(polygon, dtype=np.float64)
    inside = np.zeros(len(points), dtype=bool)
    lo, hi = polygon.min(0), polygon.max(0)
    cand = np.nonzero(np.all((points >= lo) & (points <= hi), axis=1))[0]  # bounding-box prefilter
    if len(cand) == 0:
        return inside
    x, y = points[cand, 0], points[cand, 1]
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crossings = np.zeros(len(cand), dtype=bool)
    for ax, ay, bx, by in zip(x1, y1, x2, y2):
        straddles = (ay > y) != (by > y)
        if straddles.any():
            x_cross = ax + (y - ay) * (bx - ax) / np.where(by == ay, 1.0, by - ay)
            crossings ^= straddles & (x < x_cross)
    inside[cand] = crossings
    return inside


def _slide_sizes(slide_sizes: Mapping[str, Sequence[int]] | str | Path | None) -> dict[str, tuple[int, int]]:
    if slide_sizes is None:
        return {}
    if isinstance(slide_sizes, Mapping):
        return {Path(str(k)).stem: (int(v[0]), int(v[1])) for k, v in slide_sizes.items()}
    rows = read_table(slide_sizes, ["slide", "width", "height"])
    return {Path(r["slide"]).stem: (int(float(r["width"])), int(float(r["height"]))) for r in rows}


def _slide_labels(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Slide labels (Camelyon17 ``stage_labels.csv``, Camelyon16 ``reference.csv``) and patient pN stages."""
    slide_label: dict[str, str] = {}
    stage: dict[str, str] = {}
    for table in sorted(root.rglob("stage_labels.csv")):
        for row in read_table(table, ["patient", "stage"]):
            name, value = row["patient"].strip(), row["stage"].strip()
            if name.endswith(".zip"):
                stage[name[:-4]] = value
            else:
                slide_label[Path(name).stem] = value.lower()
    for table in sorted(root.rglob("reference.csv")):  # Camelyon16 test: "test_001,Tumor,Macro,Primary" (no header)
        try:
            with open(table, newline="") as f:
                for row in csv.reader(f):
                    if len(row) >= 2:
                        slide_label[Path(row[0].strip()).stem] = row[1].strip().lower()
        except (OSError, UnicodeDecodeError) as e:
            raise UnreadableFileError(f"Camelyon: cannot read {table}: {e}", table) from e
    return slide_label, stage


def _tile_grid(
    size: tuple[int, int], footprint: float, step: float, polygons: list[tuple[str, np.ndarray]], exclusion: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left level-0 ``(x, y)`` of every whole tile and its tumour label from the centre point."""
    width, height = size
    xs = np.arange(0, width - footprint + 1, step)
    ys = np.arange(0, height - footprint + 1, step)
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
    centres = grid + footprint / 2.0
    tumour = np.zeros(len(grid), dtype=bool)
    excluded = np.zeros(len(grid), dtype=bool)
    for group, poly in polygons:
        if group.lower() in exclusion:
            excluded |= points_in_polygon(centres, poly)
        else:
            tumour |= points_in_polygon(centres, poly)
    return np.floor(grid).astype(np.int64), (tumour & ~excluded).astype(np.int64)


@register_datalist("camelyon")
def camelyon_datalist(
    root: str | Path,
    tile_size: int = 224,
    level: int = 0,
    stride: int | None = None,
    downsample: float | None = None,
    slide_sizes: Mapping[str, Sequence[int]] | str | Path | None = None,
    exclusion_groups: Sequence[str] = ("_2", "exclusion"),
    max_tiles_per_slide: int | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    skip_bad: bool = False,
) -> dict:
    """Tiling plan of the Camelyon16 / Camelyon17 whole-slide images (CC0), one item per slide.

    Layout: slides ``**/*.tif`` (``*_mask.tif`` and ``masks/`` folders are ignored), ASAP annotations
    ``**/<slide>.xml`` (``lesion_annotations/``), optional Camelyon17 ``stage_labels.csv`` (rows ``patient_000.zip,pN1``
    and ``patient_000_node_0.tif,macro``) and Camelyon16 ``reference.csv``. Camelyon16 training names give the slide
    label (``tumor_001`` / ``normal_001``). Slides under a ``testing`` folder keep the official test split; the others
    are split by patient (Camelyon17 ``patient_000_node_0`` -> ``patient_000``; otherwise one patient per slide).

    A tile is ``tile_size`` pixels at ``level``, i.e. ``tile_size * downsample`` level-0 pixels (``downsample``
    defaults to ``2 ** level``, the Camelyon pyramids' factor); tiles are laid every ``stride`` level pixels from
    the slide's top-left corner. The tile label is 1 when its centre lies in a tumour polygon and in no exclusion
    polygon, 0 otherwise, and -1 (unknown) on every tile of a positive or unlabelled slide without annotation XML.

    Args:
        root: dataset folder.
        tile_size: tile side length in pixels at ``level``.
        level: pyramid level the tiles are read at.
        stride: grid step in pixels at ``level`` (default ``tile_size``: non-overlapping tiles).
        downsample: level-0 pixels per ``level`` pixel (default ``2 ** level``).
        slide_sizes: level-0 ``(width, height)`` per slide name, as a mapping or a CSV with columns
            ``slide,width,height``; slides not listed are measured from their TIFF header (no pixel is decoded).
        exclusion_groups: annotation groups (``PartOfGroup``, case-insensitive) marking non-tumour regions;
            Camelyon16 uses ``_2`` for them.
        max_tiles_per_slide: cap on the tiles listed per slide: all tumour tiles first (up to the cap), then a seeded
            random choice of the others. ``None`` lists the whole grid (hundreds of thousands of tiles per slide at
            level 0: use a cap or a coarser level for pretraining lists).
        fractions: train / validation / test fractions of the patients outside ``testing``.
        seed: seed of the patient split and of the tile subsampling.
        skip_bad: record unreadable slides / annotations under ``"skipped"`` instead of raising.

    Returns:
        a datalist (task ``"binary"``, tile labels) whose items are ``{"image": slide path, "label": 1 if the
        slide holds metastases (ITC included) | 0 | -1 unknown, "slide_label": str, "patient_id", "split",
        "annotation": XML path or None, "size": [W, H], "tile_size", "level", "downsample",
        "tiles": [[x, y, tile_label], ...] (top-left, level-0 pixels), "num_tumor_tiles": int}``; Camelyon17 items
        also carry the patient's ``"stage"`` (pN).

    Example::

        plan = build_datalist("camelyon", "/data/camelyon16", tile_size=256, level=1, max_tiles_per_slide=2000)
        tiles = expand_tiling_plan(plan["training"], plan["root"])  # items for monai.data.PatchWSIDataset
    """
    root = dataset_root(root)
    if tile_size < 1 or level < 0:
        raise ValueError(f"`tile_size` must be >= 1 and `level` >= 0, got {tile_size!r} and {level!r}.")
    stride = tile_size if stride is None else stride
    if stride < 1:
        raise ValueError(f"`stride` must be >= 1, got {stride!r}.")
    if max_tiles_per_slide is not None and max_tiles_per_slide < 1:
        raise ValueError(f"`max_tiles_per_slide` must be None or >= 1, got {max_tiles_per_slide!r}.")
    downsample = float(2**level if downsample is None else downsample)
    slides = sorted(
        p
        for p in root.rglob("*.tif*")
        if p.suffix.lower() in (".tif", ".tiff")
        and not p.stem.lower().endswith("_mask")
        and not {"mask", "masks"} & {q.lower() for q in p.relative_to(root).parts[:-1]}
    )
    xmls = {p.stem: p for p in sorted(root.rglob("*.xml"))}
    sizes = _slide_sizes(slide_sizes)
    slide_label, stage = _slide_labels(root)
    exclusion = {g.lower() for g in exclusion_groups}
    skipped: list[dict[str, str]] = []
    sink = skipped if skip_bad else None
    items = []
    for index, slide in enumerate(slides):
        name, rel = slide.stem, slide.relative_to(root)
        label_name = slide_label.get(name)
        if label_name is None:
            label_name = {"tumor": "tumor", "normal": "normal"}.get(name.split("_")[0].lower(), "unknown")
        label = _SLIDE_POSITIVE.get(label_name, -1)
        try:
            size = sizes[name] if name in sizes else read_tiff_size(slide)
            xml = xmls.get(name)
            polygons = read_asap_polygons(xml) if xml is not None else []
        except DataError as e:
            skip_or_raise(e, sink)
            continue
        coords, tile_labels = _tile_grid(size, tile_size * downsample, stride * downsample, polygons, exclusion)
        if xml is None and label != 0:
            tile_labels[:] = -1  # positive or unlabelled slide without annotation: tile labels unknown
        if max_tiles_per_slide is not None and len(coords) > max_tiles_per_slide:
            rng = np.random.default_rng([seed, index])
            pos, neg = np.nonzero(tile_labels == 1)[0], np.nonzero(tile_labels != 1)[0]
            keep = np.concatenate([pos, rng.permutation(neg)])[:max_tiles_per_slide]
            keep.sort()
            coords, tile_labels = coords[keep], tile_labels[keep]
        match = re.match(r"(patient_\d+)_node_\d+", name)
        item: dict[str, Any] = {
            "image": rel.as_posix(),
            "label": label,
            "slide_label": label_name,
            "patient_id": match.group(1) if match else name,
            "annotation": None if xml is None else xml.relative_to(root).as_posix(),
            "size": [int(size[0]), int(size[1])],
            "tile_size": int(tile_size),
            "level": int(level),
            "downsample": downsample,
            "tiles": np.concatenate([coords, tile_labels[:, None]], 1).tolist(),
            "num_tumor_tiles": int((tile_labels == 1).sum()),
        }
        if match and match.group(1) in stage:
            item["stage"] = stage[match.group(1)]
        if "testing" in {p.lower() for p in rel.parts[:-1]}:
            item["split"] = "test"
        items.append(item)
    items = patient_split(items, fractions=fractions, seed=seed)
    desc = "Camelyon16/17 slide tiling plan; label -1: unknown (slide without label, tile without annotation)"
    return make_datalist("camelyon", root, items, "binary", _CAMELYON_LABELS, desc, skipped if skip_bad else None)


def expand_tiling_plan(items: Sequence[Mapping[str, Any]], root: str | Path | None = None) -> list[dict[str, Any]]:
    """Flatten :func:`camelyon_datalist` slide items into one item per tile for ``monai.data.PatchWSIDataset``.

    Args:
        items: slide items of a camelyon datalist (e.g. ``datalist["training"]``).
        root: when given, slide paths are joined to it (the datalist's ``"root"``).

    Returns:
        ``[{"image", "location": [y, x] (top-left, level 0), "patch_size": [s, s], "patch_level", "label",
        "patient_id"}, ...]``; use ``PatchWSIDataset(..., center_location=False)``, whose locations are (row, col).

    Example::

        plan = build_datalist("camelyon", "/data/camelyon16", tile_size=224, level=1, max_tiles_per_slide=1000)
        tiles = expand_tiling_plan(plan["training"], plan["root"])
        ds = PatchWSIDataset(tiles, center_location=False, reader="OpenSlide")
    """
    tiles = []
    for item in items:
        image = item["image"] if root is None else str(Path(root) / item["image"])
        size = [item["tile_size"], item["tile_size"]]
        for x, y, label in item["tiles"]:
            tiles.append(
                {
                    "image": image,
                    "location": [int(y), int(x)],
                    "patch_size": size,
                    "patch_level": item["level"],
                    "label": int(label),
                    "patient_id": item["patient_id"],
                }
            )
    return tiles
