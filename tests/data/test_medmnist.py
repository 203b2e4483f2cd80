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

from pathlib import Path

import numpy as np
import pytest
from monai.data import DataLoader

from monai_jepa.data.errors import (
    InvalidImageError,
    LayoutError,
    MissingFileError,
    ShapeMismatchError,
    UnreadableFileError,
)
from monai_jepa.data.medmnist import MedMNISTDataset, load_medmnist

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _npz(path, image_shape, labels, dtype=np.uint8, splits=("train", "val", "test"), seed=0):
    """A MedMNIST-style file: ``{split}_images`` of ``(N, *image_shape)`` and ``{split}_labels``."""
    rs = np.random.RandomState(seed)
    arrays = {}
    for split in splits:
        lab = np.asarray(labels[split] if isinstance(labels, dict) else labels)
        arrays[f"{split}_images"] = rs.randint(0, 256, size=(len(lab), *image_shape)).astype(dtype)
        arrays[f"{split}_labels"] = lab
    np.savez(path, **arrays)
    return path, arrays


@pytest.mark.parametrize(
    "name, image_shape, labels, shape, task, num_classes",
    [
        ("pneumoniamnist.npz", (8, 8), [[0], [1], [1]], (1, 8, 8), "binary", 2),
        ("dermamnist_64.npz", (8, 8, 3), [[0], [6], [2]], (3, 8, 8), "multiclass", 7),
        ("organmnist3d.npz", (4, 6, 5), [[10], [0], [3]], (1, 4, 6, 5), "multiclass", 11),
        ("retinamnist.npz", (8, 8, 3), [[4], [0], [2]], (3, 8, 8), "ordinal", 5),
        ("chestmnist.npz", (8, 8), np.eye(3, 14, dtype=np.uint8), (1, 8, 8), "multilabel", 14),
        ("custom_gray.npz", (8, 8), [[0], [1], [0]], (1, 8, 8), "binary", 2),
        ("custom_rgb.npz", (8, 8, 3), [[0], [1], [0]], (3, 8, 8), "binary", 2),
        ("custom_vol.npz", (4, 4, 4), [[0], [1], [0]], (1, 4, 4, 4), "binary", 2),
        ("custom_multi.npz", (8, 8), [[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], (1, 8, 8), "multilabel", 4),
    ],
)
def test_flavours(tmp_path, name, image_shape, labels, shape, task, num_classes):
    path, arrays = _npz(tmp_path / name, image_shape, labels)
    images, out_labels, info = load_medmnist(path, "val")
    assert images.shape == (3, *shape) and images.dtype == np.float32 and images.flags.c_contiguous
    raw = arrays["val_images"].astype(np.float32) / 255.0
    expected = np.moveaxis(raw, -1, 1) if shape[0] == 3 else raw[:, None]
    np.testing.assert_allclose(images, expected, atol=1e-7)
    assert info["task"] == task and info["num_classes"] == num_classes
    assert info["spatial_dims"] == len(shape) - 1 and info["in_channels"] == shape[0] and info["size"] == shape[-1]
    assert info["spatial_shape"] == shape[1:] and info["num_samples"] == 3 and info["split"] == "val"
    assert out_labels.dtype == np.int64
    if task == "multilabel":
        np.testing.assert_array_equal(out_labels, np.asarray(labels))
    else:
        np.testing.assert_array_equal(out_labels, np.asarray(labels)[:, 0])


def test_inferred_classes_task_override_and_scaling(tmp_path):
    labels = {"train": [[0], [2], [1]], "val": [[0], [1]], "test": [[4], [0]]}
    path, _ = _npz(tmp_path / "mine.npz", (4, 4), labels)
    _, lab, info = load_medmnist(path, "validation")
    assert info["num_classes"] == 5 and info["task"] == "multiclass"  # largest label over all splits
    assert info["flavour"] is None and lab.tolist() == [0, 1]
    assert load_medmnist(path, "train", task="ordinal")[2]["task"] == "ordinal"
    with pytest.raises(ValueError, match="did you mean 'ordinal'"):
        load_medmnist(path, "train", task="ordnial")
    with pytest.raises(ValueError, match="train"):
        load_medmnist(path, "trian")

    floats = {"train_images": np.full((2, 4, 4), 0.5), "train_labels": np.array([[0.0], [1.0]])}
    np.savez(tmp_path / "floats.npz", **floats)
    images, lab, info = load_medmnist(tmp_path / "floats.npz", "train")
    assert np.all(images == 0.5) and lab.tolist() == [0, 1] and info["task"] == "binary"
    np.savez(tmp_path / "u16.npz", train_images=np.full((1, 4, 4), 65535, np.uint16), train_labels=np.zeros((1, 1)))
    assert load_medmnist(tmp_path / "u16.npz")[0].max() == 1.0


def test_errors(tmp_path):
    with pytest.raises(MissingFileError, match="absent.npz"):
        load_medmnist(tmp_path / "absent.npz")
    np.savez(tmp_path / "nolabels.npz", train_images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(LayoutError, match=r"nolabels.npz lacks the key\(s\) \['train_labels'\]"):
        load_medmnist(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "short.npz", train_images=np.zeros((3, 4, 4), np.uint8), train_labels=np.zeros((2, 1)))
    with pytest.raises(ShapeMismatchError, match="3 images .* but 2 labels"):
        load_medmnist(tmp_path / "short.npz")
    np.savez(tmp_path / "nan.npz", train_images=np.full((1, 4, 4), np.nan), train_labels=np.zeros((1, 1)))
    with pytest.raises(InvalidImageError, match="NaN"):
        load_medmnist(tmp_path / "nan.npz")
    np.savez(tmp_path / "flat.npz", train_images=np.zeros((2, 16), np.uint8), train_labels=np.zeros((2, 1)))
    with pytest.raises(InvalidImageError, match=r"shape \(2, 16\)"):
        load_medmnist(tmp_path / "flat.npz")
    _npz(tmp_path / "pneumoniamnist.npz", (4, 4), [[0], [3]], splits=("train",))
    with pytest.raises(LayoutError, match="label 3 out of range for 2 classes"):
        load_medmnist(tmp_path / "pneumoniamnist.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UnreadableFileError, match="junk.npz cannot be read"):
        load_medmnist(tmp_path / "junk.npz")


def test_dataset_resize_transform_and_loader(tmp_path):
    path, arrays = _npz(tmp_path / "bloodmnist.npz", (8, 8, 3), [[i % 8] for i in range(6)], splits=("train",))
    ds = MedMNISTDataset(path, "train", transform=lambda d: {**d, "twice": d["label"] * 2}, image_size=16)
    item = ds[1]
    assert len(ds) == 6 and item["image"].shape == (3, 16, 16) and item["image"].dtype == np.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0 and item["label"] == 1 and item["twice"] == 2
    assert abs(item["image"].mean() - arrays["train_images"][1].mean() / 255.0) < 0.05  # resized, same content
    assert ds[1]["image"] is not ds.data[1]["image"] and ds.data[1]["image"].shape == (3, 8, 8)  # stored data intact
    batch = next(iter(DataLoader(MedMNISTDataset(path, "train"), batch_size=4)))
    assert tuple(batch["image"].shape) == (4, 3, 8, 8) and batch["label"].tolist() == [0, 1, 2, 3]
    path3d, _ = _npz(tmp_path / "vesselmnist3d.npz", (4, 4, 4), [[1], [1]], splits=("test",))
    ds3d = MedMNISTDataset(path3d, "test", image_size=(8, 6, 4))
    assert ds3d[0]["image"].shape == (1, 8, 6, 4) and ds3d.num_classes == 2
    multi, _ = _npz(tmp_path / "chestmnist.npz", (4, 4), np.eye(2, 14, dtype=np.uint8), splits=("val",))
    assert MedMNISTDataset(multi, "val")[1]["label"].tolist() == [0, 1] + [0] * 12
    with pytest.raises(ValueError, match="image_size"):
        MedMNISTDataset(path, "train", image_size=0)


@pytest.mark.parametrize(
    "folder, file, sizes, shape",
    [
        ("pneumoniamnist", "pneumoniamnist.npz", {"train": 4708, "val": 524, "test": 624}, (1, 28, 28)),
        ("adrenalmnist3d", "adrenalmnist3d.npz", {"train": 1188, "val": 98, "test": 298}, (1, 28, 28, 28)),
    ],
)
def test_real_files(folder, file, sizes, shape):
    path = DATA / folder / file
    if not path.is_file():
        pytest.skip(f"{path} not available")
    for split, num in sizes.items():
        images, labels, info = load_medmnist(path, split)
        assert images.shape == (num, *shape) and images.dtype == np.float32
        head = images[:64]
        assert head.min() >= 0.0 and head.max() <= 1.0 and head.std() > 0.05
        assert labels.shape == (num,) and set(np.unique(labels).tolist()) == {0, 1}
        assert info["task"] == "binary" and info["num_classes"] == 2 and info["spatial_dims"] == len(shape) - 1
