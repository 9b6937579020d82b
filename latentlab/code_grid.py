"""The Code grid tab's model layer: read, edit, decode, paint and regenerate 7x7 code grids.

A grid is a 7x7 table of code indices c_ij in [0, K); decoding looks up e_{c_ij} and runs the
VQ-VAE's decoder. Cell selections are short text (``"3,4"``, ``"0-2,*"``, ``"all"``), so the
API takes the same input the UI's text box shows.

>>> grid = code_grid_from_image(registry, "mnist-vqvae", image28)      # doctest: +SKIP
>>> regenerate_cells(registry, "mnist-vqvae", grid, "2-4,2-4").shape   # doctest: +SKIP
(7, 7)

Like ``latentlab.service``, every function takes the ``ModelRegistry`` and plain inputs and
raises ``ServiceError`` for mistakes the user can fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentlab import render
from latentlab.service import (
    GRID,
    VQ_SOURCES,
    ModelRegistry,
    ServiceError,
    as_tensor,
    check_choice,
    check_float,
    check_image,
    check_int,
    code_data,
    generator,
)

# Each Gibbs update of a regenerated cell scores only the 32 codes most likely given the cells
# before it, not all K: about 4x faster with K = 128, and the codes it skips carry almost no
# mass (the prior's per-cell entropy is about 2.5 bits). See TransformerCodePrior.regenerate.
REGENERATE_TOP_K = 32


# ----------------------------------------------------------------------------- parsing

def _cell_int(value: Any, r: int, c: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ServiceError(f"cell (row {r}, col {c}) holds {value!r}, not a code index")
    try:
        f = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ServiceError(f"cell (row {r}, col {c}) holds {value!r}, which is not a whole "
                           "number; each cell needs a code index") from None
    if not math.isfinite(f) or f != int(f):
        raise ServiceError(f"cell (row {r}, col {c}) holds {value!r}, which is not a whole number")
    return int(f)


def parse_code_grid(value: Any, num_codes: int) -> np.ndarray:
    """A 7x7 table of code indices (lists, numpy, a DataFrame or text) -> (7, 7) int64.

    Raises ServiceError naming the first bad cell: wrong shape, not a whole number, or an
    index outside [0, K).
    """
    if value is None:
        raise ServiceError("no code grid yet: encode an image or sample a grid first")
    if isinstance(value, dict) and "data" in value:
        value = value["data"]
    if hasattr(value, "values") and hasattr(value, "columns"):        # pandas DataFrame
        value = value.values.tolist()
    if isinstance(value, str):
        value = [row.replace(",", " ").split() for row in value.strip().splitlines() if row.strip()]
    rows = value.tolist() if isinstance(value, np.ndarray) else value
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in rows):
        raise ServiceError("the code grid must be a table of 7 rows of 7 whole numbers")
    shape = (len(rows), max((len(r) for r in rows), default=0))
    if len(rows) != GRID or any(len(r) != GRID for r in rows):
        raise ServiceError(f"the code grid must be 7 rows x 7 columns, got {shape[0]} rows "
                           f"of lengths {sorted({len(r) for r in rows})}")
    grid = np.array([[_cell_int(v, r, c) for c, v in enumerate(row)] for r, row in enumerate(rows)],
                    dtype=np.int64)
    bad = np.argwhere((grid < 0) | (grid >= num_codes))
    if len(bad):
        r, c = bad[0]
        raise ServiceError(f"cell (row {r}, col {c}) holds code {grid[r, c]}, outside [0, {num_codes}) "
                           f"for this codebook of K={num_codes}")
    return grid


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

    >>> int(parse_cells("3,4; 0-1,5-6").sum())
    5
    """
    mask = np.zeros((GRID, GRID), bool)
    text = "" if text is None else str(text)
    if text.strip().lower() == "all":
        return ~mask
    for part in text.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        if part.count(",") != 1:
            raise ServiceError(f"cannot read the cell selection {part.strip()!r}: write 'row,col' "
                               "such as '3,4', ranges such as '0-2,*', or 'all'")
        r, c = part.split(",")
        for i in _span(r):
            mask[i, list(_span(c))] = True
    return mask


def format_cells(mask: np.ndarray) -> str:
    return "; ".join(f"{r},{c}" for r, c in np.argwhere(mask))


def toggle_cell(text: Any, row: int, col: int) -> str:
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


def _vq(registry: ModelRegistry, name: str):
    return registry.get(name, ("vqvae",)).model


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
    image = model.decode_indices(g).view(28, 28).numpy()
    bits = -model.prior("learned").log_prob(g).item() / math.log(2)
    return CodeGridResult(g[0].numpy(), image, bits, GRID * GRID * math.log2(k), k)


def paint_cells(registry: ModelRegistry, name: str, grid: Any, cells: Any, code: Any) -> np.ndarray:
    """Set the selected cells to one code."""
    k = _vq(registry, name).config.num_codes
    g = parse_code_grid(grid, k)
    mask = parse_cells(cells)
    if not mask.any():
        raise ServiceError("no cells selected: click cells on the coloured map or type e.g. '3,4'")
    g[mask] = check_int("code", code, 0, k - 1)
    return g


@torch.inference_mode()
def regenerate_cells(registry: ModelRegistry, name: str, grid: Any, cells: Any,
                     temperature: float = 1.0, seed: int = 0, prior: str = "learned") -> np.ndarray:
    """Redraw the selected cells from a prior given all the others (the rest stays)."""
    model = _vq(registry, name)
    check_choice("prior", prior, VQ_SOURCES)
    g = torch.from_numpy(parse_code_grid(grid, model.config.num_codes))[None]
    mask = torch.from_numpy(parse_cells(cells))[None]
    if not mask.any():
        raise ServiceError("no cells selected: click cells on the coloured map or type e.g. '3,4'")
    t = check_float("temperature", temperature, 0.05, 3.0)
    kw = {"top_k": REGENERATE_TOP_K} if prior == "learned" else {}
    return model.prior(prior).regenerate(g, mask, t, generator(seed), **kw)[0].numpy()


@torch.inference_mode()
def sample_code_grid(registry: ModelRegistry, name: str, prior: str = "learned",
                     temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    model = _vq(registry, name)
    check_choice("prior", prior, VQ_SOURCES)
    t = check_float("temperature", temperature, 0.05, 3.0)
    return model.prior(prior).sample(1, t, generator(seed))[0].numpy()


def codebook_atlas(registry: ModelRegistry, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every code decoded alone (a grid filled with code k) with its test-set usage count."""
    lm = registry.get(name, ("vqvae",))

    @torch.inference_mode()
    def build():
        k = lm.model.config.num_codes
        grids = torch.arange(k).view(k, 1, 1).expand(k, GRID, GRID)          # (K, 7, 7)
        images = torch.cat([lm.model.decode_indices(g) for g in grids.split(256)]).view(k, 28, 28)
        counts = code_data(registry, name).counts
        return render.atlas(images.numpy(), counts), counts

    return lm.memo("atlas", build)
