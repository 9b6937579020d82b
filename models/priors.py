"""Priors over the latent z: N(0, I), a RealNVP flow p_lambda(z), and uniform categoricals.

Each is an ``nn.Module`` with the interface of a ``torch.distributions.Distribution``:
``log_prob(z)`` and ``sample(n)`` (plus ``rsample``), and ``kl(q, z)``, the KL of a posterior
``q`` against it with one output shape, ``z.shape`` less the event dims: analytic for N(0, I)
and the uniform categorical, the Monte Carlo term log q(z|x) - log p(z) for the flow.
The flow maps data-side z to base-side z* = f_lambda(z), and back with g_lambda = f^-1:

    log p_lambda(z) = log N(f_lambda(z); 0, I) + log |det df_lambda/dz|

>>> prior = RealNVPPrior(dim=2, layers=4, hidden=32)
>>> z = prior.sample(5)
>>> prior.log_prob(z).shape
torch.Size([5])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from models.distributions import LOG_2PI, kl_categorical_uniform, kl_normal_standard

# ----------------------------------------------------------------------------- helpers

def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension: (..., D) -> (...)."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def _coupling_masks(dim: int, layers: int) -> torch.Tensor:
    """Binary masks (layers, dim): 1 = passed through and conditioned on, 0 = transformed.

    Alternating even/odd and first-half/second-half patterns, each followed by its
    complement, so every dimension is transformed and every pair of dims interacts.
    """
    idx = torch.arange(dim, device="cpu")  # a meta-device arange would pull in torch._dynamo
    patterns = [(idx % 2 == 0), (idx < dim // 2 if dim > 1 else idx >= 0)]
    masks = []
    for i in range(layers):
        m = patterns[(i // 2) % len(patterns)]
        masks.append(m if i % 2 == 0 else ~m)
    return torch.stack(masks).float()


# ----------------------------------------------------------------------------- priors

class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I): the fixed prior of the plain VAE.

    >>> StandardNormalPrior(2).log_prob(torch.zeros(1, 2))
    tensor([-1.8379])
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # tracks the device

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def kl(self, q: Distribution, z: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, sigma^2) || N(0, I)), analytic, broadcast to z's sample shape: (..., B)."""
        return kl_normal_standard(q.mu, q.logvar).sum(-1).expand(z.shape[:-1])

    def rsample(self, n: int, temperature: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(n, self.dim, generator=generator, device=self._anchor.device)
        return eps * temperature

    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(n, temperature, generator)

    def to_base(self, z: torch.Tensor) -> torch.Tensor:
        """The base-space point z* (identity: N(0, I) has no flow)."""
        return z

    def from_base(self, z_star: torch.Tensor) -> torch.Tensor:
        return z_star


class AffineCoupling(nn.Module):
    """z*_b = z_b * exp(s(z_a)) + t(z_a) on the unmasked dims b; z_a passes through.

    The log-scale is bounded by ``scale_cap * tanh(.)`` so an early large step cannot blow
    the density up; the last layer starts at zero so each coupling starts as the identity.
    """

    def __init__(self, mask: torch.Tensor, hidden: int, scale_cap: float = 2.0):
        super().__init__()
        dim = mask.numel()
        self.register_buffer("mask", mask)
        self.scale_cap = scale_cap
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2 * dim),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, z_kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(z_kept).chunk(2, dim=-1)                 # (B, D) each
        s = self.scale_cap * torch.tanh(s / self.scale_cap)
        free = 1.0 - self.mask
        return s * free, t * free

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f: z -> z*, with log|det dz*/dz| of shape (B,)."""
        s, t = self._scale_shift(z * self.mask)
        return z * torch.exp(s) + t, s.sum(-1)

    def inverse(self, z_star: torch.Tensor) -> torch.Tensor:
        """g: z* -> z (the kept dims are equal on both sides, so s and t are recomputed)."""
        s, t = self._scale_shift(z_star * self.mask)
        return (z_star - t) * torch.exp(-s)


class RealNVPPrior(nn.Module):
    """Learned prior p_lambda(z): a stack of affine couplings on top of N(0, I).

    >>> prior = RealNVPPrior(dim=4, layers=2, hidden=16)
    >>> z = torch.randn(3, 4)
    >>> torch.allclose(prior.from_base(prior.to_base(z)), z, atol=1e-5)
    True
    """

    def __init__(self, dim: int, layers: int = 8, hidden: int = 128, scale_cap: float = 2.0):
        super().__init__()
        self.dim = dim
        self.couplings = nn.ModuleList(
            AffineCoupling(m, hidden, scale_cap) for m in _coupling_masks(dim, layers))

    def forward_with_logdet(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z* = f_lambda(z) and log|det J_f| (B,)."""
        logdet = z.new_zeros(z.shape[:-1])
        for layer in self.couplings:
            z, ld = layer(z)
            logdet = logdet + ld
        return z, logdet

    def to_base(self, z: torch.Tensor) -> torch.Tensor:
        return self.forward_with_logdet(z)[0]

    def from_base(self, z_star: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.couplings):
            z_star = layer.inverse(z_star)
        return z_star

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        z_star, logdet = self.forward_with_logdet(z)
        return standard_normal_log_prob(z_star) + logdet

    def kl(self, q: Distribution, z: torch.Tensor) -> torch.Tensor:
        """One-sample-per-z Monte Carlo KL: log q(z|x) - log p_lambda(z), shape (..., B)."""
        return q.log_prob(z) - self.log_prob(z)

    def rsample(self, n: int, temperature: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.couplings[0].mask.device
        z_star = torch.randn(n, self.dim, generator=generator, device=device) * temperature
        return self.from_base(z_star)

    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(n, temperature, generator)


class UniformCategoricalPrior(nn.Module):
    """p(c) = prod_n Uniform(K): the prior of the Gumbel-softmax VAE, over one-hot (N, K) codes.

    >>> prior = UniformCategoricalPrior(20, 10)
    >>> prior.sample(3).shape, round(prior.log_prob(prior.sample(1)).item(), 2)
    (torch.Size([3, 20, 10]), -46.05)
    """

    def __init__(self, latents: int, categories: int):
        super().__init__()
        self.latents, self.categories = latents, categories
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, one_hot: torch.Tensor) -> torch.Tensor:
        """-N log K for every code (soft points inside the simplex get the same value)."""
        return one_hot.new_full(one_hot.shape[:-2], -self.latents * math.log(self.categories))

    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n one-hot codes (n, N, K); the temperature does not change a uniform draw."""
        idx = torch.randint(self.categories, (n, self.latents), generator=generator,
                            device=self._anchor.device)
        return F.one_hot(idx, self.categories).float()

    def kl(self, q: Distribution, z: torch.Tensor) -> torch.Tensor:
        """Exact KL(q(c|x) || Uniform), broadcast to z's sample shape: (..., B)."""
        return kl_categorical_uniform(q.logits).expand(z.shape[:-2])


def make_prior(kind: str, dim: int, layers: int = 8, hidden: int = 128,
               categories: int = 10) -> nn.Module:
    """Build the prior named in a config: 'normal', 'realnvp' or 'uniform' (categorical)."""
    if kind == "normal":
        return StandardNormalPrior(dim)
    if kind == "realnvp":
        return RealNVPPrior(dim, layers, hidden)
    if kind == "uniform":
        return UniformCategoricalPrior(dim, categories)
    raise ValueError(f"unknown prior {kind!r}; choose 'normal', 'realnvp' or 'uniform'")
