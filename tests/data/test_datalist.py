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
import sys
from collections import Counter

import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from monai_jepa.data import datalist as dl
from monai_jepa.data.datalist import (
    DATALIST_BUILDERS,
    SPLITS,
    build_datalist,
    check_no_patient_leak,
    encode_labels,
    index_files,
    list_datalists,
    make_datalist,
    normalize_split,
    patient_split,
    read_table,
    register_datalist,
    skip_or_raise,
    split_and_make_datalist,
    write_datalist,
)
from monai_jepa.data.errors import EmptyDatasetError, LayoutError, MissingFileError, UnreadableFileError


def _items(num_patients=100, seed=0):
    rs = np.random.RandomState(seed)
    items = []
    for p in range(num_patients):
        for k in range(rs.randint(1, 4)):
            items.append({"image": f"p{p:03d}_{k}.png", "patient_id": f"p{p:03d}", "label": p % 2})
    return items


def _patients(items, split):
    return {it["patient_id"] for it in items if it["split"] == split}


def test_patient_split_groups_counts_and_determinism():
    items = _items()
    out = patient_split(items, fractions=(0.8, 0.1, 0.1), seed=0)
    assert len(out) == len(items) and all("split" not in it for it in items)  # input untouched
    assert [it["image"] for it in out] == [it["image"] for it in items]  # order kept
    groups = {}
    for it in out:
        groups.setdefault(it["patient_id"], set()).add(it["split"])
    assert all(len(s) == 1 for s in groups.values())
    assert [len(_patients(out, s)) for s in SPLITS] == [80, 10, 10]  # fractions of patients
    assert out == patient_split(items, fractions=(0.8, 0.1, 0.1), seed=0)
    assert [it["split"] for it in out] != [it["split"] for it in patient_split(items, seed=1)]
    # fractions are normalised; a zero fraction gives an empty split
    two = patient_split(items, fractions=(3, 1, 0), seed=0)
    assert [len(_patients(two, s)) for s in SPLITS] == [75, 25, 0]


def test_patient_split_stratified_and_small():
    out = patient_split(_items(), fractions=(0.8, 0.1, 0.1), seed=3, stratify_key="label")
    per_split = {
        s: Counter(it["label"] for it in out if it["split"] == s and it["image"].endswith("_0.png")) for s in SPLITS
    }
    assert per_split == {"training": {0: 40, 1: 40}, "validation": {0: 5, 1: 5}, "test": {0: 5, 1: 5}}
    # with as many patients as positive fractions, every split gets one
    tiny = patient_split([{"image": f"{i}.png", "patient_id": str(i)} for i in range(3)], seed=0)
    assert sorted(it["split"] for it in tiny) == sorted(SPLITS)


def test_patient_split_keeps_official_splits_and_missing_groups():
    items = [
        {"image": "a1", "patient_id": "a", "split": "test"},
        {"image": "a2", "patient_id": "a"},  # joins its patient's official split
        {"image": "b1", "patient_id": "b", "split": "val"},  # alias normalised
        {"image": "x"},  # no patient id: its own group
        {"image": "y", "patient_id": ""},
    ] + [{"image": f"c{i}", "patient_id": f"c{i}"} for i in range(10)]
    out = {it["image"]: it["split"] for it in patient_split(items, fractions=(1, 0, 0), seed=0)}
    assert out["a1"] == out["a2"] == "test" and out["b1"] == "validation"
    assert out["x"] == out["y"] == "training" and all(out[f"c{i}"] == "training" for i in range(10))
    with pytest.raises(LayoutError, match="unknown split 'holdout'"):
        patient_split([{"image": "a", "split": "holdout"}])
    for bad in [(0.8, 0.2), (1, -0.1, 0), (0, 0, 0)]:
        with pytest.raises(ValueError, match="fractions"):
            patient_split(items, fractions=bad)
    assert normalize_split("Validate") == "validation" and normalize_split("TRAIN") == "training"


def test_make_write_and_load_decathlon(tmp_path):
    root = tmp_path / "ds"
    (root / "imgs").mkdir(parents=True)
    items = [
        {"image": root / "imgs" / "a.png", "label": np.int64(1), "patient_id": "1", "split": "train"},
        {"image": "imgs/b.png", "label": [0, 1], "patient_id": "2", "split": "validation"},
        {
            "image": ["imgs/c_t1.nii.gz", str(root / "imgs" / "c_t2.nii.gz")],
            "label": "seg/c.nii.gz",
            "patient_id": "3",
            "split": "test",
        },
    ]
    datalist = make_datalist("toy", root, items, "multiclass", ["normal", "lesion"], "toy set")
    assert list(datalist)[:5] == ["name", "description", "task", "labels", "root"]
    assert datalist["labels"] == {"0": "normal", "1": "lesion"} and datalist["root"] == str(root)
    assert datalist["training"] == [{"image": "imgs/a.png", "label": 1, "patient_id": "1", "split": "training"}]
    assert datalist["test"][0]["image"] == ["imgs/c_t1.nii.gz", "imgs/c_t2.nii.gz"]
    assert "skipped" not in datalist

    out = write_datalist(datalist, tmp_path / "lists" / "toy.json")
    text = out.read_text()
    assert text.splitlines()[1].startswith('    "name"') and json.loads(text) == datalist
    assert [p.name for p in out.parent.iterdir()] == ["toy.json"]  # no temporary file left
    train = load_decathlon_datalist(out, data_list_key="training", base_dir=datalist["root"])
    assert train[0]["image"] == str(root / "imgs" / "a.png") and train[0]["label"] == 1
    test = load_decathlon_datalist(out, data_list_key="test", base_dir=datalist["root"])
    assert test[0]["image"][1] == str(root / "imgs" / "c_t2.nii.gz") and test[0]["label"] == str(root / "seg/c.nii.gz")

    # a failed write leaves the previous file intact and no temporary file
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_datalist({**datalist, "extra": object()}, out)
    assert json.loads(out.read_text()) == datalist and len(list(out.parent.iterdir())) == 1


def test_make_datalist_errors_and_skipped(tmp_path):
    with pytest.raises(EmptyDatasetError, match="no usable case"):
        make_datalist("toy", tmp_path, [], "binary", None)
    with pytest.raises(LayoutError, match="has no 'split'"):
        make_datalist("toy", tmp_path, [{"image": "a.png"}], "binary", None)
    with pytest.raises(LayoutError, match="no 'image' key"):
        make_datalist("toy", tmp_path, [{"split": "test"}], "binary", None)
    leak = [
        {"image": "a", "patient_id": "p7", "split": "training"},
        {"image": "b", "patient_id": "p7", "split": "test"},
    ]
    with pytest.raises(LayoutError, match=r"'p7' in \['training', 'test'\]"):
        make_datalist("toy", tmp_path, leak, "binary", None)
    dlist = make_datalist("toy", tmp_path, leak[:1], "binary", {1: "x"}, skipped=[{"path": tmp_path, "reason": "bad"}])
    assert dlist["skipped"] == [{"path": str(tmp_path), "reason": "bad"}] and dlist["labels"] == {"1": "x"}
    check_no_patient_leak(dlist)
    with pytest.raises(LayoutError, match="lacks the split key"):
        write_datalist({"training": []}, tmp_path / "x.json")


def test_read_table(tmp_path):
    table = tmp_path / "t.csv"
    table.write_bytes("\ufeffImage Index , Patient ID,Label\na.png,1, 0\n\n b.png ,2\n".encode("utf-8"))
    rows = read_table(table, ["Image Index", "Patient ID"])
    assert rows == [
        {"Image Index": "a.png", "Patient ID": "1", "Label": "0"},
        {"Image Index": "b.png", "Patient ID": "2", "Label": ""},
    ]
    with pytest.raises(LayoutError, match=r"t\.csv lacks the required column\(s\) \['Finding Labels', 'Age'\]"):
        read_table(table, ["Finding Labels", "Patient ID", "Age"])
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(b"dicom_id,split\nd1,train\n"))
    assert read_table(gz, ["split"]) == [{"dicom_id": "d1", "split": "train"}]
    (tmp_path / "t.tsv").write_text("a\tb\n1\t2\n")
    assert read_table(tmp_path / "t.tsv") == [{"a": "1", "b": "2"}]
    with pytest.raises(MissingFileError, match="nope.csv does not exist"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UnreadableFileError, match="bin.csv"):
        read_table(tmp_path / "bin.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LayoutError, match="no header"):
        read_table(tmp_path / "empty.csv")


def test_encode_labels_and_skip_or_raise():
    assert encode_labels(["nevus", "melanoma", "nevus"]) == ([1, 0, 1], {"0": "melanoma", "1": "nevus"})
    assert encode_labels(["2", "0", "1.0"]) == ([2, 0, 1], {"0": "0", "1": "1", "2": "2"})
    assert encode_labels(["b", "a"], classes=["b", "a"]) == ([0, 1], {"0": "b", "1": "a"})
    with pytest.raises(LayoutError, match=r"t.csv column 'dx': label\(s\) \['c'\]"):
        encode_labels(["a", "c"], classes=["a", "b"], source="t.csv column 'dx'")
    with pytest.raises(LayoutError, match="blank label"):
        encode_labels(["a", ""])
    err = MissingFileError("gone", path="/x/y.png")
    with pytest.raises(MissingFileError):
        skip_or_raise(err, None)
    skipped = []
    skip_or_raise(err, skipped)
    assert skipped == [{"path": "/x/y.png", "reason": "gone"}]


def test_registry(tmp_path):
    names = list_datalists()
    for name in ("chestxray14", "chexpert", "mimic_cxr", "dicom_cxr", "nifti_folder", "image_csv", "dicom_series"):
        assert name in names
    assert "toy_layout" not in DATALIST_BUILDERS

    @register_datalist("toy_layout")
    def toy(root, n=2):
        items = [{"image": f"{i}.png", "patient_id": str(i)} for i in range(n)]
        return make_datalist("toy_layout", root, patient_split(items, (1, 0, 0)), "unlabelled", None)

    try:
        out = tmp_path / "toy.json"
        datalist = build_datalist("toy_layout", tmp_path, out=out, n=3)
        assert len(datalist["training"]) == 3 and json.loads(out.read_text()) == datalist
        with pytest.raises(ValueError, match="already registered"):
            register_datalist("toy_layout")(lambda root: {})
        with pytest.raises(ValueError, match="did you mean 'toy_layout'"):
            build_datalist("toy_layuot", tmp_path)
    finally:
        DATALIST_BUILDERS.pop("toy_layout", None)


def test_builder_import_skips_only_missing_modules(monkeypatch):
    monkeypatch.setattr(dl, "BUILDER_MODULES", ("module_that_does_not_exist",))
    dl._import_builders()  # absent module: skipped
    monkeypatch.setattr(dl, "BUILDER_MODULES", ("monai_jepa.data.demo",))
    monkeypatch.delitem(sys.modules, "monai_jepa.data.demo")

    def broken(name):
        raise ImportError(f"cannot import a dependency of {name}")

    monkeypatch.setattr(dl.importlib, "import_module", broken)
    with pytest.raises(ImportError, match="dependency of monai_jepa.data.demo"):
        dl._import_builders()


def test_index_files_prefers_earlier_suffix_and_falls_back_to_root(tmp_path):
    for rel in ("imgs/a.png", "imgs/a.JPG", "imgs/sub/b.png", "imgs/._c.png", "imgs/d.txt", "other/e.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert index_files(tmp_path, ["imgs", "missing"], (".jpg", ".png")) == {"a": "imgs/a.JPG", "b": "imgs/sub/b.png"}
    assert index_files(tmp_path, ["imgs"], (".png", ".jpg"))["a"] == "imgs/a.png"
    # no listed folder exists: all of root is searched
    assert index_files(str(tmp_path), ["missing"], (".png",)) == {
        "a": "imgs/a.png",
        "b": "imgs/sub/b.png",
        "e": "other/e.png",
    }


def test_split_and_make_datalist(tmp_path):
    items = [{"image": f"{i}.png", "label": i % 2, "patient_id": f"p{i // 2}"} for i in range(20)]
    out = split_and_make_datalist(
        "toy", tmp_path, items, "binary", ["a", "b"], "toy set", [], (0.6, 0.2, 0.2), 0, False
    )
    assert sum(len(out[s]) for s in SPLITS) == 20 and "skipped" not in out
    check_no_patient_leak(out)
    skipped = [{"path": "x.png", "reason": "missing"}]
    out = split_and_make_datalist("toy", tmp_path, items, "binary", None, "", skipped, (0.6, 0.2, 0.2), 0, False)
    assert out["skipped"] == skipped
    assert (
        split_and_make_datalist("toy", tmp_path, items, "binary", None, "", [], (0.6, 0.2, 0.2), 0, True)["skipped"]
        == []
    )
    with pytest.raises(EmptyDatasetError, match="toy: no usable image"):
        split_and_make_datalist("toy", tmp_path, [], "binary", None, "", [], (0.6, 0.2, 0.2), 0, False)


def test_builders_moved_to_apps_datasets_stay_importable_with_a_warning():
    import monai_jepa.data as data
    from monai_jepa.apps import datasets

    with pytest.warns(DeprecationWarning, match="moved to monai_jepa.apps.datasets.chexpert_datalist"):
        assert data.chexpert_datalist is datasets.chexpert_datalist
    with pytest.warns(DeprecationWarning, match="moved to monai_jepa.apps.inspect.inspect_path"):
        from monai_jepa.apps.inspect import inspect_path

        assert data.inspect_path is inspect_path
    with pytest.raises(AttributeError, match="no attribute 'brats_datalist'"):
        data.brats_datalist  # never exported from monai_jepa.data
    assert {"chexpert", "brats", "sunnybrook", "acdc_cine", "nifti_folder"} <= set(list_datalists())
