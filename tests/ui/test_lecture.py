"""The Lecture tab holds every panel of the course with its named API endpoint."""

import gradio as gr

from latentlab.registry import ModelRegistry
from latentlab.ui.lecture import CONCEPTS, build_lecture

PANEL_APIS = {"elbo_gap", "reparam", "traversal", "beta_sweep", "autoencoder", "gumbel", "lloyd",
              "vq2d", "surgery_priors"}


def test_lecture_tab_has_every_panel_endpoint(folder):
    with gr.Blocks() as demo:
        with gr.Tab("Lecture"):
            build_lecture(ModelRegistry(folder, assets=None))
    names = {fn.api_name for fn in demo.fns.values()}
    assert PANEL_APIS <= names, PANEL_APIS - names


def test_concept_map_names_every_course_concept():
    text = CONCEPTS.lower()
    for concept in ("elbo", "reparameterization", "beta-vae", "posterior collapse", "autoencoder",
                    "gumbel-softmax", "lloyd-max", "vector quantization", "commitment",
                    "elbo surgery", "flow priors", "discrete codes"):
        assert concept in text, concept
