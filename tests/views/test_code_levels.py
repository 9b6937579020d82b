"""Code grid tab, two-level section: parse, decode, encode, sample, redraw the bottom."""

import numpy as np
import pytest
import torch

from latentlab.errors import InputError
from latentlab.views import code_levels as lv
from models.vqvae2 import Codes

NAME = "mnist-vqvae2"


def _pair(reg, seed=0) -> lv.LevelGrids:
    return lv.sample(reg, NAME, 1.0, seed)


def test_sample_gives_grids_that_fit_the_codebooks(reg):
    pair = _pair(reg)
    cfg = reg.get(NAME).model.config
    top, bottom = np.array(pair.top), np.array(pair.bottom)
    assert top.shape == (2, 2) and bottom.shape == (7, 7)
    assert top.max() < cfg.top_codes and bottom.max() < cfg.num_codes and min(top.min(), bottom.min()) >= 0
    assert _pair(reg).top == pair.top and _pair(reg).bottom == pair.bottom   # seeded


def test_run_decodes_the_pair_and_scores_each_level(reg):
    pair = _pair(reg)
    out = lv.run(reg, pair.top, pair.bottom, NAME)
    model = reg.get(NAME).model
    codes = Codes(torch.tensor([pair.top]), torch.tensor([pair.bottom]))
    expected = model.decode_indices(codes).view(28, 28).numpy()
    assert out.image.shape == (224, 224) and np.allclose(out.image[::8, ::8], expected, atol=1e-6)
    assert out.top_map.ndim == 3 and out.bottom_map.ndim == 3
    coarse = model.decode_top(codes.top).view(28, 28).numpy()
    assert np.allclose(out.top_image[::8, ::8], coarse, atol=1e-6)
    lp = model.prior("learned").log_prob_per_level(codes)
    assert f"{-lp.top.item() / np.log(2):.1f} bits" in out.info
    assert f"{-lp.bottom.item() / np.log(2):.1f}" in out.info and "49·log₂ 16" in out.info


def test_redraw_bottom_keeps_the_top_and_follows_the_conditional_prior(reg):
    pair = _pair(reg)
    model = reg.get(NAME).model
    bottom = lv.redraw_bottom(reg, NAME, pair.top, 1.0, seed=3)
    want = model.sample_bottom(torch.tensor([pair.top]), 1.0, torch.Generator().manual_seed(3))
    assert bottom == want.bottom[0].tolist()
    assert lv.redraw_bottom(reg, NAME, pair.top, 1.0, seed=4) != bottom      # another draw


def test_same_top_shows_eight_images_sharing_the_top(reg):
    strip = lv.same_top(reg, NAME, _pair(reg).top, 1.0, 0)
    assert strip.ndim == 3 and strip.shape[1] > 7 * strip.shape[0]          # one row of eight


def test_encode_gives_the_encoders_grids(reg, x3):
    pair = lv.encode(reg, x3, NAME)
    codes = reg.get(NAME).model.encode_to_indices(torch.from_numpy(x3).float()[None, None])
    assert pair.top == codes.top[0].tolist() and pair.bottom == codes.bottom[0].tolist()


@pytest.mark.parametrize("top, bottom, message", [
    ([[0, 0], [0, 99]], None, r"top grid: .*outside \[0, 8\)"),
    ([[0, 0, 0], [0, 0, 0]], None, "top grid: .*2 rows x 2 columns"),
    (None, [[0] * 7] * 6, "bottom grid: .*7 rows"),
    (None, [[0] * 6 + [float("nan")]] + [[0] * 7] * 6, "bottom grid: .*not a whole number"),
])
def test_bad_grids_name_their_level_and_cell(reg, top, bottom, message):
    pair = _pair(reg)
    with pytest.raises(InputError, match=message):
        lv.run(reg, top if top is not None else pair.top,
               bottom if bottom is not None else pair.bottom, NAME)


def test_other_kinds_and_missing_models_are_refused(reg):
    pair = _pair(reg)
    with pytest.raises(InputError, match="needs one of: vqvae2"):
        lv.run(reg, pair.top, pair.bottom, "mnist-vqvae")
    with pytest.raises(InputError):
        lv.sample(reg, None)
    with pytest.raises(InputError, match="temperature"):
        lv.redraw_bottom(reg, NAME, pair.top, float("inf"))


def test_open_model_keeps_fitting_grids_and_replaces_the_placeholder(reg):
    pair = _pair(reg, seed=5)
    assert lv.open_model(reg, NAME, pair.top, pair.bottom) is None         # kept
    fresh = lv.open_model(reg, NAME, [[0, 0], [0, 0]], [[0] * 7] * 7)
    assert fresh == _pair(reg, seed=0)
    assert lv.open_model(reg, NAME, [[99, 0], [0, 0]], pair.bottom) == _pair(reg, seed=0)
    assert lv.open_model(reg, None, pair.top, pair.bottom) is None
