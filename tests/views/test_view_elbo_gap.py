"""ELBO gap panel: the bounds' order, L_1 = ELBO in expectation, and prior sampling against a
numerically integrated log p(x).

Closed-form check used here: for a 2-D latent, p(x) = integral of p(x|z) N(z; 0, I) dz is
computed on a 121 x 121 grid over [-6, 6]^2 (Riemann sum, done in log space), and the naive
estimate log (1/K) sum_k p(x|z_k), z_k ~ p(z), at K = 2000 must match it, while the ELBO lies
below it and L_K in between.
"""

import math

import numpy as np
import pytest
import torch

from latentlab.errors import InputError
from latentlab.views import elbo_gap
from models.vae import VAE, VAEConfig

K_MAX, REPEATS = 2000, 6


@pytest.fixture(scope="module")
def toy():
    """A tiny 2-D VAE whose decoder reacts strongly to z (so the bounds differ) and a bar image."""
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=2, channels=2, hidden=8)).eval()
    with torch.no_grad():
        model.decoder_fc[0].weight.mul_(8.0)
    image = np.zeros((28, 28), np.float32)
    image[8:20, 12:16] = 0.9
    return model, image


@pytest.fixture(scope="module")
def curves(toy):
    model, image = toy
    return elbo_gap.gap_curves(model, elbo_gap.binary_image(image), elbo_gap.k_grid(K_MAX),
                               REPEATS, seed=0)


@pytest.fixture(scope="module")
def log_px(toy) -> float:
    """log p(x) by numerical integration over a grid of z (the latent is 2-D)."""
    model, image = toy
    axis = np.linspace(-6.0, 6.0, 121)
    z1, z2 = np.meshgrid(axis, axis)
    z = torch.from_numpy(np.stack([z1.ravel(), z2.ravel()], -1)).float()   # (M, 2)
    x = elbo_gap.binary_image(image)
    with torch.no_grad():
        ll = torch.cat([model.likelihood(zc).log_prob(x) for zc in z.split(2048)]).double()
    joint = ll + model.prior.log_prob(z).double()
    return torch.logsumexp(joint, 0).item() + 2 * math.log(axis[1] - axis[0])


def test_grid_and_shapes(curves):
    assert curves.ks.tolist() == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
    for part in (curves.naive, curves.elbo, curves.iwae):
        assert part.shape == (REPEATS, len(curves.ks))
        assert np.isfinite(part).all()


def test_iwae_bound_lies_above_the_elbo_and_grows(curves):
    elbo = curves.elbo[:, -1].mean()
    iwae = curves.iwae.mean(0)                                               # (G,)
    spread = curves.iwae.std(0) / math.sqrt(REPEATS)
    assert (iwae >= elbo - 3 * spread - 1e-9).all()
    assert iwae[-1] > elbo + 0.1                                             # a visible gap
    # non-decreasing in expectation: each mean may dip by noise only
    assert (np.diff(iwae) >= -3 * (spread[1:] + spread[:-1]) - 1e-9).all()
    assert curves.gap == pytest.approx(float((curves.iwae[:, -1] - curves.elbo[:, -1]).mean()))


def test_l1_equals_the_elbo_in_expectation(toy):
    model, image = toy
    c = elbo_gap.gap_curves(model, elbo_gap.binary_image(image), np.array([1, 10]), 300, seed=1)
    l1, elbo = c.iwae[:, 0], c.elbo[:, -1]      # log w_1 vs the mean of 10 log w per repeat
    se = math.sqrt(l1.var() / len(l1) + elbo.var() / len(elbo))
    assert abs(l1.mean() - elbo.mean()) < 4 * se
    assert np.array_equal(c.iwae[:, 0], c.elbo[:, 0])                      # K = 1: the same draw


def test_naive_estimate_matches_the_integral(curves, log_px):
    naive = curves.naive[:, -1]
    assert abs(naive.mean() - log_px) < max(0.05, 4 * naive.std() / math.sqrt(REPEATS))
    assert curves.elbo[:, -1].mean() < log_px
    assert curves.iwae[:, -1].mean() <= log_px + 0.05
    assert curves.iwae[:, -1].mean() > curves.elbo[:, -1].mean()


def test_run_outputs_and_seeds(toy):
    model, image = toy
    a = elbo_gap.run(model, image, k_max=50, repeats=2, seed=3)
    b = elbo_gap.run(model, image, k_max=50, repeats=2, seed=3)
    assert np.array_equal(a.curves.iwae, b.curves.iwae)
    assert a.figure.layout.xaxis.type == "log" and a.figure.layout.xaxis2.type == "log"
    assert [row[0] for row in a.table] == [1, 2, 5, 10, 20, 50]
    assert "KL(q(z|x) ‖ p(z|x))" in a.summary
    # the image is binarized at 0.5: grey values below it score as 0
    c = elbo_gap.run(model, np.where(image > 0, 0.4, 0.0), k_max=10, repeats=1, seed=0)
    d = elbo_gap.run(model, np.zeros((28, 28)), k_max=10, repeats=1, seed=0)
    assert np.array_equal(c.curves.iwae, d.curves.iwae)


@pytest.mark.parametrize("kwargs", [{"k_max": 5}, {"k_max": 6000}, {"repeats": 0},
                                    {"seed": -1}, {"seed": 1.5}, {"k_max": float("nan")}])
def test_bad_numbers_are_input_errors(toy, kwargs):
    model, image = toy
    with pytest.raises(InputError):
        elbo_gap.run(model, image, **kwargs)


def test_bad_image_and_model_are_input_errors(toy):
    model, image = toy
    with pytest.raises(InputError, match="28x28"):
        elbo_gap.run(model, np.zeros((27, 28)))
    with pytest.raises(InputError, match="NaN"):
        elbo_gap.run(model, np.full((28, 28), np.nan))
    ae = VAE(VAEConfig(latent_dim=2, channels=2, hidden=8, posterior="deterministic")).eval()
    with pytest.raises(InputError, match="Gaussian posterior"):
        elbo_gap.run(ae, image)


def test_prior_decodes_are_kept_per_model_seed_and_repeats(toy, monkeypatch):
    model, image = toy
    monkeypatch.setattr(elbo_gap, "_prior_cache", elbo_gap.OrderedDict())
    first = elbo_gap.prior_decodes(model, 2, seed=4)
    assert elbo_gap.prior_decodes(model, 2, seed=4) is first                 # a hit
    assert elbo_gap.prior_decodes(model, 2, seed=5) is not first             # another seed
    # the kept draws score a new image exactly as fresh draws would, and K reads a prefix
    x = elbo_gap.binary_image(image)
    fresh = elbo_gap._PriorDecodes(model, 2, seed=4, k=50).log_lik(x, 50)
    assert torch.equal(first.log_lik(x, 50), fresh)
    assert torch.equal(first.log_lik(x, 20), fresh[:, :20])
    with pytest.raises(ValueError):
        elbo_gap._PriorDecodes(model, 2, seed=4, k=50).log_lik(x, 51)
    # the byte budget evicts the oldest entry and never keeps a request over half of it
    monkeypatch.setattr(elbo_gap, "PRIOR_CACHE_BYTES", int(2.5 * first.nbytes))
    elbo_gap.prior_decodes(model, 2, seed=6)
    assert len(elbo_gap._prior_cache) == 2
    elbo_gap.prior_decodes(model, 3, seed=4, k=10)
    assert len(elbo_gap._prior_cache) == 2 and all(k[1] == 2 for k in elbo_gap._prior_cache)


def test_a_cached_and_an_uncached_run_agree(toy, monkeypatch):
    model, image = toy
    monkeypatch.setattr(elbo_gap, "_prior_cache", elbo_gap.OrderedDict())
    kept = elbo_gap.run(model, image, k_max=100, repeats=2, seed=1)
    monkeypatch.setattr(elbo_gap, "PRIOR_CACHE_BYTES", 0)
    monkeypatch.setattr(elbo_gap, "_prior_cache", elbo_gap.OrderedDict())
    fresh = elbo_gap.run(model, image, k_max=100, repeats=2, seed=1)
    assert np.array_equal(kept.curves.naive, fresh.curves.naive)
    assert np.array_equal(kept.curves.iwae, fresh.curves.iwae)
