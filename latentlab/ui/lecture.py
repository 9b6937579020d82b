"""The Lecture tab: every concept of the course one click away, as panels under one tab.

``build_lecture(registry)`` lays out a map of the course's concepts (where each one lives in
the app) and then the panels, one accordion each: the model panels (ELBO gap, traversals and
beta, autoencoder vs VAE, ELBO surgery with three priors) and the maths panels (Gumbel-max and
Gumbel-softmax, Lloyd-Max and vector quantization, reparameterization).
"""

from __future__ import annotations

import gradio as gr

from latentlab.registry import ModelRegistry
from latentlab.ui.lecture_math import build_math_panels
from latentlab.ui.lecture_models import build_model_panels

CONCEPTS = """\
| concept | where |
|---|---|
| ELBO and its gap to log p(x) | **ELBO gap as K grows** below; Reconstruct tab (ELBO vs L_k per input) |
| reparameterization | **Reparameterization** below |
| beta-VAE, latent traversals | **Latent traversals and beta** below |
| posterior collapse, active units | **Latent traversals and beta** (inactive rows, rate vs distortion); Latent space tab |
| autoencoder vs VAE | **An autoencoder cannot sample** below |
| Gumbel-max, Gumbel-softmax, straight-through | **Gumbel-max and Gumbel-softmax** below |
| Lloyd-Max, Voronoi regions | **Quantization** below |
| vector quantization, straight-through gradients | **Quantization** (2-D) below; Code grid tab |
| codebook and commitment losses, dead codes | **Quantization** (bad initialisation); Latent space tab (codebook usage) |
| ELBO surgery | **ELBO surgery** below; Latent space tab (numbers per model) |
| flow priors | **ELBO surgery** (p_λ beside N(0, I) and q_agg); Sample and Interpolate tabs |
| learned priors over discrete codes | Code grid tab (uniform vs learned prior, regenerate a region); Sample tab |
"""


def build_lecture(registry: ModelRegistry) -> None:
    """The concept map and every lecture panel, inside the caller's ``gr.Tab``."""
    with gr.Accordion("Where is each concept of the course?", open=False):
        gr.Markdown(CONCEPTS)
    build_model_panels(registry)
    build_math_panels(registry)
