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
"""Histogram standardisation (Nyul & Udupa) and per-site intensity normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from monai_jepa.transforms import (
    HistogramStandardize,
    HistogramStandardizeD,
    HistogramStandardized,
    SiteNormalizeIntensity,
    SiteNormalizeIntensityd,
    SiteNormalizeIntensityDict,
)


def _image(seed: int, gain: float = 1.0, gamma: float = 1.0, shape=(1, 12, 12, 12)) -> torch.Tensor:
    """A positive 'tissue' image: two classes of intensity plus noise, zeros in a border (background)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full(shape, 40.0)
    x[..., 6:, :, :] = 90.0
    x = (x + 5 * torch.randn(shape, generator=g)).clamp_min(1.0)
    x = gain * (x / 100.0) ** gamma * 100.0
    x[..., :2, :, :] = 0.0
    return x


def test_landmarks_map_to_the_standard_scale_and_mapping_is_monotone():
    train = [_image(s, gain=g) for s, g in zip(range(4), (0.5, 1.0, 2.0, 3.0))]
    hs = HistogramStandardize(standard_range=(0.0, 100.0)).fit(train)
    std = hs.standard_landmarks
    assert std.shape == (1, 11)
    assert std[0, 0] == pytest.approx(0.0) and std[0, -1] == pytest.approx(100.0)
    assert np.all(np.diff(std[0]) > 0)
    # the landmarks of a new image land on the standard landmarks
    # (a smooth, unimodal histogram: there, the quantiles of the mapped voxels are the mapped quantiles)
    new = torch.from_numpy(np.random.default_rng(7).gamma(3.0, 20.0, size=(1, 20, 20, 20)).astype(np.float32))
    new[..., :2, :, :] = 0.0
    out = hs(new)
    fg = out[new != 0].numpy()
    np.testing.assert_allclose(np.quantile(fg, hs.quantiles), std[0], atol=0.1)
    # monotone on the foreground: the order of the voxels is kept (non-decreasing mapping); zeros stay zero
    fg_in, fg_out = new[new != 0], out[new != 0]
    assert torch.all(torch.diff(fg_out[torch.argsort(fg_in)]) >= -1e-5)
    assert torch.all(out[new == 0] == 0) and out.dtype == torch.float32 and out.shape == new.shape


def test_gain_and_gamma_differences_are_removed():
    """Two scans of one anatomy under different gains / contrast curves agree after standardisation."""
    hs = HistogramStandardize().fit([_image(s) for s in range(3)])
    a, b = _image(11, gain=1.0), _image(11, gain=4.0, gamma=1.5)
    before = (a - b).abs()[a != 0].mean() / a[a != 0].std()
    after = (hs(a) - hs(b)).abs()[a != 0].mean() / hs(a)[a != 0].std()
    assert after < 0.1 * before and after < 0.05


def test_fit_save_load_round_trip(tmp_path):
    imgs = [np.random.default_rng(s).gamma(2.0, 10.0, size=(2, 6, 6, 6)).astype(np.float32) for s in range(3)]
    hs = HistogramStandardize(quantiles=(0.02, 0.25, 0.5, 0.75, 0.98), standard_range=(1, 10), foreground="all")
    hs.fit(imgs)
    path = hs.save(tmp_path / "landmarks.json")
    state = json.loads(path.read_text())
    assert state["foreground"] == "all" and len(state["standard_landmarks"]) == 2
    loaded = HistogramStandardize.load(path)
    np.testing.assert_allclose(loaded.standard_landmarks, hs.standard_landmarks)
    out, out2 = hs(imgs[0]), loaded(imgs[0])
    assert isinstance(out2, np.ndarray) and out2.dtype == np.float32
    np.testing.assert_allclose(out, out2)
    # the dictionary version reads the file too, and leaves other keys alone
    d = HistogramStandardized("image", path)({"image": imgs[0], "label": 3})
    np.testing.assert_allclose(d["image"], out)
    assert d["label"] == 3 and HistogramStandardizeD is HistogramStandardized


def test_histogram_standardize_errors(tmp_path):
    with pytest.raises(RuntimeError, match="fit"):
        HistogramStandardize()(torch.rand(1, 4, 4))
    with pytest.raises(ValueError, match="strictly increasing"):
        HistogramStandardize(quantiles=(0.5, 0.1))
    with pytest.raises(ValueError, match="nonzero"):
        HistogramStandardize(foreground="brain")  # MONAI's look_up_option names the options
    with pytest.raises(ValueError, match=r"images\[1\].*constant"):
        HistogramStandardize().fit([torch.rand(1, 4, 4) + 1, torch.ones(1, 4, 4)])
    with pytest.raises(ValueError, match="NaN"):
        HistogramStandardize().fit([torch.full((1, 4, 4), float("nan"))])
    hs = HistogramStandardize().fit([torch.rand(1, 8, 8) + 1])
    with pytest.raises(ValueError, match="channels"):
        hs(torch.rand(2, 8, 8) + 1)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"quantiles": [0.1, 0.9], "foreground": "all"}))
    with pytest.raises(ValueError, match=r"bad\.json.*missing key.*standard_landmarks"):
        HistogramStandardize.load(bad)
    bad.write_text(json.dumps({"quantiles": [0.1, 0.9], "foreground": "all", "standard_range": [0, 1],
                               "standard_landmarks": [[1.0, 0.5]]}))  # fmt: skip
    with pytest.raises(ValueError, match=r"bad\.json.*increasing"):
        HistogramStandardize.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        HistogramStandardize.load(tmp_path / "missing.json")


def test_site_zscore_uses_the_sites_pooled_statistics(tmp_path):
    site_a = [_image(s, gain=1.0) for s in range(3)]
    site_b = [_image(s + 10, gain=3.0) for s in range(3)]
    norm = SiteNormalizeIntensity(mode="zscore").fit({"A": site_a, "B": site_b})
    pooled_b = torch.cat([x[x != 0] for x in site_b]).double()
    assert norm.statistics["B"]["mean"][0] == pytest.approx(float(pooled_b.mean()), rel=1e-6)
    assert norm.statistics["B"]["std"][0] == pytest.approx(float(pooled_b.std(unbiased=False)), rel=1e-6)
    # the same anatomy at the two sites maps to nearly the same values; zeros (background) stay zero
    a, b = norm(_image(20, gain=1.0), "A"), norm(_image(20, gain=3.0), "B")
    assert float((a - b).abs().max()) < 0.05
    assert torch.all(a[_image(20) == 0] == 0)
    x = site_b[0]
    expected = (x - pooled_b.mean().float()) / pooled_b.std(unbiased=False).float()
    torch.testing.assert_close(torch.as_tensor(norm(x, "B"))[x != 0], expected[x != 0], atol=1e-4, rtol=1e-4)
    # round trip and dictionary version
    loaded = SiteNormalizeIntensity.load(norm.save(tmp_path / "sites.json"))
    d = SiteNormalizeIntensityd("image", tmp_path / "sites.json")({"image": x, "site": "B"})
    torch.testing.assert_close(torch.as_tensor(d["image"]), torch.as_tensor(loaded(x, "B")))
    assert SiteNormalizeIntensityDict is SiteNormalizeIntensityd


def test_site_percentile_mode_maps_percentiles_to_unit_range():
    imgs = [torch.arange(1, 101, dtype=torch.float32).reshape(1, 10, 10)]
    norm = SiteNormalizeIntensity(mode="percentile", lower=10, upper=90, foreground="all").fit({"s": imgs})
    low, high = norm.statistics["s"]["low"][0], norm.statistics["s"]["high"][0]
    assert low == pytest.approx(np.percentile(np.arange(1, 101), 10))
    out = torch.as_tensor(norm(imgs[0], "s")).flatten()
    assert out[9] == pytest.approx((10 - low) / (high - low))
    assert out.min() < 0 and out.max() > 1  # not clipped


def test_site_normalize_errors(tmp_path):
    norm = SiteNormalizeIntensity().fit({"A": [torch.rand(1, 4, 4) + 1]})
    with pytest.raises(ValueError, match=r"site 'C'.*fitted sites: \['A'\]"):
        norm(torch.rand(1, 4, 4), "C")
    with pytest.raises(ValueError, match="channels"):
        norm(torch.rand(2, 4, 4), "A")
    with pytest.raises(KeyError, match="site"):
        SiteNormalizeIntensityd("image", norm)({"image": torch.rand(1, 4, 4)})
    with pytest.raises(ValueError, match="std > 0"):
        SiteNormalizeIntensity({"A": {"mean": [0.0], "std": [0.0]}})
    with pytest.raises(ValueError, match="site 'B' has no images"):
        SiteNormalizeIntensity().fit({"B": []})
    with pytest.raises(ValueError, match="lower < upper"):
        SiteNormalizeIntensity(mode="percentile", lower=90, upper=10)
    with pytest.raises(ValueError, match="zscore"):
        SiteNormalizeIntensity(mode="minmax")
    with pytest.raises(RuntimeError, match="fit"):
        SiteNormalizeIntensity().save(tmp_path / "x.json")
    with pytest.raises(TypeError, match="SiteNormalizeIntensity or the path"):
        SiteNormalizeIntensityd("image", object())
