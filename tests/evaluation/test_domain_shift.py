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
"""Scanner-shift stress curves, the cross-site protocol and their report, on tiny crafted inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from monai_jepa.evaluation import (
    SHIFT_TYPES,
    apply_shift,
    cross_site_sweep,
    evaluate_segmentation,
    format_cross_site_report,
    format_shift_report,
    plot_cross_site,
    scanner_shift_curve,
    shift_parameter,
    write_shift_report,
)

pytest.importorskip("scipy")


class Threshold(nn.Module):
    """Two-class 'segmenter': foreground where the intensity exceeds ``t``."""

    def __init__(self, t: float = 50.0) -> None:
        super().__init__()
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.t - x, x - self.t], dim=1)


def _items(n: int = 3, size: int = 12) -> list[dict]:
    """Volumes with a bright cube (100) on a dark background (20): the threshold at 50 segments them exactly."""
    items = []
    for i in range(n):
        label = torch.zeros(1, size, size, size, dtype=torch.uint8)
        lo = 2 + i % 3
        label[:, lo : lo + 6, lo : lo + 6, lo : lo + 5] = 1
        items.append({"image": 20.0 + 80.0 * label.float(), "label": label, "id": f"case{i}"})
    return items


@pytest.mark.parametrize("kind", SHIFT_TYPES)
@pytest.mark.parametrize("shape", [(1, 16, 12), (2, 10, 12, 8)])
def test_apply_shift_shapes_identity_and_determinism(kind, shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 50 + 10
    assert torch.equal(apply_shift(x, kind, 0.0), x)  # strength 0: the identity
    y = apply_shift(x, kind, 1.0, seed=3)
    assert y.shape == x.shape and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert not torch.allclose(y, x)
    torch.testing.assert_close(apply_shift(x, kind, 1.0, seed=3), y, rtol=0, atol=0)


def test_shift_parameters_and_patterns_scale_with_strength():
    assert shift_parameter("gamma", 0.5, 4.0) == pytest.approx(2.0)
    assert shift_parameter("resolution", 0.5, 3.0) == pytest.approx(2.0)
    assert shift_parameter("noise", 0.5) == pytest.approx(0.15)
    x = torch.rand(1, 8, 8, 8, generator=torch.Generator().manual_seed(0)) + 10.0
    # the same noise pattern at every strength, scaled (sigma relative to the image's standard deviation)
    n1, n2 = apply_shift(x, "noise", 0.5, seed=1) - x, apply_shift(x, "noise", 1.0, seed=1) - x
    torch.testing.assert_close(2 * n1, n2, atol=1e-4, rtol=1e-4)
    assert float(n2.std() / x.std()) == pytest.approx(0.3, rel=0.15)
    assert float((apply_shift(x, "noise", 1.0, seed=2) - x - n2).abs().max()) > 0  # another seed, another pattern
    assert float((apply_shift(torch.full((1, 8, 8), 10.0), "noise", 1.0) - 10.0).std()) > 1.0  # constant image
    # bias field: a log-field scaled by the strength
    b1 = torch.log(apply_shift(x, "bias_field", 0.5, seed=4) / x)
    b2 = torch.log(apply_shift(x, "bias_field", 1.0, seed=4) / x)
    torch.testing.assert_close(2 * b1, b2, atol=1e-4, rtol=1e-4)
    assert type(apply_shift(x, "gibbs", 0.5)) is torch.Tensor  # plain tensors, no MONAI metadata
    # resolution loss along the last axis only: a volume constant along it is unchanged
    grad = torch.arange(8.0).reshape(1, 8, 1, 1).expand(1, 8, 8, 8).contiguous()
    flat_last = grad.clone()
    torch.testing.assert_close(apply_shift(flat_last, "resolution", 1.0), flat_last, atol=1e-4, rtol=1e-4)
    assert float((apply_shift(grad, "resolution", 1.0, resolution_axes=None) - grad).abs().max()) > 0.1


def test_strength_zero_equals_the_unshifted_metric():
    items = _items()
    net = Threshold()
    records = scanner_shift_curve(net, items, 2, strengths=(0.0, 0.5, 1.0), log=None)
    clean = evaluate_segmentation(net, items, 2)
    assert len(records) == len(SHIFT_TYPES) * 3
    assert [r["shift"] for r in records[::3]] == list(SHIFT_TYPES)
    for r in records:
        assert set(r) >= {"shift", "strength", "parameter", "parameter_name", "dice", "hd95", "dice_per_class"}
        if r["strength"] == 0:
            assert r["dice"] == clean["dice"] == 1.0 and r["dice_per_case"] == clean["dice_per_case"]


def test_noise_degrades_dice_monotonically_and_is_deterministic():
    items, net = _items(), Threshold()
    kw = {"shifts": ("noise",), "strengths": (0.0, 0.25, 0.5, 0.75, 1.0), "maxima": {"noise": 2.0}, "log": None}
    records = scanner_shift_curve(net, items, 2, **kw)
    dice = [r["dice"] for r in records]
    # the same noise pattern, scaled: the misclassified voxels at one strength are misclassified at the next
    assert dice[0] == 1.0 and all(b <= a for a, b in zip(dice, dice[1:])) and dice[-1] < 0.9
    again = scanner_shift_curve(net, items, 2, **kw)
    assert [r["dice"] for r in again] == dice
    other = scanner_shift_curve(net, items, 2, seed=7, **kw)
    assert [r["dice"] for r in other][1:] != dice[1:]


def test_harmonization_then_preprocessing_order():
    items = _items(2)
    for it in items:  # the network sees padded volumes, the shift acts on the unpadded image
        it["label"] = torch.nn.functional.pad(it["label"], (2, 2, 2, 2, 2, 2))
    seen = []

    def harmonize(x):
        seen.append(("harmonize", tuple(x.shape)))
        return x * 0.5  # 100 -> 50, 20 -> 10: the threshold at 50 finds nothing ...

    def preprocess(x):
        seen.append(("preprocess", tuple(x.shape)))
        return torch.nn.functional.pad(x * 2.0 + 1.0, (2, 2, 2, 2, 2, 2))  # ... unless preprocessing rescales

    records = scanner_shift_curve(Threshold(), items, 2, shifts=("gamma",), strengths=(0.0,), preprocessing=preprocess,
                                  harmonization=harmonize, log=None)  # fmt: skip
    assert seen[:2] == [("harmonize", (1, 12, 12, 12)), ("preprocess", (1, 12, 12, 12))]
    assert records[0]["dice"] == 1.0


def test_shift_curve_errors():
    items = _items(1)
    with pytest.raises(ValueError, match="blur"):
        scanner_shift_curve(Threshold(), items, 2, shifts=("blur",), log=None)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scanner_shift_curve(Threshold(), items, 2, strengths=(0.0, 1.5), log=None)
    with pytest.raises(ValueError, match="maxima.*speckle"):
        scanner_shift_curve(Threshold(), items, 2, maxima={"speckle": 1.0}, log=None)
    with pytest.raises(ValueError, match="empty"):
        scanner_shift_curve(Threshold(), [], 2, log=None)
    with pytest.raises(ValueError, match="channel-first 2D or 3D"):
        apply_shift(torch.rand(5), "gamma", 0.5)
    with pytest.raises(ValueError, match="gibbs"):
        shift_parameter("gibbs", 1.0, maximum=1.5)


def _tiny_factory():
    return nn.Conv3d(1, 2, kernel_size=1)


def test_cross_site_sweep_records_and_zero_label_baseline():
    site_a = _items(3)
    site_b = [{**it, "image": it["image"] * 0.5 + 5.0, "id": f"b{i}"} for i, it in enumerate(_items(4))]
    kw = {"num_classes": 2, "steps_a": 4, "steps_b": 3, "batch_size": 2, "learning_rate": 0.05, "log": None}
    records = cross_site_sweep({"tiny": _tiny_factory}, site_a, site_b[:2], site_b[2:], [0, 1, 2], site_a_test=site_a,
                               **kw)  # fmt: skip
    assert [(r["method"], r["site_b_labels"], r["steps_b"]) for r in records] == [
        ("tiny", 0, 0),
        ("tiny", 1, 3),
        ("tiny", 2, 3),
    ]
    assert all(0.0 <= r["dice"] <= 1.0 and r["site_a"]["num_cases"] == 3 and r["num_cases"] == 2 for r in records)
    # n = 0 is the site-A network as trained: the same seed reproduces it
    from monai_jepa.evaluation import fine_tune_segmentation

    torch.manual_seed(0)
    net = _tiny_factory()
    fine_tune_segmentation(net, site_a, 2, 4, batch_size=2, learning_rate=0.05, seed=0)
    assert evaluate_segmentation(net, site_b[2:], 2)["dice"] == records[0]["dice"]
    again = cross_site_sweep({"tiny": _tiny_factory}, site_a, site_b[:2], site_b[2:], [0, 1, 2], **kw)
    assert [r["dice"] for r in again] == [r["dice"] for r in records] and again[0]["site_a"] is None


def test_cross_site_sweep_errors():
    a, b = _items(2), _items(3)
    kw = {"num_classes": 2, "steps_a": 1, "steps_b": 1, "log": None}
    with pytest.raises(ValueError, match="share item id"):
        cross_site_sweep({"t": _tiny_factory}, a, b[:2], b[1:], [1], **kw)
    with pytest.raises(ValueError, match=r"site_b_counts must be in \[0, 1\]"):
        cross_site_sweep({"t": _tiny_factory}, a, b[:1], b[1:], [0, 2], **kw)
    with pytest.raises(ValueError, match="empty"):
        cross_site_sweep({}, a, b[:1], b[1:], [0], **kw)


def test_report_table_plot_and_json(tmp_path):
    pytest.importorskip("matplotlib")
    records = []
    for method, drop in (("pretrained", 0.1), ("scratch", 0.3)):
        for seed in (0, 1):
            for s in (0.0, 0.5, 1.0):
                records.append({"method": method, "harmonization": "none", "seed": seed, "shift": "noise",
                                "strength": s, "parameter": 0.3 * s, "dice": 0.8 - drop * s + 0.01 * seed,
                                "dice_per_case": [[0.5]]})  # fmt: skip
    md = format_shift_report(records, by=("method", "harmonization"), title="T")
    assert md.startswith("# T")
    assert "| pretrained | none | 0.805 ± 0.007 (2) | 0.755 ± 0.007 (2) | 0.705 ± 0.007 (2) |" in md
    assert "| scratch | none | +0.300 |" in md  # the drop from strength 0 to 1
    paths = write_shift_report(records, tmp_path / "r", by=("method", "harmonization"), extra={"dataset": "toy"})
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = json.loads(paths["metrics"].read_text())
    assert payload["dataset"] == "toy" and len(payload["records"]) == 12
    assert "dice_per_case" not in payload["records"][0]
    assert np.isclose(payload["records"][-1]["dice"], 0.51)
    with pytest.raises(ValueError, match="no records"):
        format_shift_report([])


def _cross_site_records():
    records = []
    for method, gain in (("scratch", 0.0), ("pretrained", 0.05)):
        for seed in (0, 1, 2):
            for n in (0, 1, 2):
                records.append({"method": method, "seed": seed, "site_b_patients": n,
                                "dice": 0.5 + 0.1 * n + gain * (seed + 1),
                                "site_a": {"dice": 0.9} if n == 0 else None})  # fmt: skip
    return records


def test_cross_site_report_table_paired_differences_and_plot(tmp_path):
    records = _cross_site_records()
    md = format_cross_site_report(records, reference="scratch", count_key="site_b_patients", title="X")
    assert md.startswith("# X")
    assert "| scratch | 0.500 ± 0.000 (3) | 0.600 ± 0.000 (3) | 0.700 ± 0.000 (3) | 0.900 ± 0.000 (3) |" in md
    assert "| pretrained | 0.600 ± 0.050 (3) |" in md
    # paired by seed: +0.05, +0.10, +0.15
    assert "| pretrained | +0.100 (+0.050..+0.150) | +0.100 (+0.050..+0.150) | +0.100 (+0.050..+0.150) |" in md
    with pytest.raises(ValueError, match="reference method 'none'"):
        format_cross_site_report(records, reference="none", count_key="site_b_patients")
    with pytest.raises(ValueError, match="two records for method 'scratch'"):
        format_cross_site_report(records + records[:1], count_key="site_b_patients")
    with pytest.raises(ValueError, match="no records"):
        format_cross_site_report([])
    pytest.importorskip("matplotlib")
    path = plot_cross_site(records, tmp_path / "x.png", count_key="site_b_patients")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cross_site_sweep_site_b_share_keeps_site_a_in_the_pool(monkeypatch):
    import monai_jepa.evaluation.domain_shift as ds

    pools = []

    def fake_fine_tune(network, items, num_classes, steps, seed=0, **kw):
        pools.append([it["id"] for it in items])
        return {"seconds": 0.0}

    monkeypatch.setattr(ds, "fine_tune_segmentation", fake_fine_tune)
    site_a = [{**it, "id": f"a{i}"} for i, it in enumerate(_items(3))]
    site_b = [{**it, "id": f"b{i}"} for i, it in enumerate(_items(4))]
    kw = {"num_classes": 2, "steps_a": 1, "steps_b": 1, "log": None}
    records = cross_site_sweep({"t": _tiny_factory}, site_a, site_b[:2], site_b[2:], [0, 1, 2], site_b_share=0.5, **kw)
    # site A once, then A + b0 repeated 3 times (half of the pool), then A + (b0, b1) repeated twice (3 + 4)
    assert pools[0] == ["a0", "a1", "a2"]
    assert pools[1] == ["a0", "a1", "a2", "b0", "b0", "b0"]
    assert pools[2] == ["a0", "a1", "a2", "b0", "b1", "b0", "b1"]
    assert [r["site_b_share"] for r in records] == [None, 0.5, 0.5]
    cross_site_sweep({"t": _tiny_factory}, site_a, site_b[:2], site_b[2:], [1], **kw)
    assert pools[-1] == ["b0"]  # without a share: site-B items only
    with pytest.raises(ValueError, match=r"site_b_share must be in \(0, 1\)"):
        cross_site_sweep({"t": _tiny_factory}, site_a, site_b[:2], site_b[2:], [1], site_b_share=1.0, **kw)
