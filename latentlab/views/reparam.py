"""Lecture panel: the reparameterization trick for a 2-D Gaussian posterior.

q_phi(z|x) = N(mu, diag(sigma^2)); draw eps_i ~ N(0, I) and set z_i = mu + sigma * eps_i.
The left panel shows the eps_i in the base plane (unit and 2-circles), the right one the z_i
with the posterior's 1- and 2-sigma ellipses, a grey line joining each matching pair; under it
the decoder's pixel probabilities for every z_i.

The eps drawn here are the very draws behind ``DiagonalGaussian.rsample``: both use a
generator seeded the same way, so z_i == mu + sigma * eps_i holds to the last bit.

>>> from models.vae import VAE, VAEConfig
>>> out = reparam_panel(VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)).eval(),
...                     np.zeros((28, 28), np.float32), m=4, seed=0)
>>> out.eps.shape, out.z.shape, out.images.dtype
((4, 2), (4, 2), dtype('uint8'))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from latentlab import render
from latentlab.errors import InputError
from latentlab.inputs import check_image, check_int, check_seed, generator
from models.distributions import DiagonalGaussian

M_RANGE = (1, 64)
DOMAINS = ((0.0, 0.44), (0.56, 1.0))   # the two panels' x domains (paper coordinates)
CIRCLE = np.linspace(0, 2 * np.pi, 61)

EXPLAIN = r"""
**Reparameterization.** Instead of sampling $z \sim q_\phi(z|x)=\mathcal{N}(\mu_\phi(x),
\mathrm{diag}\,\sigma_\phi^2(x))$ directly, draw $\epsilon \sim \mathcal{N}(0, I)$ and set
$z = \mu + \sigma \odot \epsilon$. Left: the $\epsilon_i$ with the unit circle; right: the $z_i$ with
the posterior's 1- and 2-$\sigma$ ellipses; grey lines join matching pairs. Gradients reach
$\phi$ because $z$ is a deterministic, differentiable function of $(\mu, \sigma)$ and of noise
that does not depend on $\phi$: $\partial z/\partial\mu = I$, $\partial z/\partial\sigma = \mathrm{diag}(\epsilon)$.
"""


@dataclass
class ReparamOutputs:
    """What the panel shows, in the UI's output order."""

    figure: go.Figure        # eps plane | z plane, matching pairs joined
    images: np.ndarray       # (H, W, 3) uint8: decoded pixel probabilities of the z_i
    summary: str             # markdown: mu, sigma, the autograd check
    eps: np.ndarray          # (M, 2)
    z: np.ndarray            # (M, 2)
    mu: np.ndarray           # (2,)
    sigma: np.ndarray        # (2,)


# ----------------------------------------------------------------------------- maths

def draws(q: DiagonalGaussian, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(eps, z), each (m, *q.mu.shape): eps ~ N(0, I) and z = q.rsample from the same seed."""
    eps = torch.randn((m, *q.mu.shape), generator=generator(seed), dtype=q.mu.dtype)
    z = q.rsample((m,), generator=generator(seed))
    return eps, z


def gradients(mu: torch.Tensor, logvar: torch.Tensor, m: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Autograd of f = mean_i ||z_i||^2 / 2 through rsample: (df/dmu, df/dlogvar), each (D,).

    Analytically df/dmu = mean_i z_i and df/dlogvar = mean_i z_i * eps_i * sigma / 2.
    """
    mu = mu.detach().clone().requires_grad_(True)
    logvar = logvar.detach().clone().requires_grad_(True)
    z = DiagonalGaussian(mu, logvar).rsample((m,), generator=generator(seed))
    f = 0.5 * z.pow(2).sum(-1).mean()
    g_mu, g_logvar = torch.autograd.grad(f, [mu, logvar])
    return g_mu.reshape(-1).numpy(), g_logvar.reshape(-1).numpy()


# ----------------------------------------------------------------------------- figure

def _paper(v: np.ndarray, rng: tuple[float, float], dom: tuple[float, float]) -> np.ndarray:
    """Data coordinates -> paper coordinates of an axis with a fixed range and domain."""
    return dom[0] + (v - rng[0]) / (rng[1] - rng[0]) * (dom[1] - dom[0])


def figure(eps: np.ndarray, z: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> go.Figure:
    """Two planes side by side with fixed ranges, so matching pairs can be joined in paper
    coordinates (a line from one subplot to the other). The z plane is zoomed to the
    posterior (trained posteriors are narrow: sigma ~ 0.02 for mnist-vae-z2)."""
    r = max(3.2, float(np.abs(eps).max()) + 0.3)
    left = ((-r, r), (-r, r))
    half = r * float(sigma.max()) * 1.05           # same scale on both z axes: the ellipse keeps its shape
    right = ((mu[0] - half, mu[0] + half), (mu[1] - half, mu[1] + half))
    idx = np.arange(eps.shape[0])
    marker = {"size": 8, "color": idx, "colorscale": "Viridis", "line": {"width": 0.5, "color": "#222"}}
    rings = [go.Scatter(x=np.round(k * np.cos(CIRCLE), 4), y=np.round(k * np.sin(CIRCLE), 4), mode="lines",
                        line={"color": "#999", "dash": "dot" if k == 2 else "solid"}, showlegend=False,
                        hoverinfo="skip") for k in (1, 2)]
    ellipses = [go.Scatter(x=np.round(mu[0] + k * sigma[0] * np.cos(CIRCLE), 4),
                           y=np.round(mu[1] + k * sigma[1] * np.sin(CIRCLE), 4), mode="lines", xaxis="x2",
                           yaxis="y2", line={"color": "#d62728", "dash": "dot" if k == 2 else "solid"},
                           name=f"{k}σ ellipse of q(z|x)", hoverinfo="skip") for k in (1, 2)]
    data = [*rings,
            go.Scatter(x=np.round(eps[:, 0], 4), y=np.round(eps[:, 1], 4), mode="markers", marker=marker,
                       name="ε_i ~ N(0, I)", text=[f"i={i}" for i in idx]),
            *ellipses,
            go.Scatter(x=np.round(z[:, 0], 4), y=np.round(z[:, 1], 4), mode="markers", marker=marker,
                       xaxis="x2", yaxis="y2", name="z_i = μ + σ ⊙ ε_i", text=[f"i={i}" for i in idx]),
            go.Scatter(x=[mu[0]], y=[mu[1]], mode="markers", xaxis="x2", yaxis="y2", name="μ",
                       marker={"symbol": "star", "size": 13, "color": "#d62728"})]
    px0, py0 = _paper(eps[:, 0], left[0], DOMAINS[0]), _paper(eps[:, 1], left[1], (0, 1))
    px1, py1 = _paper(z[:, 0], right[0], DOMAINS[1]), _paper(z[:, 1], right[1], (0, 1))
    shapes = [{"type": "line", "xref": "paper", "yref": "paper", "x0": round(float(a), 4),
               "y0": round(float(b), 4), "x1": round(float(c), 4), "y1": round(float(d), 4), "line": {"color": "rgba(80,80,80,0.35)", "width": 1},
               "layer": "below"} for a, b, c, d in zip(px0, py0, px1, py1)]
    layout = {
        "xaxis": {"domain": DOMAINS[0], "range": left[0], "title": {"text": "ε₁"}, "zeroline": True},
        "yaxis": {"domain": (0, 1), "range": left[1], "title": {"text": "ε₂"}},
        "xaxis2": {"domain": DOMAINS[1], "range": right[0], "anchor": "y2", "title": {"text": "z₁"}},
        "yaxis2": {"domain": (0, 1), "range": right[1], "anchor": "x2", "title": {"text": "z₂"}},
        "shapes": shapes, "height": 380, "margin": {"l": 45, "r": 10, "t": 20, "b": 40},
        "template": "none", "plot_bgcolor": "white", "legend": {"orientation": "h", "y": -0.18},
    }
    return go.Figure(data, layout)


# ----------------------------------------------------------------------------- the panel

def _check_model(model: torch.nn.Module) -> None:
    cfg = getattr(model, "config", None)
    if getattr(cfg, "posterior", None) != "gaussian" or getattr(cfg, "latent_dim", None) != 2:
        raise InputError("this panel needs a VAE with a 2-D Gaussian posterior (mnist-vae-z2 or mnist-flow-z2)")


def reparam_panel(model: torch.nn.Module, image: np.ndarray, m: int = 16, seed: int = 0) -> ReparamOutputs:
    """eps and z = mu + sigma * eps for the image's posterior, and the decoded z's."""
    _check_model(model)
    x = torch.from_numpy(check_image(image)).view(1, 1, 28, 28)              # (1, 1, 28, 28)
    m = check_int("M (samples)", m, *M_RANGE)
    seed = check_seed(seed)
    with torch.no_grad():
        q = model.posterior(x)                                               # batch (1,), event (2,)
        eps, z = draws(q, m, seed)                                           # (M, 1, 2) each
        probs = model.decode_probs(z[:, 0])[:, 0]                            # (M, 28, 28)
    mu, sigma = q.mu[0].numpy(), q.stddev[0].numpy()
    g_mu, g_logvar = gradients(q.mu, q.logvar, m, seed)
    e, zz = eps[:, 0].numpy(), z[:, 0].numpy()                               # (M, 2)
    summary = (f"μ = ({mu[0]:.3g}, {mu[1]:.3g}), σ = ({sigma[0]:.3g}, {sigma[1]:.3g}), M = {m}. "
               f"Autograd of f = mean‖z‖²/2 through rsample: ∇_μ f = ({g_mu[0]:.3g}, {g_mu[1]:.3g}) "
               f"= mean z; ∇_(log σ²) f = ({g_logvar[0]:.3g}, {g_logvar[1]:.3g}) = mean z ⊙ ε ⊙ σ/2.")
    images = render.tile(probs.numpy(), cols=min(m, 16), scale=2)
    return ReparamOutputs(figure(e, zz, mu, sigma), images, summary, e, zz, mu, sigma)
