"""Interpolate tab: components and their wiring to ``latentlab.views.interpolate``."""

from __future__ import annotations

from typing import Any

import gradio as gr

from latentlab import explain
from latentlab.inputs import STEPS
from latentlab.registry import ModelRegistry
from latentlab.ui.common import (
    BINARIZE_CHOICES,
    InputApi,
    TabHandles,
    explanation,
    friendly,
    input_panel,
    model_picker,
    plot,
    wire_input,
)
from latentlab.views import interpolate as view
from latentlab.views import models as mv


def _results() -> list:
    """Strip, density chart, GIF (shown and as a file) and the note, in output order."""
    strips = gr.Image(elem_id="ll-strip", label="Decoded paths (one row per model and space)", type="numpy",
                      format="png", interactive=False, show_label=True)
    with gr.Row():
        density = gr.Plot(elem_id="ll-density", label="Prior log-density along the path")
        with gr.Column():
            gif = gr.Image(label="Animated strip (GIF)", type="filepath", interactive=False,
                           height=240)
            gif_file = gr.File(label="Download the GIF")
    note = gr.Markdown(elem_classes="ll-note")
    return [strips, density, gif, gif_file, note]


def build_interpolate(registry: ModelRegistry, datasets: list[str], ds0: str,
                      tab: gr.Tab) -> TabHandles:
    explanation(explain.INTERPOLATE)
    dataset = gr.Radio(datasets, value=ds0, label="Data set")
    with gr.Row():
        with gr.Column(min_width=260):
            panel_a = input_panel("Start A", ds0, height=180, example=6, columns=3)
        with gr.Column(min_width=260):
            panel_b = input_panel("End B", ds0, height=180, example=14, columns=3)
        with gr.Column(min_width=260):
            models = model_picker(mv.picker(registry, ds0, mv.INTERPOLATE), "Models",
                                  multiselect=True)
            steps_in = gr.Slider(*STEPS, value=12, step=1, label="Steps")
            method_in = gr.Radio(["linear", "spherical"], value="linear", label="Path")
            base = gr.Checkbox(True, label="Flow-prior models: also through the base space z*")
            binar = gr.Radio(BINARIZE_CHOICES, value="threshold", label="Input pixels (VAEs)")
            run = gr.Button("Interpolate", variant="primary")
    outputs = _results()

    @friendly
    def on_interpolate(image_a: Any, image_b: Any, models: list[str], steps: float, method: str,
                       flow_base: bool, binarize: str):
        out = view.serve(registry, image_a, image_b, models or [], steps, method, flow_base,
                       binarize)
        return out.strip, plot(out.density), out.gif, out.gif_file, out.note

    inputs = [panel_a.seen, panel_b.seen, models, steps_in, method_in, base, binar]
    run.click(on_interpolate, inputs, outputs, api_name="interpolate")
    tab.select(on_interpolate, inputs, outputs, api_name="interpolate_tab",
               api_visibility="private")
    wire_input(panel_a, dataset, InputApi("interp_a", "interp_a_upload"))
    wire_input(panel_b, dataset, InputApi("interp_b", "interp_b_upload"))
    return TabHandles("interp", dataset, [(models, mv.INTERPOLATE)], [panel_a, panel_b])
