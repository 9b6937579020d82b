"""Priors over the VQ-VAE's 7x7 grid of code indices: uniform and a causal transformer.

The VQ-VAE derivation assumes a uniform prior p(c) = prod_cells 1/K, so log p(c) = -49 log K
and sampling it gives grids of unrelated codes (noise images). A learned prior p_lambda(c)
fitted after the VQ-VAE captures which codes go together.

Design: an autoregressive transformer over the 49 cells in raster order (row by row),

    log p_lambda(c) = sum_i log p_lambda(c_i | c_<i),

chosen over a masked (MaskGIT-style) model because the log-likelihood is then exact and
equals the sum of the per-cell terms, sampling is exact ancestral sampling, and 49 tokens
with a vocabulary of ~128 make a 4-layer, 64-wide model trainable on a CPU in minutes.
Region regeneration needs p(c_i | all other cells), which an AR model does not give
directly; ``regenerate`` documents how it gets there.

Both priors are distributions over code grids and share one interface (``CodePrior``):
``log_prob(grid) -> (B,)`` (nats), ``log_prob_per_cell``, ``nll_per_code`` (the fitting
loss), ``sample(n, temperature, generator)`` and ``regenerate(grid, mask, temperature,
generator)``. Fitting the learned prior is training, so it lives in the training layer
(the app package's ``fit_prior`` module), not here.

>>> prior = TransformerCodePrior(num_codes=16, dim=32, layers=1, heads=2)
>>> grid = prior.sample(3)
>>> grid.shape, prior.log_prob(grid).shape
(torch.Size([3, 7, 7]), torch.Size([3]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from models.blocks import Block, run_blocks

GRID = 7
CELLS = GRID * GRID


# ----------------------------------------------------------------------------- helpers

def _check_grid(grid: torch.Tensor, num_codes: int) -> torch.Tensor:
    if grid.dim() != 3 or grid.shape[1:] != (GRID, GRID):
        raise ValueError(f"code grids must have shape (B, {GRID}, {GRID}), got {tuple(grid.shape)}")
    if grid.dtype != torch.long:
        raise TypeError(f"code grids must be int64, got {grid.dtype}")
    if grid.numel() and (grid.min() < 0 or grid.max() >= num_codes):
        raise ValueError(f"codes must lie in [0, {num_codes})")
    return grid


def corrupt_context(tokens: torch.Tensor, noise: float, num_codes: int) -> torch.Tensor:
    """Input tokens (B, T) with each code after the start token replaced, with chance
    ``noise``, by a code drawn uniformly from [0, num_codes): the targets stay clean.

    A regulariser for a prior that memorises its training grids: its context is never quite
    a grid it has seen, so it must lean on what the codes around a cell usually are, not on
    one exact past (word dropout, Bowman et al. 2016, with random words for blanks).

    >>> tokens = torch.tensor([[4, 0, 1, 2, 3]])         # start token 4, then codes
    >>> torch.equal(corrupt_context(tokens, 0.0, 4), tokens)
    True
    >>> _ = torch.manual_seed(0)
    >>> noisy = corrupt_context(tokens.repeat(1000, 1), 0.5, 4)    # changed: 0.5 x 3/4
    >>> bool((noisy[:, 0] == 4).all()), round((noisy[:, 1:] != tokens[:, 1:]).float().mean().item(), 2)
    (True, 0.38)
    """
    if noise <= 0:
        return tokens
    hit = torch.rand(tokens.shape, device=tokens.device) < noise                # (B, T)
    hit[:, 0] = False                                                           # the start token
    random = torch.randint_like(tokens, num_codes)                              # (B, T)
    return torch.where(hit, random, tokens)


def check_input_noise(noise: float) -> float:
    """``prior_input_noise``, a chance in [0, 1): 1 would leave no context at all."""
    if not 0 <= noise < 1:  # also refuses NaN
        raise ValueError(f"prior_input_noise must lie in [0, 1), got {noise}")
    return float(noise)


def _check_mask(grid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if mask.shape != grid.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(grid.shape)}")
    return mask.to(grid.device)


def _check_temperature(temperature: float) -> float:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return float(temperature)


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
    """One draw per row of (..., K) logits via the Gumbel-max trick.

    The noise is drawn on the generator's device and then moved, so a CPU generator
    also works for a model on the GPU (seeded samples match across devices).
    """
    device = generator.device if generator is not None else logits.device
    u = torch.rand(logits.shape, generator=generator, device=device).to(logits.device)
    gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
    return (logits.float() + gumbel).argmax(-1)


# ----------------------------------------------------------------------------- interface

def check_augment(shift: int, share: float, epochs: int = 0, rotate: float = 0.0,
                  mirror: float = 0.0) -> None:
    """A prior config's augmentation: a move of up to ``shift`` pixels (at most 4: a digit
    moved further leaves the 28x28 frame) and a turn of up to ``rotate`` degrees (at most 45:
    a 6 turned further reads as a 9), the chance ``mirror`` in [0, 1] that a moved image of a
    mirror-symmetric class is also mirrored, a share of images to move, and for how many
    epochs; the last two need a move, a turn or a mirror to make.

    >>> check_augment(1, 0.3, 8)
    >>> check_augment(0, 0.3, 8, rotate=10.0)
    >>> check_augment(5, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: prior_augment_shift must lie in [0, 4], got 5
    """
    if not 0 <= shift <= 4:
        raise ValueError(f"prior_augment_shift must lie in [0, 4], got {shift}")
    if not 0 <= rotate <= 45:  # also refuses NaN
        raise ValueError(f"prior_augment_rotate must lie in [0, 45] degrees, got {rotate}")
    if not 0 <= mirror <= 1:
        raise ValueError(f"prior_augment_mirror must lie in [0, 1], got {mirror}")
    if not 0 < share <= 1:
        raise ValueError(f"prior_augment_share must lie in (0, 1], got {share}")
    if epochs < 0:
        raise ValueError(f"prior_augment_epochs must be >= 0 (0 = every epoch), got {epochs}")
    if share < 1 and not (shift or rotate or mirror):
        raise ValueError("prior_augment_share < 1 needs prior_augment_shift, _rotate or "
                         "_mirror > 0: there is no move to apply to that share")
    if epochs and not (shift or rotate or mirror):
        raise ValueError("prior_augment_epochs > 0 needs prior_augment_shift, _rotate or "
                         "_mirror > 0: there is no move to stop applying")


def choose_prior(kind: str, learned: nn.Module, uniform: nn.Module) -> nn.Module:
    """``learned`` for 'learned', ``uniform`` for 'uniform': the VQ models' ``prior(kind)``.

    >>> choose_prior("uniform", nn.Identity(), nn.Tanh())
    Tanh()
    """
    if kind == "learned":
        return learned
    if kind == "uniform":
        return uniform
    raise ValueError(f"prior must be 'learned' or 'uniform', not {kind!r}")


class CodePrior(nn.Module):
    """A distribution over (B, 7, 7) grids of K codes: the shared interface of the priors.

    Subclasses give ``log_prob_per_cell``, ``sample`` and ``regenerate``; ``log_prob`` (the
    grid's log-probability) and ``nll_per_code`` (the mean loss a fit minimises) follow.

    >>> prior = UniformCodePrior(4)
    >>> isinstance(prior, CodePrior), round(prior.nll_per_code(prior.sample(2)).item(), 4)
    (True, 1.3863)
    """

    num_codes: int

    def log_prob_per_cell(self, grid: torch.Tensor) -> torch.Tensor:
        """Each cell's term of log p(c) in nats: (B, 7, 7) -> (B, 7, 7)."""
        raise NotImplementedError

    def log_prob(self, grid: torch.Tensor) -> torch.Tensor:
        """log p(c) in nats: (B, 7, 7) long -> (B,)."""
        return self.log_prob_per_cell(grid).flatten(1).sum(1)

    def nll_per_code(self, grid: torch.Tensor) -> torch.Tensor:
        """Scalar -log p(c) / 49 averaged over the batch (nats per code): the fitting loss."""
        return -self.log_prob(grid).mean() / CELLS

    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n grids (n, 7, 7) long in [0, K)."""
        raise NotImplementedError

    def regenerate(self, grid: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """The grid (B, 7, 7) with only its masked cells redrawn given the kept ones."""
        raise NotImplementedError


# ----------------------------------------------------------------------------- uniform

class UniformCodePrior(CodePrior):
    """p(c) = prod over 49 cells of Uniform{0..K-1}: the prior the VQ-VAE derivation uses.

    >>> UniformCodePrior(128).log_prob(torch.zeros(1, 7, 7, dtype=torch.long))  # -49 log 128
    tensor([-237.7495])
    """

    def __init__(self, num_codes: int):
        super().__init__()
        self.num_codes = num_codes
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # tracks the device

    def log_prob_per_cell(self, grid: torch.Tensor) -> torch.Tensor:
        """-log K for every cell: (B, 7, 7) -> (B, 7, 7)."""
        _check_grid(grid, self.num_codes)
        return torch.full(grid.shape, -math.log(self.num_codes), device=grid.device)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 7, 7) independent uniform codes (temperature changes nothing for a uniform)."""
        _check_temperature(temperature)
        device = generator.device if generator is not None else self._anchor.device
        grid = torch.randint(self.num_codes, (n, GRID, GRID), generator=generator, device=device)
        return grid.to(self._anchor.device)

    @torch.no_grad()
    def regenerate(self, grid: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Masked cells redrawn uniformly (exact: the cells are independent)."""
        _check_grid(grid, self.num_codes)
        mask = _check_mask(grid, mask)
        fresh = self.sample(grid.shape[0], temperature, generator).to(grid.device)
        return torch.where(mask, fresh, grid)


# ----------------------------------------------------------------------------- transformer

class TransformerCodePrior(CodePrior):
    """Causal transformer p_lambda(c) = prod_i p(c_i | c_<i) over the raster order.

    Input position t holds the code of cell t-1 (a start token at t = 0) and predicts cell t.
    With ``input_noise`` > 0, in training mode only, each input code is replaced by a random
    one with that chance (``corrupt_context``); evaluation and sampling see clean grids.

    >>> prior = TransformerCodePrior(num_codes=16, dim=32, layers=1, heads=2)
    >>> grid = torch.zeros(2, 7, 7, dtype=torch.long)
    >>> torch.allclose(prior.log_prob(grid), prior.log_prob_per_cell(grid).sum((1, 2)))
    True
    """

    def __init__(self, num_codes: int, dim: int = 64, layers: int = 4, heads: int = 4,
                 dropout: float = 0.0, input_noise: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"prior dim {dim} must be divisible by its heads {heads}")
        self.num_codes = num_codes
        self.input_noise = check_input_noise(input_noise)
        self.tok = nn.Embedding(num_codes + 1, dim)          # index K = start token
        self.pos = nn.Parameter(torch.zeros(CELLS, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_codes)

    # -- network ------------------------------------------------------------------
    def _inputs(self, seq: torch.Tensor) -> torch.Tensor:
        """Codes (B, L) in raster order -> input tokens (B, L): start token, then shifted."""
        start = torch.full_like(seq[:, :1], self.num_codes)
        return torch.cat([start, seq[:, :-1]], 1)

    def _run(self, tokens: torch.Tensor, start: int = 0, cache: list | None = None
             ) -> tuple[torch.Tensor, list]:
        """Logits (B, T, K) for input tokens (B, T) at positions start..start+T-1."""
        h = self.tok(tokens) + self.pos[start: start + tokens.shape[1]]    # (B, T, D)
        h, new_cache = run_blocks(self.blocks, h, cache)
        return self.head(self.ln(h)), new_cache

    def logits(self, grid: torch.Tensor) -> torch.Tensor:
        """Next-code logits for every cell given the cells before it: (B, 7, 7) -> (B, 49, K)."""
        seq = _check_grid(grid, self.num_codes).flatten(1)                  # (B, 49)
        tokens = self._inputs(seq)                                          # (B, 49)
        if self.training:
            tokens = corrupt_context(tokens, self.input_noise, self.num_codes)
        return self._run(tokens)[0]

    # -- distribution ---------------------------------------------------------------
    def log_prob_per_cell(self, grid: torch.Tensor) -> torch.Tensor:
        """log p(c_i | c_<i) for each cell in nats: (B, 7, 7) -> (B, 7, 7)."""
        logp = torch.log_softmax(self.logits(grid).float(), -1)             # (B, 49, K)
        return logp.gather(-1, grid.flatten(1).unsqueeze(-1)).view(grid.shape)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling cell by cell with cached keys/values: (n, 7, 7) long in [0, K)."""
        t = _check_temperature(temperature)
        return self._ancestral(n, lambda logits: sample_categorical(logits / t, generator))

    @torch.no_grad()
    def sample_each(self, temperatures: Sequence[float],
                    generators: Sequence[torch.Generator | None]) -> torch.Tensor:
        """One grid per (temperature, generator) pair, all in one batched pass: (n, 7, 7).

        Grid i is the grid ``sample(1, temperatures[i], generators[i])`` draws (each row
        takes its noise from its own generator in the same order), so requests of several
        users can share the 49 transformer steps and still get what they would alone.

        >>> prior = TransformerCodePrior(num_codes=16, dim=32, layers=1, heads=2).eval()
        >>> gens = lambda: [torch.Generator().manual_seed(s) for s in (4, 5)]
        >>> both = prior.sample_each([1.0, 0.5], gens())
        >>> alone = [prior.sample(1, t, g)[0] for t, g in zip([1.0, 0.5], gens())]
        >>> bool((both == torch.stack(alone)).all())
        True
        """
        ts = [_check_temperature(t) for t in temperatures]
        if len(ts) != len(generators):
            raise ValueError(f"{len(ts)} temperatures for {len(generators)} generators")

        def draw(logits: torch.Tensor) -> torch.Tensor:                     # (n, K) -> (n,)
            return torch.cat([sample_categorical(logits[i: i + 1] / t, g)
                              for i, (t, g) in enumerate(zip(ts, generators))])

        return self._ancestral(len(ts), draw)

    def _ancestral(self, n: int, draw) -> torch.Tensor:
        """The grids ``draw`` picks cell by cell from next-code logits (n, K): (n, 7, 7)."""
        device = self.head.weight.device
        seq = torch.empty(n, CELLS, dtype=torch.long, device=device)
        token = torch.full((n, 1), self.num_codes, dtype=torch.long, device=device)
        cache = None
        for i in range(CELLS):
            logits, cache = self._run(token, start=i, cache=cache)          # (n, 1, K)
            seq[:, i] = draw(logits[:, 0])
            token = seq[:, i: i + 1]
        return seq.view(n, GRID, GRID)

    @torch.no_grad()
    def regenerate(self, grid: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
                   generator: torch.Generator | None = None, sweeps: int = 2,
                   top_k: int = 0, chunk: int = 8192) -> torch.Tensor:
        """Resample only the masked cells (B, 7, 7), conditioned on all kept cells.

        Step 1 (ancestral pass): masked cells are drawn in raster order from
        p(c_i | c_<i), which sees every kept cell *before* i but none after it.
        Step 2 (Gibbs sweeps): each masked cell is redrawn from its exact full conditional
        p(c_i | c_-i) ∝ p(c_i | c_<i) * prod_{j>i} p(c_j | c_<j), scored for all K
        values of c_i at once (the prefix is cached, so only cells >= i are recomputed).

        What is exact: every Gibbs update samples the AR model's true conditional, and when
        no kept cell comes after a masked one (e.g. the bottom rows are masked) the
        ancestral pass alone is an exact draw from p(masked | kept) and the sweeps are
        skipped. What is approximate: otherwise a finite number of sweeps only approaches
        p(masked | kept) (Gibbs sampling converges as sweeps -> infinity). ``top_k > 0``
        scores only the top_k values of p(c_i | c_<i) instead of all K (faster, and
        approximate: values outside them are never proposed). Temperature divides the
        log-probabilities in both steps. Kept cells are never changed.
        """
        t = _check_temperature(temperature)
        seq = _check_grid(grid, self.num_codes).flatten(1).clone()          # (B, 49)
        m = _check_mask(grid, mask).flatten(1)                               # (B, 49)
        if not m.any():
            return grid.clone()
        seq = self._ancestral_fill(seq, m, t, generator)
        kept_after = (~m).flip(1).cummax(1).values.flip(1)                   # a kept cell at >= i
        if (m & kept_after).any():  # some masked cell has a kept cell after it
            for _ in range(sweeps):
                for i in m.any(0).nonzero().flatten().tolist():
                    seq = self._gibbs_cell(seq, m[:, i], i, t, generator, chunk, top_k)
        return seq.view_as(grid)

    def _ancestral_fill(self, seq: torch.Tensor, m: torch.Tensor, t: float,
                        generator: torch.Generator | None) -> torch.Tensor:
        inputs = self._inputs(seq)
        cache = None
        for i in range(CELLS):
            logits, cache = self._run(inputs[:, i: i + 1], start=i, cache=cache)  # (B, 1, K)
            if m[:, i].any():
                draw = sample_categorical(logits[:, 0] / t, generator)
                seq[:, i] = torch.where(m[:, i], draw, seq[:, i])
            if i + 1 < CELLS:
                inputs[:, i + 1] = seq[:, i]
        return seq

    def _gibbs_cell(self, seq: torch.Tensor, rows: torch.Tensor, i: int, t: float,
                    generator: torch.Generator | None, chunk: int, top_k: int) -> torch.Tensor:
        """Redraw cell i of the selected rows from p(c_i | all other cells)."""
        k = top_k if 0 < top_k < self.num_codes else self.num_codes
        sel = rows.nonzero().flatten()
        per_chunk = max(1, chunk // (k * (CELLS - i)))  # rows per pass, bounds the memory
        for part in sel.split(per_chunk):
            base = seq[part]                                                 # (R, 49)
            logits, cache = self._run(self._inputs(base)[:, : i + 1])        # positions 0..i
            first = torch.log_softmax(logits[:, i].float(), -1)              # (R, K) p(c_i|c_<i)
            values = first.topk(k, -1).indices if k < self.num_codes else (
                torch.arange(k, device=seq.device).expand(len(part), k))     # (R, k)
            score = first.gather(1, values)                                  # (R, k)
            if i + 1 < CELLS:  # add log p(c_j | c_<j) for every later cell j, per candidate
                cand = base.repeat_interleave(k, 0)                          # (R*k, 49)
                cand[:, i] = values.flatten()
                cache = [(a.repeat_interleave(k, 0), b.repeat_interleave(k, 0)) for a, b in cache]
                later, _ = self._run(cand[:, i:-1], start=i + 1, cache=cache)  # (R*k, 48-i, K)
                logp = torch.log_softmax(later.float(), -1).gather(
                    -1, cand[:, i + 1:].unsqueeze(-1)).squeeze(-1)           # (R*k, 48-i)
                score = score + logp.sum(1).view(len(part), k)
            pick = sample_categorical(score / t, generator)                  # (R,)
            seq[part, i] = values.gather(1, pick.unsqueeze(1)).squeeze(1)
        return seq
