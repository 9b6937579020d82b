"""Contract tests for the VAE family, parametrized over posterior and prior kinds (tiny configs)."""

import math

import pytest
import torch
from torch.distributions import Distribution

from models.vae import VAE, VAEConfig

KINDS = {
    "normal": {"prior": "normal"},
    "realnvp": {"prior": "realnvp"},
    "autoencoder": {"posterior": "deterministic"},
    "gumbel": {"posterior": "categorical", "prior": "uniform", "categories": 4},
    "gumbel-st": {"posterior": "categorical", "prior": "uniform", "categories": 4, "straight_through": True},
}
DENSITY_KINDS = ["normal", "realnvp", "gumbel", "gumbel-st"]


def tiny(kind: str, latent_dim: int = 3, **kw) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(latent_dim=latent_dim, channels=4, hidden=16, flow_layers=2,
                         flow_hidden=8, **KINDS[kind], **kw))


def event_shape(kind: str) -> tuple:
    return (3, 4) if kind.startswith("gumbel") else (3,)


@pytest.fixture
def x():
    from latentlab.data import binarize

    p = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return binarize(p, torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_of_every_verb(kind, x):
    vae = tiny(kind)
    q = vae.posterior(x)
    assert isinstance(q, Distribution) and q.batch_shape == (5,)
    z = q.rsample(generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, *event_shape(kind))
    assert vae.decode(z).shape == (5, 1, 28, 28)
    assert vae.decode(torch.zeros(2, 4, *event_shape(kind))).shape == (2, 4, 1, 28, 28)
    probs = vae.decode_probs(z)
    assert 0 <= probs.min() and probs.max() <= 1
    assert torch.allclose(vae.likelihood(z).mean, probs)
    s = vae.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    out = vae(x)
    assert out.loss.dim() == 0 and out.elbo.shape == out.kl.shape == out.rec_nll.shape == (5,)
    assert torch.allclose(out.elbo, -(out.rec_nll + out.kl))


@pytest.mark.parametrize("kind", KINDS)
def test_kl_has_the_shape_of_z_less_its_event(kind, x):
    vae = tiny(kind)
    q = vae.posterior(x)
    z = q.rsample((6,), generator=torch.Generator().manual_seed(0))          # (6, 5, ...)
    assert vae.kl(q, z).shape == (6, 5)
    assert vae.kl(q, z[0]).shape == (5,)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter(kind, x):
    vae = tiny(kind)
    with torch.no_grad():  # the flow's last layers start at zero; move off that point
        for p in vae.prior.parameters():
            p.add_(0.1 * torch.randn_like(p))
    vae(x).loss.backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", DENSITY_KINDS)
def test_iwae_bound_is_above_mean_elbo_and_below_zero(kind, x):
    vae = tiny(kind).eval()
    log_w = vae.log_importance_weights(x, k=64, generator=torch.Generator().manual_seed(3))
    assert log_w.shape == (64, 5)
    bound = torch.logsumexp(log_w, 0) - math.log(64)                        # (B,)
    assert (bound >= log_w.mean(0) - 1e-5).all()       # Jensen: log mean w >= mean log w
    assert (bound <= 0).all()


def test_autoencoder_has_no_kl_and_no_bound(x):
    ae = tiny("autoencoder")
    out = ae(x)
    assert torch.equal(out.kl, torch.zeros(5)) and torch.allclose(out.loss, out.rec_nll.mean())
    q = ae.posterior(x)
    assert torch.equal(q.rsample((2,))[0], q.mean)     # no noise: z = mu
    with pytest.raises(ValueError, match="no posterior density"):
        ae.log_importance_weights(x, 4)


def test_gaussian_kl_is_analytic_and_matches_monte_carlo(x):
    vae = tiny("normal")
    q = vae.posterior(x)
    z = q.rsample((20000,), generator=torch.Generator().manual_seed(0))
    mc = (q.log_prob(z) - vae.prior.log_prob(z)).mean(0)
    assert torch.allclose(vae.kl(q, z[0]), mc, atol=0.05)


def test_categorical_kl_is_exact_against_the_uniform_prior(x):
    vae = tiny("gumbel")
    q = vae.posterior(x)
    probs = q.probs                                                           # (5, 3, 4)
    expected = (probs * (probs.log() + math.log(4))).sum((-2, -1))
    assert torch.allclose(vae.kl(q, q.rsample()), expected, atol=1e-5)
    uniform = VAE(VAEConfig(latent_dim=3, channels=4, hidden=16, **KINDS["gumbel"]))
    with torch.no_grad():
        uniform.encoder[-1].weight.zero_()
        uniform.encoder[-1].bias.zero_()
    q0 = uniform.posterior(x)
    assert torch.allclose(uniform.kl(q0, q0.rsample()), torch.zeros(5), atol=1e-6)


def test_gumbel_temperature_anneals_and_sharpens_samples(x):
    vae = tiny("gumbel", tau_start=2.0, tau_end=0.1)
    assert vae.anneal(0.0) == pytest.approx(2.0) and vae.anneal(1.0) == pytest.approx(0.1)
    assert vae.anneal(0.5) == pytest.approx(math.sqrt(0.2))   # exponential schedule
    hot, cold = [], []
    for tau, store in ((2.0, hot), (0.1, cold)):
        vae.tau = tau
        z = vae.posterior(x).rsample(generator=torch.Generator().manual_seed(0))
        store.append(z.max(-1).values.mean().item())
    assert cold[0] > hot[0] and cold[0] > 0.9


def test_straight_through_is_one_hot_forward_with_gradients(x):
    vae = tiny("gumbel-st")
    z = vae.posterior(x).rsample(generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z.detach().sum(-1), torch.ones(5, 3))
    assert torch.allclose(z.detach(), z.detach().round(), atol=1e-6)   # one-hot up to rounding
    z.pow(2).sum().backward()
    assert vae.encoder[-1].weight.grad.abs().sum() > 0


def test_eval_mode_scores_the_discrete_model_with_one_hot_codes(x):
    vae = tiny("gumbel").eval()
    out = vae(x, generator=torch.Generator().manual_seed(0))
    assert set(out.z.unique().tolist()) <= {0.0, 1.0}


def test_beta_scales_only_the_kl_term(x):
    vae = tiny("normal")
    g = lambda: torch.Generator().manual_seed(5)
    full, half = vae(x, generator=g()), vae(x, beta=0.5, generator=g())
    assert torch.allclose(full.loss - half.loss, 0.5 * full.kl.mean(), atol=1e-3)
    assert torch.allclose(full.elbo, half.elbo)  # the reported ELBO always uses beta = 1


@pytest.mark.parametrize("kind", ["normal", "realnvp"])
def test_iwae_training_bound_is_the_logmeanexp_of_the_same_weights(kind, x):
    """With k = 3 the loss is -log (1/3) sum_i w_i over the very z_i the posterior draws,
    which lies between the best weight and their mean (Jensen): tighter than the ELBO."""
    vae = tiny(kind, iwae_k=3)
    out = vae(x, generator=torch.Generator().manual_seed(2))
    q = vae.posterior(x)
    z = q.rsample((3,), generator=torch.Generator().manual_seed(2))          # (3, B, D)
    from models.vae import bernoulli_log_prob
    log_w = bernoulli_log_prob(vae.decode(z), x) + vae.prior.log_prob(z) - q.log_prob(z)
    expected = -(torch.logsumexp(log_w, 0) - math.log(3)).mean()
    assert torch.allclose(out.loss, expected, atol=1e-4)
    assert out.loss <= -log_w.mean() + 1e-4
    assert out.loss >= -log_w.max(0).values.mean() - 1e-4
    assert out.rec_nll.shape == out.kl.shape == (5,) and out.z.shape == (5, 3)
    out.loss.backward()
    assert all(p.grad is not None for p in vae.encoder.parameters())


def test_iwae_k_one_is_the_elbo_and_beta_weighs_the_prior_term(x):
    g = lambda: torch.Generator().manual_seed(5)
    assert torch.allclose(tiny("normal")(x, generator=g()).loss,
                          tiny("normal", iwae_k=1)(x, generator=g()).loss)
    vae = tiny("realnvp", iwae_k=2)
    assert not torch.allclose(vae(x, beta=0.1, generator=g()).loss, vae(x, generator=g()).loss)


@pytest.mark.parametrize("fields", [
    {"prior": "vamp"}, {"latent_dim": 0}, {"beta": -1.0}, {"beta": float("nan")},
    {"posterior": "deterministic", "prior": "realnvp"}, {"posterior": "categorical"},
    {"posterior": "gaussian", "prior": "uniform"}, {"tau_start": 0.5, "tau_end": 1.0},
    {"categories": 1}, {"iwae_k": 0}, {"iwae_k": 2, "posterior": "deterministic"},
    {"iwae_k": 2, "posterior": "categorical", "prior": "uniform"}])
def test_impossible_configs_fail_early(fields):
    with pytest.raises(ValueError):
        VAEConfig(**fields)


def test_binarize_is_a_fair_bernoulli_draw():
    from latentlab.data import binarize

    p = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(100))
    for seed in range(4):
        b = binarize(p, torch.Generator().manual_seed(seed))
        assert set(b.unique().tolist()) <= {0.0, 1.0}
        assert abs(b.mean().item() - p.mean().item()) < 0.05
    draws = [binarize(p, torch.Generator().manual_seed(s)) for s in (2, 3)]
    assert not torch.equal(*draws)
