"""The per-epoch picture: the right rows for each model, and no side effects on training."""

import numpy as np
import pytest
import torch

from latentlab import data, render
from latentlab.jobs import preview_grid
from latentlab.jobs.preview import reconstruction_rows
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig

MODELS = {
    "gaussian": lambda: VAE(VAEConfig(latent_dim=2, channels=4, hidden=8)),
    "deterministic": lambda: VAE(VAEConfig(latent_dim=2, channels=4, hidden=8,
                                           posterior="deterministic")),
    "categorical": lambda: VAE(VAEConfig(latent_dim=3, channels=4, hidden=8,
                                         posterior="categorical", prior="uniform", categories=4)),
    "vqvae": lambda: VQVAE(VQVAEConfig(num_codes=8, code_dim=4, channels=4, prior_dim=16,
                                       prior_layers=1, prior_heads=2)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_rows_of_test_images_reconstructions_and_samples(name):
    model = MODELS[name]().train()
    rng = torch.get_rng_state()
    grid = preview_grid(model, "mnist", n=4)
    assert torch.equal(torch.get_rng_state(), rng)  # training's random stream is untouched
    assert model.training                            # and so is its mode
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    two_rows = preview_grid(model, "mnist", n=4, samples=False)
    assert two_rows.shape[0] < grid.shape[0] and two_rows.shape[1] == grid.shape[1]
    assert np.array_equal(grid, preview_grid(model, "mnist", n=4))  # seeded samples


@pytest.mark.parametrize("name", ["gaussian", "deterministic", "categorical"])
def test_a_vae_reconstructs_binary_test_images_from_the_posterior_mean(name):
    model = MODELS[name]().eval()
    x, recon = reconstruction_rows(model, "mnist", 4, torch.device("cpu"))
    assert torch.equal(x, data.binarized_test_set("mnist")[:4])
    with torch.no_grad():
        assert torch.allclose(recon, model.decode_probs(model.posterior(x).mean))
    assert 0 <= recon.min() and recon.max() <= 1


def test_a_vqvae_reconstructs_grey_test_images_through_its_codes():
    model = MODELS["vqvae"]().eval()
    x, recon = reconstruction_rows(model, "mnist", 4, torch.device("cpu"))
    assert torch.equal(x, data.load_split("mnist", train=False)[0][:4])
    assert torch.equal(recon, model.decode_indices(model.encode_to_indices(x)))


def test_the_grid_is_the_rows_tiled():
    model = MODELS["gaussian"]().eval()
    rows = reconstruction_rows(model, "mnist", 3, torch.device("cpu"))
    rows.append(model.sample(3, generator=torch.Generator().manual_seed(7)))
    expected = render.tile(torch.cat(rows)[:, 0].detach().clamp(0, 1).numpy(), cols=3)
    assert np.array_equal(preview_grid(model, "mnist", n=3, seed=7), expected)
