import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy import integrate

from monai_jepa.losses import SIGReg, epps_pulley, sigreg_knots


def grid_null_value(num_knots=17, t_max=5.0):
    """Expected N-scaled statistic for Gaussian data on the trapezoid grid: sum_k w_k (1 - exp(-t_k^2))."""
    t = np.linspace(-t_max, t_max, num_knots)
    return integrate.trapezoid((1 - np.exp(-(t**2))) * np.exp(-(t**2) / 2), t)


def reference_ep(u: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Independent float64 NumPy evaluation of the statistic on the full symmetric grid ``t``, per column of u."""
    n = u.shape[0]
    arg = u[:, :, None] * t[None, None, :]  # (N, M, T)
    err = (np.cos(arg).mean(0) - np.exp(-(t**2) / 2)) ** 2 + np.sin(arg).mean(0) ** 2
    return n * integrate.trapezoid(err * np.exp(-(t**2) / 2), t, axis=-1)


def naive_ep_torch(u: torch.Tensor, num_knots=17, t_max=5.0) -> torch.Tensor:
    """Per-knot cos/sin form on the full grid, differentiated by autograd."""
    t = torch.linspace(-t_max, t_max, num_knots, dtype=u.dtype)
    w = torch.full_like(t, t[1] - t[0])
    w[0] = w[-1] = w[0] / 2
    x = u.unsqueeze(-1) * t
    err = (torch.cos(x).mean(0) - torch.exp(-(t**2) / 2)) ** 2 + torch.sin(x).mean(0) ** 2
    return u.shape[0] * (err * w * torch.exp(-(t**2) / 2)).sum(-1)


@pytest.mark.parametrize("num_knots,t_max", [(17, 5.0), (16, 5.0), (9, 3.0)])
def test_matches_numpy_trapezoid(num_knots, t_max):
    rng = np.random.default_rng(0)
    u = np.concatenate([rng.standard_normal((300, 4)), rng.uniform(-2, 2, (300, 2)), rng.exponential(1, (300, 2))], 1)
    ours = epps_pulley(torch.from_numpy(u).float(), num_knots, t_max).double().numpy()
    ref = reference_ep(u.astype(np.float32).astype(np.float64), np.linspace(-t_max, t_max, num_knots))
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_converges_to_exact_integral():
    """With a fine grid, the trapezoid value approaches the exact integral computed by scipy.integrate.quad."""
    rng = np.random.default_rng(1)
    u = rng.standard_normal(200) * 1.3 + 0.2
    n = u.size

    def integrand(t):
        return ((np.cos(t * u).mean() - np.exp(-(t**2) / 2)) ** 2 + np.sin(t * u).mean() ** 2) * np.exp(-(t**2) / 2)

    exact = n * 2 * integrate.quad(integrand, 0, 10, limit=200)[0]
    ours = epps_pulley(torch.from_numpy(u[:, None]).double(), num_knots=401, t_max=10.0).item()
    assert ours == pytest.approx(exact, rel=1e-4)


def test_knots_and_weights():
    t0, dt, w, g = sigreg_knots(17, 5.0)
    assert dt == pytest.approx(0.625) and t0 == pytest.approx(0.625) and w.numel() == 8
    t = t0 + dt * torch.arange(8, dtype=torch.float64)
    assert t[-1].item() == pytest.approx(5.0)
    assert torch.allclose(g, torch.exp(-(t**2) / 2))
    # the half-grid weights reproduce the full-grid trapezoid of an even function
    full_t = np.linspace(-5, 5, 17)
    f = lambda x: np.exp(-(x**2) / 2) * x**2  # noqa: E731
    assert (w.numpy() * t.numpy() ** 2).sum() == pytest.approx(integrate.trapezoid(f(full_t), full_t), rel=1e-12)
    t0, dt, w, _ = sigreg_knots(16, 5.0)
    assert t0 == pytest.approx(dt / 2) and w.numel() == 8
    for bad in [dict(num_knots=1), dict(num_knots=2.5), dict(t_max=0.0)]:
        with pytest.raises(ValueError):
            sigreg_knots(**{"num_knots": 17, "t_max": 5.0, **bad})


def test_gaussian_null_value():
    """Mean over 20 independent draws of Gaussian N=512, K=128, 1024 slices is within 0.03 of the grid's null value."""
    null = grid_null_value()
    assert null == pytest.approx(math.sqrt(2 * math.pi) - math.sqrt(2 * math.pi / 3), abs=0.01)
    gen = torch.Generator().manual_seed(0)
    sigreg = SIGReg(num_slices=1024, seed=3)
    values = torch.stack([sigreg(torch.randn(512, 128, generator=gen)) for _ in range(20)])
    assert abs(values.mean().item() - null) < 0.03
    assert 0.01 < values.std().item() < 0.2


def test_collapse_and_shift_scores_high():
    gen = torch.Generator().manual_seed(0)
    sigreg = SIGReg(num_slices=1024)
    v = torch.nn.functional.normalize(torch.randn(1, 128, generator=gen), dim=1)
    rank1 = torch.randn(512, 1, generator=gen) * v
    assert sigreg(rank1).item() > 100
    assert sigreg(torch.ones(512, 128)).item() > 100
    assert sigreg(2 * torch.randn(512, 128, generator=gen)).item() > 100
    assert sigreg(torch.randn(512, 128, generator=gen) + 1).item() > 100


def test_gradient_matches_autograd_reference():
    torch.manual_seed(0)
    u = (torch.randn(64, 12, dtype=torch.float64) * 1.5).requires_grad_(True)
    ep = epps_pulley(u)
    assert ep.dtype == torch.float32  # the library always works in fp32
    (grad,) = torch.autograd.grad(ep.sum(), u)
    u64 = u.detach().float().double().requires_grad_(True)
    (ref,) = torch.autograd.grad(naive_ep_torch(u64).sum(), u64)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad.double(), ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("num_knots", [17, 16])
@pytest.mark.parametrize("threads,blocks", [(1, [(0, 64), (64, 128), (128, 150)]), (2, [(0, 150)])])
def test_blocked_recurrence_matches_reference(num_knots, threads, blocks, monkeypatch):
    """Many samples: on one thread the CPU passes run over several blocks of slices (the last one partial), in place;
    with several threads over one block."""
    from monai_jepa.losses.sigreg import _column_blocks

    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    gen = torch.Generator().manual_seed(1)
    u = (torch.randn(3000, 150, generator=gen) * 1.3).requires_grad_(True)
    assert [(b.start, b.stop) for b in _column_blocks(u)] == blocks
    weights = torch.rand(150, generator=gen, dtype=torch.float64)
    ep = epps_pulley(u, num_knots=num_knots)
    (grad,) = torch.autograd.grad((ep.double() * weights).sum(), u)
    u64 = u.detach().double().requires_grad_(True)
    ref = naive_ep_torch(u64, num_knots=num_knots)
    (ref_grad,) = torch.autograd.grad((ref * weights).sum(), u64)
    torch.testing.assert_close(ep.double(), ref.detach(), rtol=2e-4, atol=1e-4)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-3, atol=1e-6)


def test_fp32_under_autocast_and_bf16_input():
    sigreg = SIGReg(num_slices=64)
    z = torch.randn(128, 32)
    d = sigreg.sample_directions(32)
    ref = sigreg(z, directions=d)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sigreg(z, directions=d)
        out_bf16 = sigreg(z.bfloat16(), directions=d)
    assert out.dtype == torch.float32 and out_bf16.dtype == torch.float32
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out_bf16, sigreg(z.bfloat16().float(), directions=d))


def test_directions_fresh_reproducible_and_checkpointed():
    z = torch.randn(256, 16)
    a, b = SIGReg(num_slices=32, seed=7), SIGReg(num_slices=32, seed=7)
    first = [a(z).item() for _ in range(3)]
    assert len(set(first)) == 3, "fresh directions every call"
    assert int(a.step) == 3 and "step" in a.state_dict()
    assert first == [b(z).item() for _ in range(3)], "same seed, same sequence"
    c = SIGReg(num_slices=32, seed=7)
    c.load_state_dict({"step": torch.tensor(2)})
    assert c(z).item() == first[2], "resumes the sequence from the checkpointed step"
    assert SIGReg(num_slices=32, seed=8)(z).item() != first[0]
    d = a.sample_directions(16, step=0)
    assert d.shape == (16, 32) and torch.allclose(d.norm(dim=0), torch.ones(32))
    assert a(z, directions=d).item() == first[0] and int(a.step) == 3, "explicit directions do not advance the step"


def test_views_share_directions_and_average():
    sigreg = SIGReg(num_slices=64)
    z = torch.randn(3, 100, 8)
    d = sigreg.sample_directions(8)
    per_view = torch.stack([sigreg(v, directions=d) for v in z])
    torch.testing.assert_close(sigreg(z, directions=d), per_view.mean())


def test_bad_inputs():
    sigreg = SIGReg(num_slices=8)
    with pytest.raises(ValueError, match="z must have shape"):
        sigreg(torch.randn(10))
    with pytest.raises(ValueError, match="directions must have shape"):
        sigreg(torch.randn(10, 4), directions=torch.randn(5, 8))
    with pytest.raises(ValueError, match="num_slices"):
        SIGReg(num_slices=0)
    with pytest.raises(ValueError, match="u must have shape"):
        epps_pulley(torch.randn(5))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, z: torch.Tensor, w: torch.Tensor, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(1234 + rank)  # ranks deliberately differ in their global RNG
        n = z.shape[0] // world
        z_local = z[rank * n : (rank + 1) * n].clone().requires_grad_(True)
        sigreg = SIGReg(num_slices=128, seed=5 + rank)  # rank 0's seed must win
        value = sigreg(z_local)
        (grad_z,) = torch.autograd.grad(value, z_local)
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(w.shape[1], w.shape[0], bias=False))
        with torch.no_grad():
            model.module.weight.copy_(w)
        SIGReg(num_slices=128, seed=5)(model(z_local)).backward()
        out[rank] = (value.detach(), grad_z, model.module.weight.grad.clone())
    finally:
        dist.destroy_process_group()


def test_ddp_exact_two_processes():
    world = 2
    torch.manual_seed(0)
    z = torch.randn(64, 16) * 1.3
    w = torch.randn(8, 16) / 4
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        out = manager.dict()
        mp.spawn(_ddp_worker, args=(world, _free_port(), z, w, out), nprocs=world, join=True)
        out = dict(out)
    # single-process references on the concatenated batch, same directions (seed 5, step 0)
    ref_sigreg = SIGReg(num_slices=128, seed=5)
    zz = z.clone().requires_grad_(True)
    ref_value = ref_sigreg(zz)
    (ref_grad,) = torch.autograd.grad(ref_value, zz)
    lin = torch.nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    SIGReg(num_slices=128, seed=5)(lin(z)).backward()
    n = z.shape[0] // world
    for rank in range(world):
        value, grad_z, grad_w = out[rank]
        torch.testing.assert_close(value, ref_value.detach(), rtol=1e-5, atol=1e-6)
        # local input gradient is world_size x the single-process gradient (autograd all-reduce) ...
        torch.testing.assert_close(grad_z, world * ref_grad[rank * n : (rank + 1) * n], rtol=1e-4, atol=1e-7)
        # ... so after DDP's gradient averaging, parameter gradients equal the single-process ones
        torch.testing.assert_close(grad_w, lin.weight.grad, rtol=1e-4, atol=1e-7)
