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

from __future__ import annotations

import gzip
import json
import pickle
import struct

import h5py
import numpy as np
import pytest
from PIL import Image

from monai_jepa.apps.datasets.histopathology import (
    PCamDataset,
    expand_tiling_plan,
    pcam_file,
    points_in_polygon,
    read_asap_polygons,
    read_tiff_size,
)
from monai_jepa.data.datalist import build_datalist
from monai_jepa.data.errors import MissingFileError, ShapeMismatchError, UnreadableFileError

SPLITS = {"train": 5, "valid": 3, "test": 2}


def _write_pcam(root, y_shape_tail=(1, 1, 1), meta=True):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in SPLITS.items():
        x = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        y = (np.arange(n) % 2).astype(np.uint8)
        with h5py.File(root / pcam_file(split, "x"), "w") as f:
            f["x"] = x
        with h5py.File(root / pcam_file(split, "y"), "w") as f:
            f["y"] = y.reshape(n, *y_shape_tail) if y_shape_tail else y
        data[split] = (x, y)
    if meta:
        rows = "".join(f"{i},0,0,0,0,{'slideA' if i < 3 else 'slideB'}\n" for i in range(SPLITS["train"]))
        (root / pcam_file("train", "meta")).write_text(",coord_y,coord_x,tumor_patch,center_tumor_patch,wsi\n" + rows)
    return data


def test_pcam_items_reference_file_and_index(tmp_path):
    data = _write_pcam(tmp_path)
    datalist = build_datalist("pcam", tmp_path)
    assert datalist["task"] == "binary" and set(datalist["labels"]) == {"0", "1"}
    assert [len(datalist[s]) for s in ("training", "validation", "test")] == [5, 3, 2]
    item = datalist["training"][3]
    assert item["image"] == "camelyonpatch_level_2_split_train_x.h5#3"
    assert item["h5_file"] == "camelyonpatch_level_2_split_train_x.h5" and item["index"] == 3
    assert [it["label"] for it in datalist["validation"]] == data["valid"][1].tolist()
    assert [it["patient_id"] for it in datalist["training"]] == ["slideA"] * 3 + ["slideB"] * 2  # from the meta CSV
    assert {it["patient_id"] for it in datalist["test"]} == {"pcam_test"}
    short = build_datalist("pcam", tmp_path, max_items_per_split=2, splits=("valid",))
    assert len(short["validation"]) == 2 and short["training"] == [] and short["test"] == []


def test_pcam_dataset_reads_lazily_and_pickles(tmp_path):
    data = _write_pcam(tmp_path)
    ds = PCamDataset(tmp_path, "valid", transform=lambda d: {**d, "label": d["label"] + 10})
    assert len(ds) == 3 and ds._x is None  # nothing opened before the first item
    item = ds[2]
    assert item["image"].shape == (3, 96, 96) and item["image"].dtype == np.float32
    np.testing.assert_allclose(item["image"], data["valid"][0][2].transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert item["label"] == int(data["valid"][1][2]) + 10 and item["index"] == 2
    plain = PCamDataset(tmp_path, "valid")
    first = plain[1]
    clone = pickle.loads(pickle.dumps(plain))  # DataLoader workers receive a copy without the open handle
    assert plain._x is not None and clone._x is None
    np.testing.assert_array_equal(clone[1]["image"], first["image"])
    assert clone[1]["label"] == first["label"] == int(data["valid"][1][1])


def test_pcam_errors(tmp_path):
    _write_pcam(tmp_path, y_shape_tail=None)
    with pytest.raises(ShapeMismatchError, match=r"split_train_y\.h5"):
        build_datalist("pcam", tmp_path)
    gz = tmp_path / "gz"
    gz.mkdir()
    with gzip.open(gz / (pcam_file("train", "x") + ".gz"), "wb") as f:
        f.write(b"")
    with pytest.raises(MissingFileError, match="gunzip"):
        build_datalist("pcam", gz, splits=("train",))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / pcam_file("test", "x")).write_bytes(b"not hdf5")
    (bad / pcam_file("test", "y")).write_bytes(b"not hdf5")
    with pytest.raises(UnreadableFileError, match=r"split_test_x\.h5"):
        build_datalist("pcam", bad, splits=("test",))


def _asap(polygons):
    """ASAP XML text; coordinates written in reverse document order to check sorting by ``Order``."""
    anns = ""
    for i, (group, points) in enumerate(polygons):
        coords = "".join(
            f'<Coordinate Order="{k}" X="{x}" Y="{y}" />' for k, (x, y) in reversed(list(enumerate(points)))
        )
        anns += f'<Annotation Name="A{i}" Type="Polygon" PartOfGroup="{group}"><Coordinates>{coords}</Coordinates>'
        anns += "</Annotation>"
    return f'<?xml version="1.0"?><ASAP_Annotations><Annotations>{anns}</Annotations></ASAP_Annotations>'


def _square(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _tif(path, size=(80, 60)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def _camelyon16(root):
    _tif(root / "training" / "tumor" / "tumor_001.tif")  # 80 x 60: size read from the TIFF header
    _tif(root / "training" / "normal" / "normal_001.tif", (32, 32))
    _tif(root / "training" / "masks" / "tumor_001_mask.tif")  # ignored
    _tif(root / "testing" / "images" / "test_001.tif", (32, 32))
    (root / "testing" / "reference.csv").write_text("test_001,Tumor,Macro,Primary\n")
    xml = _asap([("_0", _square(12, 12, 44, 44)), ("_2", _square(36, 36, 44, 44))])
    (root / "training" / "lesion_annotations").mkdir()
    (root / "training" / "lesion_annotations" / "tumor_001.xml").write_text(xml)


def test_camelyon16_tiling_plan(tmp_path):
    _camelyon16(tmp_path)
    plan = build_datalist("camelyon", tmp_path, tile_size=16)
    slides = {it["image"]: it for s in ("training", "validation", "test") for it in plan[s]}
    assert set(slides) == {
        "training/tumor/tumor_001.tif",
        "training/normal/normal_001.tif",
        "testing/images/test_001.tif",
    }
    tumour = slides["training/tumor/tumor_001.tif"]
    assert tumour["size"] == [80, 60] and tumour["label"] == 1 and tumour["slide_label"] == "tumor"
    assert tumour["annotation"] == "training/lesion_annotations/tumor_001.xml"
    assert len(tumour["tiles"]) == 5 * 3  # whole 16 px tiles on 80 x 60
    positive = sorted((x, y) for x, y, label in tumour["tiles"] if label == 1)
    # tile centres (24, 24), (40, 24), (24, 40) lie in the tumour square; (40, 40) is in the "_2" exclusion square
    assert positive == [(16, 16), (16, 32), (32, 16)] and tumour["num_tumor_tiles"] == 3
    assert slides["training/normal/normal_001.tif"]["label"] == 0
    assert all(label == 0 for _, _, label in slides["training/normal/normal_001.tif"]["tiles"])
    test = slides["testing/images/test_001.tif"]
    assert test["split"] == "test" and test["label"] == 1 and test["slide_label"] == "tumor"
    assert {label for _, _, label in test["tiles"]} == {-1}  # positive slide without XML: tile labels unknown
    # level 1: 8 px tiles cover the same 16 level-0 pixels
    level1 = build_datalist("camelyon", tmp_path, tile_size=8, level=1)
    tiles1 = {it["image"]: it["tiles"] for s in ("training", "validation", "test") for it in level1[s]}
    assert tiles1["training/tumor/tumor_001.tif"] == tumour["tiles"]
    capped = build_datalist("camelyon", tmp_path, tile_size=16, max_tiles_per_slide=4, seed=1)
    capped_tumour = next(it for it in capped["training"] if it["image"].endswith("tumor_001.tif"))
    assert len(capped_tumour["tiles"]) == 4 and capped_tumour["num_tumor_tiles"] == 3  # tumour tiles kept first


def test_camelyon17_patients_stages_and_expansion(tmp_path):
    for name in (
        "patient_000_node_0",
        "patient_000_node_1",
        "patient_001_node_0",
        "patient_002_node_3",
        "patient_100_node_2",
    ):
        (tmp_path / "training" / "center_0").mkdir(parents=True, exist_ok=True)
        (tmp_path / "training" / "center_0" / f"{name}.tif").write_bytes(b"")  # sizes are given: never opened
    (tmp_path / "training" / "stage_labels.csv").write_text(
        "patient,stage\npatient_000.zip,pN1\npatient_000_node_0.tif,negative\npatient_000_node_1.tif,macro\n"
        "patient_001.zip,pN0\npatient_001_node_0.tif,negative\npatient_002.zip,pN0(i+)\npatient_002_node_3.tif,itc\n"
    )
    (tmp_path / "lesion_annotations").mkdir()
    (tmp_path / "lesion_annotations" / "patient_002_node_3.xml").write_text(
        _asap([("metastases", _square(0, 0, 9, 9))])
    )
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("slide,width,height\npatient_000_node_0,20,10\npatient_000_node_1.tif,20,10\n")
    with pytest.raises(UnreadableFileError, match="patient_001_node_0.tif"):  # not in the CSV: empty TIFF is read
        build_datalist("camelyon", tmp_path, tile_size=10, slide_sizes=sizes)
    names = (
        "patient_000_node_0",
        "patient_000_node_1",
        "patient_001_node_0",
        "patient_002_node_3.tif",
        "patient_100_node_2",
    )
    sizes = {n: (20, 10) for n in names}
    out = tmp_path / "plan.json"
    plan = build_datalist("camelyon", tmp_path, out=out, tile_size=10, slide_sizes=sizes, fractions=(0.4, 0.3, 0.3))
    assert json.loads(out.read_text()) == plan  # JSON types only
    items = [it for s in ("training", "validation", "test") for it in plan[s]]
    by_name = {it["image"].rsplit("/", 1)[-1][:-4]: it for it in items}
    splits = {it["patient_id"]: set() for it in items}
    for it in items:
        splits[it["patient_id"]].add(it["split"])
    assert set(splits) == {"patient_000", "patient_001", "patient_002", "patient_100"}
    assert all(len(s) == 1 for s in splits.values())
    unlabelled = by_name["patient_100_node_2"]  # not in stage_labels.csv
    assert unlabelled["label"] == -1 and unlabelled["slide_label"] == "unknown" and "stage" not in unlabelled
    assert [t[2] for t in unlabelled["tiles"]] == [-1, -1]
    assert by_name["patient_000_node_1"]["slide_label"] == "macro" and by_name["patient_000_node_1"]["label"] == 1
    assert by_name["patient_000_node_1"]["stage"] == "pN1" and by_name["patient_000_node_0"]["label"] == 0
    assert [t[2] for t in by_name["patient_000_node_1"]["tiles"]] == [-1, -1]  # macro, not annotated
    assert by_name["patient_002_node_3"]["tiles"] == [[0, 0, 1], [10, 0, 0]]  # ITC annotated in the first tile
    tiles = expand_tiling_plan([by_name["patient_002_node_3"]], root="/data")
    assert tiles[1] == {
        "image": "/data/training/center_0/patient_002_node_3.tif",
        "location": [0, 10],  # (row, col) = (y, x) for monai.data.PatchWSIDataset(center_location=False)
        "patch_size": [10, 10],
        "patch_level": 0,
        "label": 0,
        "patient_id": "patient_002",
    }


def test_camelyon_bad_files(tmp_path):
    _camelyon16(tmp_path)
    (tmp_path / "training" / "normal" / "normal_002.tif").write_text("not a tiff")
    with pytest.raises(UnreadableFileError, match="normal_002.tif"):
        build_datalist("camelyon", tmp_path, tile_size=16)
    plan = build_datalist("camelyon", tmp_path, tile_size=16, skip_bad=True)
    assert [s["path"] for s in plan["skipped"]] == [str(tmp_path / "training" / "normal" / "normal_002.tif")]
    (tmp_path / "training" / "lesion_annotations" / "tumor_001.xml").write_text("<ASAP_Annotations><Annot")
    with pytest.raises(UnreadableFileError, match="tumor_001.xml"):
        read_asap_polygons(tmp_path / "training" / "lesion_annotations" / "tumor_001.xml")


def test_read_tiff_size_variants(tmp_path):
    big = tmp_path / "big.tif"  # BigTIFF header: ImageWidth as LONG8, ImageLength as LONG
    entries = struct.pack("<HHQQ", 256, 16, 1, 100_000) + struct.pack("<HHQI4x", 257, 4, 1, 250_000)
    big.write_bytes(b"II" + struct.pack("<HHHQ", 43, 8, 0, 16) + struct.pack("<Q", 2) + entries)
    assert read_tiff_size(big) == (100_000, 250_000)
    motorola = tmp_path / "mm.tif"  # big-endian classic TIFF with SHORT tags
    entries = struct.pack(">HHIH2x", 256, 3, 1, 640) + struct.pack(">HHIH2x", 257, 3, 1, 480)
    motorola.write_bytes(b"MM" + struct.pack(">HI", 42, 8) + struct.pack(">H", 2) + entries + b"\0" * 8)
    assert read_tiff_size(motorola) == (640, 480)
    _tif(tmp_path / "pil.tif", (33, 17))
    assert read_tiff_size(tmp_path / "pil.tif") == (33, 17)


def test_points_in_concave_polygon():
    l_shape = np.array([(0, 0), (4, 0), (4, 1), (1, 1), (1, 4), (0, 4)], dtype=float)
    points = np.array([(0.5, 0.5), (3.5, 0.5), (0.5, 3.5), (2, 2), (3.5, 3.5), (5, 0.5), (-1, 2)])
    assert points_in_polygon(points, l_shape).tolist() == [True, True, True, False, False, False, False]
