"""Interpolate tab: decode a path between two inputs' latents, with the prior along it.

VAEs interpolate the posterior means in z (and, for a flow prior, also in the base space
z* = f(z)); VQ-VAEs interpolate the encoder output z_e and snap every step to codes.

>>> a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 1.0])
>>> path_points(a, b, torch.linspace(0, 1, 3), "spherical").norm(dim=1).round().tolist()
[3.0, 2.0, 1.0]
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from latentlab import cache, plots, render
from latentlab.errors import InputError
from latentlab.inputs import (
    STEPS,
    as_tensor,
    binarize,
    check_choice,
    check_image,
    check_int,
    check_models,
)
from latentlab.preprocess import prepare
from latentlab.registry import ModelEntry, ModelRegistry

GRID = 7
METHODS = ("linear", "spherical")
SPACES = {
    "z": "latent z (posterior means, decoded directly)",
    "base": "flow base space z* = f(z): interpolate z*, map back with g = f⁻¹",
    "z_e": "VQ-VAE encoder output z_e before quantization; each step is snapped to codes",
}


@dataclass
class InterpolationResult:
    name: str
    space: str
    method: str
    t: np.ndarray                    # (S,) path positions in [0, 1]
    images: np.ndarray               # (S, 28, 28) decoded path
    log_prior: np.ndarray            # (S,) log p(z_t) (VAE) or log p_lambda(codes_t) (VQ), nats
    codes: np.ndarray | None = None  # (S, 7, 7) VQ codes along the path
    changed: np.ndarray | None = None      # (S,) cells whose code differs from the step before
    unquantized: np.ndarray | None = None  # (S, 28, 28) VQ: z_e(t) decoded without snapping

    @property
    def label(self) -> str:
        return f"{self.name} · {self.space} · {self.method}"


def path_points(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, method: str) -> torch.Tensor:
    """Points between two vectors (D,) at positions t (S,): linear or spherical -> (S, D).

    Spherical (slerp) follows the great circle between the directions of a and b with the
    lengths blended linearly: Gaussian-like latents keep a typical norm instead of
    shrinking towards the origin halfway.
    """
    check_choice("method", method, METHODS)
    t = t.to(a.dtype).unsqueeze(1)                                          # (S, 1)
    if method == "linear":
        return (1 - t) * a + t * b
    na, nb = a.norm(), b.norm()
    if na < 1e-8 or nb < 1e-8:
        return (1 - t) * a + t * b
    cos = torch.clamp((a @ b) / (na * nb), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega < 1e-4:
        return (1 - t) * a + t * b
    direction = (torch.sin((1 - t) * omega) * a / na + torch.sin(t * omega) * b / nb) / torch.sin(omega)
    return direction * ((1 - t) * na + t * nb)


def _check_space(e: ModelEntry, space: str) -> None:
    check_choice("space", space, tuple(SPACES))
    if e.kind == "vqvae" and space != "z_e":
        raise InputError(f"{e.name} is a VQ-VAE: interpolate in z_e (before quantization)")
    if e.kind == "vae" and space == "z_e":
        raise InputError(f"{e.name} is a VAE: z_e is the VQ-VAE's encoder output; use z or base")
    if space == "base" and e.prior != "realnvp":
        raise InputError(f"{e.name} has the N(0,I) prior, whose base space is z itself; "
                         "the base space z* needs a flow-prior model")


def spaces_for(e: ModelEntry, flow_base: bool) -> list[str]:
    """The spaces the tab interpolates a model in: z_e (VQ), z, and z* for flow priors."""
    if e.kind == "vqvae":
        return ["z_e"]
    return ["z", "base"] if flow_base and e.prior == "realnvp" else ["z"]


@torch.inference_mode()
def interpolate(registry: ModelRegistry, name: str, image_a: np.ndarray, image_b: np.ndarray,
                steps: int = 16, method: str = "linear", space: str = "z",
                binarize_mode: str = "threshold") -> InterpolationResult:
    """Decode a path between two inputs' latents, with the prior's log-density along it."""
    lm = registry.get(name, ("vae", "vqvae"))
    steps = check_int("steps", steps, *STEPS)
    check_choice("method", method, METHODS)
    _check_space(lm.entry, space)
    t = torch.linspace(0, 1, steps)
    a, b = check_image(image_a), check_image(image_b)
    if lm.entry.kind == "vqvae":
        return _interpolate_vq(lm.model, name, as_tensor(a), as_tensor(b), t, method)
    model = lm.model
    mu_a = model.posterior(as_tensor(binarize(a, binarize_mode))).mean[0]   # (D,)
    mu_b = model.posterior(as_tensor(binarize(b, binarize_mode))).mean[0]
    if space == "base":
        ends = model.prior.to_base(torch.stack([mu_a, mu_b]))               # (2, D) z*
        z = model.prior.from_base(path_points(ends[0], ends[1], t, method))  # (S, D)
    else:
        z = path_points(mu_a, mu_b, t, method)                              # (S, D)
    images = model.decode_probs(z).view(steps, 28, 28)                  # (S, 28, 28)
    return InterpolationResult(name, space, method, t.numpy(), images.numpy(),
                               model.prior.log_prob(z).numpy())


def _interpolate_vq(model, name: str, xa: torch.Tensor, xb: torch.Tensor, t: torch.Tensor,
                    method: str) -> InterpolationResult:
    za, zb = model.encode(xa)[0], model.encode(xb)[0]                      # (D, 7, 7) each
    d = za.shape[0]
    path = path_points(za.flatten(), zb.flatten(), t, method).view(-1, d, GRID, GRID)  # (S, D, 7, 7)
    codes = model.quantizer.quantize(path)                                  # (S, 7, 7)
    images = model.decode_indices(codes).view(-1, 28, 28)                   # (S, 28, 28)
    raw = model.decode(path).view(-1, 28, 28)                               # (S, 28, 28)
    changed = torch.zeros(len(codes), dtype=torch.long)
    changed[1:] = (codes[1:] != codes[:-1]).flatten(1).sum(1)
    log_prior = model.prior("learned").log_prob(codes)
    return InterpolationResult(name, "z_e", method, t.numpy(), images.numpy(), log_prior.numpy(),
                               codes.numpy(), changed.numpy(), raw.numpy())


def interpolation_strip(result: InterpolationResult, scale: int | None = None) -> np.ndarray:
    """The path as one row (two rows for a VQ-VAE: snapped to codes, and raw z_e decoded)."""
    s = len(result.images)
    scale = scale or (3 if s <= 16 else 2)
    caps = [f"t={v:.2f}" for v in result.t]
    if result.codes is None:
        return render.tile(result.images, cols=s, scale=scale, captions=caps)
    caps = [f"{c} changed" if i else "start" for i, c in enumerate(result.changed)]
    both = np.concatenate([result.images, result.unquantized])
    return render.tile(both, cols=s, scale=scale, captions=caps + ["raw z_e"] * s)


def gif_bytes(images: np.ndarray, scale: int = 6, ms: int = 120) -> bytes:
    """(S, H, W) frames as a looping GIF played forward then back (as ``render.save_gif``),
    without PIL's palette optimisation: the frames are grey already, and it tripled the time."""
    frames = [Image.fromarray(render.enlarge(render.to_uint8(f), scale)) for f in images]
    frames = frames + frames[-2:0:-1]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=ms,
                   loop=0, optimize=False)
    return buf.getvalue()


def write_gif(results: Sequence[InterpolationResult]) -> str:
    """All paths side by side as one looping GIF, in a file named by its content that is
    written once, atomically (``cache.FileStore``): a GIF being served is never rewritten."""
    frames = np.concatenate([r.images for r in results], axis=2)            # (S, 28, 28*R)
    return cache.files().put(gif_bytes(frames), ".gif")


# ----------------------------------------------------------------------------- the tab

@dataclass
class Outputs:
    """What the Interpolate tab shows, in the UI's output order."""

    strip: np.ndarray            # one row per model and space
    density: dict                # plotly line chart of log p along the paths
    gif: str                     # path of the animated GIF (shown) ...
    gif_file: str                # ... and the same file to download
    note: str


def run(registry: ModelRegistry, image_a: Any, image_b: Any, models: Sequence[str],
        steps: Any = 12, method: str = "linear", flow_base: bool = True,
        binarize_mode: str = "threshold") -> Outputs:
    """The Interpolate button: every chosen model in every space that applies to it."""
    names = check_models(models)
    xa, xb = prepare(image_a), prepare(image_b)
    results = [interpolate(registry, name, xa, xb, steps, method, s, binarize_mode)
               for name in names for s in spaces_for(registry.entry(name), flow_base)]
    strip = render.stack([interpolation_strip(r) for r in results], [r.label for r in results])
    fig = plots.path_density(results[0].t, [(r.label, r.log_prior, r.space == "z_e")
                                            for r in results])
    path = write_gif(results)
    msg = "GIF frames: " + ", ".join(r.label for r in results) + " (left to right)"
    return Outputs(strip, fig, path, path, msg)


def serve(registry: ModelRegistry, image_a: Any, image_b: Any, models: Sequence[str],
          steps: Any = 12, method: str = "linear", flow_base: bool = True,
          binarize_mode: str = "threshold") -> Outputs:
    """``run`` as the app serves it: the strip a PNG file written once, and identical
    requests (same two images and settings) answered from the result cache."""
    def compute() -> Outputs:
        out = run(registry, image_a, image_b, models, steps, method, flow_base, binarize_mode)
        out.strip = cache.files().png(out.strip)
        return out

    parts = ("interpolate", id(registry), image_a, image_b, models, steps, method, flow_base,
             binarize_mode, cache.model_stamps(registry, models))
    return cache.memoized(parts, compute)
