"""Autoencoder panel: code statistics against numpy, shapes, seeds, and input checks."""

import numpy as np
import pytest
import torch

from latentlab.errors import InputError
from latentlab.views import autoencoder
from models.vae import VAE, VAEConfig


def pair(dim: int = 2) -> tuple[VAE, VAE]:
    torch.manual_seed(0)
    ae = VAE(VAEConfig(latent_dim=dim, channels=2, hidden=8, posterior="deterministic")).eval()
    vae = VAE(VAEConfig(latent_dim=dim, channels=2, hidden=8)).eval()
    return ae, vae


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.bernoulli(torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(2)))


def test_stats_match_numpy(images):
    ae, vae = pair(3)
    out = autoencoder.run(ae, vae, images, n_samples=4, seed=0)
    with torch.no_grad():
        codes = ae.posterior(images).mean.double().numpy()                 # (N, D)
        mu, logvar = (t.double().numpy() for t in vae.encode(images))
    np.testing.assert_allclose(out.ae_stats["mean"], codes.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out.ae_stats["std"], codes.std(0), rtol=1e-6)
    m, v = codes.mean(0), codes.var(0)
    assert out.ae_stats["kl"] == pytest.approx(0.5 * np.sum(v + m**2 - 1 - np.log(v)), rel=1e-6)
    # the VAE's aggregated posterior: spread of the means plus the mean posterior variance
    agg_var = mu.var(0) + np.exp(logvar).mean(0)
    np.testing.assert_allclose(out.vae_stats["std"], np.sqrt(agg_var), rtol=1e-6)
    assert [row[0] for row in out.table] == [0, 1, 2]
    assert out.table[1][1] == pytest.approx(round(m[1], 3))


def test_code_stats_of_a_standard_normal_cloud_is_near_zero_kl():
    z = np.random.default_rng(0).standard_normal((20000, 3))
    assert autoencoder.code_stats(z)["kl"] < 0.01
    assert autoencoder.code_stats(3.0 + z)["kl"] == pytest.approx(3 * 4.5, rel=0.02)


def test_shapes_and_figure(images):
    ae, vae = pair(2)
    out = autoencoder.run(ae, vae, images, n_samples=16, seed=1)
    side = 28 * 2 + 2
    assert out.ae_samples.shape == out.vae_samples.shape == (4 * side + 2, 4 * side + 2, 3)
    assert len(out.figure.data) == 4                                         # 2 panels x 2 clouds
    assert len(out.figure.data[1].x) == len(images)
    assert "principal" not in out.figure.layout.annotations[0].text
    out16 = autoencoder.run(*pair(5), images, n_samples=3, seed=1)
    assert "principal components" in out16.figure.layout.annotations[0].text
    assert out16.ae_samples.shape == (2 * side + 2, 2 * side + 2, 3)        # 3 tiles on a 2x2 grid


def test_principal_axes_are_orthonormal_and_find_the_long_axis():
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((500, 4)) * np.array([0.1, 5.0, 0.1, 2.0])
    axes = autoencoder.principal_axes(pts)
    np.testing.assert_allclose(axes.T @ axes, np.eye(2), atol=1e-9)
    assert np.argmax(np.abs(axes[:, 0])) == 1 and np.argmax(np.abs(axes[:, 1])) == 3


def test_same_seed_same_output(images):
    ae, vae = pair(2)
    a = autoencoder.run(ae, vae, images, n_samples=6, seed=5)
    b = autoencoder.run(ae, vae, images, n_samples=6, seed=5)
    c = autoencoder.run(ae, vae, images, n_samples=6, seed=6)
    assert np.array_equal(a.ae_samples, b.ae_samples) and np.array_equal(a.vae_samples, b.vae_samples)
    assert not np.array_equal(a.ae_samples, c.ae_samples)
    assert np.array_equal(a.figure.data[0].x, b.figure.data[0].x)


def test_bad_inputs_are_input_errors(images):
    ae, vae = pair(2)
    with pytest.raises(InputError, match="same size"):
        autoencoder.run(ae, pair(3)[1], images)
    with pytest.raises(InputError, match="plain autoencoder"):
        autoencoder.run(vae, vae, images)
    with pytest.raises(InputError, match="Gaussian posterior"):
        autoencoder.run(ae, ae, images)
    with pytest.raises(InputError, match="test images"):
        autoencoder.run(ae, vae, images[:1])
    for bad in ({"n_samples": 0}, {"n_samples": 65}, {"seed": -3}, {"seed": "x"}):
        with pytest.raises(InputError):
            autoencoder.run(ae, vae, images, **bad)


def test_cached_encodings_give_the_same_panel():
    """The adapter caches ``encode``'s result per model pair: passing it changes nothing."""
    import torch

    from latentlab.views import autoencoder as av
    from models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    ae = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16, posterior="deterministic")).eval()
    vae = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)).eval()
    x = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1)).round()
    fresh = av.run(ae, vae, x, 4, 3)
    cached = av.run(ae, vae, x, 4, 3, encoded=av.encode(ae, vae, x))
    assert fresh.table == cached.table and fresh.summary == cached.summary
    assert (fresh.ae_samples == cached.ae_samples).all()
