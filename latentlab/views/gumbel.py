"""Lecture panel: Gumbel-max sampling and its Gumbel-softmax relaxation.

For a categorical pi with editable logits, g_k = -log(-log u_k), u_k ~ U(0, 1):

* Gumbel-max: argmax_k (log pi_k + g_k) is an exact draw from Cat(pi);
* Gumbel-softmax: y_k = exp((log pi_k + g_k)/tau) / sum_j exp((log pi_j + g_j)/tau), a point
  inside the simplex, one-hot as tau -> 0 and uniform as tau -> infinity.

The mean entropy curve reuses one set of Gumbel draws for every tau on its grid (common
random numbers): for a fixed draw the entropy of softmax(a / tau) grows with tau, so the curve
is monotone instead of wobbling with Monte Carlo noise.

>>> out = gumbel_panel("peaked K=3", tau=0.5, n=200, seed=0)
>>> out.frequencies.shape, round(float(out.frequencies.sum()), 6)
((3,), 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from latentlab import render
from latentlab.errors import InputError
from latentlab.inputs import check_float, check_int, generator
from models.distributions import GumbelSoftmax, gumbel_noise, gumbel_softmax

PRESETS = {
    "uniform K=3": "0, 0, 0",
    "peaked K=3": "2, 0.5, -1",
    "K=10 skewed": "3, 2.2, 1.6, 1, 0.6, 0.2, -0.3, -0.8, -1.5, -2.5",
}
TAU_RANGE = (0.05, 5.0)
N_RANGE = (10, 5000)
MAX_CLASSES = 20
TAU_GRID = np.geomspace(TAU_RANGE[0], TAU_RANGE[1], 25)
SIMPLEX_POINTS = 400      # relaxed samples drawn on the triangle: enough to see the shape
CURVE_DRAWS = 1000        # Gumbel draws behind the entropy curve (smooth; keeps it fast)
BAR_SAMPLES = 6           # individual relaxed samples shown as bars for K > 3
CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])  # (3, 2) triangle

EXPLAIN = r"""
**Gumbel-max.** With $g_k = -\log(-\log u_k)$, $u_k \sim U(0,1)$, the index
$z = \arg\max_k (\log \pi_k + g_k)$ is an exact draw from $\mathrm{Cat}(\pi)$: the left bars must
match $\pi$. **Gumbel-softmax** replaces the argmax by a softmax at temperature $\tau$:

$$y_k = \frac{\exp((\log \pi_k + g_k)/\tau)}{\sum_{j=1}^K \exp((\log \pi_j + g_j)/\tau)}$$

$y$ lies inside the simplex and is differentiable in $\pi$; small $\tau$ pushes it to a corner
(entropy $\to 0$), large $\tau$ to the centre (entropy $\to \log K$).
**Straight-through:** the forward pass uses the one-hot $\arg\max$, the backward pass the
softmax's gradient, $y_{\text{hard}} = \text{one\_hot}(\arg\max y) - \text{sg}(y) + y$.
"""


@dataclass
class GumbelOutputs:
    """What the panel shows, in the UI's output order."""

    counts_figure: go.Figure      # Gumbel-max frequencies next to pi
    relaxed_figure: go.Figure     # simplex (K = 3) or bars of a few samples (K > 3)
    entropy_figure: go.Figure     # mean entropy of y against tau, current tau marked
    summary: str                  # markdown: the numbers and the straight-through note
    frequencies: np.ndarray       # (K,) Gumbel-max frequencies
    pi: np.ndarray                # (K,) softmax of the logits
    mean_entropy: float           # mean entropy of the relaxed samples at tau


# ----------------------------------------------------------------------------- inputs

def parse_logits(value: Any) -> np.ndarray:
    """Logits from a comma-separated string, a list, or a preset name -> (K,) float64.

    >>> parse_logits("1, 2,3").tolist()
    [1.0, 2.0, 3.0]
    """
    if isinstance(value, str):
        text = PRESETS.get(value.strip(), value)
        parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
        try:
            arr = np.array([float(p) for p in parts], np.float64)
        except ValueError:
            raise InputError(f"logits must be numbers separated by commas, got {value!r}") from None
    else:
        try:
            arr = np.asarray(value, np.float64).ravel()
        except (TypeError, ValueError):
            raise InputError(f"logits must be a list of numbers, got {value!r}") from None
    if not 2 <= arr.size <= MAX_CLASSES:
        raise InputError(f"give between 2 and {MAX_CLASSES} logits, got {arr.size}")
    if not np.isfinite(arr).all():
        raise InputError("logits must be finite numbers (no nan or inf)")
    if np.ptp(arr) > 50:
        raise InputError("logits must span at most 50 (larger gaps give classes of probability 0)")
    return arr


def log_pi(logits: np.ndarray) -> torch.Tensor:
    """Normalised log-probabilities log pi (K,) as a float64 tensor."""
    return torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), -1)


# ----------------------------------------------------------------------------- maths

def gumbel_max_frequencies(logits: np.ndarray, n: int, gen: torch.Generator) -> np.ndarray:
    """Frequencies (K,) of argmax(log pi + g) over n draws: an estimate of pi."""
    lp = log_pi(logits)
    g = gumbel_noise((n, lp.numel()), gen).to(torch.float64)                 # (n, K)
    idx = (lp + g).argmax(-1)                                                # (n,)
    return np.bincount(idx.numpy(), minlength=lp.numel()) / n


def relaxed_samples(logits: np.ndarray, tau: float, n: int, gen: torch.Generator) -> np.ndarray:
    """n Gumbel-softmax samples y (n, K) at temperature tau (rows on the simplex)."""
    lp = log_pi(logits).expand(n, -1)                                        # (n, K)
    return gumbel_softmax(lp, tau, generator=gen).numpy()


def entropy_rows(y: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row of y (..., K) -> (...)."""
    return -(y * np.log(np.clip(y, 1e-300, None))).sum(-1)


def entropy_curve(logits: np.ndarray, taus: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Mean entropy of y at each tau (T,), the same n Gumbel draws reused for every tau."""
    lp = log_pi(logits).float()
    g = gumbel_noise((n, lp.numel()), generator(seed))                       # (n, K)
    a = (lp + g).unsqueeze(0) / torch.as_tensor(taus, dtype=torch.float32).view(-1, 1, 1)  # (T, n, K)
    log_y = torch.log_softmax(a, -1)
    return (-(log_y.exp() * log_y).sum(-1)).mean(-1).double().numpy()


def straight_through(logits: np.ndarray, tau: float, gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One straight-through draw: (forward one-hot (K,), gradient of y_1 w.r.t. logits (K,)).

    The gradient is the soft sample's, so it is non-zero although the forward value is a
    constant one-hot vector.
    """
    lp = torch.as_tensor(logits, dtype=torch.float64).clone().requires_grad_(True)
    q = GumbelSoftmax(lp.view(1, 1, -1), tau=tau, hard=True)                 # (1, 1, K)
    y = q.rsample(generator=gen)[0, 0]                                       # (K,)
    (grad,) = torch.autograd.grad(y[0], lp)
    return y.detach().numpy(), grad.numpy()


# ----------------------------------------------------------------------------- figures

def counts_figure(pi: np.ndarray, freq: np.ndarray, n: int) -> go.Figure:
    labels = [str(k + 1) for k in range(pi.size)]
    return go.Figure([go.Bar(x=labels, y=np.round(pi, 4), name="π (target)", marker_color="#888"),
                      go.Bar(x=labels, y=np.round(freq, 4), name=f"Gumbel-max, N={n}",
                             marker_color="#1f77b4")],
                     _layout("argmax(log π + g): frequencies vs π", "class k", "probability",
                             barmode="group"))


def simplex_figure(y: np.ndarray, pi: np.ndarray, tau: float) -> go.Figure:
    """K = 3: the samples inside the triangle (barycentric -> 2-D), corners labelled."""
    xy = y[:SIMPLEX_POINTS] @ CORNERS                                        # (n, 3) @ (3, 2) -> (n, 2)
    edge = np.vstack([CORNERS, CORNERS[:1]])                                 # (4, 2) closed
    p = pi @ CORNERS
    layout = _layout(f"Gumbel-softmax samples on the simplex, τ={tau:g}", "", "")
    layout["xaxis"] = {"visible": False, "range": [-0.1, 1.1]}
    layout["yaxis"] = {"visible": False, "range": [-0.12, 0.95], "scaleanchor": "x"}
    return go.Figure([
        go.Scatter(x=edge[:, 0], y=edge[:, 1], mode="lines", line_color="#444", showlegend=False),
        go.Scatter(x=np.round(xy[:, 0], 4), y=np.round(xy[:, 1], 4), mode="markers",
                   marker={"size": 4, "opacity": 0.5, "color": "#1f77b4"}, name="y (relaxed)"),
        go.Scatter(x=[p[0]], y=[p[1]], mode="markers", name="π",
                   marker={"size": 13, "symbol": "star", "color": "#d62728"}),
        go.Scatter(x=CORNERS[:, 0], y=CORNERS[:, 1] + np.array([-0.06, -0.06, 0.06]),
                   mode="text", text=["k=1", "k=2", "k=3"], showlegend=False),
    ], layout)


def sample_bars_figure(y: np.ndarray, tau: float) -> go.Figure:
    """K > 3: a few individual relaxed samples as grouped bars."""
    labels = [str(k + 1) for k in range(y.shape[1])]
    return go.Figure([go.Bar(x=labels, y=np.round(row, 4), name=f"sample {i + 1}")
                      for i, row in enumerate(y[:BAR_SAMPLES])],
                     _layout(f"{BAR_SAMPLES} Gumbel-softmax samples y, τ={tau:g}", "class k", "y_k",
                             barmode="group"))


def entropy_figure(taus: np.ndarray, curve: np.ndarray, tau: float, current: float, k: int
                   ) -> go.Figure:
    layout = _layout("mean entropy of y against τ", "τ", "nats")
    layout["xaxis"]["type"] = "log"
    return go.Figure([
        go.Scatter(x=np.round(taus, 4), y=np.round(curve, 4), mode="lines+markers",
                   name="mean H(y)", marker_size=4),
        go.Scatter(x=[tau], y=[round(current, 4)], mode="markers", name=f"τ={tau:g}",
                   marker={"size": 12, "color": "#d62728"}),
        go.Scatter(x=[taus[0], taus[-1]], y=[math.log(k)] * 2, mode="lines", name="log K",
                   line={"dash": "dot", "color": "#888"}),
    ], layout)


def _layout(title: str, xtitle: str, ytitle: str, **extra: Any) -> dict:
    """A plain layout dict: passing it to go.Figure once is much cheaper than update_layout."""
    return {"title": {"text": title, "font": {"size": 14}}, "xaxis": {"title": {"text": xtitle}},
            "yaxis": {"title": {"text": ytitle}}, "height": 330,
            "margin": {"l": 40, "r": 10, "t": 40, "b": 40}, "legend": {"orientation": "h", "y": -0.2},
            "template": "none", "plot_bgcolor": "white", **extra}


# ----------------------------------------------------------------------------- the panel

def gumbel_panel(logits: Any, tau: float = 1.0, n: int = 1000, seed: int = 0) -> GumbelOutputs:
    """The panel's action: Gumbel-max counts, relaxed samples, the entropy curve, the text."""
    lg = parse_logits(logits)
    tau = check_float("temperature τ", tau, *TAU_RANGE)
    n = check_int("N (samples)", n, *N_RANGE)
    gen = generator(seed)
    pi = log_pi(lg).exp().numpy()
    freq = gumbel_max_frequencies(lg, n, gen)
    y = relaxed_samples(lg, tau, n, gen)                                     # (n, K)
    h = float(entropy_rows(y).mean())
    curve = entropy_curve(lg, TAU_GRID, min(n, CURVE_DRAWS), int(seed))
    hard, grad = straight_through(lg, tau, gen)
    relaxed = simplex_figure(y, pi, tau) if lg.size == 3 else sample_bars_figure(y, tau)
    dev = float(np.abs(freq - pi).max())
    summary = (f"K = {lg.size}, N = {n}: max |frequency − π| = {dev:.3f} "
               f"(sampling noise ≈ {1 / math.sqrt(n):.3f}). Mean entropy at τ = {tau:g}: {h:.3f} nats "
               f"(log K = {math.log(lg.size):.3f}). Straight-through draw: forward "
               f"{_vec(hard, 0)}, ∂y₁/∂logits = {_vec(grad, 3)} (the softmax's gradient).")
    return GumbelOutputs(counts_figure(pi, freq, n), relaxed, entropy_figure(TAU_GRID, curve, tau, h, lg.size),
                         summary, freq, pi, h)


def _vec(v: np.ndarray, digits: int) -> str:
    shown = ", ".join(f"{x:.{digits}f}" for x in v[:10])
    return f"[{shown}{', …' if v.size > 10 else ''}]"


# ----------------------------------------------------------------------------- optional VAE

@dataclass
class GumbelVAEOutputs:
    image: np.ndarray             # (H, W, 3) uint8: inputs, reconstructions, samples
    note: str


def gumbel_vae_panel(model: torch.nn.Module, images: np.ndarray, tau: float = 0.5,
                     seed: int = 0) -> GumbelVAEOutputs:
    """A categorical VAE at temperature tau: inputs, relaxed reconstructions, relaxed samples
    from the uniform prior (the decoder sees y, not a one-hot code)."""
    tau = check_float("temperature τ", tau, *TAU_RANGE)
    cfg = getattr(model, "config", None)
    if getattr(cfg, "posterior", None) != "categorical":
        raise InputError("this needs a categorical (Gumbel-softmax) VAE")
    x = torch.as_tensor(np.asarray(images, np.float32)).view(-1, 1, 28, 28)  # (B, 1, 28, 28)
    b = x.shape[0]
    if not 1 <= b <= 16:
        raise InputError(f"give between 1 and 16 images, got {b}")
    gen = generator(seed)
    with torch.no_grad():
        q = model.posterior(x)
        y = GumbelSoftmax(q.logits, tau).rsample(generator=gen)              # (B, N, K)
        rec = model.decode_probs(y)[:, 0]                                    # (B, 28, 28)
        prior_logits = torch.zeros(b, cfg.latent_dim, cfg.categories)        # uniform (B, N, K)
        ys = GumbelSoftmax(prior_logits, tau).rsample(generator=gen)
        samples = model.decode_probs(ys)[:, 0]                               # (B, 28, 28)
    grid = np.concatenate([x[:, 0].numpy(), rec.numpy(), samples.numpy()])  # (3B, 28, 28)
    note = (f"rows: inputs, reconstructions from y ~ GumbelSoftmax(q(c|x), τ={tau:g}), "
            f"samples from y ~ GumbelSoftmax(uniform, τ={tau:g}); {cfg.latent_dim} latents × "
            f"{cfg.categories} classes")
    return GumbelVAEOutputs(render.tile(grid, cols=b, scale=2), note)
