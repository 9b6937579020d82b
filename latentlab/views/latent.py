"""Latent space tab: one model's map (VAE) or codebook charts (VQ-VAE), with its numbers.

Each side of the tab shows ``run(...)`` for its model; a click on a VAE's map is turned into
map coordinates by ``click`` and decoded by ``decode``; ``recompute_umap`` fits UMAP maps.

>>> from latentlab.registry import REPO, ModelRegistry
>>> reg = ModelRegistry(REPO / "checkpoints")
>>> out = run(reg, "mnist-vae-z2", "auto", 100, 0)
>>> out.plane.size[0] > 300, out.second_figure is None
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latentlab.errors import InputError
from latentlab.inputs import need_model
from latentlab.preprocess import upscale
from latentlab.registry import ModelRegistry
from latentlab.testset import latent_data
from latentlab.views import latent_map as lm
from latentlab.views import latent_stats as ls

NONE = "(none)"   # the "Compare with" picker's empty choice
STATS_COLUMNS = ["quantity", "value", "note"]
WHERE = {"z": "the latent plane itself", "pca": "a PCA of the posterior means",
         "umap": "a UMAP of the posterior means"}


def stats_table(st: ls.LatentStats | None) -> pd.DataFrame:
    return pd.DataFrame([list(r) for r in st.rows] if st else [], columns=STATS_COLUMNS)


def _chosen(model: str | None) -> bool:
    return bool(model) and model != NONE


@dataclass
class Outputs:
    """What one side of the tab shows, in the UI's output order."""

    plane: Any = None                    # PIL image of the map (VAE), None: hidden
    decoded: np.ndarray | None = None    # cleared when the map is redrawn
    stats: pd.DataFrame | None = None
    figure: dict | None = None           # KL per dimension (VAE) or code usage (VQ-VAE)
    second_figure: dict | None = None    # codebook scatter (VQ-VAE), None: hidden
    note: str = ""


def run(registry: ModelRegistry, model: str | None, projection: str = "auto",
        prior_samples: Any = 200, seed: Any = 0) -> Outputs:
    """Draw the side for ``model`` (an empty side for ``(none)``)."""
    if not _chosen(model):
        return Outputs(stats=stats_table(None))
    if registry.entry(model).kind == "vqvae":
        st = ls.vq_stats(registry, model)
        f1, f2 = ls.latent_figures(registry, model, st)
        return Outputs(None, None, stats_table(st), f1, f2, f"Numbers from {st.source}.")
    img, geo = lm.plane_image(registry, model, projection, prior_samples, seed)
    st = ls.vae_stats(registry, model)
    f1, _ = ls.latent_figures(registry, model, st)
    note = (f"Map: {WHERE[geo.projection]}. Posteriors from "
            f"{latent_data(registry, model).source}; numbers from {st.source}.")
    return Outputs(img, None, stats_table(st), f1, None, note)


def click(registry: ModelRegistry, model: str | None, projection: str, x: float, y: float
          ) -> tuple[float, float] | None:
    """Pixel (x, y) of a VAE's map -> map coordinates (u, v); None outside it or for others."""
    if not _chosen(model) or registry.entry(model).kind != "vae":
        return None
    return lm.click_to_map(registry, model, projection, x, y)


@dataclass
class DecodeOutputs:
    """A decoded map point, in the UI's output order."""

    image: np.ndarray    # the decoded image, upscaled
    plane: Any           # the map with a marker at the point
    note: str


def decode(registry: ModelRegistry, model: str | None, projection: str, u: Any, v: Any,
           prior_samples: Any = 200, seed: Any = 0) -> DecodeOutputs:
    """Decode the latent point under map coordinates (u, v)."""
    if u is None or v is None:
        raise InputError("give both map coordinates u and v")
    point = lm.decode_point(registry, need_model(model), projection, u, v, prior_samples, seed)
    return DecodeOutputs(upscale(point.image, 6), point.plane, point.note)


def recompute_umap_steps(registry: ModelRegistry, model: str | None, compare_with: str | None,
                         progress: Callable[[float, str], None] | None = None) -> Iterator[str]:
    """Fit UMAP maps for the chosen VAEs with more than 2 latent dims, saying before each fit
    what runs and for how long (the first fit takes about 40 s), then what was computed."""
    todo = [m for m in (model, compare_with) if _chosen(m)
            and registry.entry(m).kind == "vae" and (registry.entry(m).latent_dim or 0) > 2]
    if not todo:
        raise InputError("UMAP is for VAEs with more than 2 latent dims; "
                         "2-D models are drawn directly")
    msgs = []
    for i, m in enumerate(todo):
        yield (f"⏳ Fitting UMAP for **{m}** ({i + 1} of {len(todo)}): about 40 s the first "
               "time (numba compiles), a few seconds after that. " + "; ".join(msgs))
        msgs.append(lm.compute_umap(registry, m, progress=progress))
    yield "✅ " + "; ".join(msgs) + ". Choose the UMAP map above to see it."


def recompute_umap(registry: ModelRegistry, model: str | None, compare_with: str | None,
                   progress: Callable[[float, str], None] | None = None) -> str:
    """Fit UMAP maps for the chosen VAEs with more than 2 latent dims (about a minute)."""
    *_, last = recompute_umap_steps(registry, model, compare_with, progress)
    return last
