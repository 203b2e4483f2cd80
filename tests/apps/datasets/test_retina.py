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

import pytest
from PIL import Image

from monai_jepa.apps.datasets.retina import ICDR_GRADES, MESSIDOR1_GRADES
from monai_jepa.data.datalist import SPLITS, build_datalist
from monai_jepa.data.errors import LayoutError, MissingFileError


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 30, 10)).save(path)


def _items(datalist):
    return [it for split in SPLITS for it in datalist[split]]


def _assert_grouped(datalist):
    splits = {}
    for it in _items(datalist):
        splits.setdefault(it["patient_id"], set()).add(it["split"])
    assert all(len(s) == 1 for s in splits.values()), splits


def _eyepacs(root, patients=range(10, 20)):
    rows = []
    for p in patients:
        for eye in ("left", "right"):
            rows.append(f"{p}_{eye},{(p + (eye == 'right')) % 5}")
            _image(root / "train" / f"{p}_{eye}.jpeg")
    (root / "trainLabels.csv").write_text("image,level\n" + "\n".join(rows) + "\n")


def test_eyepacs_items_patients_and_official_test(tmp_path):
    _eyepacs(tmp_path)
    _image(tmp_path / "test" / "1_left.jpeg")
    _image(tmp_path / "test" / "1_right.jpeg")
    (tmp_path / "retinopathy_solution.csv").write_text("image,level,Usage\n1_left,4,Public\n1_right,3,Private\n")
    datalist = build_datalist("eyepacs", tmp_path, seed=3)
    assert datalist["task"] == "ordinal" and datalist["labels"] == ICDR_GRADES
    items = {it["image"]: it for it in _items(datalist)}
    assert len(items) == 22
    assert items["train/13_right.jpeg"]["label"] == 4 and items["train/13_right.jpeg"]["patient_id"] == "13"
    assert items["train/13_right.jpeg"]["eye"] == "right"
    assert items["test/1_left.jpeg"]["split"] == "test" and items["test/1_left.jpeg"]["label"] == 4
    _assert_grouped(datalist)  # both eyes of a patient in one split
    assert sum(it["split"] == "training" for it in _items(datalist)) >= 14


def test_eyepacs_errors_and_skip_bad(tmp_path):
    _eyepacs(tmp_path, patients=range(10, 13))
    (tmp_path / "train" / "11_left.jpeg").unlink()
    with pytest.raises(MissingFileError, match="'11_left'"):
        build_datalist("eyepacs", tmp_path)
    datalist = build_datalist("eyepacs", tmp_path, skip_bad=True)
    assert len(_items(datalist)) == 5 and len(datalist["skipped"]) == 1
    assert "11_left" in datalist["skipped"][0]["reason"]
    (tmp_path / "trainLabels.csv").write_text("image,level\n10_left,7\n")
    with pytest.raises(LayoutError, match=r"trainLabels\.csv, row 2: column 'level' is '7'"):
        build_datalist("eyepacs", tmp_path)
    (tmp_path / "trainLabels.csv").write_text("image,grade\n10_left,1\n")
    with pytest.raises(LayoutError, match=r"\['level'\]"):
        build_datalist("eyepacs", tmp_path)
    (tmp_path / "trainLabels.csv").unlink()
    with pytest.raises(MissingFileError, match="trainLabels.csv"):
        build_datalist("eyepacs", tmp_path)


def test_aptos2019(tmp_path):
    ids = [f"{i:012x}" for i in range(10)]
    for i in ids:
        _image(tmp_path / "train_images" / f"{i}.png")
    _image(tmp_path / "test_images" / "ffffffffffff.png")  # unlabelled test images are not listed
    (tmp_path / "train.csv").write_text("id_code,diagnosis\n" + "".join(f"{i},{k % 5}\n" for k, i in enumerate(ids)))
    datalist = build_datalist("aptos2019", tmp_path, fractions=(0.6, 0.2, 0.2))
    items = sorted(_items(datalist), key=lambda it: it["image"])
    assert [it["image"] for it in items] == [f"train_images/{i}.png" for i in ids]
    assert [it["label"] for it in items] == [k % 5 for k in range(10)]
    assert [it["patient_id"] for it in items] == ids
    assert [len(datalist[s]) for s in SPLITS] == [6, 2, 2]


def test_messidor2_pairs_and_ungradable(tmp_path):
    names = ["20051020_43808_0100_PP.png", "20051020_43832_0100_PP.png", "IM002385.JPG", "IM002386.JPG"]
    for name in names:
        _image(tmp_path / "messidor-2" / "preprocess" / name.replace(".JPG", ".jpg"))
    (tmp_path / "messidor_data.csv").write_text(
        "image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable\n"
        f"{names[0]},0,0,1\n{names[1]},2,1,1\n{names[2]},4.0,1.0,1\n{names[3]},,,0\n"
    )
    (tmp_path / "pairs.csv").write_text(f"left,right\n{names[0]},{names[1]}\n{names[2]},{names[3]}\n")
    datalist = build_datalist("messidor", tmp_path, pairs=tmp_path / "pairs.csv", fractions=(0.5, 0.5, 0))
    assert datalist["labels"] == ICDR_GRADES and "Messidor-2" in datalist["description"]
    items = {it["image"].rsplit("/", 1)[-1]: it for it in _items(datalist)}
    assert set(items) == {names[0], names[1], "IM002385.jpg"}
    assert items[names[1]]["label"] == 2 and items[names[1]]["dme"] == 1 and items["IM002385.jpg"]["label"] == 4
    assert items[names[0]]["patient_id"] == items[names[1]]["patient_id"]  # one patient: same split
    assert items[names[0]]["split"] == items[names[1]]["split"]
    assert len(datalist["skipped"]) == 1 and "ungradable" in datalist["skipped"][0]["reason"]
    with_ungradable = build_datalist("messidor", tmp_path, include_ungradable=True)
    assert sorted(it["label"] for it in _items(with_ungradable)) == [-1, 0, 2, 4]


def test_messidor1_excel_csv(tmp_path):
    for name in ("20051019_38557_0100_PP.tif", "20051020_43808_0100_PP.tif", "20051020_43832_0100_PP.tif"):
        _image(tmp_path / "Base11" / name)
    header = "\ufeffImage name;Ophthalmologic department;Retinopathy grade;Risk of macular edema \n"
    rows = "20051019_38557_0100_PP.tif;Service 1;3;2\n20051020_43808_0100_PP.tif;Service 1;0;0\n"
    (tmp_path / "Annotation_Base11.csv").write_text(header + rows, encoding="utf-8")
    (tmp_path / "Base12").mkdir()
    (tmp_path / "Base12" / "Annotation_Base12.csv").write_text(
        "Image name,Retinopathy grade\n20051020_43832_0100_PP.tif,1\n"
    )
    datalist = build_datalist("messidor", tmp_path, version="1")
    assert datalist["labels"] == MESSIDOR1_GRADES and datalist["task"] == "ordinal"
    items = {it["image"]: it for it in _items(datalist)}
    assert items["Base11/20051019_38557_0100_PP.tif"]["label"] == 3
    assert items["Base11/20051019_38557_0100_PP.tif"]["dme"] == 2
    assert items["Base11/20051020_43832_0100_PP.tif"]["label"] == 1 and "skipped" not in datalist
    (tmp_path / "Base12" / "Annotation_Base12.csv").write_text("Image name,Retinopathy grade\nx.tif,4\n")
    with pytest.raises(LayoutError, match="expected a grade 0-3"):  # Messidor-1 grades stop at 3
        build_datalist("messidor", tmp_path)
    with pytest.raises(MissingFileError, match="messidor_data.csv"):
        build_datalist("messidor", tmp_path / "Base11")
