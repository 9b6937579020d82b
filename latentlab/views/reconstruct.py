"""Reconstruct tab: each model's reconstruction of one image with its ELBO terms and IWAE bound.

VAEs see the binarized image and report reconstruction, KL, ELBO and L_k from the same k
posterior samples; VQ-VAEs see the grey image and report MSE, the code grid and its code
length under both code priors.

>>> from latentlab.registry import REPO, ModelRegistry
>>> reg = ModelRegistry(REPO / "checkpoints")
>>> x = np.zeros((28, 28), np.float32); x[6:22, 12:16] = 1.0
>>> out = reconstruct(reg, ["mnist-vae-z2"], x, k=10).models[0].numbers
>>> out["iwae"] >= out["elbo"]
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from latentlab import cache, plots, render
from latentlab.data import CLASS_NAMES
from latentlab.errors import InputError, UserError
from latentlab.inputs import (
    IMPORTANCE_K,
    as_tensor,
    binarize,
    check_image,
    check_int,
    check_models,
    check_seed,
    generator,
)
from latentlab.preprocess import prepare, upscale
from latentlab.registry import ModelRegistry
from latentlab.testset import latent_data
from latentlab.views.code_grid import CELL, GRID

RECON_ROWS = {  # key -> (row label, what it means); nats per image
    "rec_nll": ("reconstruction −log p(x|z)", "mean over the k samples z ~ q(z|x)"),
    "kl": ("KL(q(z|x) ‖ p(z))", "mean of log q(z|x) − log p(z) over the same samples"),
    "elbo": ("ELBO = −rec − KL", "lower bound on log p(x)"),
    "iwae": ("log p(x) ≈ L_k (IWAE)", "log of the mean importance weight: a tighter bound"),
    "gap": ("L_k − ELBO", "how loose the ELBO is for this input"),
}
VQ_ROWS = {
    "mse": ("reconstruction MSE per pixel", "VQ-VAE: decoder output vs input"),
    "bits_learned": ("−log₂ p_λ(codes) (bits)", "learned prior's code length of this grid"),
    "bits_uniform": ("−log₂ uniform(codes) (bits)", "49 log₂ K: the uniform prior's"),
}


@dataclass
class ModelReconstruction:
    """One model's view of the input."""

    name: str
    kind: str
    image: np.ndarray                     # (28, 28) reconstruction in [0, 1]
    numbers: dict[str, float]             # see RECON_ROWS / VQ_ROWS for the keys
    mu: np.ndarray | None = None          # (D,) posterior mean (VAE)
    std: np.ndarray | None = None         # (D,) posterior standard deviation (VAE)
    codes: np.ndarray | None = None       # (7, 7) code grid (VQ-VAE)
    num_codes: int | None = None


@dataclass
class ReconstructResult:
    image: np.ndarray                     # (28, 28) the grey input
    binary: np.ndarray                    # (28, 28) what the Bernoulli VAEs see
    models: list[ModelReconstruction]
    warnings: list[str]
    k: int


def _vae_reconstruct(model: torch.nn.Module, x: torch.Tensor, k: int,
                     gen: torch.Generator) -> tuple[np.ndarray, dict, np.ndarray, np.ndarray]:
    """ELBO parts and the IWAE bound from the same k posterior samples.

    log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x); ELBO ≈ mean_i log w_i and
    L_k = log mean_i w_i, so L_k >= ELBO holds for every draw (Jensen).
    """
    q = model.posterior(x)                                                  # batch (1,)
    log_px, log_pz, log_q = model.importance_terms(x, k, gen)               # (k, 1) each
    log_w = (log_px + log_pz - log_q).double()
    elbo = log_w.mean().item()
    iwae = (torch.logsumexp(log_w, 0) - math.log(k)).item()
    numbers = {"rec_nll": -log_px.mean().item(), "kl": (log_q - log_pz).mean().item(),
               "elbo": elbo, "iwae": iwae, "gap": iwae - elbo}
    image = model.decode_probs(q.mean).view(28, 28).numpy()           # (1, 1, 28, 28) -> (28, 28)
    return image, numbers, q.mean[0].numpy(), q.stddev[0].numpy()


def _vq_reconstruct(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, dict, np.ndarray]:
    codes = model.encode_to_indices(x)                                      # (1, 7, 7)
    x_hat = model.decode_indices(codes)                                     # (1, 1, 28, 28)
    k = model.config.num_codes
    numbers = {"mse": (x_hat - x).pow(2).mean().item(),
               "bits_learned": -model.prior("learned").log_prob(codes).item() / math.log(2),
               "bits_uniform": GRID * GRID * math.log2(k)}
    return x_hat.view(28, 28).numpy(), numbers, codes[0].numpy()      # (28, 28), (7, 7)


@torch.inference_mode()
def reconstruct(registry: ModelRegistry, names: Sequence[str], image: np.ndarray, k: int = 100,
                seed: int = 0, binarize_mode: str = "threshold") -> ReconstructResult:
    """Each model's reconstruction of a 28x28 image, with its ELBO terms and IWAE bound
    (VAEs, on the binarized image) or its code grid and code lengths (VQ-VAEs, grey image).
    Models that cannot be used are skipped with a warning."""
    image = check_image(image)
    k = check_int("k (importance samples)", k, *IMPORTANCE_K)
    names = check_models(names)
    binary = binarize(image, binarize_mode, check_seed(seed))
    out, warnings = [], []
    for name in names:
        try:
            lm = registry.get(name, ("vae", "vqvae"))
        except UserError as exc:
            warnings.append(str(exc))
            continue
        if lm.entry.kind == "vae":
            rec, numbers, mu, std = _vae_reconstruct(lm.model, as_tensor(binary), k, generator(seed))
            out.append(ModelReconstruction(name, "vae", rec, numbers, mu, std))
        else:
            rec, numbers, codes = _vq_reconstruct(lm.model, as_tensor(image))
            out.append(ModelReconstruction(name, "vqvae", rec, numbers, codes=codes,
                                           num_codes=lm.model.config.num_codes))
    if not out:
        raise InputError("none of the chosen models could be used: " + "; ".join(warnings))
    return ReconstructResult(image, binary, out, warnings, k)


def metrics_table(result: ReconstructResult) -> tuple[list[str], list[list[str]]]:
    """Rows = quantities, columns = models: the numbers side by side (nats unless bits)."""
    headers = ["quantity"] + [m.name for m in result.models] + ["meaning"]
    rows = []
    for rows_def in (RECON_ROWS, VQ_ROWS):
        for key, (label, meaning) in rows_def.items():
            vals = [m.numbers.get(key) for m in result.models]
            if all(v is None for v in vals):
                continue
            if key == "iwae":
                label = label.replace("L_k", f"L_{result.k}")
            fmt = "{:.4f}" if key == "mse" else "{:.2f}"
            rows.append([label] + ["—" if v is None else fmt.format(v) for v in vals] + [meaning])
    return headers, rows


def posterior_figure(registry: ModelRegistry, result: ReconstructResult) -> dict | None:
    """Plotly figure (dict) of the VAEs' posteriors: ellipses over q_agg for 2-D models,
    else mean +- std bars; None when no VAE was chosen."""
    vaes = [m for m in result.models if m.kind == "vae"]
    if not vaes:
        return None
    if all(len(m.mu) == 2 for m in vaes):
        ld = latent_data(registry, vaes[0].name)
        dataset = registry.entry(vaes[0].name).dataset
        ell = [(m.name, m.mu, m.std) for m in vaes]
        n = min(len(ld.mu), 2000)  # enough dots to show q_agg; fewer keep the figure light
        fig = plots.posterior_ellipses(ld.mu[:n], ld.labels[:n], ell, CLASS_NAMES[dataset])
        if len(vaes) > 1:
            fig["layout"]["title"]["text"] += f" (dots: {vaes[0].name})"
        return fig
    return plots.posterior_bars([(m.name, m.mu, m.std) for m in vaes])


# ----------------------------------------------------------------------------- the tab

@dataclass
class Outputs:
    """What the Reconstruct tab shows, in the UI's output order."""

    gallery: list[tuple[np.ndarray, str]]   # the binarized input and each reconstruction
    table: pd.DataFrame                     # ELBO terms, one column per model
    posterior: dict | None                  # plotly figure of q(z|x)
    code_map: np.ndarray | None             # the VQ-VAE's coloured code grid (None: hidden)
    can_open_grid: bool                     # show the "open in Code grid" button
    vq_state: dict | None                   # {"model", "grid"} for that button
    note: str


def run(registry: ModelRegistry, image: Any, models: Sequence[str], k: Any = 100, seed: Any = 0,
        binarize_mode: str = "threshold") -> Outputs:
    """The Reconstruct button: ``image`` is anything ``preprocess.prepare`` reads."""
    res = reconstruct(registry, check_models(models), prepare(image), k, seed, binarize_mode)
    items = [(upscale(res.binary, 6), "VAE input (binary)")] if any(
        m.kind == "vae" for m in res.models) else []
    items += [(upscale(m.image, 6), m.name) for m in res.models]
    headers, rows = metrics_table(res)
    vq = next((m for m in res.models if m.kind == "vqvae"), None)
    code_img = render.code_map(vq.codes, vq.num_codes, CELL) if vq else None
    state = {"model": vq.name, "grid": vq.codes.tolist()} if vq else None
    return Outputs(items, pd.DataFrame(rows, columns=headers), posterior_figure(registry, res),
                   code_img, vq is not None, state, "\n\n".join(f"⚠️ {w}" for w in res.warnings))


def serve(registry: ModelRegistry, image: Any, models: Sequence[str], k: Any = 100, seed: Any = 0,
          binarize_mode: str = "threshold") -> Outputs:
    """``run`` as the app serves it: pictures as PNG files written once (``cache.FileStore``),
    and identical requests (same image, models, k, seed) answered from the result cache."""
    def compute() -> Outputs:
        out = run(registry, image, models, k, seed, binarize_mode)
        png = cache.files().png
        out.gallery = [(png(img), label) for img, label in out.gallery]
        out.code_map = None if out.code_map is None else png(out.code_map)
        return out

    parts = ("reconstruct", id(registry), image, models, k, seed, binarize_mode,
             cache.model_stamps(registry, models))
    return cache.memoized(parts, compute)
