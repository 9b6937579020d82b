"""Variational auto-encoder with a Bernoulli decoder and a choice of posterior and prior.

ELBO (per image), with a reparameterized z ~ q_phi(z|x):

    L(x) = E_q(z|x)[log p_theta(x|z)] - beta * KL(q_phi(z|x) || p(z))

Variants come from the config, not from copied classes:

* ``posterior="gaussian"``: z = mu + sigma * eps; prior N(0, I) (analytic KL) or the RealNVP
  flow p_lambda(z) (one-sample Monte Carlo KL, trained jointly).
* ``posterior="deterministic"``: a plain autoencoder, z = mu, loss = reconstruction only.
* ``posterior="categorical"``: ``latent_dim`` categoricals of ``categories`` classes relaxed by
  Gumbel-softmax at a temperature annealed from ``tau_start`` to ``tau_end`` (straight-through
  when asked), uniform prior, exact categorical KL.

``iwae_k > 1`` trains a Gaussian-posterior model on the importance-weighted bound instead,
L_k(x) = E log (1/k) sum_i p_theta(x|z_i) p(z_i) / q_phi(z_i|x) >= ELBO (Burda et al., 2016):
the same model, a tighter objective, k decoder passes per image.

>>> vae = VAE(VAEConfig(latent_dim=2))
>>> out = vae(torch.bernoulli(torch.rand(4, 1, 28, 28)))
>>> out.loss.shape, out.kl.shape
(torch.Size([]), torch.Size([4]))
>>> type(vae.posterior(torch.zeros(4, 1, 28, 28))).__name__
'DiagonalGaussian'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Distribution, Independent

from models.distributions import DiagonalGaussian, GumbelSoftmax, PointMass
from models.nets import conv_down, conv_up
from models.priors import make_prior

POSTERIOR_PRIORS = {"gaussian": ("normal", "realnvp"), "deterministic": ("normal",),
                    "categorical": ("uniform",)}


@dataclass
class VAEConfig:
    """Everything needed to rebuild a VAE from ``config.json``."""

    dataset: str = "mnist"
    latent_dim: int = 16      # Gaussian dims, or the number of categorical latents
    channels: int = 32        # first conv width (doubles at 7x7): fast enough for a 2-core CPU
    hidden: int = 256         # fully connected layer between the 7x7 map and z
    prior: str = "normal"     # "normal" = N(0, I), "realnvp" = flow p_lambda(z), "uniform" (categorical)
    flow_layers: int = 8      # couplings: 8 lets every dim be transformed 4 times
    flow_hidden: int = 128    # width of each coupling's MLP
    beta: float = 1.0         # weight of the KL term (beta-VAE); 1 gives the true ELBO
    posterior: str = "gaussian"   # "gaussian" (VAE), "deterministic" (autoencoder), "categorical"
    categories: int = 10      # classes per categorical latent (posterior="categorical")
    tau_start: float = 1.0    # Gumbel-softmax temperature at the start of training ...
    tau_end: float = 0.5      # ... annealed exponentially to this at the end
    straight_through: bool = False  # hard one-hot forward, soft gradient backward
    iwae_k: int = 1           # importance samples in the training bound: 1 = the ELBO, k > 1 = L_k

    def __post_init__(self):
        if self.latent_dim < 1 or self.categories < 2:
            raise ValueError("latent_dim must be >= 1 and categories >= 2")
        if self.posterior not in POSTERIOR_PRIORS:
            raise ValueError(f"posterior must be one of {sorted(POSTERIOR_PRIORS)}, "
                             f"not {self.posterior!r}")
        if self.prior not in POSTERIOR_PRIORS[self.posterior]:
            raise ValueError(f"posterior={self.posterior!r} goes with prior in "
                             f"{POSTERIOR_PRIORS[self.posterior]}, not {self.prior!r}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ValueError("beta must be a finite number >= 0")
        if not (0 < self.tau_end <= self.tau_start and math.isfinite(self.tau_start)):
            raise ValueError("the temperatures need 0 < tau_end <= tau_start")
        if self.iwae_k < 1 or (self.iwae_k > 1 and self.posterior != "gaussian"):
            raise ValueError("iwae_k must be >= 1, and above 1 it needs posterior='gaussian' "
                             "(the bound weighs each z by its density under q(z|x))")

    @property
    def code_size(self) -> int:
        """Width of the decoder's input: D, or N * K for categorical latents."""
        return self.latent_dim * (self.categories if self.posterior == "categorical" else 1)


class VAEOutput(NamedTuple):
    loss: torch.Tensor        # scalar: mean of rec_nll + beta * kl, or -L_k (what is minimised)
    elbo: torch.Tensor        # (B,) ELBO in nats with beta = 1
    rec_nll: torch.Tensor     # (B,) -log p_theta(x|z) for the sampled z
    kl: torch.Tensor          # (B,) KL(q(z|x) || p(z)), analytic or one-sample estimate
    z: torch.Tensor           # (B, D) or (B, N, K) the reparameterized sample
    logits: torch.Tensor      # (B, 1, 28, 28) Bernoulli logits of p_theta(x|z)


# ----------------------------------------------------------------------------- helpers

def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p_theta(x|z) for binary x, summed over pixels: (..., 1, 28, 28) -> (...)."""
    x = x.expand_as(logits)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(-3).sum(-1)


# ----------------------------------------------------------------------------- model

class VAE(nn.Module):
    """Convolutional VAE (or autoencoder, or Gumbel-softmax VAE), chosen by the config.

    Verbs: ``posterior`` (q_phi(z|x) as a distribution), ``likelihood`` (p_theta(x|z) as a
    distribution), ``decode_probs`` (pixel probabilities), ``kl``, ``sample`` (images from
    the prior), ``log_importance_weights`` (for the IWAE bound), ``anneal`` (tau schedule).

    >>> ae = VAE(VAEConfig(latent_dim=2, posterior="deterministic"))
    >>> ae.decode_probs(torch.zeros(3, 2)).shape
    torch.Size([3, 1, 28, 28])
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        c, d = config.channels, config.latent_dim
        heads = {"gaussian": 2 * d, "deterministic": d, "categorical": config.code_size}
        self.encoder = nn.Sequential(
            conv_down(1, c), nn.Flatten(),                    # (B, 2C*49)
            nn.Linear(2 * c * 49, config.hidden), nn.SiLU(),
            nn.Linear(config.hidden, heads[config.posterior]),  # (B, 2D) mu, logvar | (B, N*K)
        )
        self.decoder_fc = nn.Sequential(
            nn.Linear(config.code_size, config.hidden), nn.SiLU(),
            nn.Linear(config.hidden, 2 * c * 49), nn.SiLU(),
        )
        self.decoder_conv = conv_up(c, 1)
        self.prior = make_prior(config.prior, d, config.flow_layers, config.flow_hidden,
                                config.categories)
        self.tau = config.tau_start

    # -- encoder ----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 1, 28, 28) -> Gaussian posterior mean and log-variance, each (B, D)."""
        if self.config.posterior != "gaussian":
            raise ValueError(f"encode gives (mu, logvar) of a Gaussian posterior; this model's "
                             f"is {self.config.posterior}: use posterior(x)")
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)  # keeps exp() finite early in training

    def posterior(self, x: torch.Tensor) -> Distribution:
        """q_phi(z|x) for x (B, 1, 28, 28): batch shape (B,), with a seeded ``rsample``."""
        if self.config.posterior == "gaussian":
            return DiagonalGaussian(*self.encode(x))
        h = self.encoder(x)
        if self.config.posterior == "deterministic":
            return PointMass(h)                                             # (B, D)
        logits = h.view(-1, self.config.latent_dim, self.config.categories)  # (B, N, K)
        return GumbelSoftmax(logits, self.tau, self.config.straight_through)

    # -- decoder ----------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) or (..., N, K) -> Bernoulli logits (..., 1, 28, 28)."""
        event = 2 if self.config.posterior == "categorical" else 1
        lead = z.shape[:-event]
        h = self.decoder_fc(z.reshape(-1, self.config.code_size))            # (M, 2C*49)
        h = h.view(-1, 2 * self.config.channels, 7, 7)                       # (M, 2C, 7, 7)
        return self.decoder_conv(h).view(*lead, 1, 28, 28)

    def likelihood(self, z: torch.Tensor) -> Distribution:
        """p_theta(x|z): independent Bernoulli pixels, event shape (1, 28, 28)."""
        return Independent(Bernoulli(logits=self.decode(z)), 3)

    def decode_probs(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's pixel probabilities E[x|z] in [0, 1]: (..., 1, 28, 28)."""
        return torch.sigmoid(self.decode(z))

    # -- prior and objective ------------------------------------------------------
    def kl(self, q: Distribution, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) with the shape of z less its event dims; 0 for an autoencoder."""
        if self.config.posterior == "deterministic":
            return z.new_zeros(z.shape[:-1])
        return self.prior.kl(q, z)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 1, 28, 28) as pixel probabilities, z drawn from the prior."""
        return self.decode_probs(self.prior.sample(n, temperature, generator))

    def posterior_samples(self, q: Distribution, k: int,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """k draws z ~ q(z|x), (k, B, ...): reparameterized, or exact one-hot codes for a
        categorical posterior outside training (the discrete model the relaxation stands for)."""
        if isinstance(q, GumbelSoftmax) and not self.training:
            return q.sample((k,), generator=generator)
        return q.rsample((k,), generator=generator)

    def anneal(self, progress: float) -> float:
        """Set the Gumbel-softmax temperature for training progress in [0, 1] (exponential)."""
        c = self.config
        self.tau = c.tau_start * (c.tau_end / c.tau_start) ** min(max(progress, 0.0), 1.0)
        return self.tau

    def forward(self, x: torch.Tensor, beta: float | None = None,
                generator: torch.Generator | None = None) -> VAEOutput:
        """The training objective on x (B, 1, 28, 28); the logged terms are from one z each."""
        q = self.posterior(x)
        b = self.config.beta if beta is None else beta
        if self.config.iwae_k > 1:
            return self._iwae_forward(x, q, b, generator)
        z = self.posterior_samples(q, 1, generator)[0]                       # (B, D) | (B, N, K)
        logits = self.decode(z)
        rec_nll = -bernoulli_log_prob(logits, x)                             # (B,)
        kl = self.kl(q, z)                                                   # (B,)
        loss = (rec_nll + b * kl).mean()
        return VAEOutput(loss, -(rec_nll + kl), rec_nll, kl, z, logits)

    def _iwae_forward(self, x: torch.Tensor, q: Distribution, beta: float,
                      generator: torch.Generator | None) -> VAEOutput:
        """Minimises -L_k, L_k = E log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) (Burda et al.,
        2016): a tighter bound than the ELBO, so q need not fit p(z|x) to keep log p(x) high.
        beta weighs log p(z_i) - log q(z_i|x) inside each weight (the warm-up's lever)."""
        k = self.config.iwae_k
        z = self.posterior_samples(q, k, generator)                          # (k, B, D)
        logits = self.decode(z)                                              # (k, B, 1, 28, 28)
        rec_nll = -bernoulli_log_prob(logits, x.unsqueeze(0))                # (k, B)
        kl = q.log_prob(z) - self.prior.log_prob(z)                          # (k, B) one-z estimates
        bound = torch.logsumexp(-(rec_nll + beta * kl), dim=0) - math.log(k)  # (B,)
        return VAEOutput(-bound.mean(), -(rec_nll[0] + kl[0]), rec_nll[0], kl[0], z[0], logits[0])

    @torch.no_grad()
    def importance_terms(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log p(x|z_i), log p(z_i), log q(z_i|x)) for z_i ~ q(z|x), each of shape (k, B).

        A categorical posterior proposes exact one-hot codes (Gumbel-max), so the bound is
        on the discrete model's log p(x), not on a relaxation of it.
        """
        if self.config.posterior == "deterministic":
            raise ValueError("a plain autoencoder has no posterior density: no ELBO, no IWAE bound")
        q = self.posterior(x)
        z = self.posterior_samples(q, k, generator)                          # (k, B, D) | (k, B, N, K)
        log_px = bernoulli_log_prob(self.decode(z), x.unsqueeze(0))          # (k, B)
        return log_px, self.prior.log_prob(z), q.log_prob(z)

    def log_importance_weights(self, x: torch.Tensor, k: int,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x): shape (k, B)."""
        log_px, log_pz, log_q = self.importance_terms(x, k, generator)
        return log_px + log_pz - log_q
