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
"""Cine transforms: clip and frame-label loading, temporal sampling (cyclic and clamped, seeded, shared across keys)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from monai_jepa.transforms import LoadCine, LoadCined, LoadFrameLabelsd, TemporalSample, TemporalSampled


def _clip(t=5, h=3, w=2):
    return torch.arange(t, dtype=torch.float32).view(1, t, 1, 1).expand(1, t, h, w).clone()


def test_cyclic_sampling_wraps_around_the_cycle():
    s = TemporalSample(4, stride=2, cyclic=True).set_random_state(0)
    for _ in range(10):
        out = s(_clip())
        start = int(out[0, 0, 0, 0])
        assert out[0, :, 0, 0].tolist() == [(start + 2 * k) % 5 for k in range(4)]
    assert TemporalSample(3, random_start=False)(_clip())[0, :, 0, 0].tolist() == [0, 1, 2]


def test_clamped_sampling_stays_inside_or_repeats_the_last_frame():
    s = TemporalSample(3, cyclic=False).set_random_state(1)
    starts = {int(s(_clip())[0, 0, 0, 0]) for _ in range(30)}
    assert starts == {0, 1, 2}  # the 3-frame span always fits inside the 5 frames
    assert TemporalSample(4, stride=2, cyclic=False)(_clip())[0, :, 0, 0].tolist() == [0, 2, 4, 4]
    with pytest.raises(ValueError, match="clip"):
        TemporalSample(2)(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=">= 1"):
        TemporalSample(0)


def test_dict_sampling_is_seeded_and_shared_by_keys():
    data = {"image": _clip(), "label": 10 * _clip()}
    outs = [TemporalSampled(["image", "label"], 3).set_random_state(7)(data) for _ in range(2)]
    assert torch.equal(outs[0]["image"], outs[1]["image"])
    assert torch.equal(outs[0]["label"], 10 * outs[0]["image"])
    assert outs[0]["frame_indices"].tolist() == outs[0]["image"][0, :, 0, 0].long().tolist()
    # Compose seeding reaches the inner sampler
    a, b = (Compose([TemporalSampled("image", 2)]).set_random_state(3)({"image": _clip(9)}) for _ in range(2))
    assert torch.equal(a["image"], b["image"])


def test_load_cine_transforms(tmp_path):
    data = np.random.default_rng(0).random((4, 3, 5)).astype(np.float32)  # (H, W, T)
    nib.save(nib.Nifti1Image(np.stack([data, data + 1], 2), np.eye(4)), str(tmp_path / "c.nii.gz"))
    out = LoadCined("image")({"image": str(tmp_path / "c.nii.gz"), "slice_index": 1})["image"]
    assert isinstance(out, MetaTensor) and out.shape == (1, 5, 4, 3)
    assert np.allclose(out[0, 2].numpy(), data[..., 2] + 1) and out.meta["num_frames"] == 5
    assert torch.equal(LoadCine()(str(tmp_path / "c.nii.gz"), slice_index=0)[0, 2], torch.from_numpy(data[..., 2]))


def test_frame_labels_from_contours_and_masks(tmp_path):
    square = tmp_path / "ed.txt"
    square.write_text("0.5 0.5\n2.5 0.5\n2.5 1.5\n0.5 1.5\n")  # pixel centres x 1..2, y 1
    mask = np.zeros((4, 3), np.uint8)
    mask[3, 0] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(tmp_path / "es.nii.gz"))
    item = {"image": torch.zeros(1, 5, 4, 3), "label_frames": {"ed": 4, "es": 1}}
    item.update(label_ed=str(square), label_es=str(tmp_path / "es.nii.gz"))
    label = LoadFrameLabelsd()(item)["label"]
    assert label.shape == (2, 5, 4, 3) and label.dtype == torch.float32
    assert label[1, :, 0, 0].tolist() == [0, 1, 0, 0, 1]  # the labelled-frame channel
    assert label[0, 4].nonzero().tolist() == [[1, 1], [1, 2]] and label[0, 1].nonzero().tolist() == [[3, 0]]
    assert label[0, [0, 2, 3]].sum() == 0
    assert LoadFrameLabelsd()({"image": torch.zeros(1, 2, 4, 3)})["label"].abs().sum() == 0  # no labelled frame
    with pytest.raises(ValueError, match="0 <= frame < 5"):
        LoadFrameLabelsd()({**item, "label_frames": {"ed": 5}})
    with pytest.raises(ValueError, match="'label_es'"):
        LoadFrameLabelsd()({"image": item["image"], "label_frames": {"es": 1}})
