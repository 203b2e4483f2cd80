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
from monai.data import Dataset
from torch.utils.data import DataLoader

from monai_jepa.evaluation import as_data_loader, data_labels, extract_features, split_batch, subset_data
from monai_jepa.networks import ConvEncoder, LeJEPAModel, Projector


def tiny_lejepa():
    torch.manual_seed(0)
    enc = ConvEncoder(2, 1, "resnet10", conv1_t_size=3, conv1_t_stride=1, no_max_pool=True, widen_factor=0.125)
    return LeJEPAModel(enc, Projector(enc.embed_dim, 16, 8))


class TupleEncoder(nn.Module):
    """Returns (tokens, pooled) like the JEPA encoders."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        tokens = self.conv(x).flatten(2).transpose(1, 2)
        return tokens, tokens.mean(1)


class MapEncoder(nn.Module):
    """Returns a pooled map (B, 4, 1, 1), with dropout to reveal train mode."""

    def __init__(self):
        super().__init__()
        self.conv, self.drop = nn.Conv2d(1, 4, 3), nn.Dropout(0.9)

    def forward(self, x):
        return self.drop(nn.functional.adaptive_avg_pool2d(self.conv(x), 1))


def test_embed_is_used_batches_keep_order_and_mode_is_restored():
    model = tiny_lejepa().train()
    x = torch.rand(10, 1, 16, 16)
    y = torch.arange(10) % 2
    feats, labels = extract_features(model, (x, y), batch_size=4)
    assert feats.shape == (10, model.embed_dim) and feats.dtype == torch.float32 and not feats.requires_grad
    assert model.training  # restored
    with torch.no_grad():
        expected = model.eval().embed(x)  # eval mode: BatchNorm running statistics
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(labels, y)
    feats_alone, none = extract_features(model, x, batch_size=3)
    assert none is None and torch.allclose(feats_alone, feats, atol=1e-5)


def test_dataset_of_dicts_loader_and_arrays_agree():
    model = tiny_lejepa()
    x = np.random.default_rng(0).random((6, 1, 16, 16), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    ref, _ = extract_features(model, (torch.from_numpy(x), torch.from_numpy(y)))
    ds = Dataset([{"img": im, "cls": int(c)} for im, c in zip(x, y)])
    feats, labels = extract_features(model, ds, batch_size=4, image_key="img", label_key="cls")
    torch.testing.assert_close(feats, ref)
    assert labels.tolist() == y.tolist()
    loader = DataLoader(list(zip(torch.from_numpy(x), torch.from_numpy(y))), batch_size=5)  # (image, label) tuples
    feats2, labels2 = extract_features(model, loader)
    torch.testing.assert_close(feats2, ref)
    assert labels2.tolist() == y.tolist()
    feats_np, labels_np = extract_features(model, x, labels=y)  # numpy images + labels
    torch.testing.assert_close(feats_np, ref)


def test_tuple_and_tensor_outputs():
    torch.manual_seed(0)
    x = torch.rand(5, 1, 8, 8)
    enc = TupleEncoder()
    feats, _ = extract_features(enc, x)
    torch.testing.assert_close(feats, enc(x)[1].detach())
    net = MapEncoder().train()
    feats, _ = extract_features(net, x)
    assert feats.shape == (5, 4) and net.training
    with torch.no_grad():
        torch.testing.assert_close(feats, net.eval()(x).flatten(1))  # dropout off in eval mode


def test_amp_features_are_float32_and_close():
    model = tiny_lejepa()
    x = torch.rand(4, 1, 16, 16)
    ref, _ = extract_features(model, x)
    feats, _ = extract_features(model, x, amp=True)
    assert feats.dtype == torch.float32
    assert torch.allclose(feats, ref, atol=0.05 * ref.abs().max().item())


def test_data_labels_read_without_loading_images():
    def fail(_):
        raise AssertionError("the transform must not run")

    ds = Dataset([{"image": np.zeros((1, 4, 4)), "label": i % 3} for i in range(7)], transform=fail)
    assert data_labels(ds).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert data_labels(subset_data(ds, [1, 2, 6])).tolist() == [1, 2, 0]
    x, y = subset_data((torch.zeros(7, 1, 4, 4), torch.arange(7)), np.array([0, 5]))
    assert x.shape == (2, 1, 4, 4) and y.tolist() == [0, 5]
    tuples = Dataset([(torch.zeros(1, 4, 4), torch.tensor([1, 0])) for _ in range(3)])  # items loaded, multi-label
    assert data_labels(tuples).tolist() == [[1, 0]] * 3


def test_data_errors():
    with pytest.raises(ValueError, match="image key 'image'"):
        split_batch({"img": torch.zeros(1)})
    with pytest.raises(ValueError, match="same length"):
        as_data_loader(torch.zeros(3, 1, 4, 4), labels=torch.zeros(2))
    with pytest.raises(ValueError, match="got str"):
        as_data_loader("images/")
    with pytest.raises(ValueError, match="carry no labels"):
        data_labels(torch.zeros(3, 1, 4, 4))
    with pytest.raises(ValueError, match="has no label"):
        data_labels(Dataset([{"image": np.zeros((1, 4, 4))}]))
