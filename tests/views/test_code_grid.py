"""Code grid tab: parsing grids and cell selections, edit, paint, regenerate, atlas, clicks."""

import math

import numpy as np
import pytest

from latentlab import render
from latentlab.errors import InputError
from latentlab.inputs import TEMPERATURE
from latentlab.preprocess import upscale
from latentlab.testset import LIVE_SUBSET
from latentlab.views import code_grid as cg
from latentlab.views import reconstruct as rv


def test_parse_code_grid_accepts_tables_and_explains_errors():
    ok = [[str(c) for c in range(7)] for _ in range(7)]
    assert cg.parse_code_grid(ok, 16).shape == (7, 7)
    assert cg.parse_code_grid({"headers": [], "data": np.ones((7, 7)).tolist()}, 16).sum() == 49
    assert cg.parse_code_grid("\n".join(["1 2 3 4 5 6 7"] * 7), 16)[0, 6] == 7
    cases = [(None, "no code grid"), ([[1] * 7] * 6, "7 rows"), ([[1] * 6] * 7, "7 columns"),
             ([[1] * 7] * 6 + [[1, 2, "x", 4, 5, 6, 7]], "row 6, col 2.*not a whole"),
             ([[1.5] * 7] * 7, "not a whole"), ([[16] * 7] * 7, r"outside \[0, 16\)"),
             ([[-1] * 7] * 7, "outside"), ("nonsense", "7 rows"), (5, "table"),
             ([[None] * 7] * 7, "not a whole"), ([[True] * 7] * 7, "not a code index")]
    for value, msg in cases:
        with pytest.raises(InputError, match=msg):
            cg.parse_code_grid(value, 16)


def test_parse_cells_and_toggle():
    assert cg.parse_cells("").sum() == 0 and cg.parse_cells("all").all()
    mask = cg.parse_cells("0-1,*; 3,4")
    assert mask.sum() == 15 and mask[3, 4] and not mask[3, 3]
    assert cg.toggle_cell("3,4", 3, 4) == "" and cg.toggle_cell("", 2, 5) == "2,5"
    for bad in ("3", "9,1", "a,b", "1,2,3"):
        with pytest.raises(InputError):
            cg.parse_cells(bad)


def test_code_grid_edit_paint_regenerate_sample(reg, x3):
    grid = cg.code_grid_from_image(reg, "mnist-vqvae", x3)
    res = cg.decode_code_grid(reg, "mnist-vqvae", grid.tolist())
    assert res.image.shape == (28, 28) and np.array_equal(res.grid, grid)
    assert math.isclose(res.bits_uniform, 49 * 4) and res.bits_learned > 0
    recon = rv.reconstruct(reg, ["mnist-vqvae"], x3).models[0].image
    assert np.allclose(res.image, recon, atol=1e-6)
    painted = cg.paint_cells(reg, "mnist-vqvae", grid, "0,*", 9)
    assert (painted[0] == 9).all() and np.array_equal(painted[1:], grid[1:])
    regen = cg.regenerate_cells(reg, "mnist-vqvae", painted, "2-3,2-3", temperature=1.0, seed=0)
    keep = ~cg.parse_cells("2-3,2-3")
    assert np.array_equal(regen[keep], painted[keep]) and regen.max() < 16
    for prior in ("learned", "uniform"):
        new = cg.sample_code_grid(reg, "mnist-vqvae", prior, 1.0, 7)
        assert new.shape == (7, 7) and 0 <= new.min() and new.max() < 16
        assert np.array_equal(new, cg.sample_code_grid(reg, "mnist-vqvae", prior, 1.0, 7))
    with pytest.raises(InputError, match="no cells selected"):
        cg.paint_cells(reg, "mnist-vqvae", grid, "", 1)
    with pytest.raises(InputError, match="no cells selected"):
        cg.regenerate_cells(reg, "mnist-vqvae", grid, "")
    with pytest.raises(InputError, match="code must lie"):
        cg.paint_cells(reg, "mnist-vqvae", grid, "1,1", 99)
    with pytest.raises(InputError, match="needs one of: vqvae"):
        cg.decode_code_grid(reg, "mnist-vae-z2", grid)
    with pytest.raises(InputError, match="pick a model"):
        cg.decode_code_grid(reg, None, grid)


def test_codebook_atlas(reg):
    img, counts = cg.codebook_atlas(reg, "mnist-vqvae")
    assert img.ndim == 3 and counts.shape == (16,) and counts.sum() == 49 * LIVE_SUBSET
    assert render.atlas_cell(3, 3, 16) == 0 and render.atlas_cell(img.shape[1] - 5, 3, 16) == 15


def test_tab_verbs(reg, x3):
    grid = cg.encode(reg, upscale(x3), "mnist-vqvae")
    assert np.array_equal(grid, cg.code_grid_from_image(reg, "mnist-vqvae", x3))
    out = cg.run(reg, {"headers": [], "data": grid}, "mnist-vqvae", "1,1")
    assert out.image.shape == (224, 224) and "bits" in out.info
    assert out.code_map.shape[0] == out.code_map.shape[1] > 7 * 30
    assert cg.paint(reg, grid, "mnist-vqvae", "0,*", 3)[0] == [3] * 7
    assert len(cg.regenerate(reg, grid, "mnist-vqvae", "2-3,2-3", 1.0, 0)) == 7
    assert cg.sample(reg, "mnist-vqvae", "uniform", 1.0, 1) != cg.sample(reg, "mnist-vqvae",
                                                                         "learned", 1.0, 1)


def test_choosing_a_model_keeps_a_fitting_grid_else_makes_one(reg, x3):
    grid = cg.encode(reg, upscale(x3), "mnist-vqvae")
    kept = cg.open_model(reg, "mnist-vqvae", grid, None)
    assert kept.atlas is not None and kept.grid is None
    placeholder = [[0] * 7 for _ in range(7)]
    assert cg.open_model(reg, "mnist-vqvae", placeholder, upscale(x3)).grid == grid
    assert cg.open_model(reg, "mnist-vqvae", [[99] * 7] * 7, None).grid == cg.sample(
        reg, "mnist-vqvae", "learned")
    assert cg.open_model(reg, None, grid, None) == cg.AtlasOutputs(None, None)


def test_clicks_and_opening_a_reconstruction(reg):
    x, y = 18 + 2.5 * cg.CELL, 18 + 4.5 * cg.CELL                    # row 4, column 2
    assert cg.click_map("", x, y) == "4,2" and cg.click_map("4,2", x, y) == ""
    assert cg.click_map("", 1, 1) is None
    assert cg.click_atlas(reg, "mnist-vqvae", 3, 3) == 0 and cg.click_atlas(reg, None, 3, 3) is None
    opened = cg.open_reconstruction(reg, {"model": "mnist-vqvae", "grid": [[1] * 7] * 7})
    assert opened.dataset == "mnist" and opened.model == "mnist-vqvae"
    assert [n for _, n in opened.choices] == ["mnist-vqvae"]
    with pytest.raises(InputError, match="reconstruct with a VQ-VAE first"):
        cg.open_reconstruction(reg, None)


def test_huge_codes_get_a_short_range_message(reg):
    """A cell of 1e30 once overflowed numpy; painting 1e300 echoed a 300-digit number."""
    grid = [[0] * 7 for _ in range(7)]
    grid[2][3] = 1e30
    with pytest.raises(InputError, match=r"cell \(row 2, col 3\) holds code 1e\+30, outside \[0, 16\)"):
        cg.decode_code_grid(reg, "mnist-vqvae", grid)
    with pytest.raises(InputError) as info:
        cg.paint_cells(reg, "mnist-vqvae", [[0] * 7] * 7, "1,1", 10**300)
    assert "between 0 and 15, got 1e+300" in str(info.value) and len(str(info.value)) < 80


def test_temperature_uses_the_sliders_range(reg):
    lo, hi = TEMPERATURE
    for bad in (float("nan"), lo / 2, hi * 1.5):
        with pytest.raises(InputError, match=f"temperature must lie between {lo:g} and {hi:g}"):
            cg.sample_code_grid(reg, "mnist-vqvae", "learned", bad, 0)


def test_batched_learned_samples_equal_single_calls_and_keep_errors_apart(reg):
    from latentlab import cache

    cache.results().clear()
    models = ["mnist-vqvae"] * 4 + ["nope", "mnist-vqvae"]
    temps, seeds = [1.0, 0.5, 1.0, 1.0, 1.0, 99.0], [3, 3, 8, 3, 0, 0]
    answers = cg.sample_many(reg, models, temps, seeds)
    alone = [cg.sample_code_grid(reg, m, "learned", t, s).tolist()
             for m, t, s in zip(models[:4], temps, seeds)]
    assert answers[:4] == alone and answers[0] != answers[2]
    assert answers[0] is not answers[3]                      # each caller gets its own copy
    assert isinstance(answers[4], InputError) and "nope" in str(answers[4])
    assert isinstance(answers[5], InputError) and "temperature" in str(answers[5])
    hits = cache.results().hits
    assert cg.sample(reg, "mnist-vqvae", "learned", 1.0, 8) == alone[2]     # shared cache key
    assert cache.results().hits == hits + 1


def test_served_decode_is_the_run_as_files_and_repeats_hit_the_cache(reg):
    from PIL import Image

    grid = cg.sample(reg, "mnist-vqvae", "learned", 1.0, 4)
    direct = cg.run(reg, grid, "mnist-vqvae", "1,1")
    served = cg.serve(reg, grid, "mnist-vqvae", "1,1")
    assert np.array_equal(np.asarray(Image.open(served.image)), direct.image)          # uint8
    assert np.array_equal(np.asarray(Image.open(served.code_map)), direct.code_map)
    assert served.info == direct.info
    assert cg.serve(reg, [list(r) for r in grid], "mnist-vqvae", "1,1") is served
    assert cg.serve(reg, grid, "mnist-vqvae", "2,2") is not served
