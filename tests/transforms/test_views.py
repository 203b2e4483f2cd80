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
from monai.data import DataLoader, MetaTensor
from monai.transforms import Compose

from monai_jepa.transforms import BatchMultiView, MultiViewCollate, RandMultiView, RandMultiViewd, multiview_collate

# every augmentation off: views are pure crops (+ flips when asked)
NO_AUG = dict(flip_prob=0.0, affine_prob=0.0, intensity_prob=0.0, gamma_prob=0.0, noise_prob=0.0, color_prob=0.0)


def _ramp(spatial: tuple[int, ...], batch: int = 1) -> torch.Tensor:
    """(B, d, *spatial): channel k holds the pixel index along spatial axis k."""
    grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in spatial], indexing="ij")
    return torch.stack(grids)[None].repeat(batch, 1, *(1,) * len(spatial))


@pytest.mark.parametrize(
    "spatial, local_default", [((64, 64), (27, 27)), ((64, 48), (27, 21)), ((32, 32, 16), (14, 14, 7))]
)
def test_default_shapes_scale_with_input(spatial, local_default):
    g, loc = BatchMultiView(num_global=2, num_local=6, seed=0)(torch.rand(3, 1, *spatial))
    assert g.shape == (2, 3, 1, *spatial) and g.dtype == torch.float32
    assert loc.shape == (6, 3, 1, *local_default)
    assert BatchMultiView().output_sizes(spatial) == (spatial, local_default)
    assert BatchMultiView().output_sizes((2, 2)) == ((2, 2), (1, 1))  # at least one pixel per axis


def test_custom_sizes_and_counts():
    views = BatchMultiView(num_global=3, num_local=4, global_size=24, local_size=(8, 6, 4), seed=0)
    g, loc = views(torch.rand(2, 2, 20, 20, 20))
    assert g.shape == (3, 2, 2, 24, 24, 24) and loc.shape == (4, 2, 2, 8, 6, 4)
    g, loc = BatchMultiView(num_global=1, num_local=0, global_size=(16, 12), seed=0)(torch.rand(2, 1, 32, 32))
    assert g.shape == (1, 2, 1, 16, 12)
    assert loc.shape == (0, 2, 1, 14, 14) and loc.dtype == torch.float32  # no local views: an empty tensor, not None


@pytest.mark.parametrize("spatial", [(96, 80), (40, 48, 32)])
def test_crop_fractions_cover_requested_scale(spatial):
    d = len(spatial)
    g_scale, l_scale = (0.3, 1.0), (0.05, 0.3)
    views = BatchMultiView(
        num_global=2, num_local=6, global_size=(16,) * d, local_size=(8,) * d, padding_mode="border", seed=1, **NO_AUG
    )
    g, loc = views(_ramp(spatial, batch=48 if d == 2 else 16))
    for out, (lo, hi) in ((g, g_scale), (loc, l_scale)):
        out = out.flatten(0, 1)  # (V*B, d, *out)
        n_out = out.shape[2]
        # sampled pixel centres span f * S * (n - 1) / n pixels; border clamping may hide up to 1 pixel
        span = torch.tensor([s * (n_out - 1) / n_out for s in spatial])
        extent = torch.stack([out[:, k].flatten(1).amax(1) - out[:, k].flatten(1).amin(1) for k in range(d)], 1)
        f_low, f_high = extent / span, (extent + 1.0) / span
        assert torch.all(f_low.prod(1) <= hi + 1e-5) and torch.all(f_high.prod(1) >= lo - 1e-5)
        assert f_high.prod(1).min() < lo + 0.1 * (hi - lo) and f_low.prod(1).max() > hi - 0.15 * (hi - lo)
        ratio_low, ratio_high = f_low[:, 1:] / f_high[:, :1], f_high[:, 1:] / f_low[:, :1]
        assert torch.all(ratio_high >= 0.75 - 1e-5) and torch.all(ratio_low <= 4 / 3 + 1e-5)  # aspect jitter range
        # the window never leaves the image
        assert out.min() >= 0 and all(out[:, k].max() <= s - 1 for k, s in enumerate(spatial))


def test_full_scale_crop_is_identity_and_flips_flip():
    x2, x3 = torch.rand(2, 1, 10, 12), torch.rand(2, 2, 6, 10, 12)
    full = dict(NO_AUG, num_local=0, global_scale=(1.0, 1.0))
    g, _ = BatchMultiView(**full, seed=0)(x2)
    torch.testing.assert_close(g[0], x2, atol=1e-5, rtol=0)
    g, _ = BatchMultiView(**dict(full, flip_prob=1.0), seed=0)(x2)
    torch.testing.assert_close(g[1], x2.flip(2, 3), atol=1e-5, rtol=0)
    g, _ = BatchMultiView(**dict(full, flip_prob=1.0), seed=0)(x3)
    torch.testing.assert_close(g[0], x3.flip(2, 3, 4), atol=1e-5, rtol=0)
    g, _ = BatchMultiView(**dict(full, flip_prob=(1.0, 0.0, 1.0)), seed=0)(x3)
    torch.testing.assert_close(g[1], x3.flip(2, 4), atol=1e-5, rtol=0)


def test_rotation_is_rigid_in_pixel_units():
    # an isotropic blob centred in a non-square image keeps its shape under rotation about the centre
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(64.0), indexing="ij")
    blob = torch.exp(-((yy - 19.5) ** 2 + (xx - 31.5) ** 2) / (2 * 4.0**2))[None, None]
    args = dict(
        NO_AUG, num_local=0, num_global=4, global_scale=(1.0, 1.0), zoom_range=0.0, padding_mode="zeros", seed=0
    )
    rotated, _ = BatchMultiView(**dict(args, affine_prob=1.0, rotate_range=45.0))(blob)
    torch.testing.assert_close(rotated[:, 0], blob.expand(4, 1, 40, 64), atol=0.02, rtol=0)
    stripe = (xx % 8 < 4).float()[None, None]  # not rotation invariant: the same affine must change it
    assert (BatchMultiView(**dict(args, affine_prob=1.0, rotate_range=45.0))(stripe)[0] - stripe).abs().max() > 0.5


def test_reproducible_with_seed():
    x = torch.rand(3, 1, 32, 32)
    a, b, c = BatchMultiView(seed=5), BatchMultiView(seed=5), BatchMultiView(seed=6)
    ga, la = a(x)
    gb, lb = b(x)
    gc, lc = c(x)
    assert torch.equal(ga, gb) and torch.equal(la, lb)
    assert not torch.equal(ga, gc) and not torch.equal(la, lc)
    assert not torch.equal(a(x)[0], ga)  # the generator advances
    assert torch.equal(a.set_random_state(5)(x)[0], ga)


def test_intensity_augmentations():
    x = torch.rand(4, 1, 16, 16)
    base = dict(NO_AUG, num_local=0, global_scale=(1.0, 1.0), seed=0)
    gamma, _ = BatchMultiView(**dict(base, gamma_prob=1.0, gamma_range=(2.0, 3.0)))(x)
    flat_in, flat_out = x.flatten(1), gamma[0].flatten(1)
    torch.testing.assert_close(flat_out.amin(1), flat_in.amin(1))
    torch.testing.assert_close(flat_out.amax(1), flat_in.amax(1))
    assert torch.all(flat_out.mean(1) < flat_in.mean(1))  # gamma > 1 darkens mid-tones
    shifted, _ = BatchMultiView(**dict(base, intensity_prob=1.0, intensity_scale=0.5, intensity_shift=1.0))(x)
    # a per-view affine intensity map: out = a * x + b with one (a, b) per view, not the identity
    for v in range(4):
        a, b = np.polyfit(x[v].flatten().numpy(), shifted[0, v].flatten().numpy(), 1)
        np.testing.assert_allclose(shifted[0, v].numpy(), a * x[v].numpy() + b, atol=1e-4)
    assert not torch.allclose(shifted[0], x)
    noisy, _ = BatchMultiView(**dict(base, noise_prob=1.0, noise_std=0.5))(x)
    residual = (noisy[0] - x).flatten(1)
    assert torch.all(residual.std(1) > 0) and torch.all(residual.std(1) < 0.5 * x.flatten(1).std(1) + 1e-6)


def test_color_jitter_only_for_three_channels():
    jitter = dict(color_prob=1.0, brightness=0.9, contrast=0.9, saturation=0.9)
    for channels in (1, 2, 4):
        x = torch.rand(2, channels, 24, 24)
        plain = BatchMultiView(color_prob=0.0, seed=3)(x)
        colour = BatchMultiView(**jitter, seed=3)(x)
        assert all(torch.equal(p, c) for p, c in zip(plain, colour))
    x = torch.rand(2, 3, 24, 24)
    plain = BatchMultiView(color_prob=0.0, seed=3)(x)
    colour = BatchMultiView(**jitter, seed=3)(x)
    assert not torch.allclose(plain[0], colour[0]) and not torch.allclose(plain[1], colour[1])
    # RGB: saturation leaves grey pixels grey, brightness alone scales every view by one factor
    base = dict(NO_AUG, num_local=0, num_global=4, global_scale=(1.0, 1.0), seed=0)
    grey = torch.rand(2, 1, 16, 16).expand(2, 3, 16, 16)
    out, _ = BatchMultiView(**dict(base, color_prob=1.0, brightness=0.0, contrast=0.0, saturation=0.9))(grey)
    torch.testing.assert_close(out, grey.expand(4, 2, 3, 16, 16))
    rgb = torch.rand(2, 3, 16, 16) + 0.1
    out, _ = BatchMultiView(**dict(base, color_prob=1.0, brightness=0.5, contrast=0.0, saturation=0.0))(rgb)
    ratio = (out / rgb).flatten(2)
    torch.testing.assert_close(ratio, ratio[..., :1].expand_as(ratio))
    assert ratio.std() > 0.01 and torch.all((ratio >= 0.5) & (ratio <= 1.5))


def test_accepts_numpy_and_metatensor():
    x = np.random.RandomState(0).rand(2, 1, 16, 16)
    g_np, _ = BatchMultiView(seed=0)(x)
    g_mt, _ = BatchMultiView(seed=0)(MetaTensor(torch.as_tensor(x)))
    assert type(g_np) is torch.Tensor and type(g_mt) is torch.Tensor and g_np.dtype == torch.float32
    assert torch.equal(g_np, g_mt)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_global=0), "num_global"),
        (dict(num_local=-1), "num_local"),
        (dict(global_scale=(0.0, 1.0)), "global_scale"),
        (dict(local_scale=(0.3, 0.05)), "local_scale"),
        (dict(global_scale=(0.5, 1.5)), "global_scale"),
        (dict(local_size=0), "local_size"),
        (dict(global_size=(16, -2)), "global_size"),
        (dict(aspect_ratio=(0.0, 1.0)), "aspect_ratio"),
        (dict(flip_prob=1.5), "flip_prob"),
        (dict(zoom_range=1.0), "zoom_range"),
        (dict(gamma_range=(-1.0, 2.0)), "gamma_range"),
        (dict(noise_std=-0.1), "noise_std"),
        (dict(mode="cubic"), "cubic"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchMultiView(**kwargs)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="global_size"):
        BatchMultiView(global_size=(16, 16, 16))(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="flip_prob"):
        BatchMultiView(flip_prob=(0.5, 0.5))(torch.rand(1, 1, 8, 8, 8))
    with pytest.raises(ValueError, match="spatial dims"):
        BatchMultiView()(torch.rand(1, 16, 16))
    with pytest.raises(ValueError, match="channel"):
        BatchMultiView()(torch.rand(1, 0, 16, 16))
    with pytest.raises(ValueError, match="bicubic"):
        BatchMultiView(mode="bicubic")(torch.rand(1, 1, 8, 8, 8))
    with pytest.raises(ValueError, match="channel-first"):
        RandMultiView()(np.zeros((1, 1, 1, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        RandMultiView()(np.full((1, 8, 8), np.nan))
    with pytest.raises(ValueError, match="set_random_state"):
        RandMultiView(seed=1)


def test_rand_multi_view_array():
    t = RandMultiView(num_global=2, num_local=3, local_size=8).set_random_state(0)
    img = np.random.RandomState(1).rand(2, 20, 24).astype(np.float32)
    g, loc = t(img)
    assert g.shape == (2, 2, 20, 24) and loc.shape == (3, 2, 8, 8) and type(g) is torch.Tensor
    g2, _ = t(img)
    assert not torch.equal(g, g2)
    assert torch.equal(t.set_random_state(0)(img)[0], g)
    assert torch.equal(t(img, randomize=False)[0], g)  # reuses the last seed
    g3, l3 = t(MetaTensor(torch.rand(1, 8, 8, 8)))
    assert g3.shape == (2, 1, 8, 8, 8) and l3.shape == (3, 1, 8, 8, 8)


def test_rand_multi_viewd_keys_and_shared_geometry():
    img = torch.rand(1, 24, 24)
    data = {"image": img, "image2": 2.0 * img, "label": 1}
    t = RandMultiViewd(keys=("image", "image2"), num_global=2, num_local=2, **NO_AUG).set_random_state(0)
    out = t(data)
    assert set(out) == {"image", "image2", "label", "image_global", "image_local", "image2_global", "image2_local"}
    assert out["image_global"].shape == (2, 1, 24, 24) and out["image_local"].shape == (2, 1, 10, 10)
    torch.testing.assert_close(out["image2_global"], 2.0 * out["image_global"])  # same boxes for both keys
    torch.testing.assert_close(out["image2_local"], 2.0 * out["image_local"])
    assert torch.equal(out["image"], img) and "image_global" not in data
    out = RandMultiViewd(keys="image", remove_original=True)({"image": img})
    assert set(out) == {"image_global", "image_local"}
    # MONAI seeding through Compose is reproducible
    pipeline = Compose([RandMultiViewd(keys="image", num_local=1)])
    first = pipeline.set_random_state(7)({"image": img})["image_global"]
    assert torch.equal(pipeline.set_random_state(7)({"image": img})["image_global"], first)


def test_collate_is_view_major_and_collates_other_keys():
    t = RandMultiViewd(keys="image", num_global=2, num_local=3).set_random_state(0)
    items = [t({"image": torch.rand(1, 16, 16), "label": i}) for i in range(4)]
    batch = multiview_collate(items)
    assert batch["image_global"].shape == (2, 4, 1, 16, 16) and batch["image_local"].shape == (3, 4, 1, 7, 7)
    for b in range(4):
        for v in range(3):
            assert torch.equal(batch["image_local"][v, b], items[b]["image_local"][v])
        assert torch.equal(batch["image_global"][1, b], items[b]["image_global"][1])
    assert torch.equal(batch["label"], torch.arange(4)) and batch["image"].shape == (4, 1, 16, 16)
    assert torch.equal(MultiViewCollate(keys="image")(items)["image_global"], batch["image_global"])
    with pytest.raises(ValueError, match="missing"):
        multiview_collate([items[0], {"image": torch.rand(1, 16, 16), "label": 0}], keys="image")
    loader = DataLoader(
        [{"image": torch.rand(1, 16, 16), "label": 0}] * 3, batch_size=3, collate_fn=MultiViewCollate(), num_workers=0
    )
    with pytest.raises(ValueError, match="image_global"):
        next(iter(loader))  # views were never created
