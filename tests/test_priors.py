"""Contract tests for the latent priors: N(0, I) and the RealNVP flow."""

import math

import pytest
import torch

from models.priors import RealNVPPrior, StandardNormalPrior, make_prior


def _trained_looking_flow(dim: int, layers: int = 4) -> RealNVPPrior:
    """A flow with random (non-identity) weights, so the tests see a real transform."""
    flow = RealNVPPrior(dim, layers=layers, hidden=16)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow.double()


@pytest.mark.parametrize("dim", [2, 5, 16])
def test_flow_round_trip(dim):
    flow = _trained_looking_flow(dim)
    z = torch.randn(64, dim, dtype=torch.double) * 2
    assert torch.allclose(flow.from_base(flow.to_base(z)), z, atol=1e-5)
    z_star = torch.randn(64, dim, dtype=torch.double)
    assert torch.allclose(flow.to_base(flow.from_base(z_star)), z_star, atol=1e-5)


@pytest.mark.parametrize("dim", [2, 5])
def test_flow_logdet_matches_autograd_jacobian(dim):
    flow = _trained_looking_flow(dim)
    z = torch.randn(6, dim, dtype=torch.double)
    _, logdet = flow.forward_with_logdet(z)
    for i in range(len(z)):
        jac = torch.autograd.functional.jacobian(lambda v: flow.to_base(v[None])[0], z[i])
        assert torch.allclose(logdet[i], torch.linalg.slogdet(jac).logabsdet, atol=1e-8)


@pytest.mark.parametrize("prior", ["normal", "realnvp"])
def test_density_integrates_to_one_on_2d_grid(prior):
    p = _trained_looking_flow(2) if prior == "realnvp" else StandardNormalPrior(2).double()
    lin = torch.linspace(-9, 9, 601, dtype=torch.double)
    zz = torch.cartesian_prod(lin, lin)                                   # (601*601, 2)
    cell = (lin[1] - lin[0]) ** 2
    with torch.no_grad():
        mass = (p.log_prob(zz).exp() * cell).sum().item()
    assert mass == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("prior", ["normal", "realnvp"])
def test_sample_shapes_temperature_and_seed(prior):
    p = make_prior(prior, 3, layers=2, hidden=8)
    a = p.sample(10, generator=torch.Generator().manual_seed(1))
    b = p.sample(10, generator=torch.Generator().manual_seed(1))
    assert a.shape == (10, 3) and torch.equal(a, b)
    cold = p.sample(4000, temperature=0.1, generator=torch.Generator().manual_seed(2))
    warm = p.sample(4000, temperature=1.0, generator=torch.Generator().manual_seed(2))
    assert cold.std() < warm.std()
    assert torch.isfinite(p.log_prob(warm)).all()


def test_standard_normal_log_prob_value():
    lp = StandardNormalPrior(2).log_prob(torch.tensor([[1.0, 0.0]]))
    assert lp.item() == pytest.approx(-0.5 - math.log(2 * math.pi))


def test_flow_starts_as_identity_and_unknown_prior_fails():
    flow = RealNVPPrior(4, layers=2, hidden=8)
    z = torch.randn(5, 4)
    assert torch.allclose(flow.to_base(z), z)
    with pytest.raises(ValueError, match="unknown prior"):
        make_prior("vampprior", 4)
