"""Presenter mode and links: the header's widgets, the page-load adapter that fills the widgets
from a link, and the inputs the browser's "copy link" reads (on the tiny checkpoints)."""

from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from latentlab.registry import ModelRegistry
from latentlab.ui import links as ui_links
from latentlab.ui.presenter import PRESENTER_CSS, PRESENTER_JS, TOGGLE_JS
from latentlab.views import examples
from latentlab.views import links as view
from latentlab.views.links import View


@pytest.fixture(scope="module")
def built(folder):
    import app

    demo = app.build_demo(ModelRegistry(folder, assets=None))
    load = next(fn for fn in demo.fns.values() if fn.api_name == "page_load_link")
    return demo, load


def _open(built, **params):
    _, load = built
    opener = load.fn.__self__
    return opener, load.fn(SimpleNamespace(query_params=params))


def test_presenter_css_and_js_ship_with_the_app():
    import app

    kwargs = app.launch_kwargs()
    assert kwargs["css"].endswith(PRESENTER_CSS) and kwargs["js"] == PRESENTER_JS
    for size in ("--body-text-size: 20px", "--block-label-text-size: 18px"):
        assert size in PRESENTER_CSS
    assert "llPresenter(on)" in TOGGLE_JS and "classList.toggle('ll-presenter'" in PRESENTER_JS


def test_header_has_presenter_toggle_and_copy_link(built):
    demo, _ = built
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert isinstance(by_id["ll-presenter-toggle"], gr.Checkbox)
    assert by_id["ll-copy-link"].value.endswith("Copy link to this view")
    copy = next(fn for fn in demo.fns.values() if fn.api_name == "copy_link")
    assert copy.fn is None and copy.js and [o.elem_id for o in copy.outputs] == ["ll-link"]
    toggle = next(fn for fn in demo.fns.values() if fn.api_name == "presenter_mode")
    assert toggle.fn is None and toggle.js == TOGGLE_JS            # no server round trip


def test_copy_inputs_cover_every_field_a_link_carries(built):
    demo, _ = built
    copy = next(fn for fn in demo.fns.values() if fn.api_name == "copy_link")
    keys = [k for k in view.TAB_FIELDS if k not in ("train", "lecture")]
    js = copy.js
    for tab in keys:
        for name in view.TAB_FIELDS[tab]:
            assert f'"{tab}.{name}"' in js, (tab, name)
    assert '"lecture.panel"' in js
    for panel in view.LECTURE_PANELS:                            # each panel's own seed box
        assert f'"lecture.{panel}.seed"' in js or panel == "traversal", panel
    assert js.count('"latent.models"') == 2                     # both sides of the Latent tab
    assert len(copy.inputs) == len(js.split("const keys = ")[1].split("]")[0].split(","))


def test_sample_link_fills_the_sample_widgets(built, folder):
    opener, out = _open(built, tab="sample", dataset="mnist", seed="7", n="16",
                           temperature="0.5", source="q_agg", models="mnist-vae-z2,nope",
                           presenter="1")
    sample = opener.targets["sample"]
    w = sample.widgets
    assert (out[w["seed"]], out[w["n"]], out[w["temperature"]], out[w["source"]]) == (
        7, 16, 0.5, "q_agg")
    assert out[sample.handles.pickers[0][0]].value == ["mnist-vae-z2"]
    assert out[opener.header.presenter] is True and out[opener.header.tab] == "sample"
    assert "nope" in out[opener.header.note]
    assert out[opener.state] == View(tab="sample", presenter=True, dataset="mnist",
                                     models=("mnist-vae-z2",), source="q_agg", n=16,
                                     temperature=0.5, seed=7)
    rec = opener.targets["reconstruct"].widgets                  # other tabs are left alone
    assert rec["seed"] not in out and rec["k"] not in out


def test_reconstruct_link_sets_example_k_and_seed(built):
    opener, out = _open(built, tab="reconstruct", example="2", k="250", seed="3")
    rec = opener.targets["reconstruct"]
    assert (out[rec.widgets["k"]], out[rec.widgets["seed"]]) == (250, 3)
    assert np.array_equal(out[rec.handles.panels[0].seen], examples.load_example("mnist", 2))
    assert out[opener.header.example] == 2


def test_bad_values_give_a_note_not_an_error(built):
    opener, out = _open(built, tab="reconstruct", example="19999", k="-3", seed="x",
                           dataset="cifar")
    rec = opener.targets["reconstruct"]
    assert rec.widgets["k"] not in out and rec.widgets["seed"] not in out
    note = out[opener.header.note]
    for word in ("k:", "seed:", "example:", "dataset:"):
        assert word in note
    assert out[opener.header.example] == rec.handles.panels[0].example   # the default example


def test_latent_link_sets_both_sides_and_code_grid_one_model(built):
    opener, out = _open(built, tab="latent", models="mnist-flow-z2,mnist-vae-z2")
    a, b = (dd for dd, _ in opener.targets["latent"].handles.pickers)
    assert (out[a].value, out[b].value) == ("mnist-flow-z2", "mnist-vae-z2")
    opener, out = _open(built, tab="codegrid", models="mnist-vae-z2,mnist-vqvae")
    model = opener.targets["codegrid"].handles.pickers[0][0]
    assert out[model].value == "mnist-vqvae" and "mnist-vae-z2" in out[opener.header.note]


def test_code_grid_link_sets_each_picker_to_the_model_of_its_kind(built):
    opener, out = _open(built, tab="codegrid", models="mnist-vqvae2,mnist-vqvae")
    one, two = (dd for dd, _ in opener.targets["codegrid"].handles.pickers)
    assert (out[one].value, out[two].value) == ("mnist-vqvae", "mnist-vqvae2")
    assert opener.header.note not in out                       # both models were used


def test_every_lecture_panel_can_be_opened_by_a_link(built):
    opener, out = _open(built, tab="lecture", panel="gumbel")
    assert set(opener.panels) == set(view.LECTURE_PANELS)
    assert out[opener.panels["gumbel"]].open is True and out[opener.header.panel] == "gumbel"


def test_lecture_link_sets_the_panels_seed_and_models(built):
    opener, out = _open(built, tab="lecture", panel="surgery", seed="11",
                        models="mnist-vae-z2,mnist-flow-z2")
    widgets = opener.lecture["surgery"]
    assert out[widgets["seed"]] == 11 and opener.header.note not in out
    assert [out[dd] for dd in widgets["models"]] == ["mnist-vae-z2", "mnist-flow-z2"]
    assert opener.lecture["gumbel"]["seed"] not in out            # other panels left alone
    opener, out = _open(built, tab="lecture", panel="reparam", models="mnist-vae-z4")
    assert "mnist-vae-z4" in out[opener.header.note]              # not a 2-D VAE: no choice


def test_no_query_changes_nothing_but_the_defaults(built):
    opener, out = _open(built)
    assert set(out) == {opener.state, opener.header.example}
    assert ui_links.select_tab(out[opener.state]) == gr.skip()
