"""Lecture panel: Lloyd-Max scalar quantization of a 1-D density, one step at a time.

With levels a_1 < ... < a_L and thresholds b_j between them, the mean squared error
D = sum_j integral over [b_{j-1}, b_j] of (u - a_j)^2 f(u) du is lowered by alternating

* the nearest-neighbour step: b_j = (a_j + a_{j+1}) / 2;
* the centroid step: a_j = E[U | U in [b_{j-1}, b_j]].

Every integral is a difference of cumulative integrals over a fine grid of the density
(20,000 cells, integrated exactly inside a cell; or the exact empirical measure of given
values), so the steps are deterministic and
numerically exact enough for the closed forms: uniform on [0, 1] converges to levels
(2i - 1)/(2L) with D = 1/(12 L^2); a standard Gaussian with L = 2 to +-sqrt(2/pi), D = 1 - 2/pi.

The per-user state is a plain list ``[levels, thresholds, distortions]`` (three lists of floats).

>>> out = lloyd_run("uniform", lloyd_init("uniform", 4, seed=0).state)
>>> [round(a, 4) for a in out.state[0]]
[0.125, 0.375, 0.625, 0.875]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import plotly.graph_objects as go

from latentlab.errors import InputError
from latentlab.inputs import check_choice, check_int, check_seed

DENSITIES = {
    "gaussian": "standard Gaussian N(0, 1)",
    "mixture": "mixture 0.6 N(-1.5, 0.5²) + 0.4 N(1.5, 0.8²)",
    "uniform": "uniform on [0, 1]",
    "vq-vae": "one coordinate of a VQ-VAE's encoder outputs z_e",
}
LEVELS_RANGE = (2, 16)
GRID = 20_000
MIN_VALUES = 64
MAX_VALUES = 200_000
MAX_ITERS = 1000          # per press of Run (~0.1 s): the slowest cases (L = 16) need 2-4 presses
TOL = 1e-8                # convergence: largest level move, in units of the density's spread
PLOT_POINTS = 400

EXPLAIN = r"""
**Lloyd-Max.** $L$ levels $a_1<\dots<a_L$ and thresholds $b_j$ split the line into cells
$R_j=[b_{j-1}, b_j)$; the distortion is $D=\sum_j \int_{R_j}(u-a_j)^2 f_U(u)\,du$.
*Nearest neighbour:* $b_j=\frac{a_j+a_{j+1}}{2}$. *Centroid:* $a_j=\mathbb{E}[U \mid U\in R_j]$.
Neither step can raise $D$; alternate them until nothing moves.
Uniform on $[0,1]$: $a_i=\frac{2i-1}{2L}$, $D=\frac{1}{12L^2}$. Gaussian, $L=2$:
$a=\pm\sqrt{2/\pi}$, $D=1-2/\pi$.
"""


@dataclass(frozen=True)
class Density:
    """A 1-D distribution with cumulative moments, so every cell integral is a difference.

    Analytic densities are piecewise constant on a fine grid of ``edges`` and integrated
    exactly inside a grid cell (no jumps when a threshold crosses a grid point); given
    values are their own empirical measure (``edges`` are the sorted values, each 1/n).

    >>> d = make_density("uniform")
    >>> d.cell_moments(np.array([0.5]))[:, 0].round(4).tolist()
    [0.5, 0.125, 0.0417]
    """

    edges: np.ndarray         # (G + 1,) grid edges, or (n,) sorted values
    cum: np.ndarray           # (3, G + 1) integrals of f, u f, u^2 f up to each edge | (3, n + 1)
    pdf: np.ndarray | None    # (G,) density per grid cell; None for an empirical measure
    curve_x: np.ndarray       # (P,) what the plot draws as the density
    curve_y: np.ndarray       # (P,)
    label: str

    def moments_below(self, b: np.ndarray) -> np.ndarray:
        """(3, T) integrals of f, u f, u^2 f over (-inf, b) for each threshold b."""
        if self.pdf is None:                                                 # empirical: a step function
            return self.cum[:, np.searchsorted(self.edges, b)]
        t = np.minimum(np.maximum(b, self.edges[0]), self.edges[-1])
        i = np.minimum(np.searchsorted(self.edges, t, side="right") - 1, self.pdf.size - 1)
        lo, f = self.edges[i], self.pdf[i]
        t2, lo2 = t * t, lo * lo
        out = self.cum[:, i]                                                 # a copy (fancy index)
        out[0] += f * (t - lo)
        out[1] += f * (t2 - lo2) / 2
        out[2] += f * (t2 * t - lo2 * lo) / 3
        return out

    def cell_moments(self, thresholds: np.ndarray) -> np.ndarray:
        """(3, L) integrals of f, u f, u^2 f over the L cells cut by L - 1 sorted thresholds."""
        edges = np.empty((3, len(thresholds) + 2))
        edges[:, 0] = 0.0
        edges[:, 1:-1] = self.moments_below(np.asarray(thresholds, np.float64))
        edges[:, -1] = self.cum[:, -1]
        return edges[:, 1:] - edges[:, :-1]

    @property
    def spread(self) -> float:
        m0, m1, m2 = self.cum[:, -1]
        return math.sqrt(max(m2 / m0 - (m1 / m0) ** 2, 1e-24))

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF (linear inside a grid cell; the nearest value for an empirical measure)."""
        if self.pdf is None:
            return self.edges[np.clip((u * self.edges.size).astype(int), 0, self.edges.size - 1)]
        return np.interp(u, self.cum[0], self.edges)


@dataclass
class LloydOutputs:
    """What the panel shows, in the UI's output order, and the new per-user state."""

    figure: go.Figure         # density, levels, thresholds | distortion per step
    summary: str              # markdown: step, distortion, closed form where one exists
    state: list               # [levels, thresholds, distortions]


# ----------------------------------------------------------------------------- densities

def _normal_pdf(x: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


@lru_cache(maxsize=4)
def _analytic(kind: str) -> Density:
    lo, hi = (0.0, 1.0) if kind == "uniform" else (-8.0, 8.0)
    edges = np.linspace(lo, hi, GRID + 1)                                    # (G + 1,)
    mid = (edges[:-1] + edges[1:]) / 2                                       # (G,)
    if kind == "uniform":
        pdf = np.ones_like(mid)
    elif kind == "gaussian":
        pdf = _normal_pdf(mid, 0.0, 1.0)
    else:
        pdf = 0.6 * _normal_pdf(mid, -1.5, 0.5) + 0.4 * _normal_pdf(mid, 1.5, 0.8)
    pdf = pdf / (pdf * np.diff(edges)).sum()                                 # mass exactly 1
    e0, e1 = edges[:-1], edges[1:]
    cells = np.stack([pdf * (e1 - e0), pdf * (e1**2 - e0**2) / 2, pdf * (e1**3 - e0**3) / 3])
    cum = np.concatenate([np.zeros((3, 1)), np.cumsum(cells, axis=1)], axis=1)  # (3, G + 1)
    view = (-0.1, 1.1) if kind == "uniform" else (-4.5, 4.5)
    cx = np.linspace(*view, PLOT_POINTS)
    cy = np.interp(cx, mid, pdf, left=0.0, right=0.0)
    return Density(edges, cum, pdf, cx, cy, DENSITIES[kind])


def _empirical(values: Any) -> Density:
    v = np.asarray(values, np.float64).ravel() if values is not None else np.zeros(0)
    if not MIN_VALUES <= v.size <= MAX_VALUES:
        raise InputError(f"need between {MIN_VALUES} and {MAX_VALUES} values, got {v.size}")
    if not np.isfinite(v).all():
        raise InputError("the values contain NaN or infinite numbers")
    if np.ptp(v) == 0:
        raise InputError("the values are all equal: nothing to quantize")
    v = np.sort(v)
    w = np.full(v.size, 1.0 / v.size)
    cum = np.concatenate([np.zeros((3, 1)), np.cumsum(np.stack([w, w * v, w * v * v]), axis=1)], axis=1)
    counts, hist_edges = np.histogram(v, bins=60)
    cx = (hist_edges[:-1] + hist_edges[1:]) / 2                              # (60,) bin centres
    cy = counts / (v.size * (hist_edges[1] - hist_edges[0]))
    return Density(v, cum, None, cx, cy, DENSITIES["vq-vae"])


def coordinate_values(z_e: Any, channel: Any) -> np.ndarray:
    """One coordinate d of a VQ-VAE's encoder outputs z_e (B, D, H, W) -> (B*H*W,) values.

    >>> coordinate_values(np.zeros((2, 3, 7, 7)), 1).shape
    (98,)
    """
    z = np.asarray(z_e, np.float64)
    if z.ndim != 4:
        raise InputError(f"expected encoder outputs of shape (B, D, H, W), got {z.shape}")
    d = check_int("coordinate d", channel, 0, z.shape[1] - 1)
    return z[:, d].ravel()                                                   # (B, H, W) -> (B*H*W,)


def make_density(kind: str, values: Any = None) -> Density:
    """The density a panel quantizes; ``values`` (a 1-D array) only for ``"vq-vae"``."""
    check_choice("density", kind, tuple(DENSITIES))
    return _empirical(values) if kind == "vq-vae" else _analytic(kind)


# ----------------------------------------------------------------------------- Lloyd-Max

def nn_thresholds(levels: np.ndarray) -> np.ndarray:
    """Nearest-neighbour step: b_j = (a_j + a_{j+1}) / 2, (L,) -> (L - 1,)."""
    return (levels[:-1] + levels[1:]) / 2


def centroid_levels(density: Density, levels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Centroid step: a_j = E[U | U in cell j]; an empty cell keeps its level."""
    m0, m1, _ = density.cell_moments(thresholds)
    filled = m0 > 0
    out = levels.copy()
    out[filled] = m1[filled] / m0[filled]
    return out


def distortion(density: Density, levels: np.ndarray, thresholds: np.ndarray) -> float:
    """D = sum_j integral over cell j of (u - a_j)^2 f(u) du."""
    m0, m1, m2 = density.cell_moments(thresholds)
    return float(np.clip(m2 - 2 * levels * m1 + levels**2 * m0, 0.0, None).sum())


def init_levels(density: Density, n_levels: int, seed: int) -> np.ndarray:
    """L distinct levels drawn from the density itself (seeded), sorted."""
    u = np.random.default_rng(seed).random(n_levels)
    levels = np.unique(density.quantile(u))
    if levels.size < n_levels:  # repeated values drawn: spread the levels over quantiles instead
        levels = np.unique(density.quantile((np.arange(n_levels) + 0.5) / n_levels))
    if levels.size < n_levels:
        raise InputError(f"the values take fewer than {n_levels} distinct values: lower L")
    return levels


def converge(density: Density, levels: np.ndarray, max_iters: int = MAX_ITERS
             ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Alternate both steps until no level moves by more than TOL * spread (or max_iters).

    One set of cell moments per iteration serves both the centroid step and the distortion
    of the new levels (the thresholds do not change between the two).
    """
    tol = TOL * density.spread
    history = []
    for _ in range(max_iters):
        b = nn_thresholds(levels)
        m0, m1, m2 = density.cell_moments(b)
        new = np.where(m0 > 0, m1 / np.where(m0 > 0, m0, 1.0), levels)
        history.append(max(float((m2 - 2 * new * m1 + new * new * m0).sum()), 0.0))
        done = np.abs(new - levels).max() < tol
        levels = new
        if done:
            break
    return levels, nn_thresholds(levels), history


# ----------------------------------------------------------------------------- state and views

def _check_state(state: Any) -> tuple[np.ndarray, np.ndarray, list[float]]:
    try:
        levels, thresholds, history = (np.asarray(state[0], np.float64), np.asarray(state[1], np.float64),
                                       [float(d) for d in state[2]])
    except (TypeError, ValueError, IndexError):
        raise InputError("press Reset first: the quantizer state is missing or malformed") from None
    if (not LEVELS_RANGE[0] <= levels.size <= LEVELS_RANGE[1] or thresholds.size != levels.size - 1
            or not (np.isfinite(levels).all() and np.isfinite(thresholds).all())):
        raise InputError("press Reset first: the quantizer state does not fit the levels")
    return np.sort(levels), np.sort(thresholds), history


def _state(levels: np.ndarray, thresholds: np.ndarray, history: list[float]) -> list:
    return [levels.tolist(), thresholds.tolist(), list(history)]


def lloyd_init(kind: str, n_levels: int, seed: int = 0, values: Any = None) -> LloydOutputs:
    """Reset: L levels drawn from the density, thresholds at their midpoints."""
    n_levels = check_int("levels L", n_levels, *LEVELS_RANGE)
    density = make_density(kind, values)
    levels = init_levels(density, n_levels, check_seed(seed))
    b = nn_thresholds(levels)
    return _outputs(density, kind, levels, b, [distortion(density, levels, b)], "start")


def lloyd_step(kind: str, state: Any, action: str, values: Any = None) -> LloydOutputs:
    """One nearest-neighbour step (``"nn"``), one centroid step (``"centroid"``), or ``"run"``."""
    check_choice("step", action, ("nn", "centroid", "run"))
    density = make_density(kind, values)
    levels, b, history = _check_state(state)
    if action == "nn":
        b = nn_thresholds(levels)
        history.append(distortion(density, levels, b))
    elif action == "centroid":
        levels = centroid_levels(density, levels, b)
        history.append(distortion(density, levels, b))
    else:
        levels, b, more = converge(density, levels)
        history += more
        action = "run" if len(more) < MAX_ITERS else "run_more"
    return _outputs(density, kind, levels, b, history, action)


def lloyd_run(kind: str, state: Any, values: Any = None) -> LloydOutputs:
    """Run to convergence from the state's levels."""
    return lloyd_step(kind, state, "run", values)


def reference(kind: str, n_levels: int) -> float | None:
    """The optimal distortion in closed form where the lecture gives one."""
    if kind == "uniform":
        return 1 / (12 * n_levels**2)
    if kind == "gaussian" and n_levels == 2:
        return 1 - 2 / math.pi
    return None


def _outputs(density: Density, kind: str, levels: np.ndarray, b: np.ndarray,
             history: list[float], action: str) -> LloydOutputs:
    ref = reference(kind, levels.size)
    ref_text = f"; closed-form optimum {ref:.6f}" if ref is not None else ""
    names = {"start": "new levels", "nn": "nearest-neighbour step", "centroid": "centroid step",
             "run": "ran to convergence",
             "run_more": f"ran {MAX_ITERS} steps, not yet converged (press Run again)"}
    summary = (f"**{names[action]}** · {density.label} · L = {levels.size} · step {len(history) - 1} · "
               f"distortion (MSE) **{history[-1]:.6f}**{ref_text}")
    return LloydOutputs(figure(density, levels, b, history), summary, _state(levels, b, history))


def _history_points(history: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """At most PLOT_POINTS steps, log-spaced so the early drop and the tail both show."""
    steps = np.arange(len(history))
    if steps.size > PLOT_POINTS:
        steps = np.unique(np.geomspace(1, steps.size, PLOT_POINTS).astype(int) - 1)
    return steps, np.asarray(history)[steps]


def figure(density: Density, levels: np.ndarray, b: np.ndarray, history: list[float]) -> go.Figure:
    """Density with levels (markers) and thresholds (dashed lines) | distortion per step.

    Two axes side by side set by domains (make_subplots costs ~50 ms per figure).
    """
    top = float(density.curve_y.max()) * 1.08
    vx = np.repeat(b, 3)                                                     # x, x, None per line
    vx[2::3] = np.nan
    vy = np.tile([0.0, top, np.nan], b.size)
    steps, d = _history_points(history)
    data = [
        go.Scatter(x=np.round(density.curve_x, 4), y=np.round(density.curve_y, 4), mode="lines",
                   name="f(u)", line_color="#555"),
        go.Scatter(x=np.round(vx, 5), y=vy, mode="lines", name="thresholds b_j",
                   line={"dash": "dash", "color": "#1f77b4"}),
        go.Scatter(x=np.round(levels, 5), y=np.zeros_like(levels), mode="markers", name="levels a_j",
                   marker={"size": 11, "symbol": "diamond", "color": "#d62728"}),
        go.Scatter(x=steps, y=d, mode="lines+markers", marker_size=3, name="MSE", xaxis="x2",
                   yaxis="y2", line_color="#2ca02c", showlegend=False),
    ]
    layout = {
        "xaxis": {"domain": [0, 0.6], "title": {"text": "u"}},
        "xaxis2": {"domain": [0.7, 1], "anchor": "y2", "title": {"text": "step"}},
        "yaxis2": {"anchor": "x2", "type": "log", "title": {"text": "distortion D"}},
        "height": 340, "margin": {"l": 40, "r": 10, "t": 30, "b": 40}, "template": "none", "plot_bgcolor": "white",
        "legend": {"orientation": "h", "y": 1.12, "x": 0},
    }
    return go.Figure(data, layout)
