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
from monai.data import DataLoader, Dataset
from monai.transforms import Compose

from monai_jepa.transforms import (
    MASK_PRESETS,
    FutureFrameMask,
    MultiBlockMaskGenerator,
    RandBlockMask,
    RandBlockMaskd,
    RandomTubeMask,
    indices_to_mask,
)

GRIDS = {"2d": (14, 14), "3d": (8, 8, 8), "2d+t": (8, 14, 14)}


def _check_masks(ctx: torch.Tensor, tgt: torch.Tensor, gen) -> None:
    """Fixed counts, sorted, unique, in range and disjoint, for every row."""
    assert ctx.dtype == tgt.dtype == torch.int64
    assert ctx.shape[-1] == gen.num_context and tgt.shape[-1] == gen.num_target
    for c, t in zip(ctx.reshape(-1, ctx.shape[-1]), tgt.reshape(-1, tgt.shape[-1])):
        assert torch.all(c[1:] > c[:-1]) and torch.all(t[1:] > t[:-1]), "sorted and unique"
        assert 0 <= int(c.min()) and int(t.max()) < gen.num_tokens
        assert not (indices_to_mask(c, gen.num_tokens) & indices_to_mask(t, gen.num_tokens)).any(), "disjoint"


@pytest.mark.parametrize("preset", sorted(MASK_PRESETS))
@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_presets_give_fixed_disjoint_counts(preset, grid):
    span = MASK_PRESETS[preset]["span_axis0"] and grid == "2d+t"
    gen = MultiBlockMaskGenerator.from_preset(preset, GRIDS[grid], span_axis0=span, seed=0)
    ctx, tgt = gen(batch_size=6)
    assert ctx.shape == (6, gen.num_context) and tgt.shape == (6, gen.num_target)
    _check_masks(ctx, tgt, gen)
    single_ctx, single_tgt = gen()
    assert single_ctx.shape == (gen.num_context,) and single_tgt.shape == (gen.num_target,)


@pytest.mark.parametrize("grid, scale", [((32, 32), (0.15, 0.2)), ((16, 16, 16), (0.05, 0.1)), ((32, 32), (0.5, 0.7))])
def test_single_block_covers_requested_scale_and_aspect(grid, scale):
    gen = MultiBlockMaskGenerator(grid, num_blocks=1, block_scale=scale, aspect_ratio=(0.75, 1.5), seed=0)
    rng = np.random.RandomState(1)
    fractions = []
    for _ in range(200):
        target, context, _ = gen.draw(rng)
        box = target.reshape(grid)
        nz = np.nonzero(box)
        extent = np.array([a.max() - a.min() + 1 for a in nz])
        assert extent.prod() == box.sum(), "a single block is a solid box"
        assert np.all(extent[1:] / extent[0] > 0.75 * 0.75) and np.all(extent[1:] / extent[0] < 1.5 / 0.75)
        assert np.array_equal(context, ~target), "without context box the context is the complement"
        fractions.append(box.mean())
    fractions = np.array(fractions)
    assert scale[0] - 0.03 < fractions.mean() < scale[1] + 0.03
    assert fractions.min() > scale[0] * 0.75 and fractions.max() < scale[1] * 1.3, "rounding stays close to the range"


def test_union_of_blocks_and_default_counts_match_expected_ratio():
    gen = MultiBlockMaskGenerator((14, 14), num_blocks=4, block_scale=(0.15, 0.2), seed=0)
    rng = np.random.RandomState(123)  # other draws than the internal estimate
    union = np.array([gen.draw(rng)[0].mean() for _ in range(400)])
    assert abs(gen.target_ratio - union.mean()) < 0.03
    assert abs(gen.context_ratio - (1 - union.mean())) < 0.05
    assert 0.35 < union.mean() < 0.6, "4 blocks of 15-20% overlap: union below 4 x 17.5%"
    # a fixed count means subsampling or topping up: most targets still come from the drawn blocks
    inside = []
    for seed in range(100):
        drawn, _, _ = gen.draw(np.random.RandomState(seed))
        _, tgt = gen.sample(np.random.RandomState(seed))  # same draw, then count fixing
        inside.append(drawn[tgt.numpy()].mean())
    assert np.mean(inside) > 0.9


def test_top_up_and_subsample_rules():
    gen = MultiBlockMaskGenerator((10, 10), num_blocks=1, block_scale=(0.1, 0.1), num_target=50, num_context=30)
    for seed in range(20):
        drawn, _, _ = gen.draw(np.random.RandomState(seed))
        ctx, tgt = gen.sample(np.random.RandomState(seed))
        tgt_mask = indices_to_mask(tgt, 100).numpy()
        assert np.all(tgt_mask[drawn]), "a small union is kept whole and topped up"
        assert not tgt_mask[ctx.numpy()].any()
    gen = MultiBlockMaskGenerator((10, 10), num_blocks=2, block_scale=(0.4, 0.5), num_target=5, num_context=20)
    for seed in range(20):
        drawn, context, _ = gen.draw(np.random.RandomState(seed))
        ctx, tgt = gen.sample(np.random.RandomState(seed))
        assert drawn[tgt.numpy()].all(), "a large union is subsampled"
        assert context[ctx.numpy()].all(), "a large context is subsampled, never leaks target blocks"


def test_context_block_is_a_box_minus_targets():
    gen = MultiBlockMaskGenerator((20, 20), num_blocks=2, block_scale=(0.05, 0.05), context_scale=(0.5, 0.5))
    rng = np.random.RandomState(0)
    for _ in range(50):
        target, context, _ = gen.draw(rng)
        nz = np.nonzero(context.reshape(20, 20))
        bbox = np.prod([a.max() - a.min() + 1 for a in nz])
        assert bbox <= 0.5 * 400 * 1.1 and context.sum() <= bbox
        assert not (target & context).any()
        assert (~target & ~context).sum() >= 400 - 200 - 40 - 1, "tokens outside the context box are in neither"


@pytest.mark.parametrize("preset", ["short_range", "long_range"])
def test_vjepa_blocks_span_all_frames(preset):
    gen = MultiBlockMaskGenerator.from_preset(preset, (8, 14, 14), seed=0)
    rng = np.random.RandomState(0)
    for _ in range(20):
        target, context, _ = gen.draw(rng)
        frames = target.reshape(8, -1)
        assert np.all(frames == frames[:1]), "each spatial position is masked in all frames or in none"
    ratio = {"short_range": (0.5, 0.75), "long_range": (0.75, 0.92)}[preset]
    assert ratio[0] < gen.target_ratio < ratio[1]
    assert MASK_PRESETS[preset]["num_blocks"] == {"short_range": 8, "long_range": 2}[preset]


def test_reproducible_and_seed_dependent():
    a = MultiBlockMaskGenerator((8, 14, 14), num_blocks=8, block_scale=(0.15, 0.15), span_axis0=True, seed=3)
    b = MultiBlockMaskGenerator((8, 14, 14), num_blocks=8, block_scale=(0.15, 0.15), span_axis0=True, seed=3)
    ca, ta = a(batch_size=4)
    cb, tb = b(batch_size=4)
    assert torch.equal(ca, cb) and torch.equal(ta, tb)
    assert (a.num_context, a.num_target) == (b.num_context, b.num_target)
    a.set_random_state(4)
    assert not torch.equal(a(batch_size=4)[1], tb)
    assert not torch.equal(ta[0], ta[1]), "samples of a batch differ"


def test_random_tube_mask():
    gen = RandomTubeMask((4, 10, 10), mask_ratio=0.9, seed=0)
    assert (gen.num_target, gen.num_context) == (4 * 90, 4 * 10)
    ctx, tgt = gen(batch_size=3)
    _check_masks(ctx, tgt, gen)
    for t in tgt:
        frames = indices_to_mask(t, 400).reshape(4, 100)
        assert torch.all(frames == frames[:1]), "tubes: the same positions in every frame"
    flat = RandomTubeMask((4, 10, 10), mask_ratio=0.5, span_axis0=False, seed=0)
    frames = indices_to_mask(flat()[1], 400).reshape(4, 100)
    assert flat.num_target == 200 and not torch.all(frames == frames[:1])
    sub = RandomTubeMask((4, 10, 10), mask_ratio=0.9, num_target=100, num_context=20, seed=0)
    ctx, tgt = sub(batch_size=2)
    assert ctx.shape == (2, 20) and tgt.shape == (2, 100)
    with pytest.raises(ValueError, match="num_context"):
        RandomTubeMask((4, 10, 10), mask_ratio=0.9, num_context=41)


def test_future_frame_mask_predicts_later_frames_from_earlier_ones():
    gen = FutureFrameMask((4, 3, 5), seed=0)
    assert (gen.context_frames, gen.num_context, gen.num_target) == (2, 30, 30)
    ctx, tgt = gen(batch_size=2)
    _check_masks(ctx, tgt, gen)
    assert (ctx // 15).max() < (tgt // 15).min()  # every context frame precedes every target frame
    assert torch.equal(ctx[0], torch.arange(30))
    sub = FutureFrameMask((4, 3, 5), context_frames=3, num_target=7, seed=0)
    ctx, tgt = sub(batch_size=2)
    assert ctx.shape == (2, 45) and tgt.shape == (2, 7) and (tgt >= 45).all() and not torch.equal(tgt[0], tgt[1])
    with pytest.raises(ValueError, match="context_frames"):
        FutureFrameMask((4, 3, 5), context_frames=4)
    with pytest.raises(ValueError, match="num_target"):
        FutureFrameMask((4, 3, 5), num_target=31)
    with pytest.raises(ValueError, match=">= 2 token frames"):
        FutureFrameMask((1, 3, 5))


def test_rand_block_mask_transform():
    t = RandBlockMask(grid_size=(14, 14), preset="multiblock", patch_size=16).set_random_state(0)
    ctx, tgt = t(torch.rand(1, 224, 224))
    _check_masks(ctx, tgt, t.generator)
    assert torch.equal(t(randomize=False)[1], tgt)
    t.set_random_state(0)
    assert torch.equal(t()[1], tgt)
    with pytest.raises(ValueError, match="token grid"):
        t(torch.rand(1, 224, 160))
    tube = RandBlockMask(generator=RandomTubeMask((2, 4, 4), mask_ratio=0.5))
    assert tube()[1].shape == (16,)
    with pytest.raises(ValueError, match="not both"):
        RandBlockMask(grid_size=(4, 4), generator=RandomTubeMask((2, 4, 4)))
    with pytest.raises(ValueError, match="set_random_state"):
        RandBlockMask(grid_size=(4, 4), seed=0)


def test_rand_block_maskd_collates_and_is_reproducible():
    data = [{"image": torch.rand(1, 8, 32, 32), "label": i} for i in range(6)]
    keys = dict(context_key="ctx_long", target_key="tgt_long")
    transform = Compose(
        [
            RandBlockMaskd("image", patch_size=(2, 8, 8), preset="short_range"),
            RandBlockMaskd("image", patch_size=(2, 8, 8), preset="long_range", **keys),
        ]
    ).set_random_state(7)
    out = [transform(d) for d in data]
    gen = transform.transforms[0]._generators[(4, 4, 4)]
    batch = next(iter(DataLoader(Dataset(out, transform=None), batch_size=6)))
    assert batch["context_idx"].shape == (6, gen.num_context) and batch["target_idx"].shape == (6, gen.num_target)
    assert batch["tgt_long"].shape[1] > batch["target_idx"].shape[1], "long-range masks hide more"
    _check_masks(batch["context_idx"], batch["target_idx"], gen)
    transform.set_random_state(7)
    again = [transform(d) for d in data]
    assert all(torch.equal(a["target_idx"], b["target_idx"]) for a, b in zip(out, again))
    with pytest.raises(ValueError, match="token grid"):
        RandBlockMaskd("image", grid_size=(4, 4, 4), patch_size=4)({"image": torch.rand(1, 8, 32, 32)})


def test_bad_arguments():
    with pytest.raises(ValueError, match="grid_size"):
        MultiBlockMaskGenerator((14,))
    with pytest.raises(ValueError, match="block_scale"):
        MultiBlockMaskGenerator((14, 14), block_scale=(0.3, 0.2))
    with pytest.raises(ValueError, match="num_blocks"):
        MultiBlockMaskGenerator((14, 14), num_blocks=0)
    with pytest.raises(ValueError, match="must not exceed"):
        MultiBlockMaskGenerator((4, 4), num_context=10, num_target=10)
    with pytest.raises(ValueError, match="min_keep"):
        MultiBlockMaskGenerator((4, 4), min_keep=16)
    with pytest.raises(ValueError):
        MultiBlockMaskGenerator.from_preset("random", (4, 4))
    with pytest.raises(ValueError, match="grid_size"):
        RandBlockMask()
    with pytest.raises(ValueError, match="patch_size"):
        RandBlockMaskd("image")
    with pytest.raises(ValueError, match="indices"):
        indices_to_mask(torch.zeros(2, 2, 2, dtype=torch.long), 4)
