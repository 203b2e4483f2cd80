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

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_jepa.data.errors import InvalidImageError
from monai_jepa.transforms import (
    InvertMonochrome1,
    InvertMonochrome1D,
    InvertMonochrome1d,
    InvertMonochrome1Dict,
    MatchChannels,
    MatchChannelsD,
    MatchChannelsd,
    MatchChannelsDict,
    match_channels,
)
from tests.data.test_io import write_dicom


def test_invert_monochrome1_needs_monochrome1():
    img = MetaTensor(torch.tensor([[[0.0, 5.0, 10.0]]]))
    assert torch.equal(InvertMonochrome1()(img), img)
    np.testing.assert_allclose(InvertMonochrome1("MONOCHROME1")(img).numpy(), [[[10.0, 5.0, 0.0]]])
    img.meta["00280004"] = {"vr": "CS", "Value": ["MONOCHROME1"]}
    out = InvertMonochrome1()(img)
    np.testing.assert_allclose(out.numpy(), [[[10.0, 5.0, 0.0]]])
    assert out.meta["photometric_interpretation"] == "MONOCHROME2"


def test_invert_monochrome1_reads_the_source_header(tmp_path):
    path = write_dicom(tmp_path / "cr.dcm", np.zeros((2, 3)), photometric="MONOCHROME1")
    img = MetaTensor(torch.tensor([[[1.0, 2.0, 4.0]]]), meta={"filename_or_obj": str(path)})
    item = InvertMonochrome1d("image")({"image": img, "label": 1})
    np.testing.assert_allclose(item["image"].numpy(), [[[4.0, 3.0, 1.0]]])
    assert item["label"] == 1
    assert InvertMonochrome1D is InvertMonochrome1Dict is InvertMonochrome1d


def test_match_channels():
    rgb = np.stack([np.ones((2, 2)), np.full((2, 2), 0.5), np.zeros((2, 2))]).astype(np.float32)
    assert np.allclose(match_channels(rgb, 1), 0.299 + 0.587 * 0.5)
    assert match_channels(torch.ones(1, 2, 2), 3).shape == (3, 2, 2)
    assert match_channels(np.ones((4, 2, 2)), 3).shape == (3, 2, 2)
    assert match_channels(rgb, None) is rgb
    with pytest.raises(InvalidImageError, match="2 channels"):
        match_channels(np.zeros((2, 4, 4)), 1)
    np.testing.assert_allclose(MatchChannels(1)(torch.as_tensor(rgb)).numpy(), match_channels(rgb, 1))
    item = MatchChannelsd("image", 3)({"image": torch.zeros(1, 4, 4), "id": "a"})
    assert item["image"].shape == (3, 4, 4) and item["id"] == "a"
    with pytest.raises(ValueError, match="channels"):
        MatchChannels(0)
    assert MatchChannelsD is MatchChannelsDict is MatchChannelsd
