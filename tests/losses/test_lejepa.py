import pytest
import torch

from monai_jepa.losses import LeJEPALoss, SIGReg
from monai_jepa.utils.embedding import effective_rank


def test_value_by_hand():
    torch.manual_seed(0)
    g, loc = torch.randn(2, 16, 8), torch.randn(3, 16, 8)
    loss_fn = LeJEPALoss(lamb=0.25, num_slices=32, seed=4)
    terms = loss_fn.compute_terms(g, loc)
    views = torch.cat([g, loc])
    centre = g.mean(0)
    pred = sum(((centre - v) ** 2).mean() for v in views) / 5  # mean over dims, samples, then views
    sig = SIGReg(num_slices=32, seed=4)(views)
    torch.testing.assert_close(terms["pred"], pred)
    torch.testing.assert_close(terms["sigreg"], sig)
    torch.testing.assert_close(terms["loss"], 0.75 * pred + 0.25 * sig)


def test_sequence_equals_tensor_and_forward():
    g, loc = torch.randn(2, 10, 4), torch.randn(4, 10, 4)
    a = LeJEPALoss(num_slices=16).compute_terms(list(g), list(loc))
    b = LeJEPALoss(num_slices=16).compute_terms(g, loc)
    for k in ("loss", "pred", "sigreg"):
        torch.testing.assert_close(a[k], b[k])
    torch.testing.assert_close(LeJEPALoss(num_slices=16)(g, loc), b["loss"])
    # without local views only the global views enter both terms
    only_g = LeJEPALoss(num_slices=16).compute_terms(g)
    torch.testing.assert_close(only_g["pred"], ((g - g.mean(0)) ** 2).mean())


def test_gradient_flows_through_centre():
    """No stop-gradient: with lamb=0 the global views receive the gradient of the centre too."""
    g = torch.randn(2, 6, 3, requires_grad=True)
    loc = torch.randn(1, 6, 3, requires_grad=True)
    LeJEPALoss(lamb=0.0, num_slices=4)(g, loc).backward()
    centre = g.detach().mean(0)
    views = torch.cat([g.detach(), loc.detach()])
    n = views[0].numel()
    expected_l = 2 * (loc.detach() - centre) / (3 * n)
    expected_g = 2 * (g.detach() - centre) / (3 * n) - (2 * (views - centre) / (3 * n)).sum(0) / 2
    torch.testing.assert_close(loc.grad, expected_l)
    torch.testing.assert_close(g.grad, expected_g)


def test_bad_arguments():
    with pytest.raises(ValueError, match="lamb"):
        LeJEPALoss(lamb=1.5)
    with pytest.raises(ValueError, match="global_views"):
        LeJEPALoss()(torch.randn(4, 8))
    with pytest.raises(ValueError, match="local_views"):
        LeJEPALoss()(torch.randn(2, 4, 8), torch.randn(2, 5, 8))


def test_sigreg_prevents_collapse_on_a_tiny_problem():
    """Trained on two noisy views, lamb=0 collapses the embedding to a point; the default lamb keeps it Gaussian."""

    def train(lamb: float) -> tuple[float, float, float]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        loss_fn = LeJEPALoss(lamb=lamb, num_slices=64)
        x = torch.randn(256, 16)
        for _ in range(150):
            views = torch.stack([net(x + 0.3 * torch.randn_like(x)) for _ in range(2)])
            opt.zero_grad()
            loss_fn(views).backward()
            opt.step()
        with torch.no_grad():
            z = net(x)
            return z.std(0).mean().item(), SIGReg(num_slices=256)(z).item(), effective_rank(z)

    std0, sig0, _ = train(0.0)
    std, sig, rank = train(0.05)
    assert std0 < 0.01 and sig0 > 50, "prediction loss alone shrinks the embedding to a point"
    assert 0.7 < std < 1.3 and sig < 2.0 and rank > 7.5, "SIGReg keeps an isotropic, unit-scale embedding"
