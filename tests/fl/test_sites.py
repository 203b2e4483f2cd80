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

import json

import nibabel as nib
import numpy as np
import pytest

from monai_jepa.fl import SITE_SPLITS, image_statistic, site_datalist


@pytest.fixture
def datalist(tmp_path):
    """7 training and 4 validation NIfTI volumes; image i has (i + 2) ** 3 voxels of value i + 1."""
    items = []
    for i in range(11):
        n = i + 2
        nib.save(nib.Nifti1Image(np.full((n, n, n), i + 1.0, np.float32), np.eye(4)), str(tmp_path / f"img_{i}.nii.gz"))
        items.append({"image": f"img_{i}.nii.gz", "id": i})
    order = [3, 9, 0, 6, 1, 10, 4, 8, 2, 7, 5]  # not sorted by size
    items = [items[i] for i in order]
    return {"root": str(tmp_path), "in_channels": 1, "training": items[:7], "validation": items[7:], "test": items[:1]}


def _ids(d, split="training"):
    return [item["id"] for item in d[split]]


def test_random_split_is_a_seeded_partition(datalist):
    sites = [site_datalist(datalist, 3, k, seed=1) for k in range(3)]
    assert sorted(sum((_ids(s) for s in sites), [])) == sorted(_ids(datalist))
    assert [len(s["training"]) for s in sites] == [3, 2, 2] and [len(s["validation"]) for s in sites] == [2, 1, 1]
    assert sites[0]["test"] == datalist["test"] and sites[0]["in_channels"] == 1  # other keys kept
    assert sites[2]["site"] == {"index": 2, "num_sites": 3, "split_by": "random", "seed": 1}
    assert _ids(site_datalist(datalist, 3, 0, seed=1)) == _ids(sites[0])
    assert any(_ids(site_datalist(datalist, 3, 0, seed=s)) != _ids(sites[0]) for s in range(2, 6))
    assert _ids(site_datalist(datalist, 1, 0)) == _ids(datalist)


@pytest.mark.parametrize("split_by", ["size", "intensity"])
def test_non_iid_split_by_image_statistic(datalist, split_by):
    sites = [site_datalist(datalist, 2, k, split_by=split_by) for k in range(2)]
    # training ids 3, 9, 0, 6, 1, 10, 4 (image i grows and brightens with i): site 0 gets the 4 smallest / darkest
    assert sorted(_ids(sites[0])) == [0, 1, 3, 4] and sorted(_ids(sites[1])) == [6, 9, 10]
    assert sorted(_ids(sites[0], "validation")) == [2, 5] and sorted(_ids(sites[1], "validation")) == [7, 8]


def test_image_statistic(datalist):
    path = f"{datalist['root']}/img_3.nii.gz"
    assert image_statistic(path, "size") == 125.0 and image_statistic(path, "intensity") == 4.0
    with pytest.raises(ValueError):
        image_statistic(path, "colour")


def test_datalist_from_json_file_and_bad_inputs(datalist, tmp_path):
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(datalist))
    assert _ids(site_datalist(path, 3, 1)) == _ids(site_datalist(datalist, 3, 1))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        site_datalist(tmp_path / "missing.json", 2, 0)
    with pytest.raises(ValueError, match="site_index"):
        site_datalist(datalist, 3, 3)
    with pytest.raises(ValueError, match="num_sites"):
        site_datalist(datalist, 0, 0)
    with pytest.raises(ValueError, match="fewer than num_sites"):
        site_datalist(datalist, 5, 0)  # 4 validation items
    with pytest.raises(ValueError):
        site_datalist(datalist, 2, 0, split_by="hospital")
    assert SITE_SPLITS == ("random", "size", "intensity")
