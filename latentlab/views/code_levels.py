"""Two code levels: a hierarchical VQ-VAE's 2x2 top grid (global form) and 7x7 bottom grid
(local detail), read, edited, decoded and redrawn.

The prior factorises as p(c_top) p(c_bot | c_top). Changing a top code and redrawing the
bottom from p(c_bot | c_top) shows what the top decides (which digit, its slant and size);
redrawing the bottom for a fixed top shows what it leaves open (stroke detail).

>>> from latentlab.registry import REPO, ModelRegistry
>>> reg = ModelRegistry(REPO / "checkpoints")
>>> pair = sample(reg, "mnist-vqvae2", temperature=1.0, seed=0)
>>> len(pair.top), len(pair.bottom), len(pair.bottom[0])
(2, 7, 7)
>>> bottom = redraw_bottom(reg, "mnist-vqvae2", pair.top, seed=1)
>>> run(reg, pair.top, bottom, "mnist-vqvae2").image.shape
(224, 224)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentlab import cache, render
from latentlab.errors import InputError
from latentlab.inputs import as_tensor, check_image, check_temperature, generator, need_model
from latentlab.preprocess import prepare, upscale
from latentlab.registry import ModelRegistry
from latentlab.views.code_grid import parse_code_grid
from models.vqvae2 import CELLS, GRID, TOP, TOP_CELLS, VQVAE2, Codes

KINDS = ("vqvae2",)
TOP_CELL, BOTTOM_CELL = 64, 32   # pixels per cell of the coloured maps (both maps ~ 240 px)
VARIANTS = 8                     # bottoms drawn for one top in the "same top" strip


@dataclass
class LevelGrids:
    """A top grid (2x2) and a bottom grid (7x7) of code indices, as the tables show them."""

    top: list[list[int]]
    bottom: list[list[int]]


@dataclass
class LevelsOutputs:
    """What a change of either grid shows, in the UI's output order."""

    image: np.ndarray            # the decoded pair, upscaled (224, 224)
    top_image: np.ndarray        # what the top alone decodes to (the bottom's vectors zero)
    top_map: np.ndarray          # coloured 2x2 map
    bottom_map: np.ndarray       # coloured 7x7 map
    info: str                    # bits of each level under the learned and the uniform prior


# ----------------------------------------------------------------------------- helpers

def _model(registry: ModelRegistry, name: str | None) -> VQVAE2:
    return registry.get(need_model(name), KINDS).model


def _parse_level(value: Any, num_codes: int, size: int, level: str) -> torch.Tensor:
    """One table -> (size, size) long; InputError names the level and the bad cell."""
    try:
        return torch.from_numpy(parse_code_grid(value, num_codes, size=size))
    except InputError as exc:
        raise InputError(f"{level} grid: {exc}") from None


def _parse_top(model: VQVAE2, top: Any) -> torch.Tensor:
    return _parse_level(top, model.config.top_codes, TOP, "top")


def parse_levels(model: VQVAE2, top: Any, bottom: Any) -> Codes:
    """Both tables -> Codes (1, 2, 2) and (1, 7, 7); InputError names a bad cell and its level."""
    return Codes(_parse_top(model, top)[None],
                 _parse_level(bottom, model.config.num_codes, GRID, "bottom")[None])


def _pair(codes: Codes) -> LevelGrids:
    return LevelGrids(codes.top[0].tolist(), codes.bottom[0].tolist())


def _info(model: VQVAE2, codes: Codes) -> str:
    lp = model.prior("learned").log_prob_per_level(codes)
    top, bottom = -lp.top.item() / math.log(2), -lp.bottom.item() / math.log(2)
    kt, kb = model.config.top_codes, model.config.num_codes
    return (f"**−log₂ p(top)** = **{top:.1f} bits** for 4 codes, {top / TOP_CELLS:.2f} per code "
            f"(uniform prior: 4·log₂ {kt} = {TOP_CELLS * math.log2(kt):.0f}); "
            f"**−log₂ p(bottom | top)** = **{bottom:.1f} bits** for 49 codes, "
            f"{bottom / CELLS:.2f} per code (uniform: 49·log₂ {kb} = "
            f"{CELLS * math.log2(kb):.0f}). Fewer bits = the learned prior finds the grid more "
            "typical.")


# ----------------------------------------------------------------------------- actions

@torch.inference_mode()
def run(registry: ModelRegistry, top: Any, bottom: Any, model: str | None) -> LevelsOutputs:
    """Decode the pair of grids and score each level under the learned prior."""
    vq = _model(registry, model)
    codes = parse_levels(vq, top, bottom)
    image = vq.decode_indices(codes).view(28, 28).numpy()                    # (28, 28)
    coarse = vq.decode_top(codes.top).view(28, 28).numpy()                   # (28, 28)
    return LevelsOutputs(
        upscale(image), upscale(coarse),
        render.code_map(codes.top[0].numpy(), vq.config.top_codes, TOP_CELL),
        render.code_map(codes.bottom[0].numpy(), vq.config.num_codes, BOTTOM_CELL),
        _info(vq, codes))


def serve(registry: ModelRegistry, top: Any, bottom: Any, model: str | None) -> LevelsOutputs:
    """``run`` with its pictures as PNG files, answered from the result cache when seen."""
    def compute() -> LevelsOutputs:
        out = run(registry, top, bottom, model)
        for name in ("image", "top_image", "top_map", "bottom_map"):
            setattr(out, name, cache.files().png(getattr(out, name)))
        return out

    parts = ("levels_decode", id(registry), top, bottom, model, cache.model_stamps(registry, model))
    return cache.memoized(parts, compute)


@torch.inference_mode()
def encode(registry: ModelRegistry, image: Any, model: str | None) -> LevelGrids:
    """The top and bottom grids the encoder assigns to an image."""
    vq = _model(registry, model)
    return _pair(vq.encode_to_indices(as_tensor(check_image(prepare(image)))))


@torch.inference_mode()
def sample(registry: ModelRegistry, model: str | None, temperature: Any = 1.0,
           seed: Any = 0) -> LevelGrids:
    """A fresh pair: the top from p(c_top), then the bottom from p(c_bot | c_top)."""
    vq = _model(registry, model)
    t = check_temperature(temperature)
    return _pair(vq.prior("learned").sample(1, t, generator(seed)))


@torch.inference_mode()
def redraw_bottom(registry: ModelRegistry, model: str | None, top: Any, temperature: Any = 1.0,
                  seed: Any = 0) -> list[list[int]]:
    """A new bottom grid drawn from p(c_bot | c_top) for the given top grid."""
    vq = _model(registry, model)
    t = check_temperature(temperature)
    return vq.sample_bottom(_parse_top(vq, top)[None], t, generator(seed)).bottom[0].tolist()


@torch.inference_mode()
def same_top(registry: ModelRegistry, model: str | None, top: Any, temperature: Any = 1.0,
             seed: Any = 0) -> np.ndarray:
    """VARIANTS images sharing the top grid, each with its own bottom from p(c_bot | c_top):
    what stays (global form) and what changes (local detail), side by side."""
    vq = _model(registry, model)
    t = check_temperature(temperature)
    tops = _parse_top(vq, top)[None].expand(VARIANTS, TOP, TOP)               # (V, 2, 2)
    codes = vq.sample_bottom(tops, t, generator(seed))
    images = vq.decode_indices(codes).view(VARIANTS, 28, 28).numpy()         # (V, 28, 28)
    return render.tile(images, cols=VARIANTS, scale=3)


def serve_same_top(registry: ModelRegistry, model: str | None, top: Any, temperature: Any = 1.0,
                   seed: Any = 0) -> str:
    """``same_top`` as a PNG file, from the result cache when seen."""
    parts = ("levels_same_top", id(registry), model, top, temperature, seed,
             cache.model_stamps(registry, model))
    return cache.memoized(parts, lambda: cache.files().png(
        same_top(registry, model, top, temperature, seed)))


def open_model(registry: ModelRegistry, model: str | None, top: Any, bottom: Any) -> LevelGrids | None:
    """A model was chosen: keep grids that fit it, else a learned-prior pair (seed 0);
    None without a model."""
    if not model:
        return None
    vq = _model(registry, model)
    try:
        codes = parse_levels(vq, top, bottom)
        if codes.top.any() or codes.bottom.any():  # all zeros = the placeholder: replace it
            return None
    except InputError:
        pass
    return sample(registry, model)
