"""Vector quantizer: nearest codebook vector per cell, straight-through gradients.

For every cell's encoder vector z_e the quantizer picks k* = argmin_k ||z_e - e_k||^2 and
outputs z_q = e_{k*}. The distances come from one matrix product,
||z||^2 - 2 z e^T + ||e||^2, so a whole batch of cells is quantized at once.

Gradients (sg[.] = stop-gradient):

* decoder side: z_e + sg[z_q - z_e] equals z_q in the forward pass and passes the
  decoder's gradient to z_e unchanged (straight-through estimator);
* codebook loss ||sg[z_e] - e||^2 moves only the codebook;
* commitment loss ||z_e - sg[e]||^2 (weighted by beta in the model) moves only the encoder.

Codebook health options (all only act in training mode; eval mode never changes a code):

* ``ema``: the codebook follows exponential moving averages of the cluster sizes and sums
  of the vectors assigned to each code (Laplace-smoothed counts) instead of the codebook
  loss; the codebook is then a buffer, not a parameter.
* ``restart_after``: a code unused for that many training steps is re-seeded with a
  random encoder vector from the current batch.
* ``kmeans_init``: the first training batch's encoder vectors are clustered with k-means
  and the centroids become the initial codebook.

>>> vq = VectorQuantizer(num_codes=16, dim=4, ema=False, kmeans_init=False)
>>> out = vq(torch.randn(2, 4, 7, 7))
>>> out.z_q.shape, out.indices.shape
(torch.Size([2, 4, 7, 7]), torch.Size([2, 7, 7]))
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class QuantizerOutput(NamedTuple):
    """What ``VectorQuantizer.forward`` returns: the snapped grid, its codes and the losses.

    >>> out = VectorQuantizer(4, 2, kmeans_init=False).eval()(torch.randn(1, 2, 3, 3))
    >>> out.indices.shape, out.perplexity.item() <= 4
    (torch.Size([1, 3, 3]), True)
    """

    z_q: torch.Tensor          # (B, D, H, W) quantized grid with straight-through gradient
    indices: torch.Tensor      # (B, H, W) long, chosen code per cell
    codebook: torch.Tensor     # scalar: mean ||sg[z_e] - e||^2 per element
    commitment: torch.Tensor   # scalar: mean ||z_e - sg[e]||^2 per element
    perplexity: torch.Tensor   # scalar: exp(entropy of this batch's code histogram)


# ----------------------------------------------------------------------------- helpers

def squared_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """||z_n - e_k||^2 for all pairs in one matrix product: (N, D), (K, D) -> (N, K)."""
    return (z.pow(2).sum(1, keepdim=True) - 2.0 * z @ codebook.t()
            + codebook.pow(2).sum(1).unsqueeze(0))


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook vector for each row of z: (N, D) -> (N,) long."""
    return squared_distances(z, codebook).argmin(1)


def histogram_perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(H(p)) of a histogram of code counts (K,): 1 = one code, K = all codes equally."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


def kmeans_plus_plus(z: torch.Tensor, k: int, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """k-means++ seeds: each new seed is a row of z drawn with probability ∝ D(z)^2,
    the squared distance to the nearest seed so far, so seeds spread over all clusters."""
    first = torch.randint(z.shape[0], (1,), generator=generator).to(z.device)
    seeds = [z[first]]                                                       # k x (1, D)
    d2 = squared_distances(z, seeds[0]).squeeze(1).clamp_min(0)             # (N,)
    for _ in range(k - 1):
        if d2.sum() > 0:
            weights = d2
        else:  # fewer distinct points than seeds: repeat points
            weights = torch.ones_like(d2)
        pick = torch.multinomial(weights.cpu(), 1, generator=generator).to(z.device)
        seeds.append(z[pick])
        d2 = torch.minimum(d2, squared_distances(z, seeds[-1]).squeeze(1).clamp_min(0))
    return torch.cat(seeds)                                                  # (k, D)


def kmeans(z: torch.Tensor, k: int, iters: int, generator: torch.Generator | None = None
           ) -> torch.Tensor:
    """Lloyd's k-means on the rows of z (N, D) -> centroids (k, D), k-means++ seeded.

    A cluster that ends up empty keeps its previous centroid, so every centroid stays on
    or between data points.
    """
    centroids = kmeans_plus_plus(z, k, generator)
    for _ in range(iters):
        assign = nearest_code(z, centroids)                                   # (N,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, z)          # (k, D)
        counts = torch.bincount(assign, minlength=k).to(z.dtype)             # (k,)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1)
    return centroids


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks so EMA statistics see every rank's cells (no-op outside torchrun)."""
    if _distributed():
        dist.all_reduce(t)
    return t


def _broadcast(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's version wins, so random re-seeding never makes ranks disagree."""
    if _distributed():
        dist.broadcast(t, src=0)
    return t


# ----------------------------------------------------------------------------- quantizer

class VectorQuantizer(nn.Module):
    """Codebook of ``num_codes`` vectors of size ``dim`` with optional EMA, restarts, k-means.

    Input and output grids are channel-first (B, D, H, W), like the conv encoder's output.

    Public verbs (none changes the codebook): ``nearest`` (vectors, channel-last -> code
    indices), ``quantize`` (grid -> index grid), ``indices_to_codes`` (index grid -> code
    grid; ``lookup`` is the same verb) and ``snap`` (grid -> the grid of its nearest codes).

    >>> vq = VectorQuantizer(16, 4).eval()
    >>> vq.indices_to_codes(torch.tensor([[0, 1]])).shape
    torch.Size([1, 4, 2])
    >>> z = torch.randn(2, 4, 7, 7)
    >>> torch.equal(vq.snap(z), vq.indices_to_codes(vq.quantize(z)))
    True
    """

    def __init__(self, num_codes: int, dim: int, ema: bool = True, decay: float = 0.99,
                 eps: float = 1e-5, restart_after: int = 0, kmeans_init: bool = True,
                 kmeans_iters: int = 10):
        super().__init__()
        if num_codes < 2 or dim < 1:
            raise ValueError("a codebook needs num_codes >= 2 and dim >= 1")
        if ema and not 0.0 < decay < 1.0:
            raise ValueError("the EMA decay must lie in (0, 1)")
        self.num_codes, self.dim, self.ema = num_codes, dim, ema
        self.decay, self.eps = decay, eps
        self.restart_after, self.kmeans_init, self.kmeans_iters = restart_after, kmeans_init, kmeans_iters
        init = torch.empty(num_codes, dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        if ema:  # moved by running averages, not by the optimizer
            self.register_buffer("embedding", init)
            self.register_buffer("ema_count", torch.ones(num_codes))  # pseudo-count 1 per code
            self.register_buffer("ema_sum", init.clone())              # = embedding * count
        else:
            self.embedding = nn.Parameter(init)
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self.register_buffer("unused_steps", torch.zeros(num_codes, dtype=torch.long))

    # -- verbs ------------------------------------------------------------------
    @property
    def codebook(self) -> torch.Tensor:
        """The K code vectors e_k, shape (K, D)."""
        return self.embedding

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, *grid) -> code vectors, channel-first (B, D, *grid)."""
        if indices.dtype != torch.long:
            raise TypeError(f"code indices must be int64, got {indices.dtype}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.num_codes):
            raise ValueError(f"code indices must lie in [0, {self.num_codes})")
        return self.embedding[indices].movedim(-1, 1)                       # (B, D, *grid)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, *grid) -> code vectors (B, D, *grid): the inverse of ``quantize``."""
        return self.lookup(indices)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code for channel-last vectors: (..., D) -> (...) long, no side effects."""
        if z.shape[-1] != self.dim:
            raise ValueError(f"vectors must end in the code size {self.dim}, got {tuple(z.shape)}")
        flat = z.reshape(-1, self.dim).float()                               # (N, D)
        return nearest_code(flat, self.embedding.float()).view(z.shape[:-1])

    def quantize(self, z_e: torch.Tensor) -> torch.Tensor:
        """Nearest code per cell, no side effects: (B, D, *grid) -> (B, *grid) long."""
        return self.nearest(z_e.movedim(1, -1))                              # (B, *grid, D) in

    def snap(self, z_e: torch.Tensor) -> torch.Tensor:
        """Each cell replaced by its nearest code vector: (B, D, *grid) -> (B, D, *grid)."""
        return self.indices_to_codes(self.quantize(z_e))

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        with torch.autocast(z_e.device.type, enabled=False):  # argmin needs full precision
            z_e = z_e.float()
            flat = z_e.movedim(1, -1).reshape(-1, self.dim)                  # (N, D), N = B*H*W
            if self.training and not bool(self.initialized):
                self._kmeans_init(flat.detach())
            idx = nearest_code(flat.detach(), self.embedding.detach())      # (N,)
            counts = torch.bincount(idx, minlength=self.num_codes)           # (K,)
            if self.training:
                self._update_codebook(flat.detach(), idx, counts)
            z_q = self.embedding[idx]                                        # (N, D)
            codebook_loss = F.mse_loss(z_q, flat.detach())
            commitment = F.mse_loss(flat, z_q.detach())
            z_q = flat + (z_q - flat).detach()                               # straight through
            z_q = z_q.view(*z_e.shape[:1], *z_e.shape[2:], self.dim).movedim(-1, 1)  # (B, D, H, W)
            indices = idx.view(z_e.shape[0], *z_e.shape[2:])                 # (B, H, W)
        return QuantizerOutput(z_q, indices, codebook_loss, commitment, histogram_perplexity(counts))

    # -- training-time codebook maintenance ---------------------------------------
    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor) -> None:
        centroids = _broadcast(kmeans(flat, self.num_codes, self.kmeans_iters))
        self.embedding.data.copy_(centroids)
        if self.ema:
            self.ema_count.fill_(1.0)
            self.ema_sum.copy_(centroids)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update_codebook(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> None:
        if self.ema:
            sums = torch.zeros_like(self.embedding).index_add_(0, idx, flat)  # (K, D)
            self.ema_step(_all_reduce(counts.float()), _all_reduce(sums))
        if self.restart_after > 0:
            self._restart_dead(flat, _all_reduce(counts.clone()))

    @torch.no_grad()
    def ema_step(self, counts: torch.Tensor, sums: torch.Tensor) -> None:
        """One EMA update from a batch's per-code counts (K,) and vector sums (K, D).

        N_k <- decay N_k + (1 - decay) n_k,  m_k <- decay m_k + (1 - decay) sum_k,
        e_k = m_k / N~_k with Laplace-smoothed N~_k = (N_k + eps) / (sum N + K eps) * sum N,
        so a code with (almost) no assignments does not divide by zero.
        """
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.num_codes * self.eps) * total
        self.embedding.copy_(self.ema_sum / smoothed.unsqueeze(1))

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor, counts: torch.Tensor) -> None:
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)
        dead = (self.unused_steps >= self.restart_after).nonzero().squeeze(1)  # (n_dead,)
        if dead.numel() == 0:
            return
        pick = torch.randint(flat.shape[0], (dead.numel(),), device=flat.device)
        fresh = _broadcast(flat[pick].clone())                               # (n_dead, D)
        self.embedding.data[dead] = fresh
        if self.ema:  # restart the running averages at the new position with count 1
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = fresh
        self.unused_steps[dead] = 0

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, dim={self.dim}, ema={self.ema}, "
                f"restart_after={self.restart_after}, kmeans_init={self.kmeans_init}")
