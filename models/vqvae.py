"""VQ-VAE on 28x28 grey images with a 7x7 grid of discrete codes and a learned code prior.

    z_e = encoder(x)                  (B, D, 7, 7) continuous encoder output
    c   = argmin_k ||z_e - e_k||      (B, 7, 7)    one code index per cell
    z_q = e_c                         (B, D, 7, 7) quantized grid (straight-through grads)
    mu  = decoder(z_q)                (B, 1, 28, 28) Gaussian means (linear output): decode
    x^  = clamp(mu, 0, 1)             pixel values in [0, 1]: decode_probs, decode_indices

Loss per batch = recon + codebook + beta * commitment, where

* recon = mean over pixels of (x - mu)^2: the Gaussian negative log-likelihood
  -log N(x; mu, sigma^2) with a fixed sigma^2 = 1/2, without its constant and divided by
  the 784 pixels (a per-pixel mean keeps it on the scale of the two code terms). The mean
  is a linear output on purpose: a sigmoid mean under squared error saturates at "all
  black" early in training and then gets almost no gradient (seen in 3 of 4 seeds);
* codebook = mean ||sg[z_e] - e||^2 per element (with ``ema=True`` it is only logged,
  the EMA updates move the codebook instead);
* commitment = mean ||z_e - sg[e]||^2 per element, weighted by beta = 0.25.

The decoder contract matches the VAE's: ``decode`` is the raw linear output (the VAE's is
logits), ``decode_probs`` the pixel values in [0, 1] that callers show.

The code prior p_lambda(c) (``models.code_prior``) is a submodule, so one ``model.safetensors``
holds both; the training layer (the ``fit_prior`` module) fits it on the encoded training set
after the auto-encoder's epochs. ``sample(n, prior="learned" | "uniform")`` decodes grids
drawn from either prior.

>>> vq = VQVAE(VQVAEConfig(num_codes=16, code_dim=8, channels=8, prior_dim=16, prior_layers=1,
...                        prior_heads=2))
>>> out = vq(torch.rand(2, 1, 28, 28))
>>> out.x_hat.shape, out.indices.shape, out.loss.shape
(torch.Size([2, 1, 28, 28]), torch.Size([2, 7, 7]), torch.Size([]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.code_prior import (
    CodePrior,
    TransformerCodePrior,
    UniformCodePrior,
    check_augment,
    check_input_noise,
    choose_prior,
)
from models.nets import conv_down, conv_up
from models.quantizer import VectorQuantizer


@dataclass
class VQVAEConfig:
    """Everything needed to rebuild a VQ-VAE (and its code prior) from ``config.json``.

    >>> VQVAEConfig(num_codes=64).prior_epochs
    4
    >>> VQVAEConfig(prior_dim=10, prior_heads=4)
    Traceback (most recent call last):
    ...
    ValueError: prior_dim (10) must be divisible by prior_heads (4)
    """

    dataset: str = "mnist"
    num_codes: int = 128      # K: enough for strokes/edges of 7x7 cells, small for the prior
    code_dim: int = 32        # D of each e_k: cheap distances, enough room for 4x4-pixel cells
    channels: int = 32        # first conv width (doubles at 7x7), as in the VAE: CPU-sized
    grid_size: int = 7        # fixed by the two stride-2 convs (28 -> 7); only 7 is valid
    beta: float = 0.25        # commitment weight, the value from the VQ-VAE paper
    # Codebook health. In a short run (10k images, 2 epochs) test-set usage was 6 % with a
    # plain gradient codebook, 7 % with EMA alone, 94-95 % once k-means init and restarts
    # are on. So both are on by default: k-means starts every code on the encoder's first
    # outputs, restarts re-seed the codes that still die. EMA is on too because its codes
    # are the running mean of their assigned vectors (no learning-rate lag behind a moving
    # encoder, and the restarted codes need no optimizer state).
    ema: bool = True          # EMA codebook updates instead of the codebook loss
    ema_decay: float = 0.99   # the usual EMA decay: averages over ~100 steps
    restart_after: int = 100  # steps unused before a code is re-seeded (0 = never)
    kmeans_init: bool = True  # k-means on the first batch's z_e sets the initial codebook
    kmeans_iters: int = 10    # Lloyd iterations on one batch: a few ms
    # Code prior: causal transformer over the 49 cells (see models/code_prior.py).
    prior_dim: int = 64       # 4 layers x 64 wide (~0.2M weights): ~2 min/epoch on 60k grids
    prior_layers: int = 4     # on one CPU core; depth matters more than width for 49 tokens
    prior_heads: int = 4
    prior_dropout: float = 0.0  # a few epochs do not overfit 60k grids, and CPU dropout is slow
    prior_epochs: int = 4     # passes over the encoded training grids when fitted
    prior_lr: float = 2e-3    # AdamW, cosine decay to 5 %
    prior_weight_decay: float = 0.01  # AdamW's decoupled decay, against the prior's overfit
    prior_batch_size: int = 128
    # Each epoch the prior sees the training images shifted by up to this many pixels (fresh
    # shifts per epoch, re-encoded): new grids of the same digits, so a larger prior can
    # train longer before it memorises the 50k grids. 0 = the grids as they are.
    prior_augment_shift: int = 0
    # the share of the images shifted each epoch; the rest keep the grids the test set's
    # centred digits give, so the prior is not trained mostly on positions it will not meet
    prior_augment_share: float = 1.0
    # > 0: only the first this many epochs are augmented, the rest see the centred grids
    # again, so the prior ends on the positions it will be asked to draw (0 = every epoch)
    prior_augment_epochs: int = 0
    # each moved image is also turned by a random angle in [-rotate, rotate] degrees (about
    # the frame's centre, near a digit's centre of mass): slanted digits, other grids, with
    # the digit still centred, unlike a shift (0 = no turn)
    prior_augment_rotate: float = 0.0
    # the chance that a moved image is also mirrored left-right, if its class is
    # mirror-symmetric (a shirt; not a shoe, which always points left, nor a digit):
    # ``mirror_symmetric_classes`` decides from the class means (0 = no mirror)
    prior_augment_mirror: float = 0.0
    prior_polyak_decay: float = 0.0  # > 0: the prior kept is an EMA of its weights (Polyak)
    # the chance that each code the prior is given as context while fitting is replaced by a
    # random one (targets stay clean; evaluation and sampling see clean grids): 0 = none
    prior_input_noise: float = 0.0
    # fit the prior's matmuls in bf16 (autocast; weights, optimizer and evaluation stay fp32):
    # on a CPU with AMX (this repository's 2-core Xeon) a fitting step takes about 2/3 of
    # fp32's time (benchmarks/bench_train.py), so more epochs fit in the CPU hour
    prior_bf16: bool = False

    def __post_init__(self):
        if self.grid_size != 7:
            raise ValueError(f"grid_size is fixed to 7 by the 28 -> 7 encoder, got {self.grid_size}")
        if self.num_codes < 2 or self.code_dim < 1 or self.channels < 1:
            raise ValueError("need num_codes >= 2, code_dim >= 1 and channels >= 1")
        if self.beta < 0:
            raise ValueError("beta must be >= 0")
        if self.ema and not 0.0 < self.ema_decay < 1.0:
            raise ValueError("ema_decay must lie in (0, 1)")
        if self.restart_after < 0 or self.kmeans_iters < 0 or self.prior_epochs < 0:
            raise ValueError("restart_after, kmeans_iters and prior_epochs must be >= 0")
        if not 0 <= self.prior_polyak_decay < 1:
            raise ValueError(f"prior_polyak_decay must lie in [0, 1), got {self.prior_polyak_decay}")
        check_augment(self.prior_augment_shift, self.prior_augment_share,
                      self.prior_augment_epochs, self.prior_augment_rotate,
                      self.prior_augment_mirror)
        check_input_noise(self.prior_input_noise)
        if self.prior_dim % self.prior_heads:
            raise ValueError(f"prior_dim ({self.prior_dim}) must be divisible by prior_heads "
                             f"({self.prior_heads})")
        if self.prior_lr <= 0 or self.prior_batch_size < 1 or self.prior_layers < 1:
            raise ValueError("need prior_lr > 0, prior_batch_size >= 1 and prior_layers >= 1")
        if not 0 <= self.prior_weight_decay < float("inf"):
            raise ValueError("prior_weight_decay must be a finite number >= 0")


class VQVAEOutput(NamedTuple):
    """What ``VQVAE.forward`` returns: the training loss, its parts and the batch's codes.

    >>> out = VQVAE(VQVAEConfig(num_codes=8, code_dim=4, channels=4, prior_dim=16,
    ...                         prior_layers=1, prior_heads=2)).eval()(torch.rand(2, 1, 28, 28))
    >>> out.x_hat.shape, out.z_e.shape
    (torch.Size([2, 1, 28, 28]), torch.Size([2, 4, 7, 7]))
    """

    loss: torch.Tensor        # scalar: recon + codebook (unless EMA) + beta * commitment
    recon: torch.Tensor       # scalar: mean squared error per pixel of the unclamped mean
    codebook: torch.Tensor    # scalar: mean ||sg[z_e] - e||^2 per element
    commitment: torch.Tensor  # scalar: mean ||z_e - sg[e]||^2 per element (before beta)
    perplexity: torch.Tensor  # scalar: exp(entropy) of this batch's code histogram
    x_hat: torch.Tensor       # (B, 1, 28, 28) reconstruction, clamped to [0, 1]
    indices: torch.Tensor     # (B, 7, 7) code per cell
    z_e: torch.Tensor         # (B, D, 7, 7) encoder output


# ----------------------------------------------------------------------------- model

class VQVAE(nn.Module):
    """Conv encoder -> 7x7 grid of D-dim vectors -> nearest of K codes -> conv decoder.

    Verbs: ``encode`` (x -> z_e), ``quantize`` (z_e -> code grid), ``nearest_code``
    (channel-last vectors -> codes), ``encode_to_indices`` (x -> code grid),
    ``indices_to_codes`` (code grid -> z_q), ``decode`` (grid -> linear means),
    ``decode_probs`` (grid -> pixels in [0, 1]), ``decode_indices`` (code grid -> pixels),
    ``encode_dataset`` (batched ``encode_to_indices``), ``prior(kind)``, ``sample``.

    >>> vq = VQVAE(VQVAEConfig(num_codes=16, code_dim=8, channels=8, prior_dim=16,
    ...                        prior_layers=1, prior_heads=2)).eval()
    >>> idx = vq.encode_to_indices(torch.rand(3, 1, 28, 28))
    >>> vq.decode_indices(idx).shape
    torch.Size([3, 1, 28, 28])
    >>> torch.equal(vq.decode_indices(idx), vq.decode_probs(vq.indices_to_codes(idx)))
    True
    """

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        c, d = config.channels, config.code_dim
        self.encoder = nn.Sequential(
            conv_down(1, c),                                                 # (B, 2C, 7, 7)
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(2 * c, d, 1),                                          # (B, D, 7, 7)
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(d, 2 * c, 3, padding=1), nn.SiLU(),                    # (B, 2C, 7, 7)
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.SiLU(),
            conv_up(c, 1),                                                   # (B, 1, 28, 28)
        )
        self.quantizer = VectorQuantizer(
            config.num_codes, d, ema=config.ema, decay=config.ema_decay,
            restart_after=config.restart_after, kmeans_init=config.kmeans_init,
            kmeans_iters=config.kmeans_iters)
        self.code_prior = TransformerCodePrior(
            config.num_codes, config.prior_dim, config.prior_layers, config.prior_heads,
            config.prior_dropout, config.prior_input_noise)
        # Frozen except while the training layer fits it: the auto-encoder's optimizer and
        # DDP (which rejects parameters that get no gradient) then only see the auto-encoder.
        self.code_prior.requires_grad_(False)
        self.uniform_prior = UniformCodePrior(config.num_codes)

    # -- codes ------------------------------------------------------------------
    @property
    def codebook(self) -> torch.Tensor:
        """The code vectors e_k, (K, D)."""
        return self.quantizer.codebook

    @property
    def device(self) -> torch.device:
        return self.quantizer.embedding.device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) in [0, 1] -> continuous grid z_e (B, D, 7, 7)."""
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        return self.encoder(x)

    def quantize(self, z_e: torch.Tensor) -> torch.Tensor:
        """Continuous grid (B, D, 7, 7) -> nearest code per cell (B, 7, 7) long; no updates."""
        return self.quantizer.quantize(z_e)

    def nearest_code(self, z: torch.Tensor) -> torch.Tensor:
        """Channel-last vectors (..., D) -> index of the nearest code (...) long."""
        return self.quantizer.nearest(z)

    @torch.no_grad()
    def encode_to_indices(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) -> code grid (B, 7, 7) long; no codebook updates."""
        return self.quantize(self.encode(x))

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Code grid (B, 7, 7) long -> code vectors z_q (B, D, 7, 7)."""
        return self.quantizer.indices_to_codes(indices)

    @torch.no_grad()
    def encode_dataset(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """All images (N, 1, 28, 28) -> code grids (N, 7, 7), batched, in eval mode."""
        was_training = self.training
        self.eval()
        grids = torch.cat([self.encode_to_indices(xb.to(self.device)) for xb in x.split(batch_size)])
        self.train(was_training)
        return grids

    # -- decoder ----------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Any continuous grid (B, D, 7, 7) (z_q or z_e) -> Gaussian means mu (B, 1, 28, 28),
        the raw linear output (not clamped: the training loss needs it as it is)."""
        return self.decoder(z)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The same as ``decode`` (the older name)."""
        return self.decode(z)

    def decode_probs(self, z: torch.Tensor) -> torch.Tensor:
        """Any continuous grid (B, D, 7, 7) -> pixel values (B, 1, 28, 28) in [0, 1]."""
        return self.decode(z).clamp(0.0, 1.0)

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code grid (B, 7, 7) long -> pixel values (B, 1, 28, 28) in [0, 1]."""
        return self.decode_probs(self.indices_to_codes(indices.to(self.device)))

    # -- priors -----------------------------------------------------------------
    def prior(self, kind: str = "learned") -> CodePrior:
        """The code prior: 'learned' (causal transformer) or 'uniform' (the derivation's)."""
        return choose_prior(kind, self.code_prior, self.uniform_prior)

    @torch.no_grad()
    def sample(self, n: int, prior: str = "learned", temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [0, 1], decoded from code grids drawn from a prior."""
        return self.decode_indices(self.prior(prior).sample(n, temperature, generator))

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        z_e = self.encode(x)
        q = self.quantizer(z_e)
        mean = self.decode(q.z_q)                                            # (B, 1, 28, 28)
        recon = F.mse_loss(mean.float(), x.float())
        loss = recon + self.config.beta * q.commitment
        if not self.config.ema:
            loss = loss + q.codebook
        return VQVAEOutput(loss, recon, q.codebook.detach(), q.commitment.detach(),
                           q.perplexity, mean.clamp(0.0, 1.0), q.indices, z_e)
