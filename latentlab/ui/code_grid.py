"""Code grid tab: components and their wiring to ``latentlab.views.code_grid``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from latentlab import explain
from latentlab.errors import UserError
from latentlab.inputs import TEMPERATURE
from latentlab.registry import ModelRegistry
from latentlab.ui.code_levels import build_code_levels
from latentlab.ui.common import (
    LOG,
    InputApi,
    InputPanel,
    TabHandles,
    code_table,
    explanation,
    friendly,
    ignore_repeats,
    input_panel,
    keep,
    model_picker,
    seed_box,
    unpack,
    wire_input,
)
from latentlab.views import code_grid as view
from latentlab.views import models as mv


@dataclass
class CodeGridHandles(TabHandles):
    """Plus the model picker and the grid (the Reconstruct tab opens grids here)."""

    model: gr.Dropdown | None = None
    grid: gr.Dataframe | None = None


class Adapters:
    """The view functions bound to one registry, named as the API shows their inputs."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def on_decode(self, grid: Any, model: str | None, cells: str) -> tuple:
        return unpack(view.serve(self.registry, grid, model, cells))

    def on_encode(self, image: Any, model: str | None) -> list[list[int]]:
        return view.encode(self.registry, image, model)

    def on_paint(self, grid: Any, model: str | None, cells: str, code: float) -> list[list[int]]:
        return view.paint(self.registry, grid, model, cells, code)

    def on_regenerate(self, grid: Any, model: str | None, cells: str, temperature: float,
                      seed: float) -> list[list[int]]:
        return view.regenerate(self.registry, grid, model, cells, temperature, seed)

    def on_uniform(self, model: str | None, temperature: float, seed: float) -> list[list[int]]:
        return view.sample(self.registry, model, "uniform", temperature, seed)

    def on_learned(self, models: list, temperatures: list, seeds: list) -> tuple[list]:
        """Batched (``batch=True``): Gradio passes the requests waiting in its queue as
        lists. A lone bad request gets its message; in a batch it leaves its grid as it
        was (one log line) so the others are still answered."""
        answers = view.sample_many(self.registry, models, temperatures, seeds)
        if len(answers) == 1 and isinstance(answers[0], UserError):
            raise answers[0]
        for bad in (a for a in answers if isinstance(a, UserError)):
            LOG.info("on_learned (batched): %s: %s", type(bad).__name__, bad)
        return ([gr.skip() if isinstance(a, UserError) else a for a in answers],)

    def on_model(self, model: str | None, grid: Any, image: Any) -> tuple:
        out = view.open_model(self.registry, model, grid, image)
        return out.atlas, keep(out.grid)

    def on_map_click(self, cells: str, evt: gr.SelectData) -> Any:
        return keep(view.click_map(cells, *evt.index))

    def on_atlas_click(self, model: str | None, evt: gr.SelectData) -> Any:
        return keep(view.click_atlas(self.registry, model, *evt.index))


@dataclass
class Widgets:
    """The tab's components, for the wiring."""

    dataset: gr.Radio
    model: gr.Dropdown
    panel: InputPanel
    grid: gr.Dataframe
    decoded: gr.Image
    cmap: gr.Image
    info: gr.Markdown
    cells: gr.Textbox
    clear: gr.Button
    code: gr.Number
    paint: gr.Button
    temperature: gr.Slider
    seed: gr.Number
    regenerate: gr.Button
    new_uniform: gr.Button
    new_learned: gr.Button
    atlas: gr.Image


def _editor() -> dict[str, Any]:
    """The grid, its decoded image and coloured map, and the editing controls."""
    w: dict[str, Any] = {}
    with gr.Row():
        w["grid"] = code_table()
        w["decoded"] = gr.Image(elem_id="ll-code-decoded", label="Decoded", type="numpy", format="png", interactive=False,
                                height=250, elem_classes="pixelated", scale=2)
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown("**Coloured map**: one colour per code; click cells to select "
                        "them (rows and columns count from 0).")
            w["cmap"] = gr.Image(label="Coloured code map", type="numpy", format="png",
                                 interactive=False, height=300, show_label=False)
        with gr.Column(scale=2):
            w["info"] = gr.Markdown()
            w["cells"] = gr.Textbox(label="Selected cells (row,col; ranges like 0-2,*)",
                                    placeholder="e.g. 3,4; 5-6,*", max_lines=1)
            w["clear"] = gr.Button("Clear selection", size="sm")
    with gr.Row():
        w["code"] = gr.Number(value=0, precision=None, minimum=0, label="Code to paint",
                              info="or click a code in the atlas")
        w["paint"] = gr.Button("Paint selected cells")
        w["temperature"] = gr.Slider(*TEMPERATURE, value=1.0, step=0.05, label="Temperature")
        w["seed"] = seed_box()
    with gr.Row():
        w["regenerate"] = gr.Button("Regenerate selected cells (learned prior)", variant="primary")
        w["new_uniform"] = gr.Button("New grid: uniform prior")
        w["new_learned"] = gr.Button("New grid: learned prior")
    return w


def _layout(registry: ModelRegistry, datasets: list[str], ds0: str) -> Widgets:
    explanation(explain.CODE_GRID)
    gr.Markdown("Below the atlas: **Two levels**, a hierarchical VQ-VAE's global (2×2 top) and "
                "local (7×7 bottom) codes.")
    with gr.Row():
        with gr.Column(scale=2, min_width=280):
            dataset = gr.Radio(datasets, value=ds0, label="Data set")
            model = model_picker(mv.picker(registry, ds0, mv.CODE_GRID), "VQ-VAE")
            panel = input_panel("Encode an image into a code grid", ds0, height=180, example=16)
        with gr.Column(scale=4, min_width=420):
            editor = _editor()
    gr.Markdown("**Codebook atlas**: each code decoded alone (a grid filled with it), "
                "labelled *index:count* over the test set; red = dead code. Click a code to "
                "paint with it.")
    atlas = gr.Image(label="Codebook atlas", type="numpy", format="png", interactive=False,
                     show_label=False)
    return Widgets(dataset=dataset, model=model, panel=panel, atlas=atlas, **editor)


def _wire_editor(fn: dict[str, Any], w: Widgets) -> None:
    redraw = ([w.grid, w.model, w.cells], [w.decoded, w.cmap, w.info])
    w.grid.change(fn["decode"], *redraw, api_name="code_decode", trigger_mode="always_last",
                  show_progress="hidden")
    w.cells.submit(fn["decode"], *redraw, api_name="code_select", api_visibility="private")
    w.clear.click(lambda: "", None, [w.cells], api_name="code_clear", api_visibility="private") \
        .then(fn["decode"], *redraw, api_name="code_clear_redraw", api_visibility="private")
    w.cmap.select(fn["map_click"], [w.cells], [w.cells], api_name="code_cell_click",
                  api_visibility="private").success(
        fn["decode"], *redraw, api_name="code_click_redraw", api_visibility="private",
        show_progress="hidden")
    w.paint.click(fn["paint"], [w.grid, w.model, w.cells, w.code], [w.grid], api_name="code_paint")
    w.regenerate.click(fn["regenerate"], [w.grid, w.model, w.cells, w.temperature, w.seed],
                       [w.grid], api_name="code_regenerate")
    w.new_uniform.click(fn["uniform"], [w.model, w.temperature, w.seed], [w.grid],
                        api_name="code_sample_uniform")
    w.new_learned.click(fn["learned"], [w.model, w.temperature, w.seed], [w.grid],
                        api_name="code_sample_learned", batch=True, max_batch_size=16)


def build_code_grid(registry: ModelRegistry, datasets: list[str], ds0: str,
                    tab: gr.Tab) -> CodeGridHandles:
    w = _layout(registry, datasets, ds0)
    a = Adapters(registry)
    fn = {name[3:]: friendly(getattr(a, name)) for name in dir(a) if name.startswith("on_")}
    fn["decode"] = ignore_repeats(fn["decode"], outputs=3)  # the table's doubled change
    _wire_editor(fn, w)
    w.model.change(fn["model"], [w.model, w.grid, w.panel.seen], [w.atlas, w.grid],
                   api_name="code_atlas")
    tab.select(fn["model"], [w.model, w.grid, w.panel.seen], [w.atlas, w.grid], api_name="code_tab",
               api_visibility="private")
    w.atlas.select(fn["atlas_click"], [w.model], [w.code], api_name="code_pick",
                   api_visibility="private")
    levels = build_code_levels(registry, ds0, w.panel.seen, tab)
    events = wire_input(w.panel, w.dataset, InputApi("code", "code_upload"))
    for source, event in events.items():
        public = source == "upload"
        event.success(fn["encode"], [w.panel.seen, w.model], [w.grid],
                      api_name="code_encode" if public else f"code_encode_{source}",
                      api_visibility="public" if public else "private")
    return CodeGridHandles("code", w.dataset, [(w.model, mv.CODE_GRID),
                                               (levels.model, mv.CODE_LEVELS)],
                           [w.panel], None, w.model, w.grid)
