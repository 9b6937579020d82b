"""The ELBO gap as K grows: prior sampling, the ELBO and the IWAE bound L_K for one image.

For a binarized image x and a continuous VAE, with log w_k = log p_theta(x|z_k) + log p(z_k)
- log q_phi(z_k|x):

* naive:  log (1/K) sum_k p_theta(x|z_k),  z_k ~ p(z)   (unbiased for p(x), hopeless in log)
* ELBO:   (1/K) sum_k log w_k,              z_k ~ q_phi(z|x)   (constant in K up to noise)
* L_K:    log (1/K) sum_k w_k,              z_k ~ q_phi(z|x)   (grows towards log p(x))

log p(x) = ELBO + KL(q_phi(z|x) || p_theta(z|x)), and ELBO <= L_K <= log p(x), so L_K - ELBO
at the largest K is an estimate (from below) of that KL. Each repeat draws K_max samples
once and reads every K of the grid off nested prefixes (cumulative logsumexp), so the panel
costs R * K_max decoder passes for q and as many for the prior. The prior's draws do not
depend on the image, so their decoded likelihoods are kept (a small LRU bounded in bytes,
warmed for the default model at launch) and a second image on the same model, seed and R
costs only the q side, whatever its K.

>>> from models.vae import VAE, VAEConfig
>>> out = run(VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)).eval(),
...           np.zeros((28, 28)), k_max=20, repeats=2, seed=0)
>>> out.curves.ks.tolist(), out.curves.iwae.shape
([1, 2, 5, 10, 20], (2, 5))
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from latentlab.errors import InputError

DEFAULT_MODEL = "mnist-vae-z16"   # the panel opens on it; its prior side is decoded at launch
K_MAX, K_DEFAULT = 5000, 1000     # 2 x R x K decoder passes: about 0.3 s and 1 s on 2 cores
REPEATS_MAX, REPEATS_DEFAULT = 20, 3
DECODES_PER_CALL = 128            # as fast as 512 here, and a quarter of the transient memory
MAX_SEED = 2**31 - 1
# Decoded prior draws kept across images: R * K * 784 float32 logits, 47 MB at the default
# R = 3, K = 5000. Two such entries at most (a lecturer switching between two models).
PRIOR_CACHE_BYTES = 100 * 2**20
PRIOR_SEED_OFFSET = 7919          # the prior's draws use their own stream, independent of q's
# The app runs one torch thread per request; this panel's thousands of decodes are split over
# two threads instead (each chunk has its own seeded generator, so results do not depend on
# which thread ran what).
_POOL = ThreadPoolExecutor(2, thread_name_prefix="elbo-gap")
COLORS = {"naive": "#d62728", "elbo": "#1f77b4", "iwae": "#2ca02c"}

EXPLAIN = r"""
**How loose is the ELBO for this image?** For one image $\mathbf{x}$,
$$\log p_{\theta}(\mathbf{x}) = \mathcal{L}_{\phi,\theta}(\mathbf{x}) + \text{KL}(q_{\phi}(\mathbf{z}|\mathbf{x}) \| p_{\theta}(\mathbf{z}|\mathbf{x})),$$
so the ELBO misses $\log p_\theta(\mathbf{x})$ by the KL between the encoder and the true posterior.
With importance weights $w_k = \frac{p_{\theta}(\mathbf{x}|\mathbf{z}_k)\, p(\mathbf{z}_k)}{q_{\phi}(\mathbf{z}_k|\mathbf{x})}$ the panel compares three estimates as the number of samples $K$ grows:

* **prior sampling** $\log \frac{1}{K}\sum_{k} p_{\theta}(\mathbf{x}|\mathbf{z}_k)$, $\mathbf{z}_k \sim p(\mathbf{z})$: the average inside the log is unbiased for $p_\theta(\mathbf{x})$, but almost no prior draw explains this particular digit, so the estimate crawls up far below the others;
* **ELBO** $\frac{1}{K}\sum_{k} \log w_k$, $\mathbf{z}_k \sim q_{\phi}(\mathbf{z}|\mathbf{x})$: more samples only shrink its noise, its mean stays put;
* **IWAE bound** $\mathcal{L}_K = \log \frac{1}{K}\sum_{k} w_k$, $\mathbf{z}_k \sim q_{\phi}(\mathbf{z}|\mathbf{x})$: $\mathbb{E}\,\mathcal{L}_1$ is the ELBO, $\mathbb{E}\,\mathcal{L}_K$ never decreases in $K$ and tends to $\log p_\theta(\mathbf{x})$.

Hence $\mathcal{L}_{K} - \text{ELBO}$ at the largest $K$ estimates $\text{KL}(q_{\phi}(\mathbf{z}|\mathbf{x}) \| p_{\theta}(\mathbf{z}|\mathbf{x}))$ from below. The digit is binarized at 0.5 (as in the Reconstruct tab); each repeat draws the largest $K$ once and reads every smaller $K$ off its first samples, and the bands span the repeats.
"""


@dataclass
class GapCurves:
    """Every estimate for every repeat (rows) and K of the grid (columns), in nats."""

    ks: np.ndarray       # (G,) the K grid
    naive: np.ndarray    # (R, G) log (1/K) sum p(x|z_k), z_k ~ p(z)
    elbo: np.ndarray     # (R, G) (1/K) sum log w_k, z_k ~ q(z|x)
    iwae: np.ndarray     # (R, G) L_K = log (1/K) sum w_k, z_k ~ q(z|x)

    @property
    def gap(self) -> float:
        """Mean over repeats of L_Kmax - ELBO (an estimate of KL(q(z|x) || p(z|x)))."""
        return float((self.iwae[:, -1] - self.elbo[:, -1]).mean())


@dataclass
class Outputs:
    figure: go.Figure     # the three curves with min-max bands on a log-K axis
    summary: str          # markdown: the gap and what it estimates
    table: list[list]     # K, naive, ELBO, L_K (means over repeats)
    curves: GapCurves     # the raw numbers (for tests and the API)


# ----------------------------------------------------------------------------- checks

def check_whole(name: str, value, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] (an integral float is accepted), else an InputError."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(f) or f != int(f) or not lo <= f <= hi:
        raise InputError(f"{name} must be a whole number between {lo} and {hi}, got {value!r}")
    return int(f)


def binary_image(image) -> torch.Tensor:
    """A 28x28 image in [0, 1] -> the (1, 1, 28, 28) binary tensor the model scores (> 0.5)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.shape != (28, 28):
        raise InputError(f"expected a 28x28 image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError("the image contains NaN or infinite values")
    return torch.from_numpy((arr > 0.5).astype(np.float32)).view(1, 1, 28, 28)


def check_gaussian_vae(model) -> None:
    """Only a VAE with a Gaussian posterior has the densities these bounds need."""
    config = getattr(model, "config", None)
    if getattr(config, "posterior", None) != "gaussian":
        raise InputError("this panel needs a VAE with a Gaussian posterior q(z|x) "
                         "(not an autoencoder, a categorical VAE or a VQ-VAE)")


def k_grid(k_max: int) -> np.ndarray:
    """1, 2, 5, 10, 20, 50, ... up to k_max, which is always the last point.

    >>> k_grid(300).tolist()
    [1, 2, 5, 10, 20, 50, 100, 200, 300]
    """
    ks = [m * 10**e for e in range(5) for m in (1, 2, 5) if m * 10**e < k_max]
    return np.array([*ks, k_max])


# ----------------------------------------------------------------------------- estimates

@torch.no_grad()
def _q_log_weights(model, x: torch.Tensor, k: int, repeats: int, gen: torch.Generator
                   ) -> torch.Tensor:
    """log w for k draws z ~ q(z|x) per repeat: (R, k). The repeats ride in the batch."""
    xb = x.expand(repeats, 1, 28, 28)                                         # (R, 1, 28, 28)
    per = max(1, DECODES_PER_CALL // repeats)
    starts = range(0, k, per)
    seeds = torch.randint(0, 2**62, (len(starts),), generator=gen).tolist()

    @torch.no_grad()
    def chunk(i: int) -> torch.Tensor:                                        # (n_i, R)
        g = torch.Generator().manual_seed(seeds[i])
        return model.log_importance_weights(xb, min(per, k - starts[i]), g)

    return torch.cat(list(_POOL.map(chunk, range(len(starts))))).T.double()  # (R, k)


class _PriorDecodes:
    """p_theta(x|z_k) for prior draws z_k of one (model, seed, R), x not yet given.

    The draws are always the K_MAX x R of the seed's stream, k-major, and a request for K
    reads the first K per repeat: every K then shows the same draws (nested, as on the q
    side), and one kept entry serves every K.
    """

    def __init__(self, model, repeats: int, seed: int, k: int = K_MAX):
        gen = torch.Generator().manual_seed(seed + PRIOR_SEED_OFFSET)
        z = model.prior.sample(K_MAX * repeats, generator=gen)                # (K_MAX*R, D)
        z = z.view(K_MAX, repeats, -1)[:k].reshape(k * repeats, -1)           # (k*R, D) k-major
        self.parts = list(_POOL.map(torch.no_grad()(model.likelihood), z.split(DECODES_PER_CALL)))
        self.repeats, self.k = repeats, k
        self.nbytes = repeats * k * 28 * 28 * 4

    @torch.no_grad()
    def log_lik(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x|z_k) of the first k draws per repeat for the binary image x: (R, k)."""
        if k > self.k:
            raise ValueError(f"only {self.k} draws per repeat were decoded, not {k}")
        need = math.ceil(k * self.repeats / DECODES_PER_CALL)
        ll = torch.cat(list(_POOL.map(lambda p: p.log_prob(x), self.parts[:need])))[:k * self.repeats]
        return ll.double().view(k, self.repeats).T                            # (R, k)


_prior_cache: OrderedDict[tuple, tuple] = OrderedDict()   # key -> (weakref to model, decodes)
_prior_lock = threading.Lock()


def prior_decodes(model, repeats: int = REPEATS_DEFAULT, seed: int = 0, k: int = K_MAX
                  ) -> _PriorDecodes:
    """The prior side for (model, seed, R): all K_MAX draws decoded once and kept while two
    such entries fit PRIOR_CACHE_BYTES; a larger request decodes only its first k draws."""
    key = (id(model), repeats, seed)
    with _prior_lock:
        hit = _prior_cache.get(key)
        if hit is not None and hit[0]() is model:  # id() alone could be a freed model's
            _prior_cache.move_to_end(key)
            return hit[1]
    if 2 * repeats * K_MAX * 28 * 28 * 4 > PRIOR_CACHE_BYTES:
        return _PriorDecodes(model, repeats, seed, k)  # a one-off large request is not kept
    decodes = _PriorDecodes(model, repeats, seed)
    with _prior_lock:
        _prior_cache[key] = (weakref.ref(model), decodes)
        while sum(d.nbytes for _, d in _prior_cache.values()) > PRIOR_CACHE_BYTES:
            _prior_cache.popitem(last=False)
    return decodes


def nested_log_mean_exp(a: torch.Tensor, ks: np.ndarray) -> np.ndarray:
    """log (1/K) sum_{k<=K} exp(a_k) for every K of ``ks``: (R, K_max) -> (R, G).

    >>> nested_log_mean_exp(torch.zeros(1, 4, dtype=torch.float64), np.array([1, 4])).tolist()
    [[0.0, 0.0]]
    """
    lse = torch.logcumsumexp(a, dim=1)[:, ks - 1]                             # (R, G)
    return (lse - torch.from_numpy(np.log(ks))).numpy()


def gap_curves(model, x: torch.Tensor, ks: np.ndarray, repeats: int, seed: int) -> GapCurves:
    """The three estimates on the grid ``ks`` for the binary image x (1, 1, 28, 28)."""
    gen = torch.Generator().manual_seed(seed)
    k = int(ks[-1])
    log_w = _q_log_weights(model, x, k, repeats, gen)                         # (R, K)
    log_lik = prior_decodes(model, repeats, seed, k).log_lik(x, k)            # (R, K)
    elbo = (log_w.cumsum(1)[:, ks - 1] / torch.from_numpy(ks)).numpy()      # (R, G)
    return GapCurves(ks, nested_log_mean_exp(log_lik, ks), elbo,
                     nested_log_mean_exp(log_w, ks))


# ----------------------------------------------------------------------------- figure

def _band(fig: go.Figure, ks: np.ndarray, values: np.ndarray, name: str, col: int,
          legend: bool) -> None:
    color = COLORS[name]
    lo, hi, mean = values.min(0), values.max(0), values.mean(0)
    fig.add_trace(go.Scatter(
        x=np.concatenate([ks, ks[::-1]]), y=np.concatenate([hi, lo[::-1]]).round(3),
        fill="toself", fillcolor=color, opacity=0.2, line={"width": 0}, hoverinfo="skip",
        showlegend=False, legendgroup=name), row=1, col=col)
    labels = {"naive": "log (1/K) Σ p(x|z_k), z_k ~ p(z)", "elbo": "ELBO (mean of log w_k)",
              "iwae": "L_K = log (1/K) Σ w_k, z_k ~ q(z|x)"}
    fig.add_trace(go.Scatter(x=ks, y=mean.round(3), mode="lines+markers", name=labels[name],
                             line={"color": color}, marker={"size": 5}, legendgroup=name,
                             showlegend=legend), row=1, col=col)


def figure(curves: GapCurves) -> go.Figure:
    """Left: all three estimates; right: ELBO and L_K zoomed, with the gap marked."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09, subplot_titles=(
        "prior sampling vs importance sampling", "zoom: ELBO and L_K"))
    for name in ("naive", "elbo", "iwae"):
        _band(fig, curves.ks, getattr(curves, name), name, 1, True)
    for name in ("elbo", "iwae"):
        _band(fig, curves.ks, getattr(curves, name), name, 2, False)
    k, lo, hi = curves.ks[-1], curves.elbo[:, -1].mean(), curves.iwae[:, -1].mean()
    fig.add_annotation(x=math.log10(k), y=hi, ax=math.log10(k), ay=lo, xref="x2", yref="y2",
                       axref="x2", ayref="y2", showarrow=True, arrowhead=2, arrowside="end+start")
    fig.add_annotation(x=math.log10(k), y=(lo + hi) / 2, xref="x2", yref="y2", xanchor="right",
                       showarrow=False, text=f"L_{k} − ELBO = {curves.gap:.2f} nats<br>"
                       "≈ KL(q(z|x) ‖ p(z|x))")
    fig.update_xaxes(type="log", dtick=1, title_text="K (samples)")  # 1, 10, 100, ...: no 2s and 5s
    fig.update_yaxes(title_text="nats", row=1, col=1)
    fig.update_layout(height=430, margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.22}, template="plotly_white")
    return fig


def _summary(curves: GapCurves, repeats: int) -> str:
    k = int(curves.ks[-1])
    elbo, iwae = curves.elbo[:, -1].mean(), curves.iwae[:, -1].mean()
    naive = curves.naive[:, -1].mean()
    return (f"ELBO = {elbo:.2f} nats, L_{k} = {iwae:.2f} nats: the gap **{curves.gap:.2f} nats** "
            f"estimates KL(q(z|x) ‖ p(z|x)) from below (L_K ≤ log p(x)). Prior sampling with "
            f"K = {k} gives {naive:.2f} nats. Means over {repeats} seeded repeats; bands show "
            f"min to max.")


def run(model, image, k_max: int = K_DEFAULT, repeats: int = REPEATS_DEFAULT,
        seed: int = 0) -> Outputs:
    """The panel: curves for the image (binarized at 0.5) on the grid 1, 2, 5, ..., k_max."""
    check_gaussian_vae(model)
    x = binary_image(image)
    k_max = check_whole("K", k_max, 10, K_MAX)
    repeats = check_whole("repeats", repeats, 1, REPEATS_MAX)
    seed = check_whole("seed", seed, 0, MAX_SEED)
    curves = gap_curves(model, x, k_grid(k_max), repeats, seed)
    table = [[int(k), round(float(n), 2), round(float(e), 2), round(float(i), 2)]
             for k, n, e, i in zip(curves.ks, curves.naive.mean(0), curves.elbo.mean(0),
                                   curves.iwae.mean(0))]
    return Outputs(figure(curves), _summary(curves, repeats), table, curves)
