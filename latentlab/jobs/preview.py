"""The picture a training job shows after each epoch: test images, reconstructions, samples."""

from __future__ import annotations

import numpy as np
import torch

from latentlab import data, render
from models.vqvae import VQVAE


def reconstruction_rows(model: torch.nn.Module, dataset: str, n: int, device: torch.device
                        ) -> list[torch.Tensor]:
    """The first n test images and their reconstructions, each (n, 1, 28, 28) in [0, 1].

    A VQ-VAE sees grey images and reconstructs them through its code grid; a VAE sees the
    binarized test set and decodes the posterior mean E_q[z] (the class probabilities for
    categorical latents) to pixel probabilities.
    """
    if isinstance(model, VQVAE):
        x = data.load_split(dataset, train=False)[0][:n].to(device)
        return [x, model.decode_indices(model.encode_to_indices(x))]
    x = data.binarized_test_set(dataset)[:n].to(device)
    return [x, model.decode_probs(model.posterior(x).mean)]


@torch.no_grad()
def preview_grid(model: torch.nn.Module, dataset: str, samples: bool = True, n: int = 8,
                 seed: int = 1234) -> np.ndarray:
    """Test images, their reconstructions and (optionally) samples, as one uint8 RGB grid.

    Uses the models' verbs only and a seeded generator of its own, so a preview never
    changes what training draws next; the model's train/eval mode is left as it was.

    >>> from models.vae import VAE, VAEConfig
    >>> vae = VAE(VAEConfig(latent_dim=2, channels=4, hidden=8))
    >>> preview_grid(vae, "mnist", n=4).shape       # 3 rows of 4 images, 3x upscaled
    (260, 346, 3)
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rows = reconstruction_rows(model, dataset, n, device)
    if samples:
        gen = torch.Generator(device=device).manual_seed(seed)
        rows.append(model.sample(n, generator=gen))
    model.train(was_training)
    images = torch.cat(rows)[:, 0].float().clamp(0, 1).cpu().numpy()        # (rows * n, 28, 28)
    return render.tile(images, cols=n)
