"""Two-level VQ-VAE: a small top code grid for global form, the 7x7 bottom grid for detail.

The lectures' hierarchical VQ-VAE at MNIST scale:

    h     = encoder(x)                      (B, 2C, 7, 7)  shared trunk
    z_top = top_encoder(h)                  (B, D, 2, 2)   global summary
    c_top = argmin_k ||z_top - e^top_k||    (B, 2, 2)      top codes (K_top of them)
    t     = top_decoder(e^top_{c_top})      (B, 2C, 7, 7)  what the top says about each cell
    z_bot = bottom_proj([h, t])             (B, D, 7, 7)   the detail the top leaves open
    c_bot = argmin_k ||z_bot - e^bot_k||    (B, 7, 7)      bottom codes (K of them)
    mu    = decoder([e^bot_{c_bot}, t])     (B, 1, 28, 28) Gaussian means (linear output)

The bottom encoder sees the decoded top, so the bottom codes carry what the top does not;
the decoder sees both. Loss = mean squared error + top_weight * (the same error of the image
decoded from the top alone, the bottom's vectors set to zero) + beta * (commitment_top +
commitment_bot), with EMA codebooks (as ``models.vqvae``); the top-alone term makes the top
carry the global form. The prior factorises over the levels,

    p(c_top, c_bot) = p(c_top) * p(c_bot | c_top),

one causal transformer over the 4 top cells followed by the 49 bottom cells (raster order):
its first 4 outputs are the top prior, the other 49 the bottom prior given the top, so
``sample_bottom(c_top)`` redraws the detail for a chosen global form.

>>> cfg = VQVAE2Config(num_codes=16, top_codes=8, code_dim=8, channels=8, prior_dim=16,
...                    prior_layers=1, prior_heads=2)
>>> model = VQVAE2(cfg).eval()
>>> codes = model.encode_to_indices(torch.rand(3, 1, 28, 28))
>>> codes.top.shape, codes.bottom.shape, model.decode_indices(codes).shape
(torch.Size([3, 2, 2]), torch.Size([3, 7, 7]), torch.Size([3, 1, 28, 28]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import Block, run_blocks
from models.code_prior import (
    _check_temperature,
    check_augment,
    choose_prior,
    sample_categorical,
)
from models.nets import conv_down, conv_up
from models.quantizer import VectorQuantizer

TOP, GRID = 2, 7
TOP_CELLS, CELLS = TOP * TOP, GRID * GRID


class Codes(NamedTuple):
    """The two code grids of a batch: top (B, 2, 2) and bottom (B, 7, 7), both long.

    >>> c = Codes.cat([Codes(torch.zeros(2, 2, 2), torch.ones(2, 7, 7))] * 2)
    >>> c.count, c.select(torch.tensor([0, 3])).bottom.shape
    (4, torch.Size([2, 7, 7]))
    """

    top: torch.Tensor
    bottom: torch.Tensor

    @property
    def count(self) -> int:
        """How many pairs of grids (the batch size B)."""
        return len(self.top)

    def select(self, index: torch.Tensor) -> Codes:
        """The pairs at ``index`` (a long tensor or a slice), both levels alike."""
        return Codes(self.top[index], self.bottom[index])

    def to(self, device: torch.device | str) -> Codes:
        return Codes(self.top.to(device), self.bottom.to(device))

    @staticmethod
    def cat(parts: list[Codes]) -> Codes:
        """Batches of pairs joined along the batch dimension."""
        return Codes(torch.cat([p.top for p in parts]), torch.cat([p.bottom for p in parts]))


@dataclass
class VQVAE2Config:
    """Everything needed to rebuild a two-level VQ-VAE and its prior from ``config.json``.

    >>> VQVAE2Config(top_codes=1)
    Traceback (most recent call last):
    ...
    ValueError: need num_codes >= 2, top_codes >= 2, code_dim >= 1 and channels >= 1
    """

    dataset: str = "mnist"
    num_codes: int = 128      # K of the bottom grid: strokes and edges, as the one-level model
    top_codes: int = 32       # K_top: 32^4 global forms is plenty for ten digit classes
    code_dim: int = 32
    channels: int = 32
    beta: float = 0.25
    # Weight of the top-alone reconstruction (the decoder fed the top and zeros for the
    # bottom). Without it the 49 bottom codes can carry the whole image and the decoder
    # ignores the top (swapping two images' tops changed their pictures by an MSE of 1e-4 in a
    # pilot), so there would be no "global" level to show.
    top_weight: float = 0.5
    ema: bool = True
    ema_decay: float = 0.99
    restart_after: int = 100
    kmeans_init: bool = True
    kmeans_iters: int = 10
    prior_dim: int = 128
    prior_layers: int = 4
    prior_heads: int = 4
    prior_dropout: float = 0.1
    prior_epochs: int = 10
    prior_lr: float = 2e-3
    prior_weight_decay: float = 0.01   # AdamW's decoupled decay
    prior_batch_size: int = 128
    prior_augment_shift: int = 0   # refit on images moved by up to this many pixels per epoch
    prior_augment_share: float = 1.0  # the share of the images moved each epoch
    prior_augment_epochs: int = 0  # > 0: only the first this many epochs are augmented
    prior_augment_rotate: float = 0.0  # and turned by up to this many degrees
    prior_augment_mirror: float = 0.0  # and mirrored with this chance, if its class allows
    prior_polyak_decay: float = 0.0  # > 0: the prior kept is an EMA of its weights (Polyak)
    prior_input_noise: float = 0.0   # the VQ-VAE's option; not available here (see below)
    prior_bf16: bool = False         # fit the prior's matmuls in bf16 (as the VQ-VAE's)

    def __post_init__(self):
        if self.prior_input_noise:  # its one vocabulary mixes two codebooks, so a random
            # replacement would have to keep each level's range: not built
            raise ValueError("prior_input_noise is available for the one-level VQ-VAE's prior only")
        if min(self.num_codes, self.top_codes) < 2 or self.code_dim < 1 or self.channels < 1:
            raise ValueError("need num_codes >= 2, top_codes >= 2, code_dim >= 1 and channels >= 1")
        if self.beta < 0 or self.top_weight < 0 or not 0.0 < self.ema_decay < 1.0:
            raise ValueError("need beta >= 0, top_weight >= 0 and ema_decay in (0, 1)")
        if self.prior_dim % self.prior_heads:
            raise ValueError(f"prior_dim ({self.prior_dim}) must be divisible by prior_heads "
                             f"({self.prior_heads})")
        if not 0 <= self.prior_weight_decay < float("inf"):
            raise ValueError("prior_weight_decay must be a finite number >= 0")
        if not 0 <= self.prior_polyak_decay < 1:
            raise ValueError(f"prior_polyak_decay must lie in [0, 1), got {self.prior_polyak_decay}")
        check_augment(self.prior_augment_shift, self.prior_augment_share,
                      self.prior_augment_epochs, self.prior_augment_rotate,
                      self.prior_augment_mirror)


class VQVAE2Output(NamedTuple):
    """``VQVAE2.forward``: the loss, its parts, the reconstruction and both code grids."""

    loss: torch.Tensor        # scalar: recon + top_weight * top_recon + beta * commitment
    recon: torch.Tensor       # scalar: mean squared error per pixel
    top_recon: torch.Tensor   # scalar: the same for the top alone (``decode_top``)
    commitment: torch.Tensor  # scalar: commitment_top + commitment_bottom (before beta)
    perplexity: torch.Tensor  # (2,): code-histogram perplexity of the top and bottom levels
    x_hat: torch.Tensor       # (B, 1, 28, 28) in [0, 1]
    codes: Codes


# ----------------------------------------------------------------------------- prior

class HierarchicalCodePrior(nn.Module):
    """p(c_top) p(c_bot | c_top): a causal transformer over 4 top cells, then 49 bottom cells.

    >>> prior = HierarchicalCodePrior(16, 8, dim=16, layers=1, heads=2).eval()
    >>> codes = prior.sample(2, generator=torch.Generator().manual_seed(0))
    >>> lp = prior.log_prob_per_level(codes)
    >>> torch.allclose(prior.log_prob(codes), lp.top + lp.bottom)
    True
    """

    def __init__(self, num_codes: int, top_codes: int, dim: int = 128, layers: int = 4,
                 heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.num_codes, self.top_codes = num_codes, top_codes
        # one vocabulary: top codes, then bottom codes, then the start token
        self.tok = nn.Embedding(top_codes + num_codes + 1, dim)
        self.pos = nn.Parameter(torch.zeros(TOP_CELLS + CELLS, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head_top = nn.Linear(dim, top_codes)
        self.head_bottom = nn.Linear(dim, num_codes)

    def _sequence(self, codes: Codes) -> torch.Tensor:
        """Codes -> one token sequence (B, 53): top cells, then bottom cells shifted by K_top."""
        top, bottom = codes
        if top.shape[1:] != (TOP, TOP) or bottom.shape[1:] != (GRID, GRID):
            raise ValueError(f"need top (B, {TOP}, {TOP}) and bottom (B, {GRID}, {GRID}) grids")
        if top.numel() and (top.min() < 0 or top.max() >= self.top_codes):
            raise ValueError(f"top codes must lie in [0, {self.top_codes})")
        if bottom.numel() and (bottom.min() < 0 or bottom.max() >= self.num_codes):
            raise ValueError(f"bottom codes must lie in [0, {self.num_codes})")
        return torch.cat([top.flatten(1), bottom.flatten(1) + self.top_codes], 1)

    def _run(self, tokens: torch.Tensor, start: int = 0, cache: list | None = None
             ) -> tuple[torch.Tensor, list]:
        """Hidden states (B, T, dim) for input tokens (B, T) at positions start..start+T-1."""
        h = self.tok(tokens) + self.pos[start: start + tokens.shape[1]]     # (B, T, dim)
        h, new_cache = run_blocks(self.blocks, h, cache)
        return self.ln(h), new_cache

    def _inputs(self, seq: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(seq[:, :1], self.top_codes + self.num_codes)
        return torch.cat([start, seq[:, :-1]], 1)                            # (B, 53)

    def log_prob_per_level(self, codes: Codes) -> Codes:
        """log p(c_top) (B,) and log p(c_bot | c_top) (B,) in nats, as a ``Codes`` pair."""
        seq = self._sequence(codes)                                          # (B, 53)
        h, _ = self._run(self._inputs(seq))                                  # (B, 53, dim)
        top = torch.log_softmax(self.head_top(h[:, :TOP_CELLS]).float(), -1)  # (B, 4, K_top)
        bot = torch.log_softmax(self.head_bottom(h[:, TOP_CELLS:]).float(), -1)  # (B, 49, K)
        lp_top = top.gather(-1, codes.top.flatten(1).unsqueeze(-1)).squeeze(-1).sum(1)
        lp_bot = bot.gather(-1, codes.bottom.flatten(1).unsqueeze(-1)).squeeze(-1).sum(1)
        return Codes(lp_top, lp_bot)

    def log_prob(self, codes: Codes) -> torch.Tensor:
        """log p(c_top, c_bot) in nats: (B,)."""
        lp = self.log_prob_per_level(codes)
        return lp.top + lp.bottom

    def nll_per_code(self, codes: Codes) -> torch.Tensor:
        """Scalar -log p / 53 averaged over the batch (nats per code): the fitting loss."""
        return -self.log_prob(codes).mean() / (TOP_CELLS + CELLS)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Codes:
        """n pairs of grids drawn cell by cell: the top first, then the bottom given it."""
        device = self.pos.device
        top = self._draw(torch.empty(n, 0, dtype=torch.long, device=device), TOP_CELLS,
                         temperature, generator)                            # (n, 4)
        return self.sample_bottom(top.view(n, TOP, TOP), temperature, generator)

    @torch.no_grad()
    def sample_bottom(self, top: torch.Tensor, temperature: float = 1.0,
                      generator: torch.Generator | None = None) -> Codes:
        """Bottom grids drawn from p(c_bot | c_top) for given top grids (B, 2, 2)."""
        seq = self._sequence(Codes(top, torch.zeros(len(top), GRID, GRID, dtype=torch.long,
                                                    device=top.device)))[:, :TOP_CELLS]
        full = self._draw(seq, CELLS, temperature, generator)                # (B, 53)
        return Codes(top, (full[:, TOP_CELLS:] - self.top_codes).view(-1, GRID, GRID))

    def _draw(self, prefix: torch.Tensor, steps: int, temperature: float,
              generator: torch.Generator | None) -> torch.Tensor:
        """Extend token sequences (B, P) by ``steps`` ancestral draws: (B, P + steps)."""
        t = _check_temperature(temperature)
        n, p = prefix.shape
        start = torch.full((n, 1), self.top_codes + self.num_codes, dtype=torch.long,
                           device=prefix.device)
        inputs = torch.cat([start, prefix], 1)                               # (B, P+1)
        h, cache = self._run(inputs)                                         # prefix once
        out = [prefix]
        for i in range(p, p + steps):
            top_level = i < TOP_CELLS
            logits = (self.head_top if top_level else self.head_bottom)(h[:, -1])  # (B, K_level)
            token = sample_categorical(logits / t, generator) + (0 if top_level else self.top_codes)
            out.append(token.unsqueeze(1))
            if i + 1 < p + steps:
                h, cache = self._run(token.unsqueeze(1), start=i + 1, cache=cache)
        return torch.cat(out, 1)


class UniformLevelsPrior(nn.Module):
    """Every top and bottom code independent and uniform: the derivation's prior, per level.

    >>> prior = UniformLevelsPrior(num_codes=4, top_codes=2)
    >>> lp = prior.log_prob_per_level(prior.sample(1))
    >>> round(-lp.top.item() / math.log(2), 3), round(-lp.bottom.item() / math.log(2), 3)
    (4.0, 98.0)
    """

    def __init__(self, num_codes: int, top_codes: int):
        super().__init__()
        self.num_codes, self.top_codes = num_codes, top_codes
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # tracks the device

    def log_prob_per_level(self, codes: Codes) -> Codes:
        """-4 log K_top and -49 log K for every pair: (B,) each."""
        n, device = codes.count, codes.top.device
        return Codes(torch.full((n,), -TOP_CELLS * math.log(self.top_codes), device=device),
                     torch.full((n,), -CELLS * math.log(self.num_codes), device=device))

    def log_prob(self, codes: Codes) -> torch.Tensor:
        lp = self.log_prob_per_level(codes)
        return lp.top + lp.bottom

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Codes:
        _check_temperature(temperature)
        device = generator.device if generator is not None else self._anchor.device
        top = torch.randint(self.top_codes, (n, TOP, TOP), generator=generator, device=device)
        return self.sample_bottom(top.to(self._anchor.device), temperature, generator)

    @torch.no_grad()
    def sample_bottom(self, top: torch.Tensor, temperature: float = 1.0,
                      generator: torch.Generator | None = None) -> Codes:
        """Uniform bottoms: under this prior the top says nothing about the detail."""
        _check_temperature(temperature)
        device = generator.device if generator is not None else self._anchor.device
        bottom = torch.randint(self.num_codes, (len(top), GRID, GRID), generator=generator,
                               device=device)
        return Codes(top, bottom.to(top.device))


# ----------------------------------------------------------------------------- model

class VQVAE2(nn.Module):
    """Two-level VQ-VAE (top 2x2, bottom 7x7) with a hierarchical code prior.

    Verbs: ``encode_to_indices`` (x -> Codes), ``indices_to_codes`` (Codes -> the two code
    grids' vectors), ``decode_indices`` (Codes -> pixels), ``sample`` (prior -> pixels),
    ``sample_bottom`` (a top grid -> Codes with a bottom drawn from p(c_bot | c_top)).
    """

    def __init__(self, config: VQVAE2Config):
        super().__init__()
        self.config = config
        c, d = config.channels, config.code_dim
        self.encoder = nn.Sequential(conv_down(1, c), nn.Conv2d(2 * c, 2 * c, 3, padding=1),
                                     nn.SiLU())                              # (B, 2C, 7, 7)
        self.top_encoder = nn.Sequential(
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.SiLU(),      # (B, 2C, 4, 4)
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.SiLU(),      # (B, 2C, 2, 2)
            nn.Conv2d(2 * c, d, 1))                                          # (B, D, 2, 2)
        self.top_decoder = nn.Sequential(nn.Conv2d(d, 2 * c, 3, padding=1), nn.SiLU())
        self.bottom_proj = nn.Conv2d(4 * c, d, 1)                            # [h, t] -> (B, D, 7, 7)
        self.decoder = nn.Sequential(
            nn.Conv2d(d + 2 * c, 2 * c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.SiLU(),
            conv_up(c, 1))                                                   # (B, 1, 28, 28)
        quant = {"ema": config.ema, "decay": config.ema_decay, "kmeans_iters": config.kmeans_iters,
                 "restart_after": config.restart_after, "kmeans_init": config.kmeans_init}
        self.top_quantizer = VectorQuantizer(config.top_codes, d, **quant)
        self.bottom_quantizer = VectorQuantizer(config.num_codes, d, **quant)
        self.code_prior = HierarchicalCodePrior(config.num_codes, config.top_codes,
                                                config.prior_dim, config.prior_layers,
                                                config.prior_heads, config.prior_dropout)
        self.code_prior.requires_grad_(False)  # fitted after the auto-encoder, as the VQ-VAE's
        self.uniform_prior = UniformLevelsPrior(config.num_codes, config.top_codes)

    @property
    def device(self) -> torch.device:
        return self.bottom_proj.weight.device

    def _top_features(self, z_top_q: torch.Tensor) -> torch.Tensor:
        """Top code vectors (B, D, 2, 2) -> per-cell features (B, 2C, 7, 7)."""
        up = F.interpolate(z_top_q, size=(GRID, GRID), mode="bilinear", align_corners=True)
        return self.top_decoder(up)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        return x

    @torch.no_grad()
    def encode_to_indices(self, x: torch.Tensor) -> Codes:
        """Images (B, 1, 28, 28) -> Codes (top (B, 2, 2), bottom (B, 7, 7)); no updates."""
        h = self.encoder(self._check(x))
        top = self.top_quantizer.quantize(self.top_encoder(h))               # (B, 2, 2)
        t = self._top_features(self.top_quantizer.indices_to_codes(top))
        bottom = self.bottom_quantizer.quantize(self.bottom_proj(torch.cat([h, t], 1)))
        return Codes(top, bottom)

    def indices_to_codes(self, codes: Codes) -> Codes:
        """Codes -> their vectors: top (B, D, 2, 2) and bottom (B, D, 7, 7)."""
        return Codes(self.top_quantizer.indices_to_codes(codes.top),
                     self.bottom_quantizer.indices_to_codes(codes.bottom))

    def decode(self, z_top_q: torch.Tensor, z_bot_q: torch.Tensor) -> torch.Tensor:
        """Code vectors of both levels -> Gaussian means (B, 1, 28, 28), linear output."""
        return self.decoder(torch.cat([z_bot_q, self._top_features(z_top_q)], 1))

    @torch.no_grad()
    def decode_top(self, top: torch.Tensor) -> torch.Tensor:
        """Top grids (B, 2, 2) alone -> pixel values (B, 1, 28, 28): what the global codes say
        without any detail (the decoder sees zeros for the bottom, as in training)."""
        t = self._top_features(self.top_quantizer.indices_to_codes(top.to(self.device)))
        zeros = torch.zeros(len(top), self.config.code_dim, GRID, GRID, device=self.device)
        return self.decoder(torch.cat([zeros, t], 1)).clamp(0.0, 1.0)

    @torch.no_grad()
    def decode_indices(self, codes: Codes) -> torch.Tensor:
        """Codes -> pixel values (B, 1, 28, 28) in [0, 1]."""
        return self.decode(*self.indices_to_codes(codes.to(self.device))).clamp(0.0, 1.0)

    @torch.no_grad()
    def encode_dataset(self, x: torch.Tensor, batch_size: int = 1000) -> Codes:
        """All images (N, 1, 28, 28) -> Codes (N, 2, 2) and (N, 7, 7), batched, in eval mode."""
        was_training = self.training
        self.eval()
        codes = Codes.cat([self.encode_to_indices(xb.to(self.device)).to("cpu")
                           for xb in x.split(batch_size)])
        self.train(was_training)
        return codes.to(self.device)

    def prior(self, kind: str = "learned") -> HierarchicalCodePrior | UniformLevelsPrior:
        """The code prior over both levels: 'learned' (the transformer) or 'uniform'."""
        return choose_prior(kind, self.code_prior, self.uniform_prior)

    @torch.no_grad()
    def sample(self, n: int, prior: str = "learned", temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 1, 28, 28) decoded from code pairs drawn from a prior."""
        return self.decode_indices(self.prior(prior).sample(n, temperature, generator))

    def sample_bottom(self, top: torch.Tensor, temperature: float = 1.0,
                      generator: torch.Generator | None = None, prior: str = "learned") -> Codes:
        """A top grid (B, 2, 2) -> Codes with the bottom drawn from p(c_bot | c_top)."""
        return self.prior(prior).sample_bottom(top, temperature, generator)

    def forward(self, x: torch.Tensor) -> VQVAE2Output:
        h = self.encoder(self._check(x))                                     # (B, 2C, 7, 7)
        qt = self.top_quantizer(self.top_encoder(h))                         # z_q (B, D, 2, 2)
        t = self._top_features(qt.z_q)                                       # (B, 2C, 7, 7)
        qb = self.bottom_quantizer(self.bottom_proj(torch.cat([h, t], 1)))   # z_q (B, D, 7, 7)
        mean = self.decoder(torch.cat([qb.z_q, t], 1))                       # (B, 1, 28, 28)
        recon = F.mse_loss(mean.float(), x.float())
        top_recon = torch.zeros_like(recon)
        if self.config.top_weight > 0:
            coarse = self.decoder(torch.cat([torch.zeros_like(qb.z_q), t], 1))  # (B, 1, 28, 28)
            top_recon = F.mse_loss(coarse.float(), x.float())
        commitment = qt.commitment + qb.commitment
        loss = recon + self.config.top_weight * top_recon + self.config.beta * commitment
        if not self.config.ema:
            loss = loss + qt.codebook + qb.codebook
        return VQVAE2Output(loss, recon, top_recon.detach(), commitment.detach(),
                            torch.stack([qt.perplexity, qb.perplexity]),
                            mean.clamp(0.0, 1.0), Codes(qt.indices, qb.indices))


def bits_per_code(log_prob: torch.Tensor, cells: int) -> float:
    """Mean -log2 p per code from log-probabilities (B,) in nats of grids of ``cells`` cells.

    >>> bits_per_code(torch.tensor([-4 * math.log(2.0)]), 4)
    1.0
    """
    return float(-log_prob.mean() / cells / math.log(2.0))
