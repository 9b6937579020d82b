"""Test-set metrics of the continuous VAEs, written in the lecture's notation.

q_phi(z|x) = N(mu_phi(x), diag sigma_phi^2(x)) is the encoder, p_theta(x|z) the Bernoulli
decoder and p(z) the prior (N(0, I) or the RealNVP flow p_lambda(z)). Everything here is
"per image, in nats"; the caller averages over the N test images x_1..x_N.

* ``elbo_terms``: reconstruction -E_q log p_theta(x|z) and KL(q_phi(z|x) || p(z)), both from
  S samples of z (the KL is analytic for N(0, I), an S-sample Monte Carlo estimate of
  E_q[log q_phi(z|x) - log p_lambda(z)] for the flow).
* ``iwae_log_px``: log p(x) >= L_k(x) = E[log (1/k) sum_i p_theta(x|z_i) p(z_i) / q_phi(z_i|x)],
  z_i ~ q_phi(z|x); L_1 is the ELBO and L_k grows towards log p(x) with k.
* ``elbo_surgery``: (1/N) sum_n KL(q_phi(z|x_n) || p(z)) = I_q[x, z] + KL(q_agg(z) || p(z)),
  with q_agg(z) = (1/N) sum_n q_phi(z|x_n) the aggregated posterior over the test images.
* ``active_units``: A_d = Cov_x(E_q[z_d]) > 0.01 (Burda et al., IWAE paper).
* ``kl_per_dim``: (1/N) sum_n KL(q_phi(z_d|x_n) || N(0, 1)) for each latent dimension d.
* ``code_statistics``: per-dim mean and std of a plain autoencoder's codes and the KL of the
  Gaussian fitted to them against N(0, I).

>>> from models.vae import VAE, VAEConfig
>>> vae = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)).eval()
>>> x = torch.bernoulli(torch.rand(8, 1, 28, 28), generator=torch.Generator().manual_seed(0))
>>> terms = elbo_terms(vae, x, n_samples=4, generator=torch.Generator().manual_seed(0))
>>> terms.elbo.shape, terms.mu.shape
(torch.Size([8]), torch.Size([8, 2]))
>>> s = elbo_surgery(terms.mu, terms.logvar, vae.prior, terms.rec_nll, terms.kl)
>>> abs(s["reconstruction"] - s["mutual_information"] - s["marginal_kl"] - s["elbo"]) < 1e-6
True
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch
from torch import nn
from tqdm import tqdm

from models.distributions import LOG_2PI, DiagonalGaussian, kl_normal_standard
from models.vae import bernoulli_log_prob

# Decoder passes per forward call. On the CPU 512 keeps every activation tensor under glibc's
# 32 MB mmap threshold, so freed memory is reused instead of page-faulted afresh on each call
# (measured 1.5-2x faster wall time than 4096); on a GPU large calls are what is fast.
DECODES_PER_CALL = 512
DECODES_PER_CALL_CUDA = 16384
ACTIVE_UNIT_THRESHOLD = 0.01  # the IWAE paper's threshold on Cov_x(E_q[z_d])


class ElboTerms(NamedTuple):
    """Per-image ELBO parts and the posterior parameters they came from.

    >>> ElboTerms(torch.tensor([80.0]), torch.tensor([20.0]), torch.zeros(1, 2),
    ...           torch.zeros(1, 2)).elbo
    tensor([-100.])
    """

    rec_nll: torch.Tensor   # (N,) -E_q log p_theta(x|z), averaged over S samples
    kl: torch.Tensor        # (N,) KL(q_phi(z|x) || p(z)): analytic (N(0, I)) or S-sample MC (flow)
    mu: torch.Tensor        # (N, D) posterior means mu_phi(x)
    logvar: torch.Tensor    # (N, D) posterior log-variances log sigma_phi^2(x)

    @property
    def elbo(self) -> torch.Tensor:
        """(N,) L(x) = E_q log p_theta(x|z) - KL(q_phi(z|x) || p(z))."""
        return -(self.rec_nll + self.kl)


# ----------------------------------------------------------------------------- helpers

def decodes_per_call(device: torch.device | str) -> int:
    """A good number of decoder passes per forward call on ``device``."""
    return DECODES_PER_CALL_CUDA if torch.device(device).type == "cuda" else DECODES_PER_CALL


def _device(module: nn.Module) -> torch.device:
    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


# ----------------------------------------------------------------------------- ELBO and IWAE

@torch.no_grad()
def elbo_terms(model: nn.Module, x: torch.Tensor, n_samples: int = 16,
               max_decodes: int | None = None,
               generator: torch.Generator | None = None) -> ElboTerms:
    """Reconstruction NLL and KL per image from ``n_samples`` posterior samples each.

    rec_nll(x) = -(1/S) sum_s log p_theta(x|z_s),  z_s ~ q_phi(z|x);
    kl(x) = KL(q_phi(z|x) || N(0, I)) in closed form, or for the flow prior the
    S-sample estimate (1/S) sum_s [log q_phi(z_s|x) - log p_lambda(z_s)].
    Returned tensors are on the CPU. ``generator`` must live on the model's device.
    """
    if n_samples < 1:
        raise ValueError("n_samples must be >= 1")
    device = _device(model)
    max_decodes = max_decodes or decodes_per_call(device)
    parts = []
    for xb in x.split(max(1, max_decodes // n_samples)):
        xb = xb.to(device)
        q = model.posterior(xb)
        z = model.posterior_samples(q, n_samples, generator)                 # (S, B, ...)
        rec_nll = -bernoulli_log_prob(model.decode(z), xb.unsqueeze(0)).mean(0)  # (B,)
        kl = model.kl(q, z).mean(0)                 # (B,) analytic, or the S-sample Monte Carlo mean
        mu = q.mean.flatten(1)                      # (B, D), or the class probabilities (B, N*K)
        logvar = q.logvar if isinstance(q, DiagonalGaussian) else torch.full_like(mu, -math.inf)
        parts.append([t.float().cpu() for t in (rec_nll, kl, mu, logvar)])
    return ElboTerms(*(torch.cat(ts) for ts in zip(*parts)))


@torch.no_grad()
def iwae_log_px(model: nn.Module, x: torch.Tensor, k: int, chunk: int | None = None,
                batch_size: int | None = None, generator: torch.Generator | None = None,
                progress: bool = False) -> torch.Tensor:
    """The k-sample importance-weighted bound L_k(x) <= log p(x) per image, shape (N,).

    L_k(x) = log (1/k) sum_{i=1..k} w_i,  log w_i = log p_theta(x|z_i) + log p(z_i) - log q_phi(z_i|x).
    The k weights come from ``model.log_importance_weights`` in chunks of ``chunk`` samples and
    are merged with a running logsumexp, so memory is O(batch_size * chunk) for any k. By
    default chunk * batch_size ~ ``decodes_per_call(device)`` decoder passes per call.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    device = _device(model)
    chunk = min(k, chunk or decodes_per_call(device))
    chunk = math.ceil(k / math.ceil(k / chunk))  # equal chunks: k = 1000 -> 2 x 500, not 512 + 488
    batch_size = batch_size or max(1, decodes_per_call(device) // chunk)
    out = []
    with tqdm(total=len(x), disable=not progress, desc=f"IWAE k={k}", unit="img",
              mininterval=5.0) as bar:
        for xb in x.split(batch_size):
            xb = xb.to(device)
            lse = torch.full((len(xb),), -math.inf, device=device)                # (B,)
            for start in range(0, k, chunk):
                log_w = model.log_importance_weights(xb, min(chunk, k - start), generator)  # (c, B)
                lse = torch.logaddexp(lse, torch.logsumexp(log_w.float(), dim=0))
            out.append((lse - math.log(k)).cpu())
            bar.update(len(xb))
    return torch.cat(out)


# ----------------------------------------------------------------------------- ELBO surgery

def log_aggregate_posterior(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                            chunk: int = 512) -> torch.Tensor:
    """log q_agg(z) = logsumexp_n log N(z; mu_n, diag sigma_n^2) - log N for each z: (M, D) -> (M,).

    Exact over all N mixture components. The square is expanded into three matrix products,
        sum_d (z_d - mu_nd)^2 / sigma_nd^2 = z^2 . (1/sigma_n^2) - 2 z . (mu_n/sigma_n^2) + sum_d mu_nd^2/sigma_nd^2,
    computed in float64 because the expansion cancels large terms when sigma is small.
    """
    n, d = mu.shape
    mu64, logvar64 = mu.double(), logvar.double()
    inv_var = torch.exp(-logvar64)                                            # (N, D)
    a, b = inv_var.T, (mu64 * inv_var).T                                      # (D, N) each
    c = (mu64.pow(2) * inv_var + logvar64).sum(-1) + d * LOG_2PI             # (N,)
    out = []
    for zc in z.double().split(chunk):                                        # (m, D)
        quad = zc.pow(2) @ a - 2.0 * (zc @ b) + c                             # (m, N)
        out.append(torch.logsumexp(-0.5 * quad, dim=1) - math.log(n))
    return torch.cat(out)


@torch.no_grad()
def elbo_surgery(mu: torch.Tensor, logvar: torch.Tensor, prior: nn.Module, rec_nll: torch.Tensor,
                 kl: torch.Tensor, n_points: int | None = None,
                 generator: torch.Generator | None = None) -> dict[str, float]:
    """Split the mean ELBO into reconstruction - I_q[x, z] - KL(q_agg || p).

    Inputs are the N test images' posterior parameters (N, D) and their per-image ``rec_nll``
    and ``kl`` (N,) from ``elbo_terms``. Returned keys (nats, test-set means):

    * ``reconstruction`` = (1/N) sum_n E_q log p_theta(x_n|z) and ``avg_kl`` = (1/N) sum_n KL(q_n || p);
      ``elbo`` = reconstruction - avg_kl.
    * ``marginal_kl`` = KL(q_agg || p) ~ (1/M) sum_m [log q_agg(z_m) - log p(z_m)] with z_m drawn
      from q_agg by picking a test image n_m (all N, or a random subset of M = ``n_points``)
      and z_m ~ q_phi(z|x_{n_m}); log q_agg is exact over all N components.
    * ``mutual_information`` = avg_kl - marginal_kl (the theorem's I_q; with it the three parts
      add up to ``elbo`` exactly).
    * ``mutual_information_direct`` = (1/M) sum_m [log q_phi(z_m|x_{n_m}) - log q_agg(z_m)], the
      same quantity estimated on its own; the gap to ``mutual_information`` is Monte Carlo noise.

    Bias: q_agg is the mixture over the N test images, so both numbers describe the empirical
    test distribution; there I_q <= log N (``log_n``), because q_agg(z) >= q_phi(z|x_n) / N.
    Read as estimates of the population I_q the direct one includes each sample's own
    component in log q_agg, which makes it the InfoNCE lower bound (capped at log N), and
    ``marginal_kl`` is then biased upwards by the same amount.
    """
    n = len(mu)
    m = n if not n_points or n_points >= n else n_points
    idx = torch.randperm(n, generator=generator)[:m] if m < n else torch.arange(n)
    own = DiagonalGaussian(mu[idx], logvar[idx])
    z = own.rsample(generator=generator)                                      # (M, D)
    log_q_agg = log_aggregate_posterior(z, mu, logvar)                        # (M,)
    log_q_own = own.log_prob(z).double()                                      # (M,)
    log_p = prior.log_prob(z.to(_device(prior))).double().cpu()              # (M,)
    reconstruction, avg_kl = -rec_nll.double().mean().item(), kl.double().mean().item()
    marginal_kl = (log_q_agg - log_p).mean().item()
    return {
        "reconstruction": reconstruction,
        "avg_kl": avg_kl,
        "mutual_information": avg_kl - marginal_kl,
        "mutual_information_direct": (log_q_own - log_q_agg).mean().item(),
        "marginal_kl": marginal_kl,
        "elbo": reconstruction - avg_kl,
        "log_n": math.log(n),
        "n_components": n,
        "n_points": m,
    }


# ----------------------------------------------------------------------------- latent usage

def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> tuple[int, torch.Tensor]:
    """A_d = Cov_x(E_q[z_d]) over the test set, (N, D) -> (count of A_d > threshold, A (D,)).

    A unit whose posterior mean does not move with x carries no information about x. The
    threshold 0.01 is relative to the unit scale of N(0, I); a flow prior does not pin that
    scale, so for it the count is a rougher guide.
    """
    variances = mu.double().var(dim=0)                                       # (D,)
    return int((variances > threshold).sum()), variances.float()


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_n KL(q_phi(z_d|x_n) || N(0, 1)) for each dimension d: (N, D) -> (D,).

    For the N(0, I) prior this is the KL term split by dimension (it sums to the average KL).
    A flow prior p_lambda(z) does not factorise over d, so no per-dimension KL against it
    exists; the same N(0, 1) reference is reported then, and says how far each posterior
    coordinate is from a unit Gaussian (collapsed dims still sit near 0).
    """
    return kl_normal_standard(mu.double(), logvar.double()).mean(0).float()


def code_statistics(codes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-dim mean and std of codes (N, D) and KL(N(mean, diag std^2) || N(0, I)).

    For a plain autoencoder, whose ``sample`` decodes N(0, I) draws: the KL says how far the
    codes it was trained on lie from where those draws land (0 = the same Gaussian).

    >>> stats = code_statistics(torch.randn(20000, 3, generator=torch.Generator().manual_seed(0)))
    >>> round(float(stats["gaussian_kl"]), 2)
    0.0
    """
    c = codes.double()
    mean, std = c.mean(0), c.std(0)                                          # (D,) each
    kl = kl_normal_standard(mean, 2 * torch.log(std.clamp_min(1e-12))).sum()
    return {"mean": mean.float(), "std": std.float(), "gaussian_kl": kl.float()}
