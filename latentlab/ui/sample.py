"""Sample tab: components and their wiring to ``latentlab.views.sample``."""

from __future__ import annotations

import gradio as gr

from latentlab import explain
from latentlab.inputs import SAMPLE_COUNTS, TEMPERATURE
from latentlab.registry import ModelRegistry
from latentlab.ui.common import TabHandles, explanation, friendly, model_picker, seed_box, unpack
from latentlab.views import models as mv
from latentlab.views import sample as view


def build_sample(registry: ModelRegistry, datasets: list[str], ds0: str, tab: gr.Tab) -> TabHandles:
    explanation(explain.SAMPLE)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            dataset = gr.Radio(datasets, value=ds0, label="Data set")
            models = model_picker(mv.picker(registry, ds0, mv.SAMPLE), "Models (side by side)",
                                  multiselect=True)
            # the button right under the models: the grids stay in view when it is pressed
            run = gr.Button("Sample", variant="primary")
            source = gr.Radio([("prior p(z) (VQ-VAE: learned code prior)", "prior"),
                               ("aggregated posterior q_agg (VAE only)", "q_agg"),
                               ("uniform code prior (VQ-VAE only)", "uniform")],
                              value="prior", label="Sample from")
            n_in = gr.Radio(list(SAMPLE_COUNTS), value=64, label="How many")
            temp = gr.Slider(*TEMPERATURE, value=1.0, step=0.05, label="Temperature T",
                             info="scales the noise: T < 1 sharper and more alike, T > 1 wilder")
            labels_in = gr.Checkbox(False, label="Classifier label under each sample")
            seed_in = seed_box()
        with gr.Column(scale=3, elem_classes="ll-sticky"):
            grids = gr.Gallery(elem_id="ll-samples", label="Samples (click one to enlarge)", columns=2, height="auto",
                               allow_preview=True, format="png", elem_classes="gallery-pixelated",
                               object_fit="contain")
            note = gr.Markdown(elem_classes="ll-note")

    @friendly
    def on_sample(models: list[str], source: str, n: float, temperature: float, labels: bool,
                  seed: float):
        return unpack(view.serve(registry, models or [], source, n, temperature, labels, seed))

    inputs = [models, source, n_in, temp, labels_in, seed_in]
    run.click(on_sample, inputs, [grids, note], api_name="sample")
    tab.select(on_sample, inputs, [grids, note], api_name="sample_tab", api_visibility="private")
    return TabHandles("sample", dataset, [(models, mv.SAMPLE)], [])
