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

from monai_jepa.transforms import (
    AnatomyAwareMaskGenerator,
    MultiBlockMaskGenerator,
    RandAnatomyBlockMask,
    RandAnatomyBlockMaskd,
    foreground_mask,
    indices_to_mask,
    otsu_threshold,
    token_foreground_fraction,
    token_label_map,
)


def _disc(shape: tuple[int, ...], fraction: float) -> np.ndarray:
    """Centred ball covering about ``fraction`` of a 2D grid (or of each frame when a leading axis is added)."""
    yy, xx = np.meshgrid(*[np.arange(s) - (s - 1) / 2 for s in shape[-2:]], indexing="ij")
    disc = yy**2 + xx**2 < fraction * shape[-2] * shape[-1] / np.pi
    return np.broadcast_to(disc, shape).copy()


def _fg_fraction_of_targets(gen, fg: np.ndarray, draws: int = 200, **kwargs) -> float:
    _, tgt = gen(batch_size=draws, **kwargs)
    mask = indices_to_mask(tgt, gen.num_tokens).numpy()
    return float(mask[:, fg.ravel()].sum() / mask.sum())


def test_otsu_and_foreground_mask():
    values = np.concatenate([np.random.RandomState(0).normal(0.1, 0.02, 500), np.full(300, 0.8)])
    assert 0.15 < otsu_threshold(values) < 0.8
    assert otsu_threshold(np.ones(10)) == 1.0
    # a bright body with a dark hole (lung) and a separate bright speck (table / label text)
    img = np.zeros((1, 40, 40), dtype=np.float32)
    img[0, 5:35, 5:30] = 1.0
    img[0, 12:20, 10:18] = 0.0
    img[0, 37:39, 37:39] = 1.0
    img += np.random.RandomState(0).normal(0, 0.05, img.shape).astype(np.float32)
    mask = foreground_mask(img)
    assert mask.shape == (40, 40) and mask.dtype == bool
    assert mask[5:35, 5:30].all(), "the hole is filled"
    assert not mask[37:39, 37:39].any() and mask.sum() == 30 * 25, "only the largest component is kept"
    raw = foreground_mask(img, method="percentile", percentile=50.0, largest_component=False, fill_holes=False)
    assert raw[37, 37] and not raw[15, 15]
    with pytest.raises(ValueError, match="NaN"):
        foreground_mask(np.full((1, 4, 4), np.nan))


def test_token_maps():
    label = np.zeros((1, 8, 8), dtype=np.int64)
    label[0, :4, :4] = 2  # full patch of label 2
    label[0, 4:7, 0:4] = 1  # 12 of 16 voxels of the lower-left patch
    frac = token_foreground_fraction(label, patch_size=4)
    assert frac.shape == (2, 2)
    assert torch.allclose(frac, torch.tensor([[1.0, 0.0], [0.75, 0.0]]))
    assert torch.equal(token_label_map(label, 4), torch.tensor([[2, 0], [1, 0]]))
    vol = np.zeros((1, 4, 8, 8))
    vol[0, :2] = 1
    assert torch.allclose(
        token_foreground_fraction(vol, (2, 4, 4)), torch.tensor([1.0, 0.0]).view(2, 1, 1).expand(2, 2, 2)
    )
    with pytest.raises(ValueError, match="divisible"):
        token_foreground_fraction(label, 3)


def test_targets_concentrate_on_foreground():
    grid = (16, 16)
    fg = _disc(grid, 0.3)
    assert 0.27 < fg.mean() < 0.33
    kwargs = dict(num_blocks=2, block_scale=(0.04, 0.06), prob_map=fg.astype(float), seed=0)
    uniform = MultiBlockMaskGenerator(grid, num_blocks=2, block_scale=(0.04, 0.06), seed=0)
    inside = AnatomyAwareMaskGenerator(grid, within_label=True, **kwargs)
    centred = AnatomyAwareMaskGenerator(grid, **kwargs)
    # blocks placed uniformly inside the grid cover its centre a little more often than its border
    assert _fg_fraction_of_targets(uniform, fg) < 0.45, "uniform blocks hit the foreground mostly by chance"
    assert _fg_fraction_of_targets(inside, fg) > 0.95
    assert _fg_fraction_of_targets(centred, fg) > 0.7
    # per-draw maps override the construction map: a map on the other half moves the targets there
    other = np.zeros(grid, dtype=bool)
    other[:, :4] = True
    assert _fg_fraction_of_targets(inside, other, prob_map=other.astype(float)) > 0.95


def test_block_scale_and_fixed_counts_with_anatomy():
    grid = (16, 16)
    fg = _disc(grid, 0.6)
    gen = AnatomyAwareMaskGenerator(grid, num_blocks=1, block_scale=(0.1, 0.15), prob_map=fg.astype(float), seed=0)
    rng = np.random.RandomState(0)
    sizes = np.array([gen.draw(rng)[0].mean() for _ in range(200)])
    assert 0.1 - 0.02 < sizes.mean() < 0.15 + 0.02, "centring a block on the anatomy keeps its size"
    ctx, tgt = gen(batch_size=8)
    assert ctx.shape == (8, gen.num_context) and tgt.shape == (8, gen.num_target)
    both = indices_to_mask(ctx, 256) & indices_to_mask(tgt, 256)
    assert not both.any()


def test_within_label_keeps_each_block_in_one_structure():
    labels = np.zeros((12, 12), dtype=np.int64)
    labels[2:10, 1:6] = 1
    labels[2:10, 6:11] = 2
    gen = AnatomyAwareMaskGenerator(
        (12, 12),
        num_blocks=1,
        block_scale=(0.2, 0.3),
        prob_map=(labels > 0).astype(float),
        label_map=labels,
        within_label=True,
        seed=0,
    )
    rng = np.random.RandomState(0)
    seen = set()
    for _ in range(50):
        target = gen.draw(rng)[0].reshape(12, 12)
        values = np.unique(labels[target])
        assert len(values) == 1 and values[0] != 0
        seen.add(int(values[0]))
    assert seen == {1, 2}


@pytest.mark.parametrize("span", [True, False])
def test_3d_and_2dt_grids(span):
    grid = (4, 12, 12)
    fg = _disc(grid, 0.3)
    gen = AnatomyAwareMaskGenerator(
        grid,
        num_blocks=2,
        block_scale=(0.05, 0.08),
        span_axis0=span,
        prob_map=fg.astype(float),
        within_label=True,
        seed=0,
    )
    assert _fg_fraction_of_targets(gen, fg, draws=50) > 0.95
    if span:
        target = gen.draw(np.random.RandomState(0))[0].reshape(4, -1)
        assert np.all(target == target[:1]), "blocks span all frames"


def test_rand_anatomy_transforms_from_label_and_image():
    img = np.zeros((1, 64, 64), dtype=np.float32)
    img[0, 16:48, 16:40] = 1.0
    label = (img > 0).astype(np.int64)
    t = RandAnatomyBlockMask(patch_size=4, num_blocks=2, block_scale=(0.03, 0.05), within_label=True)
    t.set_random_state(0)
    fg = token_foreground_fraction(label, 4).numpy() >= 0.5
    for source in ({"label": label}, {}):
        targets = torch.stack([t(img, **source)[1] for _ in range(30)])
        gen = t.generator_for((16, 16))
        assert targets.shape[1] == gen.num_target
        assert indices_to_mask(targets, 256).numpy()[:, fg.ravel()].sum() / targets.numel() > 0.95
    d = RandAnatomyBlockMaskd("image", patch_size=4, label_key="label", num_blocks=2, block_scale=(0.03, 0.05))
    out = d.set_random_state(3)({"image": img, "label": label})
    again = d.set_random_state(3)({"image": img, "label": label})
    assert torch.equal(out["target_idx"], again["target_idx"]) and torch.equal(out["context_idx"], again["context_idx"])
    assert out["label"] is label, "other keys are kept"
    prob = np.zeros((16, 16))
    prob[0, 0:4] = 1
    given = RandAnatomyBlockMaskd(
        "image", patch_size=4, prob_key="prob", within_label=True, num_blocks=1, block_scale=(0.01, 0.02), num_target=4
    )
    out = given.set_random_state(0)({"image": img, "prob": prob})
    assert sorted(out["target_idx"].tolist()) == [0, 1, 2, 3], "a given map takes precedence"


def test_bad_arguments():
    with pytest.raises(ValueError, match="prob_map"):
        AnatomyAwareMaskGenerator((8, 8), prob_map=np.ones((4, 4)))
    with pytest.raises(ValueError, match="prob_map"):
        AnatomyAwareMaskGenerator((8, 8), prob_map=-np.ones((8, 8)))
    with pytest.raises(ValueError, match="exactly one"):
        RandAnatomyBlockMaskd(["image", "other"], patch_size=4)
    with pytest.raises(ValueError, match="divisible"):
        RandAnatomyBlockMask(patch_size=5)(np.zeros((1, 16, 16)))
    with pytest.raises(ValueError, match="computed per image"):
        RandAnatomyBlockMask(patch_size=4, prob_map=np.ones((4, 4)))
    with pytest.raises(ValueError, match="channel-first"):
        RandAnatomyBlockMask(patch_size=4)(np.zeros((16,)))
