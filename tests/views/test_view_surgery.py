"""ELBO surgery panel: the split adds up, the densities integrate to one, shapes and seeds."""

import math

import numpy as np
import pytest
import torch

from latentlab.errors import InputError
from latentlab.views import surgery
from models.vae import VAE, VAEConfig


def tiny(prior: str) -> VAE:
    torch.manual_seed(0 if prior == "normal" else 1)
    return VAE(VAEConfig(latent_dim=2, channels=2, hidden=8, prior=prior, flow_layers=2,
                         flow_hidden=8)).eval()


@pytest.fixture(scope="module")
def models():
    return tiny("normal"), tiny("realnvp")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.bernoulli(torch.rand(30, 1, 28, 28, generator=torch.Generator().manual_seed(3)))


@pytest.fixture(scope="module")
def summaries(models, images):
    vae, flow = models
    return (surgery.summarize(vae, images, n_samples=2, extent=8.0, size=161),
            surgery.summarize(flow, images, n_samples=2, extent=8.0, size=161))


def test_parts_add_up_and_are_passed_through(models, summaries):
    out = surgery.run(*models, *summaries, n_samples=4, seed=0)
    assert out.surgery["vae"] is summaries[0].surgery and out.surgery["flow"] is summaries[1].surgery
    rec, mi, marginal, elbo = (row[1:] for row in out.table[:4])
    for col in range(2):
        assert rec[col] + mi[col] + marginal[col] == pytest.approx(elbo[col], abs=0.02)
    for key, col in (("vae", 1), ("flow", 2)):
        split = out.surgery[key]
        assert split["reconstruction"] - split["mutual_information"] - split["marginal_kl"] \
            == pytest.approx(split["elbo"], abs=1e-9)
        assert out.table[3][col] == round(split["elbo"], 2)


@pytest.mark.parametrize("which", ["prior_normal", "prior_flow", "agg_flow", "agg_normal"])
def test_densities_integrate_to_one(summaries, which):
    kind, model = which.split("_")
    s = summaries[0 if model == "normal" else 1]
    logd = s.log_prior if kind == "prior" else s.log_agg
    dz = s.axis[1] - s.axis[0]
    assert np.exp(logd).sum() * dz**2 == pytest.approx(1.0, abs=0.02)


def test_normal_panel_is_the_closed_form(models, summaries):
    out = surgery.run(*models, *summaries, n_samples=1, seed=0)
    z1, z2 = np.meshgrid(out.axis, out.axis)
    np.testing.assert_allclose(out.densities[0], -0.5 * (z1**2 + z2**2) - math.log(2 * math.pi),
                               atol=1e-5)


def test_shapes_and_seeds(models, summaries):
    a = surgery.run(*models, *summaries, n_samples=16, seed=7)
    b = surgery.run(*models, *summaries, n_samples=16, seed=7)
    c = surgery.run(*models, *summaries, n_samples=16, seed=8)
    side = 28 * 2 + 2
    for image in (a.samples_normal, a.samples_flow, a.samples_agg):
        assert image.shape == (4 * side + 2, 4 * side + 2, 3) and image.dtype == np.uint8
    assert a.densities.shape == (3, 161, 161)
    assert [t.type for t in a.figure.data] == ["heatmap"] * 3
    assert np.array_equal(a.samples_agg, b.samples_agg)
    assert not np.array_equal(a.samples_agg, c.samples_agg)


def test_bad_inputs_are_input_errors(models, summaries, images):
    vae, flow = models
    with pytest.raises(InputError, match="RealNVP"):
        surgery.run(vae, vae, *summaries)
    with pytest.raises(InputError, match="N\\(0, I\\)"):
        surgery.run(flow, flow, *summaries)
    small = surgery.summarize(flow, images, size=20)
    with pytest.raises(InputError, match="same grid"):
        surgery.run(vae, flow, summaries[0], small)
    for bad in ({"n_samples": 0}, {"seed": 2.5}):
        with pytest.raises(InputError):
            surgery.run(vae, flow, *summaries, **bad)
