"""Reparameterization panel: z = mu + sigma * eps exactly, the right moments, the right gradients."""

import math

import numpy as np
import pytest
import torch

from latentlab.errors import InputError
from latentlab.inputs import generator
from latentlab.views import reparam as rp
from models.distributions import DiagonalGaussian
from models.vae import VAE, VAEConfig

TINY = {"channels": 4, "hidden": 16}


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VAE(VAEConfig(latent_dim=2, **TINY)).eval()


@pytest.fixture(scope="module")
def image():
    return np.asarray(torch.rand((28, 28), generator=torch.Generator().manual_seed(1)))


def test_sample_moments_match_the_posterior():
    mu, sigma = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.5, 2.0]])
    q = DiagonalGaussian(mu, 2 * sigma.log())
    m = 20_000
    _, z = rp.draws(q, m, seed=0)
    z = z[:, 0].double().numpy()                                         # (M, 2)
    s = sigma[0].double().numpy()
    np.testing.assert_allclose(z.mean(0), mu[0].numpy(), atol=float(4 * s.max() / math.sqrt(m)))
    cov = np.cov(z.T)
    np.testing.assert_allclose(np.diag(cov), s**2, rtol=0.05)
    assert abs(cov[0, 1]) < 0.05 * s[0] * s[1]


def test_matching_pairs_satisfy_the_reparameterization_exactly(vae, image):
    out = rp.reparam_panel(vae, image, m=16, seed=3)
    np.testing.assert_array_equal(out.z, out.mu + out.sigma * out.eps)
    q = vae.posterior(torch.from_numpy(image).view(1, 1, 28, 28).float())
    np.testing.assert_allclose(out.mu, q.mu[0].detach().numpy())
    np.testing.assert_allclose(out.sigma, torch.exp(0.5 * q.logvar[0]).detach().numpy())
    again = rp.reparam_panel(vae, image, m=16, seed=3)
    np.testing.assert_array_equal(out.z, again.z)                        # seeded


def test_gradients_through_rsample_are_the_analytic_ones(image):
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=2, **TINY))                         # weights require grad
    q = model.posterior(torch.from_numpy(image).view(1, 1, 28, 28).float())
    m, seed = 64, 5
    z = q.rsample((m,), generator=generator(seed))                       # (M, 1, 2)
    f = 0.5 * z.pow(2).sum(-1).mean()
    g_mu, g_logvar = torch.autograd.grad(f, [q.mu, q.logvar], retain_graph=True)
    eps = torch.randn((m, 1, 2), generator=generator(seed))
    sigma = torch.exp(0.5 * q.logvar)
    torch.testing.assert_close(g_mu, z.mean(0))                          # dz/dmu = I
    torch.testing.assert_close(g_logvar, (z * eps * sigma / 2).mean(0))  # dz/dsigma = diag(eps)
    assert g_mu.abs().min() > 0 and g_logvar.abs().min() > 0
    (g_w,) = torch.autograd.grad(f, [model.encoder[-1].weight])          # phi gets a gradient
    assert g_w.abs().sum() > 0
    v_mu, v_logvar = rp.gradients(q.mu, q.logvar, m, seed)               # what the panel reports
    np.testing.assert_allclose(v_mu, g_mu[0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(v_logvar, g_logvar[0].numpy(), rtol=1e-5, atol=1e-9)


def test_lines_join_matching_points_across_the_two_panels(vae, image):
    out = rp.reparam_panel(vae, image, m=12, seed=0)
    lay = out.figure.layout
    assert len(lay.shapes) == 12

    def data(p, axis):
        (r0, r1), (d0, d1) = axis.range, axis.domain
        return r0 + (p - d0) / (d1 - d0) * (r1 - r0)

    for i, s in enumerate(lay.shapes):
        assert data(s.x0, lay.xaxis) == pytest.approx(out.eps[i, 0], abs=1e-3 * (lay.xaxis.range[1] - lay.xaxis.range[0]))
        assert data(s.y0, lay.yaxis) == pytest.approx(out.eps[i, 1], abs=1e-3 * (lay.yaxis.range[1] - lay.yaxis.range[0]))
        assert data(s.x1, lay.xaxis2) == pytest.approx(out.z[i, 0], abs=1e-3 * (lay.xaxis2.range[1] - lay.xaxis2.range[0]))
        assert data(s.y1, lay.yaxis2) == pytest.approx(out.z[i, 1], abs=1e-3 * (lay.yaxis2.range[1] - lay.yaxis2.range[0]))


def test_decoded_images_are_one_tile_per_sample(vae, image):
    out = rp.reparam_panel(vae, image, m=20, seed=0)
    assert out.images.dtype == np.uint8 and out.images.ndim == 3
    assert out.images.shape[1] == 2 + 16 * (2 * 28 + 2)                  # 16 columns of 2x tiles
    assert out.images.shape[0] == 2 + 2 * (2 * 28 + 2)                   # 2 rows for 20 samples
    assert len(out.figure.to_json()) < 40_000


@pytest.mark.parametrize("cfg", [VAEConfig(latent_dim=4, **TINY),
                                 VAEConfig(latent_dim=2, posterior="deterministic", **TINY)])
def test_models_without_a_2d_gaussian_posterior_are_refused(cfg, image):
    with pytest.raises(InputError):
        rp.reparam_panel(VAE(cfg).eval(), image)


@pytest.mark.parametrize("img, m, seed", [(np.zeros((27, 28)), 16, 0), (np.full((28, 28), np.nan), 16, 0),
                                          (None, 0, 0), (None, 65, 0), (None, 4.5, 0), (None, 16, -1)])
def test_bad_inputs_raise_input_error(vae, image, img, m, seed):
    with pytest.raises(InputError):
        rp.reparam_panel(vae, image if img is None else img, m, seed)
