"""What models there are: pickers' choices and defaults, the listing, examples, data-set
switches; and every shipped checkpoint end to end through the views."""

import math
from pathlib import Path

import numpy as np
import pytest
from app_fixtures import digit

from latentlab.errors import InputError
from latentlab.preprocess import prepare
from latentlab.registry import ModelRegistry, code_data, latent_data
from latentlab.views import code_grid as cg
from latentlab.views import examples as ex
from latentlab.views import latent_map as lm
from latentlab.views import latent_stats as ls
from latentlab.views import models as mv
from latentlab.views import reconstruct as rv
from latentlab.views import sample as sv

REPO = Path(__file__).resolve().parents[2]


def test_describe(reg):
    rows = {d["name"]: d for d in mv.describe(reg)}
    assert rows["mnist-vae-z2"]["latent_dim"] == 2 and rows["mnist-vqvae"]["num_codes"] == 16
    assert rows["mnist-vae-z2"]["test_elbo"] == -500.0


@pytest.mark.parametrize("spec, value", [
    (mv.RECONSTRUCT, ["mnist-vae-z2", "mnist-flow-z2", "mnist-vqvae"]),
    (mv.SAMPLE, ["mnist-vae-z2", "mnist-flow-z2"]),
    (mv.INTERPOLATE, ["mnist-vae-z2", "mnist-flow-z2"]),
    (mv.CODE_GRID, "mnist-vqvae"),
    (mv.LATENT_A, "mnist-vae-z2"),
    (mv.LATENT_B, "mnist-flow-z2"),
])
def test_pickers_choices_and_defaults(reg, spec, value):
    p = mv.picker(reg, "mnist", spec)
    names = [n for _, n in p.choices]
    assert p.value == value
    assert ("mnist-classifier" not in names) and ("mnist-broken" not in names)
    assert (names[0] == mv.NONE) == spec.allow_none
    assert set(names) - {mv.NONE} == {e.name for e in reg.entries("mnist", spec.kinds)}


def test_pickers_of_a_data_set_without_models(reg):
    assert mv.picker(reg, "fashion", mv.RECONSTRUCT) == mv.Picker([], [])
    assert mv.picker(reg, "fashion", mv.CODE_GRID).value is None
    assert mv.picker(reg, "fashion", mv.LATENT_B) == mv.Picker([(mv.NONE, mv.NONE)], mv.NONE)


def test_default_models_prefers_the_requested_dim(reg):
    assert mv.default_models(reg, "mnist", dim=4) == ["mnist-vae-z4", "mnist-flow-z4"]
    assert mv.default_models(reg, "mnist", dim=4, with_vq=True)[-1] == "mnist-vqvae"
    assert mv.latent_pair(reg, "mnist") == ("mnist-vae-z2", "mnist-flow-z2")


def test_status_and_listing(reg, tmp_path):
    out = mv.run(reg)
    assert "mnist-broken" in out.status and len(out.table) >= 6
    assert list(out.table.columns) == mv.MODEL_COLUMNS
    empty = ModelRegistry(tmp_path, assets=None)
    assert "No trained models" in mv.status(empty) and len(mv.list_models(empty).table) == 0


def test_examples_and_previews():
    x = ex.load_example("mnist", 6)
    assert x.shape == (224, 224) and x.dtype == np.uint8
    small = prepare(str(ex.example_files("mnist")[6]))
    assert small.shape == (28, 28) and np.array_equal(prepare(x), small)  # our upscale is exact
    assert np.array_equal(ex.preview(str(ex.example_files("mnist")[6])), x)
    with pytest.raises(InputError, match="between"):
        ex.load_example("mnist", 99)
    with pytest.raises(InputError, match="no examples shipped"):
        ex.load_example("nope", 0)
    canvas = np.zeros((300, 300, 4), np.uint8)
    canvas[60:240, 140:165] = (0, 0, 0, 255)                         # one black stroke
    drawing = {"background": None, "layers": [], "composite": canvas}
    assert ex.preview_drawing(drawing).shape == (224, 224)
    assert ex.preview_drawing({**drawing, "composite": canvas * 0}) is None   # cleared canvas
    assert ex.first_example("mnist", 10_000) is None


def test_switch_dataset(reg):
    out = ex.switch_dataset(reg, "fashion", [mv.RECONSTRUCT, mv.LATENT_B], [6, 14])
    assert out.pickers == [mv.Picker([], []), mv.Picker([(mv.NONE, mv.NONE)], mv.NONE)]
    assert len(out.galleries) == 2 and len(out.galleries[0]) == len(ex.example_files("fashion"))
    assert np.array_equal(out.seen[0], ex.load_example("fashion", 6))
    assert np.array_equal(out.seen[1], ex.load_example("fashion", 14))


# ----------------------------------------------------------------------------- shipped models

SHIPPED = ModelRegistry(REPO / "checkpoints")
SHIPPED_GEN = [e.name for e in SHIPPED.entries(kinds=("vae", "vqvae"))]


@pytest.mark.parametrize("name", SHIPPED_GEN)
def test_shipped_checkpoint(name):
    """Every shipped generative checkpoint works end to end through the views."""
    e = SHIPPED.entry(name)
    x = digit(3) if e.dataset == "mnist" else _fashion_example()
    res = rv.reconstruct(SHIPPED, [name], x, k=100)
    m = res.models[0]
    if e.kind == "vae":
        assert m.numbers["iwae"] >= m.numbers["elbo"]
        assert -m.numbers["elbo"] < 784 * math.log(2)      # better than coin flips per pixel
        assert sv.sample_grid(SHIPPED, name, 16, "q_agg").images.shape == (16, 28, 28)
        img, geo = lm.plane_image(SHIPPED, name)
        assert img.size[0] == geo.view.canvas
        ld = latent_data(SHIPPED, name)
        assert ld.source.startswith("assets/"), "ship assets: python scripts/make_assets.py"
        assert np.isfinite(ld.mu).all() and len(ld.mu) == len(ld.labels)
        assert ls.vae_stats(SHIPPED, name).kl_per_dim is not None
    else:
        assert m.numbers["bits_learned"] < m.numbers["bits_uniform"]   # the prior learned something
        grid = cg.sample_code_grid(SHIPPED, name, "learned", 1.0, 0)
        assert cg.decode_code_grid(SHIPPED, name, grid).image.shape == (28, 28)
        assert code_data(SHIPPED, name).source.startswith("assets/")


def _fashion_example() -> np.ndarray:
    from latentlab.data import load_split

    return load_split("fashion", train=False)[0][0, 0].numpy()
