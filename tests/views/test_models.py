"""What models there are: pickers' choices and defaults, the listing, examples, data-set
switches; and every shipped checkpoint end to end through the views."""

import math
from pathlib import Path

import numpy as np
import pytest
from app_fixtures import digit

from latentlab.errors import InputError
from latentlab.preprocess import prepare
from latentlab.registry import ModelRegistry
from latentlab.testset import code_data, latent_data
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


# ----------------------------------------------------------------------------- open pages

ALL_SPECS = [mv.RECONSTRUCT, mv.SAMPLE, mv.INTERPOLATE, mv.CODE_GRID, mv.LATENT_A, mv.LATENT_B]


def _copy_registry(folder, tmp_path) -> tuple[ModelRegistry, Path]:
    import shutil

    root = tmp_path / "ckpt"
    shutil.copytree(folder, root)
    return ModelRegistry(root, assets=None, extra_roots=[tmp_path / "user"]), root


def test_a_new_checkpoint_reaches_every_picker_of_an_open_page(folder, tmp_path):
    import shutil

    reg, root = _copy_registry(folder, tmp_path)
    seen = mv.listing_version(reg)
    datasets = ["mnist"] * len(ALL_SPECS)
    assert mv.watch(reg, seen, datasets, ALL_SPECS).changed is False  # nothing new: nothing sent
    (tmp_path / "user").mkdir()
    shutil.copytree(root / "mnist-vae-z2", tmp_path / "user" / "trained-vae")  # the Train tab's
    shutil.copytree(root / "mnist-vqvae", tmp_path / "user" / "trained-vq")
    w = mv.watch(reg, seen, datasets, ALL_SPECS)
    assert w.changed and w.version != seen and len(w.pickers) == len(ALL_SPECS)
    for spec, p in zip(ALL_SPECS, w.pickers):
        names = [name for _, name in p.choices]
        assert "trained-vq" in names, spec
        assert ("trained-vae" in names) == ("vae" in spec.kinds), spec
    assert "trained-vae" in list(w.table["name"])
    assert mv.watch(reg, w.version, datasets, ALL_SPECS).changed is False  # seen now


def test_a_removed_or_broken_checkpoint_changes_the_listing_too(folder, tmp_path):
    import shutil

    reg, root = _copy_registry(folder, tmp_path)
    seen = mv.listing_version(reg)
    shutil.rmtree(root / "mnist-vae-z4")
    w = mv.watch(reg, seen, ["mnist"], [mv.SAMPLE])
    assert w.changed and "mnist-vae-z4" not in [n for _, n in w.pickers[0].choices]
    (root / "mnist-vae-z2" / "model.safetensors").write_bytes(b"garbage")
    w2 = mv.watch(reg, w.version, ["mnist"], [mv.SAMPLE])
    assert w2.changed and "mnist-vae-z2" in w2.status


def test_the_page_timer_sends_pickers_only_on_a_change(folder, tmp_path):
    import shutil

    import gradio as gr

    from latentlab.ui import models as ui

    reg, root = _copy_registry(folder, tmp_path)
    with gr.Blocks(analytics_enabled=False) as demo:
        panel = ui.build_models_panel(reg)
        radio = gr.Radio(["mnist"], value="mnist")
        dds = [gr.Dropdown() for _ in ALL_SPECS]
        refresh = ui.PickerRefresh(lambda *a: [], [radio] * len(dds), dds, ALL_SPECS)
        ui.wire_model_watch(reg, panel, refresh)
    (fn,) = [f.fn for f in demo.fns.values() if f.api_name == "watch_models"]
    seen = mv.listing_version(reg)
    out = fn(seen, *["mnist"] * len(dds))
    assert out[0] == seen and all(isinstance(x, type(gr.skip())) for x in out[1:])
    shutil.copytree(root / "mnist-vae-z2", root / "fresh")
    out = fn(seen, *["mnist"] * len(dds))
    assert out[0] != seen and len(out) == 3 + len(dds)
    for spec, dd in zip(ALL_SPECS, out[3:]):
        assert ("fresh" in [c[1] for c in dd.choices]) == ("vae" in spec.kinds), spec
