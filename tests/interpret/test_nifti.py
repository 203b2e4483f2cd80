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

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_jepa.interpret import SaveMapNiftid, save_map_nifti

nib = pytest.importorskip("nibabel")


def test_map_keeps_the_affine_of_its_metatensor(tmp_path):
    affine = torch.tensor([[0.7, 0, 0, -90.0], [0, 0.7, 0, 12.5], [0, 0, 6.5, -40.0], [0, 0, 0, 1]])
    heat = MetaTensor(torch.rand(1, 5, 6, 4), affine=affine)
    path = save_map_nifti(heat, tmp_path / "sub" / "m.nii.gz")
    image = nib.load(path)
    assert image.shape == (5, 6, 4) and image.get_data_dtype() == np.float32
    np.testing.assert_allclose(image.affine, affine.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(image.dataobj), heat[0].numpy(), rtol=1e-6)
    plain = nib.load(save_map_nifti(np.ones((4, 4)), tmp_path / "flat.nii"))
    assert plain.shape == (4, 4) and np.allclose(plain.affine, np.eye(4))
    with pytest.raises(ValueError, match="spatial axes"):
        save_map_nifti(np.ones((2, 3, 4, 5)), tmp_path / "bad.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.nii", "sub"]


def test_dict_transform_names_files_by_case_id(tmp_path):
    item = {"pred": MetaTensor(torch.rand(1, 4, 4, 4)), "id": "patient_003_image_001"}
    assert SaveMapNiftid("pred", tmp_path, output_postfix="_err")(item)["id"] == item["id"]
    assert (tmp_path / "patient_003_image_001_err.nii.gz").is_file()
    with pytest.raises(KeyError, match="'id'"):
        SaveMapNiftid("pred", tmp_path)({"pred": torch.rand(1, 4, 4, 4)})
