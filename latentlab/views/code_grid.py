"""Code grid tab: read, edit, decode, paint and regenerate a VQ-VAE's 7x7 code grid.

A grid is a 7x7 table of code indices c_ij in [0, K); decoding looks up e_{c_ij} and runs the
VQ-VAE's decoder. Cell selections are short text (``"3,4"``, ``"0-2,*"``, ``"all"``), so the
API takes the same input the UI's text box shows.

>>> int(parse_cells("3,4; 0-1,5-6").sum())
5
>>> toggle_cell("3,4", 2, 5)
'2,5; 3,4'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentlab import cache, render
from latentlab.errors import InputError, UserError
from latentlab.inputs import (
    as_tensor,
    check_choice,
    check_image,
    check_int,
    check_seed,
    check_temperature,
    generator,
    need_model,
    shown,
)
from latentlab.preprocess import prepare, upscale
from latentlab.registry import ModelRegistry
from latentlab.testset import code_data

GRID = 7
CELL = 40  # pixels per cell of the coloured code map (clicks are mapped back with it)
PRIORS = ("learned", "uniform")
# Each Gibbs update of a regenerated cell scores only the 32 codes most likely given the cells
# before it, not all K: about 4x faster with K = 128, and the codes it skips carry almost no
# mass (the prior's per-cell entropy is about 2.5 bits). See TransformerCodePrior.regenerate.
REGENERATE_TOP_K = 32
NO_CELLS = "no cells selected: click cells on the coloured map or type e.g. '3,4'"


# ----------------------------------------------------------------------------- parsing

def _cell_int(value: Any, r: int, c: int, num_codes: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"cell (row {r}, col {c}) holds {value!r}, not a code index")
    try:
        f = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"cell (row {r}, col {c}) holds {shown(value)}, which is not a whole "
                         "number; each cell needs a code index") from None
    if not math.isfinite(f) or f != int(f):
        raise InputError(f"cell (row {r}, col {c}) holds {shown(value)}, which is not a whole "
                         "number")
    if not 0 <= f < num_codes:
        raise InputError(f"cell (row {r}, col {c}) holds code {shown(value)}, outside "
                         f"[0, {num_codes}) for this codebook of K={num_codes}")
    return int(f)


def _rows(value: Any, size: int = GRID) -> list:
    """Lists, numpy, a DataFrame, Gradio's {"data": ...} or text -> a list of rows."""
    if value is None:
        raise InputError("no code grid yet: encode an image or sample a grid first")
    if isinstance(value, dict) and "data" in value:
        value = value["data"]
    if hasattr(value, "values") and hasattr(value, "columns"):        # pandas DataFrame
        value = value.values.tolist()
    if isinstance(value, str):
        value = [row.replace(",", " ").split() for row in value.strip().splitlines() if row.strip()]
    rows = value.tolist() if isinstance(value, np.ndarray) else value
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in rows):
        raise InputError(f"the code grid must be a table of {size} rows of {size} whole numbers")
    return rows


def parse_code_grid(value: Any, num_codes: int, size: int = GRID) -> np.ndarray:
    """A size x size table of code indices (7x7 unless told) -> (size, size) int64.

    Raises InputError naming the first bad cell: wrong shape, not a whole number, or an
    index outside [0, K).
    """
    rows = _rows(value, size)
    if len(rows) != size or any(len(r) != size for r in rows):
        raise InputError(f"the code grid must be {size} rows x {size} columns, got {len(rows)} "
                         f"rows of lengths {sorted({len(r) for r in rows})}")
    return np.array([[_cell_int(v, r, c, num_codes) for c, v in enumerate(row)]
                     for r, row in enumerate(rows)], dtype=np.int64)


def _span(token: str) -> range:
    token = token.strip()
    if token in ("*", ""):
        return range(GRID)
    lo, _, hi = token.partition("-")
    a = check_int("cell row/column", lo, 0, GRID - 1)
    b = check_int("cell row/column", hi, 0, GRID - 1) if hi else a
    return range(min(a, b), max(a, b) + 1)


def parse_cells(text: Any) -> np.ndarray:
    """Cell selection text -> (7, 7) bool mask.

    ``"3,4"`` one cell (row 3, column 4; rows and columns count from 0), ``"0-2,*"`` rows
    0..2 in every column, ``"all"``; several separated by ``;``.
    """
    mask = np.zeros((GRID, GRID), bool)
    text = "" if text is None else str(text)
    if text.strip().lower() == "all":
        return ~mask
    for part in text.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        if part.count(",") != 1:
            raise InputError(f"cannot read the cell selection {part.strip()!r}: write 'row,col' "
                             "such as '3,4', ranges such as '0-2,*', or 'all'")
        r, c = part.split(",")
        for i in _span(r):
            mask[i, list(_span(c))] = True
    return mask


def format_cells(mask: np.ndarray) -> str:
    return "; ".join(f"{r},{c}" for r, c in np.argwhere(mask))


def toggle_cell(text: Any, row: int, col: int) -> str:
    """The selection with cell (row, col) added or removed."""
    mask = parse_cells(text)
    mask[check_int("row", row, 0, GRID - 1), check_int("column", col, 0, GRID - 1)] ^= True
    return format_cells(mask)


# ----------------------------------------------------------------------------- actions

@dataclass
class CodeGridResult:
    grid: np.ndarray             # (7, 7) code indices
    image: np.ndarray            # (28, 28) decoded
    bits_learned: float          # -log2 p_lambda(grid)
    bits_uniform: float          # 49 log2 K
    num_codes: int


def _vq(registry: ModelRegistry, name: str | None):
    return registry.get(need_model(name), ("vqvae",)).model


@torch.inference_mode()
def code_grid_from_image(registry: ModelRegistry, name: str, image: np.ndarray) -> np.ndarray:
    """The 7x7 code grid the encoder assigns to a 28x28 image."""
    return _vq(registry, name).encode_to_indices(as_tensor(check_image(image)))[0].numpy()


@torch.inference_mode()
def decode_code_grid(registry: ModelRegistry, name: str, grid: Any) -> CodeGridResult:
    """Decode a (possibly hand-edited) code grid and score it under both priors."""
    model = _vq(registry, name)
    k = model.config.num_codes
    g = torch.from_numpy(parse_code_grid(grid, k))[None]                    # (1, 7, 7)
    image = model.decode_indices(g).view(28, 28).numpy()                    # (28, 28)
    bits = -model.prior("learned").log_prob(g).item() / math.log(2)
    return CodeGridResult(g[0].numpy(), image, bits, GRID * GRID * math.log2(k), k)


def paint_cells(registry: ModelRegistry, name: str, grid: Any, cells: Any, code: Any) -> np.ndarray:
    """Set the selected cells to one code."""
    k = _vq(registry, name).config.num_codes
    g = parse_code_grid(grid, k)
    mask = parse_cells(cells)
    if not mask.any():
        raise InputError(NO_CELLS)
    g[mask] = check_int("code", code, 0, k - 1)
    return g


@torch.inference_mode()
def regenerate_cells(registry: ModelRegistry, name: str, grid: Any, cells: Any,
                     temperature: float = 1.0, seed: int = 0, prior: str = "learned") -> np.ndarray:
    """Redraw the selected cells from a prior given all the others (the rest stays)."""
    model = _vq(registry, name)
    check_choice("prior", prior, PRIORS)
    g = torch.from_numpy(parse_code_grid(grid, model.config.num_codes))[None]
    mask = torch.from_numpy(parse_cells(cells))[None]
    if not mask.any():
        raise InputError(NO_CELLS)
    t = check_temperature(temperature)
    kw = {"top_k": REGENERATE_TOP_K} if prior == "learned" else {}
    return model.prior(prior).regenerate(g, mask, t, generator(seed), **kw)[0].numpy()


@torch.inference_mode()
def sample_code_grid(registry: ModelRegistry, name: str, prior: str = "learned",
                     temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """A fresh grid drawn from the learned or the uniform code prior."""
    model = _vq(registry, name)
    check_choice("prior", prior, PRIORS)
    t = check_temperature(temperature)
    return model.prior(prior).sample(1, t, generator(seed))[0].numpy()


def codebook_atlas(registry: ModelRegistry, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every code decoded alone (a grid filled with code k) with its test-set usage count."""
    lm = registry.get(need_model(name), ("vqvae",))

    @torch.inference_mode()
    def build():
        k = lm.model.config.num_codes
        grids = torch.arange(k).view(k, 1, 1).expand(k, GRID, GRID)          # (K, 7, 7)
        images = torch.cat([lm.model.decode_indices(g) for g in grids.split(256)])
        images = images.view(k, 28, 28)                                      # (K, 28, 28)
        counts = code_data(registry, name).counts
        return render.atlas(images.numpy(), counts), counts

    return lm.memo("atlas", build)


# ----------------------------------------------------------------------------- the tab

@dataclass
class DecodeOutputs:
    """What a grid change shows, in the UI's output order."""

    image: np.ndarray            # the decoded grid, upscaled
    code_map: np.ndarray         # the coloured map with the selected cells outlined
    info: str                    # code lengths under both priors


@dataclass
class AtlasOutputs:
    """A chosen model: its atlas and, when the grid does not fit it, a new grid."""

    atlas: np.ndarray | None
    grid: list[list[int]] | None      # None: keep the grid shown


def run(registry: ModelRegistry, grid: Any, model: str | None, cells: Any = "") -> DecodeOutputs:
    """Decode the grid (the tab's main view: every edit redraws it)."""
    res = decode_code_grid(registry, model, grid)
    text = (f"**−log₂ p(grid)**: learned prior **{res.bits_learned:.1f} bits**, uniform prior "
            f"{res.bits_uniform:.1f} bits (49·log₂ {res.num_codes}). Fewer bits = the learned "
            "prior finds this grid more typical.")
    return DecodeOutputs(upscale(res.image), render.code_map(res.grid, res.num_codes, CELL,
                                                               parse_cells(cells)), text)


def serve(registry: ModelRegistry, grid: Any, model: str | None, cells: Any = "") -> DecodeOutputs:
    """``run`` as the app serves it: both pictures PNG files written once, and a grid shown
    before (same grid, model and selection) answered from the result cache."""
    def compute() -> DecodeOutputs:
        out = run(registry, grid, model, cells)
        out.image, out.code_map = cache.files().png(out.image), cache.files().png(out.code_map)
        return out

    parts = ("code_decode", id(registry), grid, model, cells, cache.model_stamps(registry, model))
    return cache.memoized(parts, compute)


def encode(registry: ModelRegistry, image: Any, model: str | None) -> list[list[int]]:
    return code_grid_from_image(registry, model, prepare(image)).tolist()


def paint(registry: ModelRegistry, grid: Any, model: str | None, cells: Any,
          code: Any) -> list[list[int]]:
    return paint_cells(registry, model, grid, cells, code).tolist()


def _memo(parts: tuple, registry: ModelRegistry, model: Any, compute) -> list[list[int]]:
    """A grid through the shared result cache (copied: callers may edit their grid)."""
    grid = cache.memoized((*parts, id(registry), model, cache.model_stamps(registry, model)),
                          compute)
    return [list(row) for row in grid]


def regenerate(registry: ModelRegistry, grid: Any, model: str | None, cells: Any,
               temperature: Any = 1.0, seed: Any = 0) -> list[list[int]]:
    return _memo(("code_regenerate", grid, cells, temperature, seed), registry, model,
                 lambda: regenerate_cells(registry, model, grid, cells, temperature, seed).tolist())


def sample(registry: ModelRegistry, model: str | None, prior: str, temperature: Any = 1.0,
           seed: Any = 0) -> list[list[int]]:
    return _memo(("code_sample", prior, temperature, seed), registry, model,
                 lambda: sample_code_grid(registry, model, prior, temperature, seed).tolist())


def sample_many(registry: ModelRegistry, models: Sequence[Any], temperatures: Sequence[Any],
                seeds: Sequence[Any]) -> list[list[list[int]] | UserError]:
    """Several users' "New grid: learned prior" requests at once (Gradio batches the ones
    waiting in its queue): one answer per request, equal to ``sample(..., "learned", ...)``
    for it, or the UserError that request alone would raise (the others still get grids).
    Requests for one model share the 49 transformer steps (``sample_each``); identical
    requests and ones answered before come from the result cache."""
    answers: list[Any] = [None] * len(models)
    todo: dict[Any, dict[str, tuple[float, int, list[int]]]] = {}  # model -> key -> request
    for i, (model, temperature, seed) in enumerate(zip(models, temperatures, seeds)):
        try:
            _vq(registry, model)
            t = check_temperature(temperature)
            s = check_seed(seed)
            key = cache.fingerprint("code_sample", "learned", temperature, seed, id(registry),
                                    model, cache.model_stamps(registry, model))
        except UserError as exc:
            answers[i] = exc
            continue
        hit = cache.results().lookup(key)
        if hit is not None:
            answers[i] = [list(row) for row in hit]
        else:
            todo.setdefault(model, {}).setdefault(key, (t, s, []))[2].append(i)
    for model, requests in todo.items():
        with torch.inference_mode():
            grids = _vq(registry, model).prior("learned").sample_each(
                [t for t, _, _ in requests.values()],
                [generator(s) for _, s, _ in requests.values()]).tolist()
        for (key, (_, _, rows)), grid in zip(requests.items(), grids):
            cache.results().store(key, grid)
            for i in rows:
                answers[i] = [list(row) for row in grid]
    return answers


def open_model(registry: ModelRegistry, model: str | None, grid: Any, image: Any) -> AtlasOutputs:
    """A model was chosen: its atlas; the grid is kept if it fits, else the input image's
    grid (or a learned-prior sample without an input)."""
    if not model:
        return AtlasOutputs(None, None)
    atlas_img = codebook_atlas(registry, model)[0]
    try:
        if np.any(parse_code_grid(grid, registry.entry(model).num_codes)):
            return AtlasOutputs(atlas_img, None)  # all zeros = the placeholder: replace it
    except InputError:  # the grid does not fit this codebook: start afresh
        pass
    if image is not None:
        return AtlasOutputs(atlas_img, encode(registry, image, model))
    return AtlasOutputs(atlas_img, sample(registry, model, "learned"))


def click_map(cells: Any, x: float, y: float) -> str | None:
    """A click on the coloured map at pixel (x, y) toggles that cell; None in the margin."""
    rc = render.code_map_cell(x, y, cell=CELL)
    return None if rc is None else toggle_cell(cells, *rc)


def click_atlas(registry: ModelRegistry, model: str | None, x: float, y: float) -> int | None:
    """The code under pixel (x, y) of the atlas, None between cells or without a model."""
    if not model:
        return None
    return render.atlas_cell(int(x), int(y), registry.entry(model).num_codes)


@dataclass
class OpenedGrid:
    """A Reconstruct result opened in this tab."""

    dataset: str
    choices: list[tuple[str, str]]
    model: str
    grid: list[list[int]]


def open_reconstruction(registry: ModelRegistry, state: dict | None) -> OpenedGrid:
    """The VQ-VAE grid from the Reconstruct tab, with its data set and model picker."""
    if not state:
        raise InputError("reconstruct with a VQ-VAE first")
    ds = registry.entry(state["model"]).dataset
    return OpenedGrid(ds, [(e.label, e.name) for e in registry.entries(ds, ("vqvae",))],
                      state["model"], state["grid"])
