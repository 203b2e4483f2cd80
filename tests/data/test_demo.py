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

import logging

import numpy as np
import pytest
import torch
from monai.data import DataLoader

from monai_jepa.data import DemoDataset
from monai_jepa.data import demo as demo_module
from monai_jepa.data import make_demo_images
from monai_jepa.transforms import MultiViewCollate, RandMultiViewd


@pytest.mark.parametrize("spatial_dims, size, num", [(2, 32, 40), (3, 16, 6)])
def test_shapes_dtype_and_range(spatial_dims, size, num):
    images, labels = make_demo_images(num, size=size, spatial_dims=spatial_dims, seed=0)
    assert images.shape == (num, 1, *(size,) * spatial_dims) and images.dtype == np.float32
    assert labels.shape == (num,) and labels.dtype == np.int64
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0.05


def test_deterministic_per_seed():
    a_img, a_lbl = make_demo_images(20, size=32, seed=3)
    b_img, b_lbl = make_demo_images(20, size=32, seed=3)
    c_img, _ = make_demo_images(20, size=32, seed=4)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lbl, b_lbl)
    assert not np.allclose(a_img, c_img)


@pytest.mark.parametrize("num, num_classes", [(50, 2), (31, 3), (8, 1)])
def test_labels_balanced(num, num_classes):
    _, labels = make_demo_images(num, size=16, num_classes=num_classes, seed=1)
    counts = np.bincount(labels, minlength=num_classes)
    assert len(counts) == num_classes and counts.max() - counts.min() <= 1
    if num_classes > 1:
        assert not np.array_equal(labels, np.sort(labels))  # shuffled, not blocked by class


def test_classes_are_visibly_different():
    images, labels = make_demo_images(60, size=32, num_classes=3, seed=0)
    peak = images.reshape(len(images), -1).max(1)
    bright = (images > 0.8).reshape(len(images), -1).mean(1)
    assert peak[labels > 0].min() > np.median(peak[labels == 0])  # lesions are brighter than any tissue blob
    assert bright[labels == 0].mean() < bright[labels == 1].mean() < bright[labels == 2].mean()  # lesion size grows


def test_dataset_items_and_transform():
    ds = DemoDataset(6, size=32, spatial_dims=2, seed=0)
    images, labels = make_demo_images(6, size=32, seed=0)
    assert len(ds) == 6
    item = ds[2]
    assert set(item) == {"image", "label"} and isinstance(item["label"], int) and item["label"] == labels[2]
    assert np.array_equal(item["image"], images[2]) and item["image"].shape == (1, 32, 32)
    item["image"] = None  # items are copies: the dataset is not changed
    assert ds[2]["image"] is not None
    views = DemoDataset(4, size=32, seed=0, transform=RandMultiViewd(keys="image", num_local=2))[0]
    assert views["image_global"].shape == (2, 1, 32, 32) and views["image_local"].shape == (2, 1, 14, 14)
    assert isinstance(views["image_global"], torch.Tensor)


def test_dataloader_with_views_and_collate():
    ds = DemoDataset(6, size=32, seed=0, transform=RandMultiViewd(keys="image", num_local=3, remove_original=True))
    batch = next(iter(DataLoader(ds, batch_size=6, collate_fn=MultiViewCollate(keys="image"), num_workers=0)))
    assert batch["image_global"].shape == (2, 6, 1, 32, 32) and batch["image_local"].shape == (3, 6, 1, 14, 14)
    assert torch.equal(batch["label"], torch.as_tensor(ds.labels)) and "image" not in batch


def test_warns_once_that_data_are_synthetic(monkeypatch, caplog):
    monkeypatch.setattr(demo_module, "_warned", False)
    with caplog.at_level(logging.WARNING, logger=demo_module.__name__):
        make_demo_images(2, size=16)
        make_demo_images(2, size=16)
    messages = [r.getMessage() for r in caplog.records if r.name == demo_module.__name__]
    assert len(messages) == 1 and "synthetic" in messages[0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_images=0), "num_images"),
        (dict(num_images=2, size=8), "size"),
        (dict(num_images=2, spatial_dims=4), "spatial_dims"),
        (dict(num_images=2, num_classes=0), "num_classes"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_demo_images(**kwargs)
