"""Code grid tab, two-level section: components and their wiring to
``latentlab.views.code_levels`` (a hierarchical VQ-VAE's top and bottom grids)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from latentlab import explain
from latentlab.inputs import TEMPERATURE
from latentlab.registry import ModelRegistry
from latentlab.ui.common import (
    code_table,
    friendly,
    ignore_repeats,
    model_picker,
    seed_box,
    unpack,
)
from latentlab.views import code_levels as view
from latentlab.views import models as mv


class Adapters:
    """The view functions bound to one registry, named as the API shows their inputs."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def on_decode(self, top: Any, bottom: Any, model: str | None) -> tuple:
        return unpack(view.serve(self.registry, top, bottom, model))

    def on_redraw(self, model: str | None, top: Any, temperature: float, seed: float) -> list:
        return view.redraw_bottom(self.registry, model, top, temperature, seed)

    def on_same_top(self, model: str | None, top: Any, temperature: float, seed: float) -> str:
        return view.serve_same_top(self.registry, model, top, temperature, seed)

    def on_sample(self, model: str | None, temperature: float, seed: float) -> tuple:
        return unpack(view.sample(self.registry, model, temperature, seed))

    def on_encode(self, image: Any, model: str | None) -> tuple:
        return unpack(view.encode(self.registry, image, model))

    def on_model(self, model: str | None, top: Any, bottom: Any) -> tuple:
        out = view.open_model(self.registry, model, top, bottom)
        return (gr.skip(), gr.skip()) if out is None else unpack(out)


@dataclass
class LevelWidgets:
    """The section's components, for the wiring."""

    model: gr.Dropdown
    top: gr.Dataframe
    bottom: gr.Dataframe
    decoded: gr.Image
    top_image: gr.Image
    top_map: gr.Image
    bottom_map: gr.Image
    info: gr.Markdown
    temperature: gr.Slider
    seed: gr.Number
    redraw: gr.Button
    sample: gr.Button
    encode: gr.Button
    same_top: gr.Image


def _layout(registry: ModelRegistry, ds0: str) -> LevelWidgets:
    gr.Markdown("### Two levels: global and local codes (hierarchical VQ-VAE)")
    with gr.Accordion("What am I looking at? (formulas)", open=False):
        gr.Markdown(explain.CODE_LEVELS, latex_delimiters=explain.LATEX)
    w: dict[str, Any] = {}
    w["model"] = model_picker(mv.picker(registry, ds0, mv.CODE_LEVELS), "Two-level VQ-VAE")
    with gr.Row():
        with gr.Column(scale=2, min_width=200):
            w["top"] = code_table(view.TOP, "Top grid: 2x2 (edit a code: the bottom is "
                                  "redrawn)", "ll-top-table", scale=None)
            w["top_map"] = gr.Image(label="Top codes", type="numpy", format="png",
                                    interactive=False, height=140, show_label=False)
            w["top_image"] = gr.Image(elem_id="ll-levels-top-alone", label="The top alone",
                                      type="numpy", format="png", interactive=False, height=140,
                                      elem_classes="pixelated")
        with gr.Column(scale=4, min_width=320):
            w["bottom"] = code_table(view.GRID, "Bottom grid: 7x7 (edit any cell)",
                                     "ll-bottom-table", scale=None)
        with gr.Column(scale=3, min_width=240):
            w["decoded"] = gr.Image(elem_id="ll-levels-decoded", label="Decoded", type="numpy",
                                    format="png", interactive=False, height=240,
                                    elem_classes="pixelated")
            w["bottom_map"] = gr.Image(label="Bottom codes", type="numpy", format="png",
                                       interactive=False, height=160, show_label=False)
    w["info"] = gr.Markdown(elem_id="ll-levels-info")
    with gr.Row():
        w["temperature"] = gr.Slider(*TEMPERATURE, value=1.0, step=0.05, label="Temperature")
        w["seed"] = seed_box(elem_id="ll-levels-seed")
        w["redraw"] = gr.Button("Redraw bottom from p(bottom | top)", variant="primary")
        w["sample"] = gr.Button("New pair: learned prior")
        w["encode"] = gr.Button("Encode the input image")
    gr.Markdown("**Same top, other bottoms**: eight images sharing the top grid, each bottom "
                "drawn from p(bottom | top). What they share is global; what varies is local.")
    w["same_top"] = gr.Image(elem_id="ll-levels-same-top", label="Same top, other bottoms",
                             type="filepath", interactive=False, show_label=False, height=110)
    return LevelWidgets(**w)


def build_code_levels(registry: ModelRegistry, ds0: str, image: gr.Image,
                      tab: gr.Tab) -> LevelWidgets:
    """The section, wired; ``image`` is the tab's input image (for "Encode")."""
    w = _layout(registry, ds0)
    a = Adapters(registry)
    fn = {name[3:]: friendly(getattr(a, name)) for name in dir(a) if name.startswith("on_")}
    fn["decode"] = ignore_repeats(fn["decode"], outputs=5)  # the tables' doubled change
    redraw_out = ([w.top, w.bottom, w.model],
                  [w.decoded, w.top_image, w.top_map, w.bottom_map, w.info])
    for i, table in enumerate((w.top, w.bottom)):
        table.change(fn["decode"], *redraw_out, api_name="levels_decode" if i else
                     "levels_decode_top", api_visibility="public" if i else "private",
                     trigger_mode="always_last", show_progress="hidden")
    variants = ([w.model, w.top, w.temperature, w.seed], [w.same_top])
    w.top.change(fn["same_top"], *variants, api_name="levels_same_top",
                 trigger_mode="always_last", show_progress="hidden")
    # a user's edit of the top (not a sampled or encoded top) redraws the bottom
    w.top.input(fn["redraw"], [w.model, w.top, w.temperature, w.seed], [w.bottom],
                api_name="levels_top_edit", api_visibility="private", trigger_mode="always_last")
    w.redraw.click(fn["redraw"], [w.model, w.top, w.temperature, w.seed], [w.bottom],
                   api_name="levels_redraw_bottom").then(
        fn["same_top"], *variants, api_name="levels_redraw_same_top", api_visibility="private")
    w.sample.click(fn["sample"], [w.model, w.temperature, w.seed], [w.top, w.bottom],
                   api_name="levels_sample")
    w.encode.click(fn["encode"], [image, w.model], [w.top, w.bottom], api_name="levels_encode")
    opened = ([w.model, w.top, w.bottom], [w.top, w.bottom])
    w.model.change(fn["model"], *opened, api_name="levels_model", api_visibility="private")
    tab.select(fn["model"], *opened, api_name="levels_tab", api_visibility="private")
    return w
