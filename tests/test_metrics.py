"""Metric math of the continuous VAEs on tiny models and hand-built posteriors."""

import math

import pytest
import torch

from latentlab import data
from latentlab.metrics import (
    active_units,
    code_statistics,
    elbo_surgery,
    elbo_terms,
    iwae_log_px,
    kl_per_dim,
    log_aggregate_posterior,
)
from models.distributions import DiagonalGaussian, kl_normal_standard
from models.priors import StandardNormalPrior
from models.vae import VAE, VAEConfig


def tiny_vae(prior: str) -> VAE:
    torch.manual_seed(0)
    cfg = VAEConfig(latent_dim=3, channels=4, hidden=16, prior=prior, flow_layers=2, flow_hidden=8)
    return VAE(cfg).eval()


@pytest.fixture(scope="module")
def x_real() -> torch.Tensor:
    return data.binarized_test_set("mnist")[:24]


def hand_built_posterior(n: int, d: int, spread: float, sigma: float):
    g = torch.Generator().manual_seed(1)
    mu = spread * torch.randn(n, d, generator=g)
    logvar = torch.full((n, d), 2 * math.log(sigma))
    return mu, logvar


# ----------------------------------------------------------------------------- ELBO and IWAE

@pytest.mark.parametrize("prior", ["normal", "realnvp"])
def test_iwae_bound_lies_between_the_elbo_terms_and_zero(x_real, prior):
    model, k, chunk = tiny_vae(prior), 12, 5
    bound = iwae_log_px(model, x_real, k, chunk=chunk, batch_size=len(x_real),
                        generator=torch.Generator().manual_seed(3))
    # the same k weights, drawn in the same chunks (12 = 3 equal chunks of 4) from the same seed
    g = torch.Generator().manual_seed(3)
    log_w = torch.cat([model.log_importance_weights(x_real, c, g) for c in (4, 4, 4)])  # (k, B)
    assert bound.shape == (len(x_real),)
    assert torch.allclose(bound, (torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])), atol=1e-4)     # chunks merged correctly
    assert (bound >= log_w.mean(0) - 1e-4).all()                   # L_k >= mean of 1-sample ELBOs
    assert (bound <= 0).all()


@pytest.mark.parametrize("prior", ["normal", "realnvp"])
def test_elbo_terms_shapes_and_kl_per_dim(x_real, prior):
    model = tiny_vae(prior)
    terms = elbo_terms(model, x_real, n_samples=4, max_decodes=40)  # forces several batches
    assert terms.rec_nll.shape == terms.kl.shape == (len(x_real),)
    assert terms.mu.shape == terms.logvar.shape == (len(x_real), 3)
    assert torch.allclose(terms.elbo, -(terms.rec_nll + terms.kl))
    assert (terms.rec_nll > 0).all()
    per_dim = kl_per_dim(terms.mu, terms.logvar)
    assert per_dim.shape == (3,) and (per_dim >= 0).all()
    if prior == "normal":  # per-dim KLs against N(0, I) add up to the KL term
        assert per_dim.sum().item() == pytest.approx(terms.kl.mean().item(), abs=1e-4)


def test_flow_kl_uses_several_samples(x_real):
    model = tiny_vae("realnvp")
    one = [elbo_terms(model, x_real, 1, generator=torch.Generator().manual_seed(s)).kl for s in range(4)]
    many = [elbo_terms(model, x_real, 64, generator=torch.Generator().manual_seed(s)).kl for s in range(4)]
    assert torch.stack(many).std(0).mean() < torch.stack(one).std(0).mean()


# ----------------------------------------------------------------------------- ELBO surgery

def test_log_aggregate_posterior_matches_brute_force():
    mu, logvar = hand_built_posterior(50, 3, 1.0, 0.3)
    logvar = logvar + 0.5 * torch.randn(50, 3, generator=torch.Generator().manual_seed(2))
    z = torch.randn(20, 3)
    brute = torch.logsumexp(DiagonalGaussian(mu[None], logvar[None]).log_prob(z[:, None]), 1) - math.log(50)
    got = log_aggregate_posterior(z, mu, logvar, chunk=7)
    assert torch.allclose(got.float(), brute, atol=1e-4)


@pytest.mark.parametrize("prior", ["normal", "realnvp"])
def test_surgery_parts_add_up_to_the_elbo(x_real, prior):
    model = tiny_vae(prior)
    terms = elbo_terms(model, x_real, n_samples=4)
    s = elbo_surgery(terms.mu, terms.logvar, model.prior, terms.rec_nll, terms.kl,
                     generator=torch.Generator().manual_seed(0))
    assert s["reconstruction"] - s["mutual_information"] - s["marginal_kl"] == pytest.approx(s["elbo"])
    assert s["elbo"] == pytest.approx(terms.elbo.mean().item(), abs=1e-3)
    assert s["log_n"] == pytest.approx(math.log(len(x_real)))
    assert s["mutual_information_direct"] <= s["log_n"] + 1e-6


def test_surgery_mutual_information_is_between_zero_and_log_n():
    mu, logvar = hand_built_posterior(400, 2, spread=2.0, sigma=0.3)
    kl = kl_normal_standard(mu, logvar).sum(-1)
    s = elbo_surgery(mu, logvar, StandardNormalPrior(2), torch.full((400,), 90.0), kl,
                     generator=torch.Generator().manual_seed(0))
    assert 0.5 < s["mutual_information_direct"] <= s["log_n"]
    assert 0.5 < s["mutual_information"] <= s["log_n"] + 0.2
    assert s["mutual_information"] == pytest.approx(s["mutual_information_direct"], abs=0.2)
    assert s["marginal_kl"] > -0.2  # a KL up to Monte Carlo noise


def test_posterior_that_ignores_x_has_no_mutual_information():
    n = 2000
    mu = torch.tensor([[0.5, -1.0]]).expand(n, 2)      # q(z|x) the same for every x
    logvar = torch.tensor([[-1.0, 0.3]]).expand(n, 2)
    kl = kl_normal_standard(mu, logvar).sum(-1)
    s = elbo_surgery(mu, logvar, StandardNormalPrior(2), torch.full((n,), 100.0), kl,
                     generator=torch.Generator().manual_seed(0))
    assert s["mutual_information_direct"] == pytest.approx(0.0, abs=1e-6)
    assert s["mutual_information"] == pytest.approx(0.0, abs=0.1)
    assert s["marginal_kl"] == pytest.approx(kl[0].item(), abs=0.1)  # all the KL is marginal


def test_surgery_subset_of_points():
    mu, logvar = hand_built_posterior(300, 2, spread=1.0, sigma=0.5)
    kl = kl_normal_standard(mu, logvar).sum(-1)
    s = elbo_surgery(mu, logvar, StandardNormalPrior(2), torch.full((300,), 90.0), kl, n_points=100)
    assert s["n_points"] == 100 and s["n_components"] == 300


# ----------------------------------------------------------------------------- latent usage

def test_active_units_counts_moving_means_only():
    g = torch.Generator().manual_seed(0)
    mu = torch.stack([torch.randn(500, generator=g),            # varies with x: active
                      0.3 + 0.01 * torch.randn(500, generator=g),  # collapsed: var 1e-4
                      0.5 * torch.randn(500, generator=g)], 1)     # var 0.25: active
    count, variances = active_units(mu)
    assert count == 2
    assert variances.shape == (3,)
    assert variances[0].item() == pytest.approx(1.0, rel=0.2)
    assert variances[1].item() < 1e-3


def test_code_statistics_of_a_known_gaussian():
    g = torch.Generator().manual_seed(0)
    codes = torch.tensor([1.0, -2.0]) + torch.tensor([0.5, 2.0]) * torch.randn(50000, 2, generator=g)
    stats = code_statistics(codes)
    torch.testing.assert_close(stats["mean"], torch.tensor([1.0, -2.0]), atol=0.03, rtol=0)
    torch.testing.assert_close(stats["std"], torch.tensor([0.5, 2.0]), atol=0.03, rtol=0)
    mean, var = torch.tensor([1.0, -2.0]), torch.tensor([0.25, 4.0])
    expected = 0.5 * (mean.pow(2) + var - 1 - var.log()).sum()               # closed form
    assert stats["gaussian_kl"].item() == pytest.approx(expected.item(), rel=0.02)


@pytest.mark.parametrize("posterior, prior", [("categorical", "uniform"),
                                              ("deterministic", "normal")])
def test_elbo_terms_of_the_other_posteriors(x_real, posterior, prior):
    cfg = VAEConfig(latent_dim=3, categories=4, channels=4, hidden=16, posterior=posterior,
                    prior=prior)
    model = VAE(cfg).eval()
    terms = elbo_terms(model, x_real, n_samples=2, generator=torch.Generator().manual_seed(0))
    assert terms.rec_nll.shape == terms.kl.shape == (len(x_real),) and (terms.rec_nll > 0).all()
    if posterior == "deterministic":  # the code itself, no KL
        assert (terms.kl == 0).all() and terms.mu.shape == (len(x_real), 3)
    else:  # exact categorical KL, class probabilities as the means
        assert (terms.kl >= 0).all() and terms.mu.shape == (len(x_real), 12)
        assert torch.allclose(terms.mu.view(-1, 3, 4).sum(-1), torch.ones(len(x_real), 3))
