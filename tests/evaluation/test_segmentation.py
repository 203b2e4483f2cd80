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

import math

import pytest
import torch
import torch.nn as nn

from monai_jepa.evaluation import (
    evaluate_segmentation,
    fine_tune_segmentation,
    segmentation_augmentation,
    segmentation_label_sweep,
)
from monai_jepa.evaluation.segmentation import _VolumeBatches


class _OneHotOfInput(nn.Module):
    """Logits = the input channels (the image holds a one-hot prediction)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _cube(shape, lo, hi) -> torch.Tensor:
    m = torch.zeros(shape, dtype=torch.long)
    m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
    return m


def _onehot_item(pred: torch.Tensor, ref: torch.Tensor, num_classes: int = 3) -> dict:
    image = torch.nn.functional.one_hot(pred, num_classes).permute(3, 0, 1, 2).float()
    return {"image": image, "label": ref[None]}


def test_perfect_prediction_scores_one_and_zero_distance():
    lab = _cube((12, 12, 12), (2, 2, 2), (6, 6, 6)) + 2 * _cube((12, 12, 12), (7, 7, 7), (10, 11, 10))
    out = evaluate_segmentation(_OneHotOfInput(), [_onehot_item(lab, lab)], 3, class_names=["a", "b"])
    assert out["dice"] == pytest.approx(1.0)
    assert out["dice_per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}
    assert out["hd95"] == pytest.approx(0.0) and out["hd95_undefined"] == 0 and out["num_cases"] == 1


def test_shifted_cube_dice_and_hd95_by_hand():
    ref = _cube((16, 16, 16), (4, 4, 4), (8, 8, 8))  # 64 voxels
    pred = _cube((16, 16, 16), (5, 4, 4), (9, 8, 8))  # shifted by one voxel: overlap 48
    out = evaluate_segmentation(_OneHotOfInput(), [_onehot_item(pred, ref, 2)], 2, spacing=(2.0, 1.0, 1.0))
    assert out["dice"] == pytest.approx(2 * 48 / 128)
    assert out["hd95"] == pytest.approx(2.0)  # one voxel along the 2 mm axis


def test_missing_class_counts_as_undefined_hd95_and_zero_dice():
    ref = _cube((10, 10, 10), (2, 2, 2), (5, 5, 5)) + 2 * _cube((10, 10, 10), (6, 6, 6), (9, 9, 9))
    pred = ref.clone()
    pred[pred == 2] = 0  # class 2 not predicted
    out = evaluate_segmentation(_OneHotOfInput(), [_onehot_item(pred, ref)], 3)
    assert out["dice_per_class"]["1"] == pytest.approx(1.0) and out["dice_per_class"]["2"] == pytest.approx(0.0)
    assert out["hd95_undefined"] == 1 and out["hd95_per_class"]["2"] is None and out["hd95"] == pytest.approx(0.0)


def test_sliding_window_matches_whole_volume():
    lab = _cube((16, 16, 16), (3, 3, 3), (12, 10, 9))
    item = _onehot_item(lab, lab, 2)
    whole = evaluate_segmentation(_OneHotOfInput(), [item], 2)
    windows = evaluate_segmentation(_OneHotOfInput(), [item], 2, roi_size=(8, 8, 8))
    assert windows["dice"] == pytest.approx(whole["dice"]) == pytest.approx(1.0)


def _blob_items(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        lo = torch.randint(1, 6, (3,), generator=g)
        lab = _cube((12, 12, 12), lo.tolist(), (lo + 5).tolist())
        img = lab.float()[None] * 2 - 1 + 0.3 * torch.randn(1, 12, 12, 12, generator=g)
        items.append({"image": img, "label": lab[None], "id": str(len(items))})
    return items


def _tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 2, 3, padding=1))


def test_fine_tuning_learns_a_tiny_problem_in_the_given_steps():
    train, test = _blob_items(6, 0), _blob_items(4, 1)
    torch.manual_seed(0)
    net = _tiny_net()
    before = evaluate_segmentation(net, test, 2)["dice"]
    out = fine_tune_segmentation(net, train, 2, steps=60, batch_size=3, learning_rate=1e-2, flip_axes=(0, 2), seed=0)
    after = evaluate_segmentation(net, test, 2)["dice"]
    assert out["steps"] == 60 and len(out["losses"]) == 60 and out["num_labelled"] == 6
    assert out["final_loss"] < out["losses"][0] / 2
    assert after > 0.9 > before


def test_fine_tuning_is_reproducible_with_a_seed():
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        net = _tiny_net()
        runs.append(fine_tune_segmentation(net, _blob_items(3, 0), 2, steps=5, seed=7, flip_axes=(1,))["losses"])
    assert runs[0] == runs[1]


def test_label_sweep_records_every_method_and_count():
    pool, test = _blob_items(4, 0), _blob_items(2, 1)
    records = segmentation_label_sweep({"a": _tiny_net, "b": _tiny_net}, pool, test, [2, None], 2,
                                       steps=lambda n: 3 * n, log=None, learning_rate=1e-2)  # fmt: skip
    assert [(r["method"], r["num_labelled"], r["steps"]) for r in records] == [
        ("a", 2, 6), ("b", 2, 6), ("a", 4, 12), ("b", 4, 12)
    ]  # fmt: skip
    assert all(0.0 <= r["dice"] <= 1.0 and math.isfinite(r["train_seconds"]) for r in records)
    assert records[0]["dice"] == pytest.approx(records[1]["dice"])  # same factory and seed: same result


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="train_items is empty"):
        fine_tune_segmentation(_tiny_net(), [], 2, steps=1)
    bad = [{"image": torch.zeros(1, 4, 4, 4), "label": torch.zeros(1, 4, 4, 5, dtype=torch.long), "id": "case7"}]
    with pytest.raises(ValueError, match="case7"):
        evaluate_segmentation(_tiny_net(), bad, 2)
    with pytest.raises(ValueError, match="label count 9"):
        segmentation_label_sweep({"a": _tiny_net}, _blob_items(2, 0), _blob_items(1, 1), [9], 2, steps=1, log=None)
    with pytest.raises(ValueError, match="class_names"):
        evaluate_segmentation(_tiny_net(), _blob_items(1, 0), 2, class_names=["a", "b"])


def test_lr_scales_give_parameter_groups_their_own_rate():
    torch.manual_seed(0)
    net = _tiny_net()
    frozen = {k: v.clone() for k, v in net.state_dict().items()}
    fine_tune_segmentation(net, _blob_items(2, 0), 2, steps=3, learning_rate=1e-2, lr_scales={"0.": 0.0})
    after = net.state_dict()
    assert torch.equal(after["0.weight"], frozen["0.weight"]) and torch.equal(after["0.bias"], frozen["0.bias"])
    assert not torch.equal(after["2.weight"], frozen["2.weight"])


def test_fine_tune_stops_before_the_step_on_a_non_finite_loss():
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)
    items = [{"image": torch.randn(1, 8, 8, 8), "label": torch.zeros(1, 8, 8, 8, dtype=torch.long)} for _ in range(2)]
    items[1]["image"][0, 0, 0, 0] = float("nan")
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(FloatingPointError, match="non-finite segmentation loss at step 0"):
        fine_tune_segmentation(net, items, 2, steps=3, batch_size=2)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # no optimiser step ran


def test_zero_lr_factor_freezes_the_encoder_path():
    from monai.networks.nets import UNet

    from monai_jepa.networks import encoder_parameter_names

    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(4, 8), strides=(2,), num_res_units=1)
    items = [{"image": torch.randn(1, 8, 8, 8), "label": (torch.rand(1, 8, 8, 8) > 0.5).long()} for _ in range(2)]
    frozen = encoder_parameter_names(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = fine_tune_segmentation(net, items, 2, steps=3, batch_size=2, lr_scales=dict.fromkeys(frozen, 0.0))
    after = net.state_dict()
    assert out["frozen_parameters"] == sum(p.numel() for n, p in net.named_parameters() if n in frozen) > 0
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in after if k not in frozen)
    with pytest.raises(ValueError, match="freezes every parameter"):
        fine_tune_segmentation(UNet(3, 1, 2, (4, 8), (2,)), items, 2, steps=1, lr_scales={"": 0.0})


def test_augmentation_moves_image_and_label_together_and_is_seeded():
    lab = _cube((16, 20, 16), (4, 5, 4), (12, 15, 12))
    items = [{"image": lab.float()[None] * 2.0, "label": lab[None]}]
    aug = segmentation_augmentation(prob=1.0, intensity=0.0)  # spatial always, intensity unchanged but the gamma
    draws = [list(_VolumeBatches(items, 1, 4, (), seed, aug)) for seed in (0, 0, 1)]
    for batch in draws[0]:
        x, y = batch["image"], batch["label"]
        assert x.shape == (1, 1, 16, 20, 16) and y.dtype == torch.long and set(y.unique().tolist()) <= {0, 1}
        assert not torch.equal(y, lab[None, None])  # rotated / scaled
        # the image was warped with the label: the bright region is where the label says
        assert x[y == 1].mean() > 1.5 and x[y == 0].mean() < 0.5
    assert all(torch.equal(a["label"], b["label"]) for a, b in zip(draws[0], draws[1]))
    assert not all(torch.equal(a["label"], b["label"]) for a, b in zip(draws[0], draws[2]))


def test_augmented_fine_tuning_runs_the_budget_and_rejects_size_changes():
    from monai.transforms import SpatialPadd

    out = fine_tune_segmentation(_tiny_net(), _blob_items(3, 0), 2, steps=4, augment=segmentation_augmentation())
    assert out["steps"] == 4 and all(math.isfinite(v) for v in out["losses"])
    with pytest.raises(ValueError, match="spatial size"):
        fine_tune_segmentation(_tiny_net(), _blob_items(3, 0), 2, steps=2,
                               augment=SpatialPadd(("image", "label"), (14, 12, 12)))  # fmt: skip
