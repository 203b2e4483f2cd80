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
import torch.nn.functional as F

from monai_jepa.losses import EMATeacher, MaskedLatentLoss, masked_latent_step
from monai_jepa.networks import JEPAPredictor, JEPAViT
from monai_jepa.transforms import MultiBlockMaskGenerator


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread, and much faster than on several busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_prediction_term_by_hand():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 8), torch.randn(2, 3, 8) * 3 + 1
    normed = (target - target.mean(-1, keepdim=True)) / torch.sqrt(target.var(-1, unbiased=False, keepdim=True) + 1e-5)
    expected = {
        "l1": (pred - normed).abs().mean(),
        "l2": (pred - normed).square().mean(),
        "smooth_l1": F.smooth_l1_loss(pred, normed),
    }
    for name, value in expected.items():
        terms = MaskedLatentLoss(lamb=0.0, loss=name, num_slices=16).compute_terms(pred, target)
        assert torch.allclose(terms["pred"], value, atol=1e-5) and torch.allclose(terms["loss"], value, atol=1e-5)
    raw = MaskedLatentLoss(lamb=0.0, loss="l2", normalize_targets=False, num_slices=16)
    assert torch.allclose(raw.prediction_loss(pred, target), (pred - target).square().mean())


def test_total_combines_terms_and_sigreg_inputs():
    torch.manual_seed(0)
    loss_fn = MaskedLatentLoss(lamb=0.2, num_slices=64)
    pred, target = torch.randn(4, 5, 16), torch.randn(4, 5, 16)
    terms = loss_fn.compute_terms(pred, target, [torch.randn(4, 16), target.flatten(0, 1)])
    assert torch.allclose(terms["loss"], 0.8 * terms["pred"] + 0.2 * terms["sigreg"])
    # SIGReg of one input: Gaussian embeddings score ~1, a collapsed set scores far higher
    gaussian = loss_fn.compute_terms(pred, target, torch.randn(512, 16))["sigreg"]
    collapsed = loss_fn.compute_terms(pred, target, torch.ones(512, 16) + 1e-3 * torch.randn(512, 16))["sigreg"]
    assert gaussian < 2.0 < 100.0 < collapsed
    # default SIGReg input: the flattened target tokens (B * K_t, D)
    tokens_pred = torch.randn(64, 8, 16)
    assert loss_fn.compute_terms(tokens_pred, torch.randn(64, 8, 16))["sigreg"] < 2.0
    assert loss_fn.compute_terms(tokens_pred, torch.randn(64, 1, 16).expand(64, 8, 16))["sigreg"] > 5.0
    with pytest.raises(ValueError, match="must both have shape"):
        loss_fn.compute_terms(pred, target[:, :4])
    with pytest.raises(ValueError, match="embeddings_for_sigreg"):
        loss_fn.compute_terms(pred, target, [torch.randn(1, 16)])
    with pytest.raises(ValueError, match="lamb"):
        MaskedLatentLoss(lamb=-0.1)
    with pytest.raises(ValueError):
        MaskedLatentLoss(loss="cosine")


def test_stop_gradient_blocks_gradient_to_targets():
    pred = torch.randn(2, 3, 8, requires_grad=True)
    for stop in (False, True):
        target = torch.randn(2, 3, 8, requires_grad=True)
        embed = torch.randn(6, 8, requires_grad=True)
        MaskedLatentLoss(lamb=0.0, stop_gradient=stop, num_slices=16)(pred, target, embed).backward()
        if stop:
            assert target.grad is None, "no gradient through the targets"
        else:
            assert target.grad.abs().sum() > 0, "by default the targets receive gradient (no stop-gradient)"
        assert embed.grad is None, "lamb=0: SIGReg is only monitored"
    target = torch.randn(2, 3, 8, requires_grad=True)
    terms = MaskedLatentLoss(lamb=0.5, stop_gradient=True, num_slices=16).compute_terms(pred, target)
    terms["loss"].backward()
    assert target.grad.abs().sum() > 0, "SIGReg on the target tokens still trains them"


def test_ema_teacher_schedule_and_update():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    teacher = EMATeacher(student, momentum=0.996, final_momentum=1.0, total_steps=100)
    assert teacher.momentum(0) == pytest.approx(0.996)
    assert teacher.momentum(50) == pytest.approx(0.998)
    assert teacher.momentum(100) == pytest.approx(1.0) and teacher.momentum(500) == pytest.approx(1.0)
    assert EMATeacher(student, momentum=0.9).momentum(1000) == 0.9, "no schedule: constant momentum"
    assert not any(p.requires_grad for p in teacher.parameters())
    assert set(teacher.state_dict()) == {f"module.{k}" for k in student.state_dict()} | {"step"}
    before = [p.clone() for p in teacher.module.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    student(torch.randn(8, 4))  # changes the BatchNorm running statistics
    m = teacher.update()
    assert m == pytest.approx(0.996) and int(teacher.step) == 1
    for t, b, s in zip(teacher.module.parameters(), before, student.parameters()):
        assert torch.allclose(t, m * b + (1 - m) * s)
    assert torch.equal(teacher.module[1].running_mean, student[1].running_mean), "buffers are copied"
    out = teacher(torch.randn(3, 4))
    assert not out.requires_grad
    ddp_like = torch.nn.DataParallel(student)
    assert EMATeacher(ddp_like)._student[0] is student
    with pytest.raises(ValueError, match="momentum"):
        EMATeacher(student, momentum=1.0, final_momentum=0.5)


def _train(lamb: float, teacher: bool = False, steps: int = 50) -> tuple[list[dict[str, float]], float]:
    """Tiny ViT (2 layers, width 48, 16 x 16 images, patch 4) trained by masked latent prediction."""
    torch.manual_seed(0)
    encoder = JEPAViT(1, 16, 4, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=2, num_heads=3)
    predictor = JEPAPredictor(encoder.grid_size, embed_dim=48, predictor_dim=24, depth=1, num_heads=2)
    masks = MultiBlockMaskGenerator(encoder.grid_size, num_blocks=2, block_scale=(0.15, 0.2), min_keep=4, seed=0)
    loss_fn = MaskedLatentLoss(lamb=lamb, num_slices=64)
    ema = EMATeacher(encoder, momentum=0.99, total_steps=steps) if teacher else None
    params = list(encoder.parameters()) + list(predictor.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    images = torch.randn(16, 1, 16, 16)
    history = []
    for _ in range(steps):
        context_idx, target_idx = masks(batch_size=16)
        terms = masked_latent_step(encoder, predictor, images, context_idx, target_idx, loss_fn, ema)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        if ema is not None:
            ema.update()
        history.append({k: float(v.detach()) for k, v in terms.items()})
    with torch.no_grad():
        _, pooled = encoder(images)
    return history, float(pooled.std(0).mean())


def _mean(history: list[dict[str, float]], key: str, part: slice) -> float:
    values = [h[key] for h in history[part]]
    return sum(values) / len(values)


def test_sigreg_objective_decreases_and_prevents_collapse(one_thread):
    history, std = _train(lamb=0.05)
    collapsed_history, collapsed_std = _train(lamb=0.0)
    assert _mean(history, "loss", slice(-5, None)) < 0.7 * _mean(history, "loss", slice(0, 5))
    assert _mean(history, "sigreg", slice(-5, None)) < _mean(history, "sigreg", slice(0, 5))
    # without SIGReg (and without teacher) prediction becomes trivial: the embedding shrinks to a point
    assert _mean(collapsed_history, "pred", slice(-5, None)) < 0.2
    assert _mean(collapsed_history, "sigreg", slice(-5, None)) > 10 * _mean(history, "sigreg", slice(-5, None))
    assert collapsed_std < 0.05 and std > 0.2 and std > 8 * collapsed_std


def test_ema_baseline_decreases(one_thread):
    history, _ = _train(lamb=0.0, teacher=True)
    assert _mean(history, "pred", slice(-5, None)) < 0.8 * _mean(history, "pred", slice(0, 5))
    assert not math.isnan(history[-1]["sigreg"]), "SIGReg is still reported for monitoring"
