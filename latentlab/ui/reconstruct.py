"""Reconstruct tab: components and their wiring to ``latentlab.views.reconstruct``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from latentlab import explain
from latentlab.inputs import IMPORTANCE_K
from latentlab.registry import ModelRegistry
from latentlab.ui.common import (
    BINARIZE_CHOICES,
    Action,
    InputApi,
    TabHandles,
    explanation,
    friendly,
    input_panel,
    model_picker,
    plot,
    seed_box,
    wire_input,
)
from latentlab.views import models as mv
from latentlab.views import reconstruct as view


@dataclass
class ReconstructHandles(TabHandles):
    """Plus what the "open in Code grid" button needs."""

    open_button: gr.Button | None = None
    vq_state: gr.State | None = None


def _results() -> tuple:
    """Gallery, table, posterior plot, VQ code map with its button, and the note."""
    recon = gr.Gallery(elem_id="ll-rec-gallery", label="VAE input (binarized) and each model's reconstruction",
                       columns=4, height=230, allow_preview=False, format="png",
                       elem_classes="gallery-pixelated", object_fit="contain")
    table = gr.Dataframe(label="ELBO terms (nats; higher log p is better)", elem_id="ll-elbo-table",
                         headers=["quantity", "model", "meaning"], interactive=False, wrap=True)
    post = gr.Plot(label="Posterior q(z|x)")
    with gr.Row():
        codes = gr.Image(label="VQ-VAE code grid of the input", type="numpy", format="png",
                         interactive=False, height=300, visible=False, show_label=False)
        open_button = gr.Button("VQ-VAE: open this 7×7 code grid in the Code grid tab ↗",
                                visible=False)
    note = gr.Markdown(elem_classes="ll-note")
    return recon, table, post, codes, open_button, note


def build_reconstruct(registry: ModelRegistry, datasets: list[str], ds0: str) -> ReconstructHandles:
    explanation(explain.RECONSTRUCT)
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            # The input first: picking an example or drawing then happens beside the results
            # (on a 1280x720 screen both are in view), not a screen below them.
            panel = input_panel("Input", ds0, example=6)
            dataset = gr.Radio(datasets, value=ds0, label="Data set")
            models = model_picker(mv.picker(registry, ds0, mv.RECONSTRUCT),
                                  "Models (side by side)", multiselect=True)
            with gr.Accordion("Options", open=False):
                k_in = gr.Slider(*IMPORTANCE_K, value=100, step=1, label="k: importance samples",
                                 info="for the IWAE bound L_k and the ELBO estimate")
                binar = gr.Radio(BINARIZE_CHOICES, value="threshold", label="Input pixels (VAEs)")
                seed_in = seed_box()
            run = gr.Button("Reconstruct", variant="primary")
        with gr.Column(scale=3, min_width=400, elem_classes="ll-sticky"):
            recon, table, post, codes, open_button, note = _results()
    vq_state = gr.State(None)

    @friendly
    def on_reconstruct(image: Any, models: list[str], k: float, seed: float, binarize: str):
        out = view.serve(registry, image, models or [], k, seed, binarize)
        shown = out.code_map is not None
        return (out.gallery, out.table, plot(out.posterior), gr.Image(value=out.code_map,
                visible=shown), gr.Button(visible=out.can_open_grid), out.vq_state, out.note)

    inputs = [panel.seen, models, k_in, seed_in, binar]
    outputs = [recon, table, post, codes, open_button, vq_state, note]
    run.click(on_reconstruct, inputs, outputs, api_name="reconstruct")
    events = wire_input(panel, dataset, InputApi("rec", "prepare", public_upload=True))
    for source, event in events.items():
        event.success(on_reconstruct, inputs, outputs, api_name=f"reconstruct_after_{source}",
                      api_visibility="private")
    return ReconstructHandles("rec", dataset, [(models, mv.RECONSTRUCT)], [panel],
                              Action(on_reconstruct, inputs, outputs), open_button, vq_state)
