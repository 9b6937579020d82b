"""Variational auto-encoder with a Gaussian posterior, Bernoulli decoder and a choice of prior.

ELBO (per image), with the reparameterization z = mu + sigma * eps, eps ~ N(0, I):

    L(x) = E_q(z|x)[log p_theta(x|z)] - beta * KL(q_phi(z|x) || p(z))

With p(z) = N(0, I) the KL is analytic; with the RealNVP prior p_lambda(z) it is the
one-sample Monte Carlo estimate log q_phi(z|x) - log p_lambda(z), trained jointly.

>>> vae = VAE(VAEConfig(latent_dim=2))
>>> out = vae(torch.bernoulli(torch.rand(4, 1, 28, 28)))
>>> out.loss.shape, out.kl.shape
(torch.Size([]), torch.Size([4]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.nets import conv_down, conv_up
from models.priors import LOG_2PI, make_prior


@dataclass
class VAEConfig:
    """Everything needed to rebuild a VAE from ``config.json``."""

    dataset: str = "mnist"
    latent_dim: int = 16      # 16 holds most MNIST structure; 2 lets us draw the latent plane
    channels: int = 32        # first conv width (doubles at 7x7): fast enough for a 2-core CPU
    hidden: int = 256         # fully connected layer between the 7x7 map and z
    prior: str = "normal"     # "normal" = N(0, I), "realnvp" = learned flow prior p_lambda(z)
    flow_layers: int = 8      # couplings: 8 lets every dim be transformed 4 times
    flow_hidden: int = 128    # width of each coupling's MLP
    beta: float = 1.0         # weight of the KL term (beta-VAE); 1 gives the true ELBO

    def __post_init__(self):
        if self.latent_dim < 1:
            raise ValueError("latent_dim must be >= 1")
        if self.prior not in ("normal", "realnvp"):
            raise ValueError(f"prior must be 'normal' or 'realnvp', not {self.prior!r}")
        if self.beta < 0:
            raise ValueError("beta must be >= 0")


class VAEOutput(NamedTuple):
    loss: torch.Tensor        # scalar: mean of rec_nll + beta * kl (what is minimised)
    elbo: torch.Tensor        # (B,) ELBO in nats with beta = 1
    rec_nll: torch.Tensor     # (B,) -log p_theta(x|z) for the sampled z
    kl: torch.Tensor          # (B,) KL(q(z|x) || p(z)), analytic or one-sample estimate
    z: torch.Tensor           # (B, D) the reparameterized sample
    logits: torch.Tensor      # (B, 1, 28, 28) Bernoulli logits of p_theta(x|z)


# ----------------------------------------------------------------------------- helpers

def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dim."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def kl_normal_standard(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension: (..., D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p_theta(x|z) for binary x, summed over pixels: (..., 1, 28, 28) -> (...)."""
    x = x.expand_as(logits)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(-3).sum(-1)


# ----------------------------------------------------------------------------- model

class VAE(nn.Module):
    """Convolutional VAE; the prior is N(0, I) or a RealNVP flow, chosen by the config.

    Verbs: ``encode`` (mu, logvar), ``decode`` (logits), ``sample`` (images from the prior),
    ``log_importance_weights`` (for the IWAE bound).
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        c, d = config.channels, config.latent_dim
        self.encoder = nn.Sequential(
            conv_down(1, c), nn.Flatten(),                    # (B, 2C*49)
            nn.Linear(2 * c * 49, config.hidden), nn.SiLU(),
            nn.Linear(config.hidden, 2 * d),                   # (B, 2D): mu and logvar
        )
        self.decoder_fc = nn.Sequential(
            nn.Linear(d, config.hidden), nn.SiLU(),
            nn.Linear(config.hidden, 2 * c * 49), nn.SiLU(),
        )
        self.decoder_conv = conv_up(c, 1)
        self.prior = make_prior(config.prior, d, config.flow_layers, config.flow_hidden)

    # -- verbs ------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1, 28, 28) -> posterior mean and log-variance, each (B, D)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)  # keeps exp() finite early in training

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) -> Bernoulli logits (..., 1, 28, 28)."""
        lead = z.shape[:-1]
        h = self.decoder_fc(z.reshape(-1, z.shape[-1]))                     # (N, 2C*49)
        h = h.view(-1, 2 * self.config.channels, 7, 7)                       # (N, 2C, 7, 7)
        return self.decoder_conv(h).view(*lead, 1, 28, 28)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 1, 28, 28) as pixel probabilities, z drawn from the prior."""
        return torch.sigmoid(self.decode(self.prior.sample(n, temperature, generator)))

    def kl_terms(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example: analytic for N(0, I), one sample for the flow."""
        if self.config.prior == "normal":
            return kl_normal_standard(mu, logvar).sum(-1)
        return gaussian_log_prob(z, mu, logvar) - self.prior.log_prob(z)

    def forward(self, x: torch.Tensor, beta: float | None = None,
                generator: torch.Generator | None = None) -> VAEOutput:
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps                               # (B, D)
        logits = self.decode(z)
        rec_nll = -bernoulli_log_prob(logits, x)
        kl = self.kl_terms(z, mu, logvar)
        b = self.config.beta if beta is None else beta
        loss = (rec_nll + b * kl).mean()
        return VAEOutput(loss, -(rec_nll + kl), rec_nll, kl, z, logits)

    @torch.no_grad()
    def log_importance_weights(self, x: torch.Tensor, k: int,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x): shape (k, B)."""
        mu, logvar = self.encode(x)                                           # (B, D)
        eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps                               # (k, B, D)
        log_px = bernoulli_log_prob(self.decode(z), x.unsqueeze(0))          # (k, B)
        return log_px + self.prior.log_prob(z) - gaussian_log_prob(z, mu, logvar)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """log (1/k) sum_i w_i, stable: (k, B) -> (B,)."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
