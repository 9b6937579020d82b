"""Tiny untrained checkpoints for the app, registry and view tests (seconds to build, a few KB each).

``make_tiny_checkpoints(folder)`` writes one of each kind the app shows: a 2-D VAE and its
flow twin, a 4-D VAE (stands in for the 16-D ones), a VQ-VAE, a two-level VQ-VAE, a classifier,
and a broken folder (the app must list it as a warning and carry on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latentlab.checkpoint import save_checkpoint
from models.classifier import Classifier, ClassifierConfig
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig
from models.vqvae2 import VQVAE2, VQVAE2Config

TINY_VAE = {"channels": 4, "hidden": 16, "flow_layers": 2, "flow_hidden": 8}
TINY_VQ = {"num_codes": 16, "code_dim": 4, "channels": 4, "prior_dim": 16, "prior_layers": 1,
           "prior_heads": 2, "kmeans_init": False}
TINY_VQ2 = {**TINY_VQ, "top_codes": 8}


def make_tiny_checkpoints(folder: Path, evaluate: bool = True) -> dict[str, Path]:
    """Write the tiny checkpoints into ``folder``; returns name -> path."""
    torch.manual_seed(0)
    out = {}
    specs = {
        "mnist-vae-z2": VAEConfig(latent_dim=2, prior="normal", **TINY_VAE),
        "mnist-flow-z2": VAEConfig(latent_dim=2, prior="realnvp", **TINY_VAE),
        "mnist-vae-z4": VAEConfig(latent_dim=4, prior="normal", **TINY_VAE),
        "mnist-flow-z4": VAEConfig(latent_dim=4, prior="realnvp", **TINY_VAE),
    }
    for name, cfg in specs.items():
        out[name] = save_checkpoint(folder / name, VAE(cfg).eval(), "vae", cfg, {"test_elbo": -500.0})
    if evaluate:  # real metrics.json keys from the evaluator, on 64 images
        from latentlab.checkpoint import load_checkpoint, update_metrics
        from latentlab.evaluate import EvalConfig, evaluate_model

        model, _ = load_checkpoint(out["mnist-vae-z4"])
        update_metrics(out["mnist-vae-z4"], evaluate_model(
            model, "vae", "mnist", EvalConfig(k=4, limit=64, samples=0, progress=False)))
    cfg = VQVAEConfig(**TINY_VQ)
    out["mnist-vqvae"] = save_checkpoint(folder / "mnist-vqvae", VQVAE(cfg).eval(), "vqvae", cfg, {})
    cfg2 = VQVAE2Config(**TINY_VQ2)
    out["mnist-vqvae2"] = save_checkpoint(folder / "mnist-vqvae2", VQVAE2(cfg2).eval(), "vqvae2",
                                          cfg2, {})
    ccfg = ClassifierConfig(channels=4, features=8)
    out["mnist-classifier"] = save_checkpoint(folder / "mnist-classifier",
                                              Classifier(ccfg).eval(), "classifier", ccfg, {})
    broken = folder / "mnist-broken"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "config.json").write_text("{not json")
    return out


def digit(label: int = 3, index: int = 0) -> np.ndarray:
    """A real MNIST test image (28, 28) in [0, 1] of the given class."""
    from latentlab.data import load_split

    x, y = load_split("mnist", train=False)
    i = int((y == label).nonzero()[index])
    return x[i, 0].numpy()
