"""Code grid tab: components and their wiring to ``latentlab.views.code_grid``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import gradio as gr

from latentlab import explain
from latentlab.registry import ModelRegistry
from latentlab.ui.common import (
    InputApi,
    TabHandles,
    explanation,
    friendly,
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


def code_table() -> gr.Dataframe:
    """An editable 7x7 table of integers; rows and columns cannot be added."""
    empty = [[0] * view.GRID for _ in range(view.GRID)]
    with warnings.catch_warnings():  # (n, "fixed") is the only way to pin the size in Gradio 6.x
        warnings.simplefilter("ignore", DeprecationWarning)
        return gr.Dataframe(value=empty, headers=[str(c) for c in range(view.GRID)],
                            datatype="number", type="array", row_count=(view.GRID, "fixed"),
                            column_count=(view.GRID, "fixed"), interactive=True,
                            show_row_numbers=False, label="Code grid (edit any cell)",
                            scale=3)


class Adapters:
    """The view functions bound to one registry, named as the API shows their inputs."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def on_decode(self, grid: Any, model: str | None, cells: str) -> tuple:
        return unpack(view.run(self.registry, grid, model, cells))

    def on_encode(self, image: Any, model: str | None) -> list[list[int]]:
        return view.encode(self.registry, image, model)

    def on_paint(self, grid: Any, model: str | None, cells: str, code: float) -> list[list[int]]:
        return view.paint(self.registry, grid, model, cells, code)

    def on_regenerate(self, grid: Any, model: str | None, cells: str, temperature: float,
                      seed: float) -> list[list[int]]:
        return view.regenerate(self.registry, grid, model, cells, temperature, seed)

    def on_uniform(self, model: str | None, temperature: float, seed: float) -> list[list[int]]:
        return view.sample(self.registry, model, "uniform", temperature, seed)

    def on_learned(self, model: str | None, temperature: float, seed: float) -> list[list[int]]:
        return view.sample(self.registry, model, "learned", temperature, seed)

    def on_model(self, model: str | None, grid: Any, image: Any) -> tuple:
        out = view.open_model(self.registry, model, grid, image)
        return out.atlas, keep(out.grid)

    def on_map_click(self, cells: str, evt: gr.SelectData) -> Any:
        return keep(view.click_map(cells, *evt.index))

    def on_atlas_click(self, model: str | None, evt: gr.SelectData) -> Any:
        return keep(view.click_atlas(self.registry, model, *evt.index))


def build_code_grid(registry: ModelRegistry, datasets: list[str], ds0: str,
                    tab: gr.Tab) -> CodeGridHandles:
    explanation(explain.CODE_GRID)
    with gr.Row():
        with gr.Column(scale=2, min_width=280):
            dataset = gr.Radio(datasets, value=ds0, label="Data set")
            model = model_picker(mv.picker(registry, ds0, mv.CODE_GRID), "VQ-VAE")
            panel = input_panel("Encode an image into a code grid", ds0, height=180, example=16)
        with gr.Column(scale=4, min_width=420):
            with gr.Row():
                grid = code_table()
                decoded = gr.Image(label="Decoded", type="numpy", format="png", interactive=False,
                                   height=250, elem_classes="pixelated", scale=2)
            with gr.Row():
                with gr.Column(scale=3):
                    gr.Markdown("**Coloured map**: one colour per code; click cells to select "
                                "them (rows and columns count from 0).")
                    cmap = gr.Image(label="Coloured code map", type="numpy", format="png",
                                    interactive=False, height=300, show_label=False)
                with gr.Column(scale=2):
                    info = gr.Markdown()
                    cells_in = gr.Textbox(label="Selected cells (row,col; ranges like 0-2,*)",
                                          placeholder="e.g. 3,4; 5-6,*", max_lines=1)
                    clear = gr.Button("Clear selection", size="sm")
            with gr.Row():
                code_in = gr.Number(value=0, precision=0, minimum=0, label="Code to paint",
                                    info="or click a code in the atlas")
                paint = gr.Button("Paint selected cells")
                temp = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature")
                seed_in = seed_box()
            with gr.Row():
                regen = gr.Button("Regenerate selected cells (learned prior)", variant="primary")
                new_uniform = gr.Button("New grid: uniform prior")
                new_learned = gr.Button("New grid: learned prior")
    gr.Markdown("**Codebook atlas**: each code decoded alone (a grid filled with it), "
                "labelled *index:count* over the test set; red = dead code. Click a code to "
                "paint with it.")
    atlas = gr.Image(label="Codebook atlas", type="numpy", format="png", interactive=False,
                     show_label=False)

    a = Adapters(registry)
    fn = {name[3:]: friendly(getattr(a, name)) for name in dir(a) if name.startswith("on_")}
    redraw = ([grid, model, cells_in], [decoded, cmap, info])
    grid.change(fn["decode"], *redraw, api_name="code_decode", trigger_mode="always_last",
                show_progress="hidden")
    cells_in.submit(fn["decode"], *redraw, api_name="code_select", api_visibility="private")
    clear.click(lambda: "", None, [cells_in], api_name="code_clear", api_visibility="private") \
        .then(fn["decode"], *redraw, api_name="code_clear_redraw", api_visibility="private")
    cmap.select(fn["map_click"], [cells_in], [cells_in], api_name="code_cell_click",
                api_visibility="private").success(
        fn["decode"], *redraw, api_name="code_click_redraw", api_visibility="private",
        show_progress="hidden")
    paint.click(fn["paint"], [grid, model, cells_in, code_in], [grid], api_name="code_paint")
    regen.click(fn["regenerate"], [grid, model, cells_in, temp, seed_in], [grid],
                api_name="code_regenerate")
    new_uniform.click(fn["uniform"], [model, temp, seed_in], [grid], api_name="code_sample_uniform")
    new_learned.click(fn["learned"], [model, temp, seed_in], [grid], api_name="code_sample_learned")
    model.change(fn["model"], [model, grid, panel.seen], [atlas, grid], api_name="code_atlas")
    tab.select(fn["model"], [model, grid, panel.seen], [atlas, grid], api_name="code_tab",
               api_visibility="private")
    atlas.select(fn["atlas_click"], [model], [code_in], api_name="code_pick",
                 api_visibility="private")
    events = wire_input(panel, dataset, InputApi("code", "code_upload"))
    for source, event in events.items():
        public = source == "upload"
        event.success(fn["encode"], [panel.seen, model], [grid],
                      api_name="code_encode" if public else f"code_encode_{source}",
                      api_visibility="public" if public else "private")
    return CodeGridHandles("code", dataset, [(model, mv.CODE_GRID)], [panel], None, model, grid)
