"""One training step per model kind: (model, x, y, beta) -> (loss, logged scalars).

The trainer, the DDP test and the training benchmark all call these, so a model kind's loss
and what its logs show are defined once.

>>> import torch
>>> from models.vae import VAE, VAEConfig
>>> torch.manual_seed(0) and None
>>> loss, logs = STEPS["vae"](VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)),
...                           torch.rand(3, 1, 28, 28).round(), torch.zeros(3), None)
>>> sorted(logs), bool(loss > 0)
(['elbo', 'kl', 'loss', 'rec_nll'], True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["STEPS", "VQ_KINDS"]


def vae_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float | None) -> tuple:
    out = model(x, beta=beta)
    return out.loss, {"loss": out.loss, "rec_nll": out.rec_nll.mean(), "kl": out.kl.mean(),
                      "elbo": out.elbo.mean()}


def classifier_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float | None) -> tuple:
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    return loss, {"loss": loss, "acc": (logits.argmax(-1) == y).float().mean()}


def vqvae_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float | None) -> tuple:
    out = model(x)
    logs = {k: v for k, v in out._asdict().items() if torch.is_tensor(v) and v.dim() == 0}
    return out.loss, logs


def vqvae2_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: float | None) -> tuple:
    out = model(x)
    return out.loss, {"loss": out.loss, "recon": out.recon, "top_recon": out.top_recon,
                      "commitment": out.commitment,
                      "perplexity_top": out.perplexity[0], "perplexity_bottom": out.perplexity[1]}


STEPS: dict[str, Callable] = {"vae": vae_step, "classifier": classifier_step, "vqvae": vqvae_step,
                              "vqvae2": vqvae2_step}
VQ_KINDS = ("vqvae", "vqvae2")  # a code prior is fitted after the auto-encoder's epochs
