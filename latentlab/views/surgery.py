"""ELBO surgery with three priors side by side: N(0, I), the flow p_lambda(z) and q_agg(z).

Averaged over n test images the ELBO splits into three parts (Hoffman & Johnson):

    (1/n) sum_i L(x_i) = (1/n) sum_i E_q log p_theta(x_i|z) - I_q[x, z] - KL(q_agg(z) || p(z)),
    q_agg(z) = (1/n) sum_i q_phi(z|x_i).

Only the marginal KL involves the prior, and it is zero for p(z) = q_agg(z): the best prior is
the aggregated posterior. The panel draws the three densities for the 2-D pair (a VAE with
N(0, I), a VAE with the RealNVP prior p_lambda), the split for each model, and samples decoded
under each prior. The expensive part (encoding the test images, ``summarize``) is done once
per model by the caller and passed in.

>>> from models.vae import VAE, VAEConfig
>>> vae = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)).eval()
>>> flow = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16, prior="realnvp",
...                      flow_layers=2, flow_hidden=8)).eval()
>>> x = torch.bernoulli(torch.rand(20, 1, 28, 28))
>>> out = run(vae, flow, summarize(vae, x, size=20), summarize(flow, x, size=20), n_samples=4)
>>> out.densities.shape, sorted(out.surgery)
((3, 20, 20), ['flow', 'vae'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from latentlab.errors import InputError
from latentlab.metrics import elbo_surgery, elbo_terms, log_aggregate_posterior
from latentlab.views.elbo_gap import check_whole
from latentlab.views.traversal import square_grid

MAX_SEED = 2**31 - 1
SHOWN_RANGE = 15.0          # nats of log density shown below the highest value
TITLES = ("N(0, I)", "flow prior p_λ(z)", "aggregated posterior q_agg(z) (flow model)")

EXPLAIN = r"""
**ELBO surgery.** Averaged over the $n$ test images the ELBO splits into three parts:
$$\frac{1}{n}\sum_{i=1}^{n} \mathcal{L}_{\phi,\theta}(\mathbf{x}_i) = \underbrace{\frac{1}{n}\sum_{i=1}^{n} \mathbb{E}_{q_{\phi}(\mathbf{z}|\mathbf{x}_i)} \log p_{\theta}(\mathbf{x}_i|\mathbf{z})}_{\text{reconstruction}} - \underbrace{\mathbb{I}_q[\mathbf{x}, \mathbf{z}]}_{\text{mutual information}} - \underbrace{\text{KL}(q_{\text{agg},\phi}(\mathbf{z}) \| p(\mathbf{z}))}_{\text{marginal KL}},$$
with the aggregated posterior $q_{\text{agg},\phi}(\mathbf{z}) = \frac{1}{n}\sum_{i} q_{\phi}(\mathbf{z}|\mathbf{x}_i)$. Only the marginal KL involves the prior, and it vanishes for $p(\mathbf{z}) = q_{\text{agg},\phi}(\mathbf{z})$: the best prior is the aggregated posterior. The heat maps show $\log \mathcal{N}(\mathbf{z}; 0, I)$, the learned flow prior $\log p_{\lambda}(\mathbf{z})$ and $\log q_{\text{agg},\phi}(\mathbf{z})$ of the flow model's encoder on the same grid; the closer the flow prior hugs $q_{\text{agg},\phi}$, the smaller its marginal KL. Below, samples decoded under each prior. The split uses the first 2000 test images (binarized with the evaluation seed), so $\mathbb{I}_q \le \log n$.
"""


@dataclass
class ModelSummary:
    """One model's posteriors over the n test images, its ELBO split and its two densities on
    the grid: everything that does not depend on the user's seed (cache it per model)."""

    mu: torch.Tensor          # (n, D) posterior means
    logvar: torch.Tensor      # (n, D) posterior log-variances
    surgery: dict             # latentlab.metrics.elbo_surgery's numbers (nats, test means)
    axis: np.ndarray          # (S,) grid coordinates along z1 and z2
    log_prior: np.ndarray     # (S, S) log p(z) of this model's prior (rows z2, columns z1)
    log_agg: np.ndarray       # (S, S) log q_agg(z) of this model's encoder


@dataclass
class Outputs:
    figure: go.Figure         # three log-density heatmaps on one grid and colour scale
    table: list[list]         # the ELBO split: part, VAE with N(0, I), VAE with the flow prior
    samples_normal: np.ndarray  # (H, W, 3) uint8: z ~ N(0, I) through the N(0, I) VAE
    samples_flow: np.ndarray    # z ~ p_lambda through the flow model
    samples_agg: np.ndarray     # z ~ q_agg through the flow model
    densities: np.ndarray     # (3, size, size) log densities (rows: z2, columns: z1)
    axis: np.ndarray          # (size,) the grid's coordinates along each axis
    surgery: dict             # {"vae": ..., "flow": ...} passed through from the summaries


# ----------------------------------------------------------------------------- parts

def summarize(model, images: torch.Tensor, n_samples: int = 1, seed: int = 0,
              extent: float = 4.0, size: int = 80) -> ModelSummary:
    """Encode ``images`` (n, 1, 28, 28), split the mean ELBO (n_samples z per image) and
    evaluate log p(z) and log q_agg(z) on a size x size grid over [-extent, extent]^2."""
    gen = torch.Generator().manual_seed(seed)
    terms = elbo_terms(model, images, n_samples, generator=gen)
    split = elbo_surgery(terms.mu, terms.logvar, model.prior, terms.rec_nll, terms.kl,
                         generator=gen)
    axis, log_prior, log_agg = densities(model.prior, terms.mu, terms.logvar, extent, size)
    return ModelSummary(terms.mu, terms.logvar, split, axis, log_prior, log_agg)


def grid_points(extent: float, size: int) -> tuple[np.ndarray, torch.Tensor]:
    """The grid's axis (S,) and its points (S*S, 2), z1 varying fastest."""
    axis = np.linspace(-extent, extent, size)
    z1, z2 = np.meshgrid(axis, axis)                                          # (S, S) each
    return axis, torch.from_numpy(np.stack([z1.ravel(), z2.ravel()], -1))     # (S*S, 2)


@torch.no_grad()
def densities(prior, mu: torch.Tensor, logvar: torch.Tensor, extent: float = 4.0,
              size: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(axis (S,), log p(z) (S, S), log q_agg(z) (S, S)) over [-extent, extent]^2.

    >>> from models.priors import StandardNormalPrior
    >>> axis, lp, la = densities(StandardNormalPrior(2), torch.zeros(1, 2), torch.zeros(1, 2),
    ...                          size=5)
    >>> lp.shape, bool(np.allclose(lp, la))
    ((5, 5), True)
    """
    axis, z = grid_points(extent, size)
    log_prior = prior.log_prob(z.float()).double().view(size, size)           # (S, S)
    log_agg = log_aggregate_posterior(z, mu, logvar).view(size, size)         # (S, S)
    return axis, log_prior.numpy(), log_agg.numpy()


def figure(axis: np.ndarray, logd: np.ndarray) -> go.Figure:
    """Three heatmaps side by side, one colour scale clipped SHOWN_RANGE nats below the top."""
    top = float(logd.max())
    fig = make_subplots(rows=1, cols=3, subplot_titles=TITLES, horizontal_spacing=0.05)
    for i in range(3):
        fig.add_trace(go.Heatmap(
            x=axis.round(3), y=axis.round(3), z=np.clip(logd[i], top - SHOWN_RANGE, top).round(2),
            zmin=top - SHOWN_RANGE, zmax=top, colorscale="Viridis", showscale=i == 2,
            colorbar={"title": "log density"}), row=1, col=i + 1)
    fig.update_xaxes(title_text="z1")
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_layout(height=360, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      template="plotly_white")
    return fig



@torch.no_grad()
def decoded_samples(vae, flow, agg: ModelSummary, n: int, seed: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n draws from each prior decoded: N(0, I) by the VAE, p_lambda and q_agg by the flow model."""
    normal = vae.sample(n, generator=torch.Generator().manual_seed(seed))
    flowed = flow.sample(n, generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(agg.mu), (n,), generator=gen)                   # mixture components
    eps = torch.randn(n, agg.mu.shape[1], generator=gen, dtype=agg.mu.dtype)
    z = agg.mu[pick] + torch.exp(0.5 * agg.logvar[pick]) * eps               # (n, D) ~ q_agg
    return square_grid(normal), square_grid(flowed), square_grid(flow.decode_probs(z.float()))


def split_table(vae: dict, flow: dict) -> list[list]:
    """reconstruction - I_q - marginal KL = ELBO, one column per model (nats, test means)."""
    rows = [("E_q log p(x|z)", "reconstruction", 1),
            ("− I_q[x, z]", "mutual_information", -1),
            ("− KL(q_agg ‖ p)", "marginal_kl", -1),
            ("= ELBO", "elbo", 1),
            ("mean KL(q(z|x) ‖ p)", "avg_kl", 1),
            ("log n (cap on I_q)", "log_n", 1)]
    return [[label, round(sign * vae[key], 2), round(sign * flow[key], 2)]
            for label, key, sign in rows]


def _check(vae, flow) -> None:
    for model, prior, what in ((vae, "normal", "first"), (flow, "realnvp", "second")):
        config = getattr(model, "config", None)
        if (getattr(config, "posterior", None), getattr(config, "prior", None),
                getattr(config, "latent_dim", None)) != ("gaussian", prior, 2):
            raise InputError(f"the {what} model must be a 2-D Gaussian VAE with the "
                             f"{'N(0, I)' if prior == 'normal' else 'RealNVP flow'} prior")


# ----------------------------------------------------------------------------- view

def run(vae, flow, vae_summary: ModelSummary, flow_summary: ModelSummary, n_samples: int = 16,
        seed: int = 0) -> Outputs:
    """The panel: densities (flow model's q_agg), both ELBO splits, and decoded samples."""
    _check(vae, flow)
    n = check_whole("samples", n_samples, 1, 64)
    seed = check_whole("seed", seed, 0, MAX_SEED)
    axis = flow_summary.axis
    if not np.array_equal(vae_summary.axis, axis):
        raise InputError("both summaries must be evaluated on the same grid (extent, size)")
    logd = np.stack([vae_summary.log_prior, flow_summary.log_prior, flow_summary.log_agg])
    images = decoded_samples(vae, flow, flow_summary, n, seed)
    surgery = {"vae": vae_summary.surgery, "flow": flow_summary.surgery}
    return Outputs(figure(axis, logd), split_table(vae_summary.surgery, flow_summary.surgery),
                   *images, logd, axis, surgery)
