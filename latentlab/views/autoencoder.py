"""An autoencoder cannot sample: its codes are not where N(0, I) puts its mass.

A plain autoencoder learns z = E(x) with only a reconstruction loss; nothing ties the cloud
of codes to any distribution, so decoding z ~ N(0, I) gives garbage. The VAE's KL term
KL(q_phi(z|x) || N(0, I)) pulls its aggregated posterior towards the prior, which is why its
decoder turns prior samples into digits. The panel shows (a) the codes against N(0, I) draws,
(b) per-dimension moments and the KL of the moment-matched Gaussian N(m, diag s^2) to N(0, I),

    KL = 1/2 sum_d (s_d^2 + m_d^2 - 1 - log s_d^2),

and (c) the same N(0, I) draws decoded by both decoders.

>>> from models.vae import VAE, VAEConfig
>>> ae = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16, posterior="deterministic")).eval()
>>> vae = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)).eval()
>>> out = run(ae, vae, torch.rand(50, 1, 28, 28), n_samples=4, seed=0)
>>> out.ae_samples.shape == out.vae_samples.shape, len(out.table)
(True, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from latentlab.errors import InputError
from latentlab.views.elbo_gap import check_whole
from latentlab.views.traversal import square_grid

N_MAX, PLOT_POINTS, MAX_SEED = 64, 1000, 2**31 - 1

EXPLAIN = r"""
**Why an autoencoder is no generative model.** A plain autoencoder trains $\mathbf{z} = \boldsymbol{\mu}_{\phi}(\mathbf{x})$ on reconstruction alone: nothing says where the codes should lie, so they fill some odd region of their own. Decoding $\mathbf{z} \sim \mathcal{N}(0, I)$ then mostly lands where the decoder never saw a code. The VAE pays $\text{KL}(q_{\phi}(\mathbf{z}|\mathbf{x}) \| p(\mathbf{z}))$ for every image; averaged over the data this includes $\text{KL}(q_{\text{agg},\phi}(\mathbf{z}) \| p(\mathbf{z}))$, which pulls the aggregated posterior onto the prior, so prior samples decode to digits.

The table compares per-coordinate mean and standard deviation with 0 and 1 (for the VAE: of $q_{\text{agg},\phi}$, i.e. the spread of the means plus the average posterior variance), and the summary gives the KL of the moment-matched Gaussian,
$$\text{KL}(\mathcal{N}(\mathbf{m}, \text{diag}\,\mathbf{s}^2) \| \mathcal{N}(0, I)) = \tfrac{1}{2}\sum_{d} \left(s_d^2 + m_d^2 - 1 - \log s_d^2\right).$$
For more than two coordinates the scatter shows the first two principal directions of each cloud (no centring, so $\mathcal{N}(0, I)$ stays $\mathcal{N}(0, I)$). Both decoders get the same $\mathcal{N}(0, I)$ draws.
"""


@dataclass
class Outputs:
    figure: go.Figure        # codes vs N(0, I) draws: autoencoder left, VAE means right
    summary: str             # markdown: the two Gaussian KLs and what they mean
    table: list[list]        # dimension, AE mean, AE std, VAE q_agg mean, VAE q_agg std
    ae_samples: np.ndarray   # (H, W, 3) uint8: N(0, I) draws through the autoencoder's decoder
    vae_samples: np.ndarray  # (H, W, 3) uint8: the same draws through the VAE's decoder
    ae_stats: dict           # mean (D,), std (D,), kl (float) of the autoencoder's codes
    vae_stats: dict          # the same for the VAE's aggregated posterior


# ----------------------------------------------------------------------------- helpers

def code_stats(codes: np.ndarray, extra_var: np.ndarray | float = 0.0) -> dict:
    """Per-dim mean and std of codes (N, D) and KL(N(m, diag s^2) || N(0, I)).

    ``extra_var`` adds the posterior variance E_x[sigma^2] (the VAE's q_agg has it on top of
    the spread of its means).

    >>> s = code_stats(np.array([[1.0], [-1.0]]))
    >>> s["mean"].tolist(), s["std"].tolist(), round(s["kl"], 6)
    ([0.0], [1.0], 0.0)
    """
    codes = np.asarray(codes, dtype=np.float64)
    mean = codes.mean(0)
    var = codes.var(0) + extra_var                                            # (D,)
    kl = 0.5 * float(np.sum(var + mean**2 - 1.0 - np.log(np.maximum(var, 1e-300))))
    return {"mean": mean, "std": np.sqrt(var), "kl": kl}


def principal_axes(points: np.ndarray) -> np.ndarray:
    """(D, 2) orthonormal directions of the two largest variances (identity for D <= 2)."""
    d = points.shape[1]
    if d <= 2:
        return np.eye(d, 2)
    _, _, vt = np.linalg.svd(points - points.mean(0), full_matrices=False)
    return vt[:2].T


@torch.no_grad()
@torch.no_grad()
def encode(ae, vae, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The autoencoder's codes and the VAE's posterior means and log-variances, each (N, D):
    the part of the panel that depends only on the two models (an adapter may cache it)."""
    codes, mus, logvars = [], [], []
    for xb in images.split(500):
        codes.append(ae.posterior(xb).mean)                                   # (b, D)
        mu, logvar = vae.encode(xb)
        mus.append(mu)
        logvars.append(logvar)
    return tuple(torch.cat(t).double().numpy() for t in (codes, mus, logvars))


def _check(ae, vae, images, n_samples, seed) -> tuple[torch.Tensor, int, int]:
    if getattr(getattr(ae, "config", None), "posterior", None) != "deterministic":
        raise InputError("the first model must be a plain autoencoder (posterior='deterministic')")
    if getattr(getattr(vae, "config", None), "posterior", None) != "gaussian":
        raise InputError("the second model must be a VAE with a Gaussian posterior")
    if ae.config.latent_dim != vae.config.latent_dim:
        raise InputError(f"the autoencoder has {ae.config.latent_dim}-D codes and the VAE "
                         f"{vae.config.latent_dim}-D ones: pick a pair of the same size")
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    if x.dim() != 4 or x.shape[1:] != (1, 28, 28) or len(x) < 2:
        raise InputError(f"need at least 2 test images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
    return x, check_whole("samples", n_samples, 1, N_MAX), check_whole("seed", seed, 0, MAX_SEED)


# ----------------------------------------------------------------------------- figure

def figure(codes: np.ndarray, means: np.ndarray, normal: np.ndarray) -> go.Figure:
    """Two panels, each with N(0, I) draws under the model's points (first two PCs if D > 2)."""
    d = codes.shape[1]
    how = "" if d <= 2 else " (first two principal components)"
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        f"autoencoder codes{how}", f"VAE posterior means{how}"))
    for col, (pts, name, color) in enumerate(((codes, "AE codes", "#d62728"),
                                              (means, "VAE means μ(x)", "#1f77b4")), start=1):
        axes = principal_axes(pts)                   # no centring: N(0, I) stays N(0, I_2)
        for p, label, c in ((normal @ axes, "N(0, I) draws", "#999999"), (pts @ axes, name, color)):
            p = p[:PLOT_POINTS].round(3)
            fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1] if p.shape[1] > 1 else np.zeros(len(p)),
                                     mode="markers", name=label, marker={"size": 3, "color": c,
                                     "opacity": 0.5}, showlegend=col == 1 or c != "#999999"),
                          row=1, col=col)
    fig.update_layout(height=360, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      template="plotly_white", legend={"orientation": "h", "y": -0.1})
    return fig



# ----------------------------------------------------------------------------- view

def run(ae, vae, test_images, n_samples: int = 16, seed: int = 0,
        encoded: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Outputs:
    """Codes vs N(0, I), their moments, and N(0, I) draws decoded by both models
    (``encoded``: the result of ``encode`` for these images, when cached)."""
    x, n, seed = _check(ae, vae, test_images, n_samples, seed)
    codes, mu, logvar = encoded if encoded is not None else encode(ae, vae, x)
    ae_stats = code_stats(codes)
    vae_stats = code_stats(mu, np.exp(logvar).mean(0))
    normal = torch.randn(PLOT_POINTS, codes.shape[1], generator=torch.Generator().manual_seed(seed))
    eps = torch.randn(n, codes.shape[1], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ae_img = square_grid(ae.decode_probs(eps))
        vae_img = square_grid(vae.decode_probs(vae.prior.from_base(eps)))
    table = [[d, round(float(ae_stats["mean"][d]), 3), round(float(ae_stats["std"][d]), 3),
              round(float(vae_stats["mean"][d]), 3), round(float(vae_stats["std"][d]), 3)]
             for d in range(codes.shape[1])]
    summary = (f"Moment-matched Gaussian vs N(0, I): autoencoder codes KL = "
               f"**{ae_stats['kl']:.1f} nats**, VAE aggregated posterior KL = "
               f"**{vae_stats['kl']:.1f} nats** ({len(x)} test images). Nothing in the "
               f"autoencoder's loss asks its codes to look like N(0, I).")
    return Outputs(figure(codes, mu, normal.double().numpy()), summary, table, ae_img, vae_img,
                   ae_stats, vae_stats)
