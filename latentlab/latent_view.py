"""The Latent space tab's model layer: the 2-D map of q_agg against the prior, and the numbers.

For a VAE: the test posterior means in a plane (z itself for 2-D models, PCA or UMAP for the
rest), log p(z) under the prior as a background, a click decoded back into an image, and the
latent-space statistics (ELBO surgery, active units, KL per dimension) from ``metrics.json``
or computed live. For a VQ-VAE: codebook usage and a Voronoi-style picture of z_e.

>>> geo = plane_geometry(registry, "mnist-vae-z2")                     # doctest: +SKIP
>>> geo.coords.shape                                                    # doctest: +SKIP
(10000, 2)

Like ``latentlab.service``, every function takes the ``ModelRegistry`` and plain inputs and
raises ``ServiceError`` for mistakes the user can fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentlab import render
from latentlab.data import CLASS_NAMES
from latentlab.service import (
    LIVE_SUBSET,
    MAX_SEED,
    ModelRegistry,
    ServiceError,
    check_choice,
    check_float,
    check_int,
    code_data,
    generator,
    latent_data,
)

# ----------------------------------------------------------------------------- the 2-D map

PROJECTIONS = ("auto", "z", "pca", "umap")
DENSITY_GRID = 96            # log p(z) evaluated on a 96x96 grid, smoothed up to the image


@dataclass
class PlaneGeometry:
    """A 2-D picture of a VAE's latent space: the map of the test posterior means."""

    projection: str                   # z | pca | umap
    coords: np.ndarray                # (N, 2) the test posterior means in the map
    labels: np.ndarray                # (N,)
    view: render.PlaneView
    axis_names: tuple[str, str]
    density: np.ndarray | None = None         # (G, G) log p(z) on the view's grid ('z' only)
    pca: tuple[np.ndarray, np.ndarray] | None = None  # (mean (D,), components (2, D))


def plane_extent(mu: np.ndarray, prior_z: np.ndarray) -> float:
    """Half-width of the square 2-D plane: covers 99.5% of the posterior means and of the
    prior samples, at least [-3, 3], rounded up to 0.5."""
    reach = max(np.percentile(np.abs(mu), 99.5), np.percentile(np.abs(prior_z), 99.5), 3.0)
    return float(min(np.ceil(reach * 2) / 2, 10.0))


@torch.inference_mode()
def density_grid(prior: torch.nn.Module, extent: float, g: int = DENSITY_GRID) -> np.ndarray:
    """log p(z) at the centres of a g x g grid over [-extent, extent]^2; row i = y_i."""
    axis = torch.linspace(-extent, extent, g)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    z = torch.stack([xx.flatten(), yy.flatten()], -1)                       # (g*g, 2)
    return prior.log_prob(z).view(g, g).numpy()


def _reference_prior(model: torch.nn.Module, n: int = 2000) -> np.ndarray:
    with torch.inference_mode():
        return model.prior.sample(n, generator=torch.Generator().manual_seed(0)).numpy()


def _pca(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and the top two principal directions (2, D), from the D x D covariance
    (in torch, which keeps to the app's one thread; numpy's BLAS may spawn many)."""
    x = torch.from_numpy(np.asarray(mu, np.float64))
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / max(len(x) - 1, 1)                    # (D, D)
    _, vecs = torch.linalg.eigh(cov)                                        # ascending
    return mean.numpy(), vecs[:, [-1, -2]].T.numpy()


def _square_view(coords: np.ndarray) -> render.PlaneView:
    lo, hi = np.percentile(coords, 0.5, axis=0), np.percentile(coords, 99.5, axis=0)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.15 + 1e-3
    return render.PlaneView(centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)


def resolve_projection(registry: ModelRegistry, name: str, projection: str) -> str:
    check_choice("projection", projection, PROJECTIONS)
    d = registry.entry(name).latent_dim
    if d == 2:
        return "z"
    if projection == "z":
        raise ServiceError(f"{name} has a {d}-D latent space: pick PCA or UMAP to map it to 2-D")
    return "pca" if projection == "auto" else projection


def plane_geometry(registry: ModelRegistry, name: str, projection: str = "auto") -> PlaneGeometry:
    """The map (cached per model and projection); click coordinates refer to its view."""
    lm = registry.get(name, ("vae",))
    proj = resolve_projection(registry, name, projection)

    def build() -> PlaneGeometry:
        ld = latent_data(registry, name)
        if proj == "z":
            extent = ld.extent or plane_extent(ld.mu, _reference_prior(lm.model))
            density = ld.density if ld.density is not None and ld.extent == extent \
                else density_grid(lm.model.prior, extent)
            view = render.PlaneView(-extent, extent, -extent, extent)
            return PlaneGeometry("z", ld.mu, ld.labels, view, ("z1", "z2"), density=density)
        if proj == "pca":
            mean, comps = _pca(ld.mu)
            coords = (ld.mu - mean) @ comps.T                               # (N, 2)
            return PlaneGeometry("pca", coords, ld.labels, _square_view(coords),
                                 ("PC 1", "PC 2"), pca=(mean, comps))
        if ld.umap is None:
            raise ServiceError(f"no UMAP map shipped for {name}: press 'Recompute UMAP' "
                               "(about a minute) or use PCA")
        return PlaneGeometry("umap", ld.umap, ld.labels[: len(ld.umap)], _square_view(ld.umap),
                             ("UMAP 1", "UMAP 2"))

    return lm.memo(("plane", proj), build)


@torch.inference_mode()
def prior_in_map(registry: ModelRegistry, name: str, geo: PlaneGeometry, n: int, seed: int
                 ) -> np.ndarray:
    """n prior samples placed in the same 2-D map as the posterior means: (n, 2)."""
    lm = registry.get(name, ("vae",))
    if geo.projection == "umap":
        ld = latent_data(registry, name)
        return ld.umap_prior[:n] if ld.umap_prior is not None else np.zeros((0, 2))
    z = lm.model.prior.sample(n, generator=generator(seed)).numpy()         # (n, D)
    if geo.projection == "pca":
        mean, comps = geo.pca
        return (z - mean) @ comps.T
    return z


def plane_image(registry: ModelRegistry, name: str, projection: str = "auto",
                n_prior: int = 200, seed: int = 0):
    """The rendered map (PIL) and its geometry, cached per (projection, n_prior, seed)."""
    n_prior = check_int("prior samples", n_prior, 0, 2000)
    geo = plane_geometry(registry, name, projection)
    lm = registry.get(name, ("vae",))

    def build():
        prior_xy = prior_in_map(registry, name, geo, n_prior, seed) if n_prior else None
        title = {"z": "latent plane z", "pca": "PCA of the posterior means",
                 "umap": "UMAP of the posterior means"}[geo.projection]
        return render.render_plane(geo.view, geo.coords, geo.labels, prior_xy, geo.density,
                                   geo.axis_names, title=f"{name}: {title} (click to decode)",
                                   class_names=CLASS_NAMES[lm.entry.dataset])

    key = (geo.projection, n_prior, check_int("seed", seed, 0, MAX_SEED))
    return lm.recent(f"plane-img-{geo.projection}", key, build), geo


def click_to_map(registry: ModelRegistry, name: str, projection: str, px: float, py: float
                 ) -> tuple[float, float] | None:
    """Pixel of the rendered map -> map coordinates, None outside the plot area."""
    geo = plane_geometry(registry, name, projection)
    return geo.view.to_data(px, py) if geo.view.inside(px, py) else None


@dataclass
class DecodedPoint:
    image: np.ndarray            # (28, 28) decoded
    z: np.ndarray                # (D,) the latent point that was decoded
    plane: Any                   # PIL image of the map with a marker there
    note: str


@torch.inference_mode()
def decode_point(registry: ModelRegistry, name: str, projection: str, u: float, v: float,
                 n_prior: int = 200, seed: int = 0) -> DecodedPoint:
    """Decode the latent point under map coordinates (u, v).

    2-D model: z = (u, v). PCA: z = mean + u pc1 + v pc2 (the plane through the data mean).
    UMAP has no inverse: the posterior mean of the nearest test image in the map is decoded.
    """
    lm = registry.get(name, ("vae",))
    u, v = check_float("u", u, -1e3, 1e3), check_float("v", v, -1e3, 1e3)
    img, geo = plane_image(registry, name, projection, n_prior, seed)
    if geo.projection == "z":
        z, note = np.array([u, v], np.float32), f"z = ({u:.2f}, {v:.2f})"
    elif geo.projection == "pca":
        mean, comps = geo.pca
        z = (mean + u * comps[0] + v * comps[1]).astype(np.float32)
        note = f"z = mean + {u:.2f}·PC1 + {v:.2f}·PC2"
    else:
        i = int(np.argmin(((geo.coords - [u, v]) ** 2).sum(1)))
        z = latent_data(registry, name).mu[i]
        u, v = map(float, geo.coords[i])
        note = f"UMAP has no inverse: decoded the nearest test posterior mean (#{i})"
    image = torch.sigmoid(lm.model.decode(torch.from_numpy(z)[None])).view(28, 28).numpy()
    log_p = lm.model.prior.log_prob(torch.from_numpy(z)[None]).item()
    return DecodedPoint(image, z, render.mark(img, geo.view, (u, v)),
                        f"{note}; log p(z) = {log_p:.2f}")


def compute_umap(registry: ModelRegistry, name: str, n_points: int = 2000, n_prior: int = 300,
                 progress: Callable[[float, str], None] | None = None,
                 reducer: Any = None) -> str:
    """Fit UMAP on the posterior means (slow: numba compiles on first use) and keep the map
    in memory for this model; prior samples are placed with UMAP's ``transform``.

    ``reducer``: any object with ``fit_transform`` / ``transform`` (tests pass a fast one).
    """
    lm = registry.get(name, ("vae",))
    if (lm.entry.latent_dim or 0) <= 2:
        raise ServiceError(f"{name} has a 2-D latent space: it is drawn directly, no UMAP needed")
    say = progress or (lambda f, m: None)
    ld = latent_data(registry, name)
    if reducer is None:
        say(0.05, "importing umap-learn (the first time, numba compiles for ~30-40 s)")
        import umap

        reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0)
    n = min(n_points, len(ld.mu))
    say(0.3, f"fitting UMAP on {n} posterior means")
    coords = reducer.fit_transform(ld.mu[:n]).astype(np.float32)
    say(0.85, f"placing {n_prior} prior samples in the map")
    prior_z = lm.model.prior.sample(n_prior, generator=torch.Generator().manual_seed(1)).numpy()
    with lm.lock:
        ld.umap, ld.umap_prior = coords, reducer.transform(prior_z).astype(np.float32)
        for key in [k for k in lm.cache if "umap" in (k if isinstance(k, tuple) else (k,))
                    or k == "plane-img-umap"]:
            del lm.cache[key]
    say(1.0, "done")
    return f"UMAP of {n} posterior means and {n_prior} prior samples computed"


# ----------------------------------------------------------------------------- statistics

@dataclass
class LatentStats:
    """Numbers beside the latent map: ELBO surgery, active units, KL per dimension."""

    rows: list[tuple[str, str, str]]          # (quantity, value, meaning)
    source: str
    kl_per_dim: np.ndarray | None = None      # (D,)
    kl_reference: str = ""
    unit_variance: np.ndarray | None = None   # (D,) Cov_x(E_q[z_d])


def _fmt(v: Any, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def vae_stats(registry: ModelRegistry, name: str) -> LatentStats:
    """From ``metrics.json`` (written by ``python -m latentlab.evaluate``) when present;
    otherwise estimated live from the cached test posteriors (no reconstruction term)."""
    e = registry.entry(name)
    m = e.metrics
    surgery = m.get("elbo_surgery")
    if isinstance(surgery, dict) and "kl_per_dim" in m:
        rows = [
            ("test ELBO", _fmt(m.get("test_elbo", surgery.get("elbo"))), "mean over the test set"),
            ("reconstruction E_q log p(x|z)", _fmt(surgery.get("reconstruction")), "first term"),
            ("average KL(q(z|x) ‖ p(z))", _fmt(surgery.get("avg_kl")), "= I_q + marginal KL"),
            ("mutual information I_q[x, z]", _fmt(surgery.get("mutual_information")),
             f"≤ log N = {_fmt(surgery.get('log_n'))}"),
            ("marginal KL(q_agg ‖ p(z))", _fmt(surgery.get("marginal_kl")),
             "0 when the prior equals q_agg"),
        ]
        if "test_nll_iwae" in m:
            rows.append((f"−log p(x) (IWAE, k={m.get('iwae_k', '?')})", _fmt(m["test_nll_iwae"]),
                         "test NLL"))
        rows.append(("active units", f"{m.get('active_units', '?')} of {e.latent_dim}",
                     "Cov_x E_q[z_d] > 0.01"))
        var = m.get("active_unit_variances")
        n_test = f" ({m['eval_n_test']} test images)" if "eval_n_test" in m else ""
        return LatentStats(rows, f"metrics.json{n_test}",
                           np.asarray(m["kl_per_dim"], np.float32), m.get("kl_per_dim_reference", ""),
                           None if var is None else np.asarray(var, np.float32))
    lm = registry.get(name, ("vae",))
    return lm.memo("stats-live", lambda: _live_vae_stats(registry, name))


@torch.inference_mode()
def _live_vae_stats(registry: ModelRegistry, name: str) -> LatentStats:
    from latentlab.metrics import active_units, elbo_surgery, kl_per_dim
    from models.distributions import DiagonalGaussian

    lm, ld = registry.get(name, ("vae",)), latent_data(registry, name)
    model = lm.model
    n = min(len(ld.mu), LIVE_SUBSET)  # q_agg costs N^2: a few thousand points is plenty here
    mu, logvar = torch.from_numpy(ld.mu[:n]), torch.from_numpy(ld.logvar[:n])
    q = DiagonalGaussian(mu, logvar)
    kl = model.kl(q, q.rsample(generator=torch.Generator().manual_seed(0)))  # (N,)
    s = elbo_surgery(mu, logvar, model.prior, torch.zeros(len(mu)), kl,
                     generator=torch.Generator().manual_seed(1))
    n_active, var = active_units(mu)
    normal = lm.entry.prior == "normal"
    rows = [
        ("average KL(q(z|x) ‖ p(z))", _fmt(s["avg_kl"]), "= I_q + marginal KL"),
        ("mutual information I_q[x, z]", _fmt(s["mutual_information"]), f"≤ log N = {_fmt(s['log_n'])}"),
        ("marginal KL(q_agg ‖ p(z))", _fmt(s["marginal_kl"]), "0 when the prior equals q_agg"),
        ("active units", f"{n_active} of {mu.shape[1]}", "Cov_x E_q[z_d] > 0.01"),
        ("reconstruction, ELBO", "—", "run python -m latentlab.evaluate for these"),
    ]
    ref = "prior N(0, I)" if normal else "N(0, 1) per dim (the flow prior does not factorise)"
    return LatentStats(rows, f"estimated live on {n} test posteriors", kl_per_dim(mu, logvar).numpy(),
                       ref, var.numpy())


def vq_stats(registry: ModelRegistry, name: str) -> LatentStats:
    e = registry.entry(name)
    m, cd = e.metrics, code_data(registry, name)
    k = len(cd.counts)
    p = cd.counts / max(cd.counts.sum(), 1)
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    rows = [
        ("codes used", f"{int((cd.counts > 0).sum())} of {k}", cd.source),
        ("dead codes", str(m.get("dead_codes", int((cd.counts == 0).sum()))), "never chosen on the test set"),
        ("perplexity exp H(code)", _fmt(float(m.get("codebook_perplexity", perplexity)), 1),
         f"effective number of codes (max {k})"),
    ]
    for key, label, meaning in (
            ("test_mse", "test MSE per pixel", "reconstruction"),
            ("test_psnr_db", "test PSNR (dB)", "10 log10(1/MSE)"),
            ("prior_test_nll_bits_per_code", "learned prior: bits per code", "test grids"),
            ("uniform_prior_nll_bits_per_code", "uniform prior: bits per code", "log2 K")):
        if key in m:
            rows.append((label, _fmt(float(m[key]), 4 if key == "test_mse" else 2), meaning))
    for key, label, meaning in (  # the lecture's point about priors, in numbers (evaluate)
            ("learned_prior_confident_share", "learned-prior samples judged confidently",
             "share with classifier probability >= 0.9, T = 1"),
            ("uniform_prior_confident_share", "uniform-prior samples judged confidently",
             "the prior of the VQ-VAE derivation"),
            ("reconstruction_confident_share", "reconstructions judged confidently",
             "what a perfect prior would give at T = 1")):
        if key in m:
            rows.append((label, f"{100 * float(m[key]):.1f} %", meaning))
    src = "metrics.json" if "dead_codes" in m else cd.source
    return LatentStats(rows, src)


def latent_figures(registry: ModelRegistry, name: str, stats: LatentStats) -> list[dict | None]:
    """Charts beside the map: KL per dimension (VAE) or codebook usage + Voronoi (VQ-VAE).

    Built once per model (they only change with the weights) and reused.
    """
    lm = registry.get(name, ("vae", "vqvae"))
    return lm.memo(("figures", stats.source), lambda: _latent_figures(registry, name, stats))


def _latent_figures(registry: ModelRegistry, name: str, stats: LatentStats) -> list[dict | None]:
    e = registry.entry(name)
    if e.kind == "vae":
        if stats.kl_per_dim is None:
            return [None, None]
        kl = stats.kl_per_dim
        colors = ["#1f77b4" if v > 0.05 else "#d62728" for v in kl]
        ref = stats.kl_reference or "prior N(0, I)"
        title = f"KL per dimension vs {ref}<br><sup>red: collapsed (carries ~no information)</sup>"
        fig = render.bar_chart([f"z{i + 1}" for i in range(len(kl))], kl, title, "dimension",
                               "nats", colors)
        return [fig, None]
    cd = code_data(registry, name)
    lm = registry.get(name, ("vqvae",))
    k = len(cd.counts)
    palette = render.code_hex(k)
    usage = render.bar_chart(list(range(k)), np.maximum(cd.counts, 0.5), "Codebook usage over the "
                             "test set (log scale; 0.5 = dead)", "code k", "count", palette, log_y=True)
    codebook = lm.model.codebook.detach().numpy()
    mean, comps = _pca(np.concatenate([codebook, cd.z_e]))
    scatter = render.codebook_scatter((codebook - mean) @ comps.T, cd.counts,
                                      (cd.z_e - mean) @ comps.T, cd.z_e_code, k)
    return [usage, scatter]
