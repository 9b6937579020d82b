"""Latent traversals (one row per latent dimension) and the beta-VAE rate-distortion sweep.

Traversal: encode the image, take its posterior mean mu_phi(x), and move one coordinate at a
time by t in [-span, span] while the others stay put; decode each point. Rows are ordered by
the dimension's KL, (1/N) sum_n KL(q_phi(z_d|x_n) || N(0, 1)) (for a flow prior: of q pushed
to the base space, moment-matched), largest first; a dimension
with KL < 0.01 or Var_x(E_q[z_d]) < 0.01 is inactive (it carries no information about x).
For a flow prior the walk happens in the base space z* = f_lambda(z), where the prior is
N(0, I): z* = to_base(mu), z*_d += t, z = from_base(z*).

Beta sweep: the beta-VAE objective E_q log p_theta(x|z) - beta KL(q_phi(z|x) || p(z)) trades
rate (the KL, nats) against distortion (the reconstruction NLL): one point per beta.

>>> from models.vae import VAE, VAEConfig
>>> vae = VAE(VAEConfig(latent_dim=3, channels=4, hidden=16)).eval()
>>> out = run(vae, np.zeros((28, 28)), columns=5, kl_per_dim=[0.5, 2.0, 0.001])
>>> out.order, out.labels[2]
([1, 0, 2], 'z2  KL 0.00  inactive')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw, ImageFont

from latentlab.errors import InputError
from latentlab.metrics import active_units, kl_per_dim
from latentlab.views.elbo_gap import binary_image, check_gaussian_vae, check_whole

INACTIVE = 0.01          # KL per dim (nats) and Var_x(E_q[z_d]) thresholds
COLUMNS_MIN, COLUMNS_MAX = 3, 15
SPAN = 3.0
TILE, SCALE, GAP, LABEL_W, FONT = 28, 2, 2, 340, 30  # labels readable when 16 rows fit 500 px
BASE_SAMPLES = 16       # draws per image to moment-match q pushed through a flow

EXPLAIN = r"""
**What does each latent coordinate do?** Encode the digit, keep its posterior mean $\boldsymbol{\mu}_{\phi}(\mathbf{x})$ and shift one coordinate at a time, $z_d = \mu_d + t$ with $t \in [-3, 3]$, decoding every point with $p_{\theta}(\mathbf{x}|\mathbf{z})$. Rows are sorted by the coordinate's average KL over test images, $\frac{1}{n}\sum_{i} \text{KL}(q_{\phi}(z_d|\mathbf{x}_i) \| \mathcal{N}(0, 1))$, largest first. A coordinate with KL below 0.01 nats, or whose posterior mean hardly moves across images ($\text{Var}_{\mathbf{x}}\,\mathbb{E}_{q}[z_d] < 0.01$), is **inactive**: it carries no information about $\mathbf{x}$ and its row stays flat. For a flow prior the walk happens in the base space $\mathbf{z}^* = f_{\lambda}(\mathbf{z})$, where the prior is $\mathcal{N}(0, I)$, and each point is mapped back with $g_{\lambda} = f_{\lambda}^{-1}$; the KL and the variance are then measured there too (samples of $q_{\phi}(\mathbf{z}|\mathbf{x})$ pushed through $f_{\lambda}$, matched by a Gaussian per coordinate).

**$\beta$-VAE.** Weighting the KL term,
$$\mathbb{E}_{q_{\phi}(\mathbf{z}|\mathbf{x})} \log p_{\theta}(\mathbf{x}|\mathbf{z}) - \beta\, \text{KL}(q_{\phi}(\mathbf{z}|\mathbf{x}) \| p(\mathbf{z})),$$
trades **rate** (the KL, nats of information the code carries) against **distortion** (the reconstruction NLL). A larger $\beta$ lowers the rate, blurs reconstructions and switches more coordinates off.
"""


@dataclass
class Outputs:
    image: np.ndarray     # (H, W, 3) uint8: rows x columns of decoded tiles, labels at the left
    labels: list[str]     # one per row, in row order
    table: list[list]     # dimension, KL, Var_x(E_q z_d), active
    order: list[int]      # the dimension shown in each row
    z: np.ndarray         # (rows, columns, D) the latent points decoded


@dataclass
class SweepOutputs:
    figure: go.Figure     # rate vs distortion, one point per beta, the current one ringed
    table: list[list]     # name, beta, KL, rec NLL, active units, IWAE NLL (beta order)


# ----------------------------------------------------------------------------- helpers

def compose(tiles: np.ndarray, labels: list[str] | None = None, scale: int = SCALE,
            gap: int = GAP) -> np.ndarray:
    """(R, C, 28, 28) floats in [0, 1] -> one RGB uint8 grid with a label left of each row.

    >>> compose(np.zeros((2, 3, 28, 28)), ["a", "b"], scale=1, gap=2).shape
    (62, 432, 3)
    """
    rows, cols = tiles.shape[:2]
    side = TILE * scale
    left = LABEL_W if labels else 0
    canvas = np.full((rows * (side + gap) + gap, left + cols * (side + gap) + gap, 3), 255, np.uint8)
    pix = (np.clip(tiles, 0, 1) * 255 + 0.5).astype(np.uint8)
    pix = np.repeat(np.repeat(pix, scale, -2), scale, -1)                     # (R, C, s*28, s*28)
    for r in range(rows):
        for c in range(cols):
            y, x = gap + r * (side + gap), left + gap + c * (side + gap)
            canvas[y: y + side, x: x + side] = pix[r, c, :, :, None]
    if labels:
        img = Image.fromarray(canvas)
        draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=FONT)
        for r, text in enumerate(labels):
            draw.text((4, gap + r * (side + gap) + side / 2), text, fill=(30, 30, 30), font=font,
                      anchor="lm")
        canvas = np.asarray(img)
    return canvas


def square_grid(probs: torch.Tensor) -> np.ndarray:
    """(n, 1, 28, 28) pixel probabilities -> one square-ish RGB grid (no row labels).

    >>> square_grid(torch.zeros(5, 1, 28, 28)).shape == square_grid(torch.zeros(6, 1, 28, 28)).shape
    True
    """
    n = len(probs)
    cols = math.ceil(math.sqrt(n))
    tiles = np.zeros((math.ceil(n / cols) * cols, 28, 28), np.float32)
    tiles[:n] = probs[:, 0].numpy()
    return compose(tiles.reshape(-1, cols, 28, 28))                          # (rows, cols, 28, 28)


@torch.no_grad()
def dimension_stats(model, images: torch.Tensor, samples: int = BASE_SAMPLES,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension KL to N(0, 1) and Var_x(E_q z_d) over ``images`` (N, 1, 28, 28), both in
    the space the traversal walks.

    N(0, I) prior: the closed-form KL of q_phi(z_d|x) and the variance of mu_d. Flow prior:
    q_phi(z|x) pushed to the base space is no Gaussian, so each image's ``samples`` draws
    z* = f_lambda(z) are moment-matched per coordinate, N(m_d, v_d), and KL(N(m_d, v_d) ||
    N(0, 1)) and Var_x(m_d) are reported (the base space is where the flow's prior is N(0, I)).
    """
    mus, logvars = zip(*(model.encode(xb) for xb in images.split(500)))
    mu, logvar = torch.cat(mus), torch.cat(logvars)                           # (N, D) each
    if model.config.prior == "normal":
        return kl_per_dim(mu, logvar).numpy(), active_units(mu, INACTIVE)[1].numpy()
    eps = torch.randn((samples, *mu.shape), generator=torch.Generator().manual_seed(seed))
    z = mu + torch.exp(0.5 * logvar) * eps                                    # (S, N, D)
    base = model.prior.to_base(z.view(-1, mu.shape[1])).view(z.shape)        # (S, N, D)
    m, v = base.mean(0), base.var(0).clamp_min(1e-12)                         # (N, D) each
    return kl_per_dim(m, v.log()).numpy(), active_units(m, INACTIVE)[1].numpy()


def _check(model, columns, span) -> tuple[int, float]:
    check_gaussian_vae(model)
    columns = check_whole("columns", columns, COLUMNS_MIN, COLUMNS_MAX)
    try:
        span = float(span)
    except (TypeError, ValueError):
        raise InputError(f"span must be a number, got {span!r}") from None
    if not (math.isfinite(span) and 0.5 <= span <= 5.0):
        raise InputError(f"span must lie between 0.5 and 5, got {span!r}")
    return int(columns), span


def _vector(name: str, values, dim: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != (dim,) or not np.isfinite(arr).all():
        raise InputError(f"{name} needs {dim} finite numbers, got shape {arr.shape}")
    return arr


@torch.no_grad()
def traverse(model, x: torch.Tensor, order: list[int], offsets: np.ndarray) -> torch.Tensor:
    """The grid of latent points (rows, columns, D): row r moves base coordinate order[r]."""
    mu, _ = model.encode(x)                                                   # (1, D)
    base = model.prior.to_base(mu)[0]                                         # (D,)
    grid = base.repeat(len(order), len(offsets), 1)                          # (R, C, D)
    t = torch.as_tensor(offsets, dtype=base.dtype)
    for r, d in enumerate(order):
        grid[r, :, d] = base[d] + t
    return model.prior.from_base(grid.view(-1, len(base))).view(grid.shape)  # (R, C, D)


# ----------------------------------------------------------------------------- views

def run(model, image, columns: int = 9, span: float = SPAN, kl_per_dim=None,
        variances=None, test_images: torch.Tensor | None = None) -> Outputs:
    """Traversal of every latent dimension of a Gaussian-posterior model, ordered by KL.

    Give ``kl_per_dim`` (e.g. from metrics.json) and optionally ``variances``
    (Var_x(E_q z_d)), or ``test_images`` (N, 1, 28, 28) to compute both.
    """
    columns, span = _check(model, columns, span)
    dim = model.config.latent_dim
    if kl_per_dim is None:
        if test_images is None:
            raise InputError("the traversal needs kl_per_dim or test images to order the rows")
        kl_per_dim, variances = dimension_stats(model, test_images)
    kl = _vector("kl_per_dim", kl_per_dim, dim)
    var = None if variances is None else _vector("variances", variances, dim)
    active = (kl >= INACTIVE) & (var >= INACTIVE if var is not None else True)
    order = [int(d) for d in np.argsort(-kl, kind="stable")]
    z = traverse(model, binary_image(image), order, np.linspace(-span, span, columns))
    with torch.no_grad():
        tiles = model.decode_probs(z)[..., 0, :, :].numpy()                  # (R, C, 28, 28)
    labels = [f"z{d}  KL {kl[d]:.2f}" + ("" if active[d] else "  inactive") for d in order]
    table = [[d, round(float(kl[d]), 3), None if var is None else round(float(var[d]), 3),
              bool(active[d])] for d in order]
    return Outputs(compose(tiles, labels), labels, table, order, z.numpy())


def _usable(entry: dict) -> bool:
    """An entry with a name and finite beta, KL and reconstruction numbers."""
    try:
        return bool(entry.get("name")) and all(
            math.isfinite(float(entry[k])) for k in ("beta", "test_kl", "test_rec_nll"))
    except (KeyError, TypeError, ValueError):
        return False


def _sweep_figure(rows: list[dict], current: str | None) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(height=380, margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      template="plotly_white", title="beta-VAE: rate vs distortion",
                      xaxis_title="rate: KL(q(z|x) ‖ p(z)) (nats)",
                      yaxis_title="distortion: −E_q log p(x|z) (nats)")
    if not rows:
        fig.add_annotation(text="No beta-sweep checkpoint yet. Train them with "
                           "scripts/train_lecture.sh (mnist-vae-z16-beta*).",
                           showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return fig
    kl = [float(e["test_kl"]) for e in rows]
    rec = [float(e["test_rec_nll"]) for e in rows]
    fig.add_trace(go.Scatter(x=kl, y=rec, mode="lines+markers+text", name="β sweep",
                             text=[f"β={float(e['beta']):g}" for e in rows],
                             textposition="top right", marker={"size": 9, "color": "#1f77b4"},
                             customdata=[e["name"] for e in rows],
                             hovertemplate="%{customdata}<br>KL %{x:.2f}<br>rec %{y:.2f}"))
    hit = [i for i, e in enumerate(rows) if e["name"] == current]
    if hit:
        fig.add_trace(go.Scatter(x=[kl[hit[0]]], y=[rec[hit[0]]], mode="markers",
                                 name=f"current: {current}", marker={
                                     "size": 18, "color": "rgba(0,0,0,0)",
                                     "line": {"color": "#d62728", "width": 3}}))
    return fig


def beta_sweep(entries: list[dict], current: str | None = None) -> SweepOutputs:
    """Rate (KL) vs distortion (reconstruction NLL), one point per beta, in beta order.

    ``entries``: dicts with name, beta, test_kl, test_rec_nll, active_units and optionally
    test_nll_iwae (entries without the first four numbers are left out); ``current`` names
    the point to highlight.

    >>> out = beta_sweep([])
    >>> out.figure.layout.annotations[0].text[:29], out.table
    ('No beta-sweep checkpoint yet.', [])
    """
    rows = sorted((e for e in entries if _usable(e)),
                  key=lambda e: (float(e["beta"]), str(e["name"])))
    table = [[e["name"], float(e["beta"]), round(float(e["test_kl"]), 2),
              round(float(e["test_rec_nll"]), 2), e.get("active_units"),
              None if e.get("test_nll_iwae") is None else round(float(e["test_nll_iwae"]), 2)]
             for e in rows]
    return SweepOutputs(_sweep_figure(rows, current), table)
