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

from monai_jepa.apps.datasets.dermatology import HAM10000_CLASSES, ISIC2019_CLASSES
from monai_jepa.data.datalist import SPLITS, build_datalist
from monai_jepa.data.errors import LayoutError, MissingFileError


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 6), (200, 150, 120)).save(path)


def _items(datalist):
    return [it for split in SPLITS for it in datalist[split]]


def _splits_of(datalist, key):
    out = {}
    for it in _items(datalist):
        out.setdefault(it[key], set()).add(it["split"])
    return out


def _ham(root, num_lesions=14):
    codes = list(HAM10000_CLASSES)
    rows, k = [], 0
    for lesion in range(num_lesions):
        for _ in range(1 + lesion % 3):  # 1-3 images per lesion
            image = f"ISIC_{24306 + k:07d}"
            part = 1 if k % 2 else 2
            _image(root / f"HAM10000_images_part_{part}" / f"{image}.jpg")
            rows.append(f"HAM_{lesion:07d},{image},{codes[lesion % 7]},histo,45.0,male,back")
            k += 1
    (root / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization\n" + "\n".join(rows) + "\n"
    )
    return rows


def test_ham10000_lesion_grouping_and_classes(tmp_path):
    rows = _ham(tmp_path)
    datalist = build_datalist("ham10000", tmp_path, fractions=(0.5, 0.25, 0.25), seed=1)
    assert datalist["task"] == "multiclass" and len(datalist["labels"]) == 7
    assert datalist["labels"]["4"].startswith("mel")
    items = _items(datalist)
    assert len(items) == len(rows) == 27
    by_image = {it["image"].split("/")[-1][:-4]: it for it in items}
    lesion, image, dx = rows[1].split(",")[:3]
    assert by_image[image]["lesion_id"] == by_image[image]["patient_id"] == lesion
    assert by_image[image]["dx"] == dx == "bcc" and by_image[image]["label"] == 1
    assert by_image[image]["image"].startswith("HAM10000_images_part_")
    splits = _splits_of(datalist, "lesion_id")
    assert all(len(s) == 1 for s in splits.values())  # images of one lesion never cross splits
    assert all(any(it["split"] == s for it in items) for s in SPLITS)


def test_ham10000_errors(tmp_path):
    _ham(tmp_path, num_lesions=3)
    text = (tmp_path / "HAM10000_metadata.csv").read_text()
    (tmp_path / "HAM10000_metadata.csv").write_text(text.replace(",bkl,", ",melanoma,"))
    with pytest.raises(LayoutError, match=r"row 5: column 'dx' is 'melanoma'"):
        build_datalist("ham10000", tmp_path)
    (tmp_path / "HAM10000_metadata.csv").write_text(text)
    (tmp_path / "HAM10000_images_part_2" / "ISIC_0024306.jpg").unlink()
    with pytest.raises(MissingFileError, match="ISIC_0024306"):
        build_datalist("ham10000", tmp_path)
    datalist = build_datalist("ham10000", tmp_path, skip_bad=True)
    assert len(_items(datalist)) == 5 and "ISIC_0024306" in datalist["skipped"][0]["reason"]
    with pytest.raises(MissingFileError, match="HAM10000_metadata.csv"):
        build_datalist("ham10000", tmp_path / "HAM10000_images_part_1")


def test_isic2019_one_hot_and_lesions(tmp_path):
    classes = list(ISIC2019_CLASSES)
    names = ["ISIC_0000000", "ISIC_0000001_downsampled", "ISIC_0000002", "ISIC_0000003", "ISIC_0000004"]
    for name in names:
        _image(tmp_path / "ISIC_2019_Training_Input" / f"{name}.jpg")
    hot = [0, 1, 7, 7, 4]  # MEL, NV, SCC, SCC, BKL
    rows = [",".join([n] + ["1.0" if j == h else "0.0" for j in range(len(classes))]) for n, h in zip(names, hot)]
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(",".join(["image", *classes]) + "\n" + "\n".join(rows))
    (tmp_path / "ISIC_2019_Training_Metadata.csv").write_text(
        "image,age_approx,anatom_site_general,lesion_id,sex\n"
        "ISIC_0000000,55,anterior torso,,female\nISIC_0000002,30,head/neck,BCN_0000019,male\n"
        "ISIC_0000003,30,head/neck,BCN_0000019,male\n"
    )
    datalist = build_datalist("isic2019", tmp_path, fractions=(0.4, 0.3, 0.3))
    assert datalist["task"] == "multiclass" and datalist["labels"]["7"].startswith("SCC")
    items = {it["image"]: it for it in _items(datalist)}
    assert [items[f"ISIC_2019_Training_Input/{n}.jpg"]["label"] for n in names] == hot
    same = items["ISIC_2019_Training_Input/ISIC_0000002.jpg"], items["ISIC_2019_Training_Input/ISIC_0000003.jpg"]
    assert same[0]["patient_id"] == same[1]["patient_id"] == "BCN_0000019" and same[0]["split"] == same[1]["split"]
    first = items["ISIC_2019_Training_Input/ISIC_0000000.jpg"]
    assert first["lesion_id"] is None and first["patient_id"] == "ISIC_0000000"  # no lesion id: its own group
    (tmp_path / "ISIC_2019_Training_GroundTruth.csv").write_text(
        ",".join(["image", *classes]) + "\nISIC_0000000,1.0,1.0" + ",0.0" * 7 + "\n"
    )
    with pytest.raises(LayoutError, match="exactly one 1"):
        build_datalist("isic2019", tmp_path)


def test_isic2020_patients(tmp_path):
    rows = []
    for k in range(12):
        name, patient = f"ISIC_{k:07d}", f"IP_{k // 3:07d}"  # 3 images per patient
        _image(tmp_path / "jpeg" / "train" / f"{name}.jpg")
        (tmp_path / "train").mkdir(exist_ok=True)
        (tmp_path / "train" / f"{name}.dcm").write_bytes(b"")  # the Kaggle DICOM copies are ignored
        rows.append(f"{name},{patient},male,45.0,torso,{'melanoma' if k == 4 else 'nevus'},x,{int(k == 4)}")
    header = "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target\n"
    (tmp_path / "train.csv").write_text(header + "\n".join(rows) + "\n")
    datalist = build_datalist("isic2020", tmp_path, fractions=(0.5, 0.25, 0.25))
    assert datalist["task"] == "binary" and datalist["labels"] == {"0": "benign", "1": "malignant"}
    items = _items(datalist)
    assert all(it["image"].startswith("jpeg/train/") and it["image"].endswith(".jpg") for it in items)
    malignant = [it for it in items if it["label"] == 1]
    assert (
        len(malignant) == 1 and malignant[0]["diagnosis"] == "melanoma" and malignant[0]["patient_id"] == "IP_0000001"
    )
    splits = _splits_of(datalist, "patient_id")
    assert len(splits) == 4 and all(len(s) == 1 for s in splits.values())
    (tmp_path / "train.csv").write_text(header + rows[0].rsplit(",", 1)[0] + ",yes\n")
    with pytest.raises(LayoutError, match="column 'target' is 'yes'"):
        build_datalist("isic2020", tmp_path)
