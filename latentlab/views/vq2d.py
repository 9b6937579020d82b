"""Lecture panel: vector quantization in 2-D (k-means, Voronoi cells, dead codes) and a
VQ-VAE's own codebook seen in the top-2 PCA plane of its encoder outputs.

k-means alternates the two Lloyd steps in the plane: assign every point to its nearest code
(Voronoi cell), move every code to the mean of its points. A code whose cell holds no point
never moves again: a *dead code*. Starting all codes in one corner makes some of them dead
for good; k-means++ or random data points as starts do not.

>>> out = vq2d_panel(k=6, init="k-means++", seed=0)
>>> out.dead, len(out.distortions) > 1
(0, True)
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
from latentlab.inputs import check_choice, check_int, check_seed
from models.quantizer import kmeans_plus_plus

K_RANGE = (2, 32)
INITS = {
    "k-means++": "k-means++ seeds (spread over the data)",
    "random points": "K distinct data points",
    "bad: one corner": "all codes in a small clump below-left of the data",
}
N_POINTS = 600
CLUSTERS = 6                 # mixture components of the point cloud, on a circle of radius 3
ITERS = 25                   # Lloyd iterations per press: converged on this cloud
RES = 90                     # Voronoi pixels per side
MAX_SHOWN = 1500             # encoder outputs drawn in the codebook plane

EXPLAIN = r"""
**Vector quantization.** Codes $e_1,\dots,e_K\in\mathbb{R}^2$; each point $z$ goes to its nearest
code, $k^*=\arg\min_k\lVert z-e_k\rVert$: the cells are Voronoi regions (bounded by perpendicular
bisectors). k-means alternates *assign* and *centroid* ($e_k=\mathbb{E}[z\mid z\in R_k]$); the
distortion $\frac1N\sum_n \min_k\lVert z_n-e_k\rVert^2$ never rises. A code with an empty cell is
**dead**: it never moves again (× marks). The VQ-VAE's codebook is drawn the same way in the plane
of the top two principal components of its encoder outputs $z_e$.
"""


@dataclass
class VQ2DOutputs:
    """The k-means panel, in the UI's output order."""

    figure: go.Figure        # Voronoi cells, points, codes | distortion per iteration
    summary: str
    dead: int                # codes whose cell holds no point
    distortions: list[float]  # mean squared distance after each assignment


@dataclass
class CodebookOutputs:
    """The VQ-VAE codebook panel, in the UI's output order."""

    figure: go.Figure
    summary: str
    usage: np.ndarray        # (K,) encoder outputs whose nearest code (in D dims) is k


# ----------------------------------------------------------------------------- maths

def mixture_points(seed: int, n: int = N_POINTS) -> np.ndarray:
    """n points (n, 2) from an equal mixture of CLUSTERS Gaussians (sd 0.45) on a circle."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(CLUSTERS) / CLUSTERS
    centres = 3.0 * np.stack([np.cos(angles), np.sin(angles)], 1)           # (C, 2)
    comp = rng.integers(CLUSTERS, size=n)
    return centres[comp] + 0.45 * rng.standard_normal((n, 2))


def nearest(points: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Index of the nearest code for each point: (N, D), (K, D) -> (N,).

    ||z||^2 drops out of the argmin, so -2 z e^T + ||e||^2 is all it needs: one matrix
    product, done by torch so it keeps to the app's thread count.
    """
    z = torch.from_numpy(np.ascontiguousarray(points, np.float64))
    e = torch.from_numpy(np.ascontiguousarray(codes, np.float64))
    d2 = e.pow(2).sum(1).unsqueeze(0) - 2.0 * z @ e.T                        # (N, K)
    return d2.argmin(1).numpy()


def init_codes(points: np.ndarray, k: int, init: str, seed: int) -> np.ndarray:
    """Starting codes (k, 2) for one of INITS."""
    check_choice("initialisation", init, tuple(INITS))
    rng = np.random.default_rng(seed)
    if init == "k-means++":
        gen = torch.Generator().manual_seed(seed)
        return kmeans_plus_plus(torch.from_numpy(points), k, gen).numpy().copy()
    if init == "random points":
        return points[rng.choice(points.shape[0], k, replace=False)].copy()
    corner = points.min(0) - 0.5
    return corner + 0.3 * rng.random((k, 2))                                  # clump of side 0.3


def kmeans(points: np.ndarray, codes: np.ndarray, iters: int = ITERS
           ) -> tuple[np.ndarray, list[float], np.ndarray]:
    """Lloyd's k-means from ``codes``: (final codes, distortion after each assignment, assignment).

    An empty cell keeps its code where it is (that is what makes it dead).
    """
    codes = codes.copy()
    history = []
    for _ in range(iters):
        assign = nearest(points, codes)
        history.append(float(((points - codes[assign]) ** 2).sum(1).mean()))
        counts = np.bincount(assign, minlength=codes.shape[0])
        sums = np.zeros_like(codes)
        np.add.at(sums, assign, points)
        filled = counts > 0
        codes[filled] = sums[filled] / counts[filled, None]
    assign = nearest(points, codes)
    history.append(float(((points - codes[assign]) ** 2).sum(1).mean()))
    return codes, history, assign


def grid_axes(lo: np.ndarray, hi: np.ndarray, res: int = RES) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres along x and y covering the box [lo, hi]."""
    xs = lo[0] + (np.arange(res) + 0.5) * (hi[0] - lo[0]) / res
    ys = lo[1] + (np.arange(res) + 0.5) * (hi[1] - lo[1]) / res
    return xs, ys


def voronoi_labels(codes: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Nearest code of every pixel centre: (len(ys), len(xs)) int, row = y."""
    gx, gy = np.meshgrid(xs, ys)                                              # (H, W) each
    pixels = np.stack([gx.ravel(), gy.ravel()], 1)                            # (H*W, 2)
    return nearest(pixels, codes).reshape(ys.size, xs.size)


def _box(*clouds: np.ndarray, pad: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    allp = np.concatenate(clouds)
    lo, hi = allp.min(0), allp.max(0)
    margin = pad * (hi - lo).max() + 1e-9
    return lo - margin, hi + margin


# ----------------------------------------------------------------------------- figures

def _cells_trace(labels: np.ndarray, xs: np.ndarray, ys: np.ndarray, k: int) -> go.Heatmap:
    colors = render.code_hex(k)
    scale = [[i / (k - 1), c] for i, c in enumerate(colors)]  # cell value i hits colour i exactly
    return go.Heatmap(z=labels, x=np.round(xs, 4), y=np.round(ys, 4), colorscale=scale, zmin=0,
                      zmax=k - 1, showscale=False, opacity=0.45, hoverinfo="skip")


def _codes_traces(codes: np.ndarray, counts: np.ndarray, sizes: np.ndarray | None = None) -> list:
    live, dead = counts > 0, counts == 0
    idx = np.arange(codes.shape[0])
    marker = {"size": 11 if sizes is None else sizes[live], "color": "#111",
              "line": {"width": 1.5, "color": "white"}}
    return [
        go.Scatter(x=np.round(codes[live, 0], 4), y=np.round(codes[live, 1], 4), mode="markers",
                   marker=marker, name="codes e_k", customdata=np.stack([idx[live], counts[live]], 1),
                   hovertemplate="code %{customdata[0]}: %{customdata[1]} points<extra></extra>"),
        go.Scatter(x=np.round(codes[dead, 0], 4), y=np.round(codes[dead, 1], 4), mode="markers",
                   marker={"size": 13, "symbol": "x", "color": "#d62728"}, name="dead codes",
                   text=[f"code {i}: dead" for i in idx[dead]], hoverinfo="text"),
    ]


def _layout(title: str, lo: np.ndarray, hi: np.ndarray, with_curve: bool) -> dict:
    width = [0, 0.68] if with_curve else [0, 1]
    layout = {
        "title": {"text": title, "font": {"size": 14}},
        "xaxis": {"domain": width, "range": [lo[0], hi[0]], "showgrid": False},
        "yaxis": {"range": [lo[1], hi[1]], "showgrid": False, "scaleanchor": "x"},
        "height": 400, "margin": {"l": 35, "r": 10, "t": 40, "b": 30}, "template": "none", "plot_bgcolor": "white",
        "legend": {"orientation": "h", "y": -0.08, "x": 0},
    }
    if with_curve:
        layout["xaxis2"] = {"domain": [0.78, 1], "anchor": "y2", "title": {"text": "iteration"}}
        layout["yaxis2"] = {"anchor": "x2", "title": {"text": "distortion"}}
    return layout


def kmeans_figure(points: np.ndarray, codes: np.ndarray, counts: np.ndarray, history: list[float],
                  title: str) -> go.Figure:
    lo, hi = _box(points, codes)
    xs, ys = grid_axes(lo, hi)
    data = [_cells_trace(voronoi_labels(codes, xs, ys), xs, ys, codes.shape[0]),
            go.Scatter(x=np.round(points[:, 0], 3), y=np.round(points[:, 1], 3), mode="markers",
                       marker={"size": 3, "color": "#555"}, name="points", hoverinfo="skip"),
            *_codes_traces(codes, counts),
            go.Scatter(x=np.arange(len(history)), y=np.round(history, 5), mode="lines+markers",
                       xaxis="x2", yaxis="y2", marker_size=4, showlegend=False, name="distortion")]
    return go.Figure(data, _layout(title, lo, hi, with_curve=True))


# ----------------------------------------------------------------------------- the panels

def vq2d_panel(k: int = 8, init: str = "k-means++", seed: int = 0) -> VQ2DOutputs:
    """k-means with K codes on the seeded 2-D mixture; dead codes counted and marked."""
    k = check_int("K (codes)", k, *K_RANGE)
    seed = check_seed(seed)
    points = mixture_points(seed)
    codes, history, assign = kmeans(points, init_codes(points, k, init, seed))
    counts = np.bincount(assign, minlength=k)
    dead = int((counts == 0).sum())
    summary = (f"K = {k}, start: {INITS[check_choice('initialisation', init, tuple(INITS))]} · "
               f"distortion {history[0]:.3f} → **{history[-1]:.3f}** after {ITERS} iterations · "
               f"**{dead} dead code{'s' if dead != 1 else ''}** (empty cells)")
    fig = kmeans_figure(points, codes, counts, history, f"k-means, K={k}: Voronoi cells and codes")
    return VQ2DOutputs(fig, summary, dead, history)


def encoder_vectors(z_e: Any) -> np.ndarray:
    """A VQ-VAE's encoder grid (B, D, H, W) as the (B*H*W, D) vectors it quantizes.

    >>> encoder_vectors(np.zeros((2, 4, 7, 7))).shape
    (98, 4)
    """
    z = np.asarray(z_e, np.float64)
    if z.ndim != 4:
        raise InputError(f"expected encoder outputs of shape (B, D, H, W), got {z.shape}")
    return np.moveaxis(z, 1, -1).reshape(-1, z.shape[1])                     # (B, H, W, D) -> (B*H*W, D)


def pca_plane(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean (D,), top-2 principal directions (D, 2), share of variance they explain.

    The SVD is of the small (D, D) scatter matrix, not of z itself: same directions, and
    milliseconds instead of a multi-threaded SVD of an (N, D) matrix.
    """
    mean = z.mean(0)
    zc = torch.from_numpy(z - mean)
    c = (zc.T @ zc).numpy()                                                  # (D, D)
    u, s, _ = np.linalg.svd(c)                                               # s: variances * N
    share = float(s[:2].sum() / max(s.sum(), 1e-300))
    return mean, u[:, :2], share


def _check_matrix(name: str, a: Any, cols: int | None = None) -> np.ndarray:
    arr = np.asarray(a, np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"{name} must be a (rows, D) array with at least 2 rows and D >= 2, "
                         f"got shape {arr.shape}")
    if cols is not None and arr.shape[1] != cols:
        raise InputError(f"{name} have D = {arr.shape[1]}, the codebook has D = {cols}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contain NaN or infinite values")
    return arr


def codebook_panel(codebook: Any, z: Any) -> CodebookOutputs:
    """A VQ-VAE codebook (K, D) and encoder outputs (N, D), drawn in the PCA plane of z.

    Usage counts use the true nearest code in D dimensions; the coloured cells are the
    nearest *projected* code, so points can sit outside their code's planar cell.
    """
    e = _check_matrix("the codebook", codebook)
    z = _check_matrix("the encoder outputs", z, e.shape[1])
    usage = np.bincount(nearest(z, e), minlength=e.shape[0])                 # (K,)
    mean, v, share = pca_plane(z)
    pe, pz = (e - mean) @ v, (z - mean) @ v                                  # (K, 2), (N, 2)
    shown = pz[:: max(1, math.ceil(z.shape[0] / MAX_SHOWN))]
    lo, hi = _box(shown, pe)
    xs, ys = grid_axes(lo, hi)
    sizes = 6 + 14 * np.sqrt(usage / max(usage.max(), 1))
    data = [_cells_trace(voronoi_labels(pe, xs, ys), xs, ys, e.shape[0]),
            go.Scatter(x=np.round(shown[:, 0], 3), y=np.round(shown[:, 1], 3), mode="markers",
                       marker={"size": 3, "color": "#555", "opacity": 0.5}, name="z_e", hoverinfo="skip"),
            *_codes_traces(pe, usage, sizes)]
    title = f"VQ-VAE codebook in the PCA plane of z_e ({100 * share:.0f}% of the variance)"
    p = usage / usage.sum()
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    summary = (f"K = {e.shape[0]} codes of D = {e.shape[1]} · {z.shape[0]} encoder outputs · "
               f"**{int((usage > 0).sum())} used, {int((usage == 0).sum())} dead** · perplexity "
               f"{perplexity:.1f} · marker size ∝ √usage; cells are nearest codes *in the plane*")
    return CodebookOutputs(go.Figure(data, _layout(title, lo, hi, with_curve=False)), summary, usage)
