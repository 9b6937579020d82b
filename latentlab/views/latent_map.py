"""The Latent space tab's 2-D map of a VAE: q_agg against the prior, clicks decoded.

The test posterior means in a plane (z itself for 2-D models, PCA or UMAP for the rest),
log p(z) under the prior as a background, and a click decoded back into an image.

>>> from latentlab.registry import REPO, ModelRegistry
>>> reg = ModelRegistry(REPO / "checkpoints")
>>> geo = plane_geometry(reg, "mnist-vae-z2")
>>> geo.projection, geo.coords.shape[1]
('z', 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentlab import render
from latentlab.data import CLASS_NAMES
from latentlab.errors import InputError
from latentlab.inputs import MAX_SEED, PRIOR_SAMPLES, check_choice, check_float, check_int, generator
from latentlab.registry import ModelRegistry
from latentlab.testset import latent_data

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
    return prior.log_prob(z).view(g, g).numpy()                             # (g, g)


def reference_prior(model: torch.nn.Module, n: int = 2000) -> np.ndarray:
    """n prior samples (n, D) with a fixed seed: what the plane's extent must cover."""
    with torch.inference_mode():
        return model.prior.sample(n, generator=torch.Generator().manual_seed(0)).numpy()


def pca(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        raise InputError(f"{name} has a {d}-D latent space: pick PCA or UMAP to map it to 2-D")
    return "pca" if projection == "auto" else projection


def plane_geometry(registry: ModelRegistry, name: str, projection: str = "auto") -> PlaneGeometry:
    """The map (cached per model and projection); click coordinates refer to its view."""
    lm = registry.get(name, ("vae",))
    proj = resolve_projection(registry, name, projection)

    def build() -> PlaneGeometry:
        ld = latent_data(registry, name)
        if proj == "z":
            extent = ld.extent or plane_extent(ld.mu, reference_prior(lm.model))
            density = ld.density if ld.density is not None and ld.extent == extent \
                else density_grid(lm.model.prior, extent)
            view = render.PlaneView(-extent, extent, -extent, extent)
            return PlaneGeometry("z", ld.mu, ld.labels, view, ("z1", "z2"), density=density)
        if proj == "pca":
            mean, comps = pca(ld.mu)
            coords = (ld.mu - mean) @ comps.T                               # (N, 2)
            return PlaneGeometry("pca", coords, ld.labels, _square_view(coords),
                                 ("PC 1", "PC 2"), pca=(mean, comps))
        if ld.umap is None:
            raise InputError(f"no UMAP map shipped for {name}: press 'Recompute UMAP' "
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
    n_prior = check_int("prior samples", n_prior, *PRIOR_SAMPLES)
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
    image = lm.model.decode_probs(torch.from_numpy(z)[None]).view(28, 28).numpy()  # (28, 28)
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
        raise InputError(f"{name} has a 2-D latent space: it is drawn directly, no UMAP needed")
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
        lm.forget(lambda k: "umap" in (k if isinstance(k, tuple) else (k,))
                  or k == "plane-img-umap")
    say(1.0, "done")
    return f"UMAP of {n} posterior means and {n_prior} prior samples computed"
