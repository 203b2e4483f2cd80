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
import torch.nn as nn

from monai_jepa.interpret import attribution_map, deletion_insertion, last_conv_layer


class _RegionClassifier(nn.Module):
    """Logit 1 = mean intensity in the top-left 8x8 corner (through a 1x1 convolution), logit 0 = its negative."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)

    def forward(self, x):
        score = self.conv(x)[:, 0, :8, :8].mean(dim=(1, 2))
        return torch.stack([-score, score], dim=1)


def test_last_conv_layer_and_error():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.Flatten())
    assert last_conv_layer(net) == "2"
    with pytest.raises(ValueError, match="no convolution"):
        last_conv_layer(nn.Linear(2, 2))


def test_occlusion_finds_the_region_the_classifier_reads():
    x = torch.zeros(1, 1, 16, 16)
    x[..., :8, :8] = 2.0  # occluded boxes get the image mean (0.5): the class-1 logit falls only in the corner
    occ = attribution_map(_RegionClassifier(), x, method="occlusion", class_idx=1, mask_size=4, overlap=0.0)
    assert occ.shape == (1, 1, 16, 16)
    inside, outside = occ[0, 0, :8, :8].mean(), occ[0, 0, 8:, 8:].abs().max()
    assert inside > 0.1 and outside < 1e-5


def test_gradcam_shape_range_and_train_mode_restored():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    net.train()
    cam = attribution_map(net, torch.randn(2, 1, 8, 8, 8), method="gradcam")
    assert cam.shape == (2, 1, 8, 8, 8) and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    assert net.training


def test_deletion_and_insertion_rank_the_true_map_above_a_random_one():
    x = torch.rand(1, 1, 16, 16) + 0.5
    truth = torch.zeros(16, 16)
    truth[:8, :8] = 1.0

    def score(batch):
        return batch[:, 0, :8, :8].mean(dim=(1, 2))

    good = deletion_insertion(score, x, truth + 0.01 * torch.rand(16, 16), steps=16)
    rand = deletion_insertion(score, x, torch.rand(16, 16), steps=16)
    assert good["fractions"].shape == (17,) and good["deletion"].shape == (17,)
    # the curves start at the full / empty input and end at the other
    assert np.isclose(good["deletion"][0], float(score(x))) and np.isclose(good["deletion"][-1], 0.0)
    assert np.isclose(good["insertion"][0], 0.0) and np.isclose(good["insertion"][-1], float(score(x)))
    assert good["deletion_auc"] < rand["deletion_auc"] - 0.2
    assert good["insertion_auc"] > rand["insertion_auc"] + 0.2
    with pytest.raises(ValueError, match="one input"):
        deletion_insertion(score, torch.rand(2, 1, 16, 16), truth)
    with pytest.raises(ValueError, match="values"):
        deletion_insertion(score, x, torch.rand(8, 8))
