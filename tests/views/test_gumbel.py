"""Gumbel panel: Gumbel-max matches pi, relaxed samples live on the simplex, entropy vs tau."""

import math

import numpy as np
import pytest
import torch

from latentlab.errors import InputError
from latentlab.inputs import generator
from latentlab.views import gumbel as gv
from models.distributions import gumbel_softmax
from models.vae import VAE, VAEConfig


@pytest.mark.parametrize("preset", list(gv.PRESETS))
def test_gumbel_max_frequencies_match_pi(preset):
    lg = gv.parse_logits(preset)
    n = 5000
    freq = gv.gumbel_max_frequencies(lg, n, generator(0))
    pi = gv.log_pi(lg).exp().numpy()
    sd = np.sqrt(pi * (1 - pi) / n)
    assert np.all(np.abs(freq - pi) <= 4 * sd + 1e-12)
    # chi-square with K-1 degrees of freedom, far below a 4-sigma bound of its spread
    chi2 = float((n * (freq - pi) ** 2 / pi).sum())
    df = lg.size - 1
    assert chi2 < df + 4 * math.sqrt(2 * df)


@pytest.mark.parametrize("tau", [0.05, 0.5, 1.0, 5.0])
@pytest.mark.parametrize("preset", list(gv.PRESETS))
def test_relaxed_samples_lie_on_the_simplex(preset, tau):
    y = gv.relaxed_samples(gv.parse_logits(preset), tau, 500, generator(1))
    assert y.shape == (500, gv.parse_logits(preset).size)
    assert (y >= 0).all()
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-9)


@pytest.mark.parametrize("preset", list(gv.PRESETS))
def test_mean_entropy_grows_with_tau_from_zero_to_log_k(preset):
    lg = gv.parse_logits(preset)
    curve = gv.entropy_curve(lg, gv.TAU_GRID, 2000, seed=0)
    assert np.all(np.diff(curve) >= -1e-5)                   # monotone (common random numbers)
    assert curve[0] < 0.1 * math.log(lg.size)                # nearly one-hot at tau = 0.05
    assert curve[-1] <= math.log(lg.size) + 1e-6             # never above the uniform's
    (far,) = gv.entropy_curve(lg, np.array([1e4]), 2000, seed=0)
    assert far == pytest.approx(math.log(lg.size), abs=1e-3)  # y -> uniform as tau grows


@pytest.mark.parametrize("preset", list(gv.PRESETS))
def test_cold_relaxed_samples_average_to_pi(preset):
    lg = gv.parse_logits(preset)
    y = gv.relaxed_samples(lg, 0.05, 5000, generator(2))
    np.testing.assert_allclose(y.mean(0), gv.log_pi(lg).exp().numpy(), atol=0.03)


def test_straight_through_is_one_hot_forward_with_the_softmax_gradient():
    lg, tau = gv.parse_logits("peaked K=3"), 0.7
    hard, grad = gv.straight_through(lg, tau, generator(3))
    soft = gumbel_softmax(gv.log_pi(lg).view(1, 1, -1), tau, generator=generator(3))[0, 0].numpy()
    assert sorted(hard.tolist()) == [0.0, 0.0, 1.0] and hard.argmax() == soft.argmax()
    expected = soft[0] * (np.eye(3)[0] - soft) / tau         # d softmax_1 / d logits
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-12)
    assert np.abs(grad).max() > 0


def test_panel_outputs_and_figures():
    out = gv.gumbel_panel("peaked K=3", tau=0.3, n=1000, seed=0)
    assert out.frequencies.shape == (3,) and out.pi.shape == (3,)
    xs = np.array(out.relaxed_figure.data[1].x)
    assert 0 < len(xs) <= gv.SIMPLEX_POINTS and xs.min() >= -1e-6 and xs.max() <= 1 + 1e-6
    assert "k=1" in out.relaxed_figure.data[3].text
    big = gv.gumbel_panel("K=10 skewed", tau=1.0, n=100, seed=0)
    assert len(big.relaxed_figure.data) == gv.BAR_SAMPLES
    assert len(big.entropy_figure.data[0].x) == len(gv.TAU_GRID)
    again = gv.gumbel_panel("peaked K=3", tau=0.3, n=1000, seed=0)
    np.testing.assert_array_equal(out.frequencies, again.frequencies)  # same seed, same result


@pytest.mark.parametrize("logits", ["", "1", "1, nan", "1, inf", "a, b", [1.0] * 21, [0, 100], None])
def test_bad_logits_raise_input_error(logits):
    with pytest.raises(InputError):
        gv.gumbel_panel(logits, 1.0, 100, 0)


@pytest.mark.parametrize("tau, n, seed", [(0.01, 100, 0), (6.0, 100, 0), (float("nan"), 100, 0),
                                          (1.0, 9, 0), (1.0, 5001, 0), (1.0, 10.5, 0), (1.0, 100, -1)])
def test_out_of_range_numbers_raise_input_error(tau, n, seed):
    with pytest.raises(InputError):
        gv.gumbel_panel("uniform K=3", tau, n, seed)


def test_gumbel_vae_panel_with_a_tiny_categorical_vae():
    cfg = VAEConfig(latent_dim=4, categories=5, posterior="categorical", prior="uniform",
                    channels=4, hidden=16)
    model = VAE(cfg).eval()
    x = torch.rand(3, 28, 28).numpy()
    out = gv.gumbel_vae_panel(model, x, tau=0.5, seed=0)
    assert out.image.ndim == 3 and out.image.dtype == np.uint8
    assert out.image.shape[0] > 3 * 28 * 2                   # three rows of 2x tiles
    with pytest.raises(InputError):
        gv.gumbel_vae_panel(VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)), x)
    with pytest.raises(InputError):
        gv.gumbel_vae_panel(model, x, tau=0.0)
