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

from monai_jepa.interpret import SaveOverlayPNGd, overlay_slice, save_overlay_png


def test_overlay_slice_picks_the_hottest_plane():
    image, heat = torch.rand(2, 6, 7, 5), torch.zeros(1, 6, 7, 5)
    heat[0, :, :, 3] = 1.0
    img, plane, index = overlay_slice(image, heat)
    assert index == 3 and img.shape == (6, 7) and np.allclose(plane, 1.0)
    np.testing.assert_allclose(img, image[0, :, :, 3].numpy())
    assert overlay_slice(image, heat, axis=0, index=2)[2] == 2
    assert overlay_slice(torch.rand(1, 4, 4), torch.rand(4, 4))[2] is None
    with pytest.raises(ValueError, match="does not match"):
        overlay_slice(image, torch.zeros(1, 6, 7, 4))
    with pytest.raises(ValueError, match="outside"):
        overlay_slice(image, heat, index=9)


def test_png_writers(tmp_path):
    pytest.importorskip("matplotlib")
    path = save_overlay_png(torch.rand(1, 8, 8, 4), torch.rand(1, 8, 8, 4), tmp_path / "sub" / "a.png", title="t")
    assert open(path, "rb").read(4) == b"\x89PNG"
    image = MetaTensor(torch.rand(1, 8, 8), meta={"filename_or_obj": "/data/case_07.nii.gz"})
    # the source file name may hold patient data: without a case id the writer refuses, it never falls back to it
    with pytest.raises(KeyError, match="'id' key"):
        SaveOverlayPNGd("pred", tmp_path, name_key="id")({"image": image, "pred": torch.rand(1, 8, 8)})
    with pytest.raises(ValueError, match="plain file name"):
        SaveOverlayPNGd("pred", tmp_path)({"image": image, "pred": torch.rand(1, 8, 8), "id": "../up"})
    assert list(tmp_path.glob("*.png")) == [] and not (tmp_path.parent / "up_overlay.png").exists()
    out = SaveOverlayPNGd("pred", tmp_path)({"image": image, "pred": torch.rand(1, 8, 8), "id": "case_07"})
    assert (tmp_path / "case_07_overlay.png").is_file() and "pred" in out
    SaveOverlayPNGd("pred", tmp_path, output_postfix="_err")({"image": image, "pred": torch.rand(1, 8, 8), "id": "p1"})
    assert (tmp_path / "p1_err.png").is_file()
