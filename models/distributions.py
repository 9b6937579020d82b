"""Posterior distributions the encoders return, with seeded ``rsample``.

``torch.distributions`` draws from the global random stream; the app answers many visitors
from threads at once and promises the same picture for the same seed, so these subclasses
also take a ``torch.Generator``. Each is a ``torch.distributions.Distribution``:

* ``DiagonalGaussian``: q_phi(z|x) = N(mu, diag(sigma^2)), reparameterized z = mu + sigma * eps.
* ``PointMass``: the plain autoencoder's code, z = mu (no spread, no sampling).
* ``GumbelSoftmax``: N categorical latents of K classes, relaxed by Gumbel-softmax at
  temperature tau (or straight-through: hard one-hot forward, soft gradients).

>>> q = DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 3))
>>> q.rsample((5,), generator=torch.Generator().manual_seed(0)).shape
torch.Size([5, 2, 3])
>>> q.log_prob(torch.zeros(2, 3)).shape
torch.Size([2])
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, Independent, Normal, constraints

LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- helpers

def gumbel_noise(shape: torch.Size | tuple, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """g = -log(-log u), u ~ U(0, 1): argmax(logits + g) is a draw from softmax(logits)."""
    u = torch.rand(shape, generator=generator, device=device).clamp_(1e-10, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool = False,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """softmax((logits + g) / tau) over the last dim; ``hard`` returns the one-hot of its
    argmax forward and the soft sample's gradient backward (straight-through)."""
    g = gumbel_noise(logits.shape, generator, logits.device).to(logits.dtype)
    soft = F.softmax((logits + g) / tau, dim=-1)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return one_hot + soft - soft.detach()


def kl_normal_standard(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension, in closed form: (..., D) -> (..., D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_categorical_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(Cat(softmax(logits)) || Uniform(K)) summed over latents: (..., N, K) -> (...)."""
    log_q = F.log_softmax(logits, dim=-1)
    k = logits.shape[-1]
    return (log_q.exp() * (log_q + math.log(k))).sum((-2, -1))


# ----------------------------------------------------------------------------- distributions

class DiagonalGaussian(Independent):
    """N(mu, diag(exp(logvar))) over the last dim, with ``mu`` and ``logvar`` kept.

    >>> q = DiagonalGaussian(torch.tensor([[1.0, -1.0]]), torch.zeros(1, 2))
    >>> q.mean
    tensor([[ 1., -1.]])
    """

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor):
        super().__init__(Normal(mu, torch.exp(0.5 * logvar)), 1)
        self.mu, self.logvar = mu, logvar

    def rsample(self, sample_shape: torch.Size | tuple = (),
                generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): (*sample_shape, B, D)."""
        shape = torch.Size(sample_shape) + self.mu.shape
        eps = torch.randn(shape, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        return self.mu + torch.exp(0.5 * self.logvar) * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; mu, sigma^2) summed over dims: (..., B, D) -> (..., B)."""
        return -0.5 * (LOG_2PI + self.logvar + (z - self.mu).pow(2) * torch.exp(-self.logvar)).sum(-1)


class PointMass(Distribution):
    """The deterministic code of a plain autoencoder: all mass at ``loc``.

    >>> PointMass(torch.ones(1, 2)).rsample((3,)).shape
    torch.Size([3, 1, 2])
    """

    arg_constraints: ClassVar[dict] = {"loc": constraints.real}
    has_rsample = True

    def __init__(self, loc: torch.Tensor):
        self.loc = loc
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def stddev(self) -> torch.Tensor:
        return torch.zeros_like(self.loc)

    def rsample(self, sample_shape: torch.Size | tuple = (),
                generator: torch.Generator | None = None) -> torch.Tensor:
        return self.loc.expand(torch.Size(sample_shape) + self.loc.shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("a point mass has no density: an autoencoder has no ELBO")


class GumbelSoftmax(Distribution):
    """N independent categoricals of K classes, drawn relaxed at temperature tau.

    ``rsample`` gives points inside the simplex (one-hot as tau -> 0), or the straight-through
    one-hot when ``hard``; ``sample`` gives exact one-hot draws (Gumbel-max); ``log_prob``
    scores one-hot codes under the exact categorical.

    >>> q = GumbelSoftmax(torch.zeros(2, 20, 10), tau=0.5)
    >>> q.rsample(generator=torch.Generator().manual_seed(0)).sum(-1).allclose(torch.ones(2, 20))
    True
    """

    arg_constraints: ClassVar[dict] = {"logits": constraints.real}
    has_rsample = True

    def __init__(self, logits: torch.Tensor, tau: float = 1.0, hard: bool = False):
        self.logits = F.log_softmax(logits, dim=-1)           # (B, N, K), normalised
        self.tau, self.hard = float(tau), hard
        super().__init__(logits.shape[:-2], logits.shape[-2:], validate_args=False)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    @property
    def mean(self) -> torch.Tensor:
        return self.probs

    def rsample(self, sample_shape: torch.Size | tuple = (),
                generator: torch.Generator | None = None) -> torch.Tensor:
        logits = self.logits.expand(torch.Size(sample_shape) + self.logits.shape)
        return gumbel_softmax(logits, self.tau, self.hard, generator)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size | tuple = (),
               generator: torch.Generator | None = None) -> torch.Tensor:
        logits = self.logits.expand(torch.Size(sample_shape) + self.logits.shape)
        g = gumbel_noise(logits.shape, generator, logits.device)
        return F.one_hot((logits + g).argmax(-1), logits.shape[-1]).to(logits.dtype)

    def log_prob(self, one_hot: torch.Tensor) -> torch.Tensor:
        """log q(c|x) of one-hot codes: (..., B, N, K) -> (..., B)."""
        return (one_hot * self.logits).sum((-2, -1))

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum((-2, -1))
