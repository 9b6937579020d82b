"""Lecture panels on the maths of discrete and continuous latents: Gumbel-max / Gumbel-softmax,
quantization (Lloyd-Max in 1-D, k-means and a VQ-VAE codebook in 2-D), reparameterization.

``build_math_panels(registry)`` adds one accordion per panel inside the caller's Gradio
context. Adapters only look the model up (one registry line), encode the shipped example
digits once per model (cached; no data set needed), call the view and unpack its outputs.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
import torch

from latentlab import explain
from latentlab.errors import InputError
from latentlab.inputs import check_int, need_model
from latentlab.preprocess import prepare, upscale
from latentlab.registry import LoadedModel, ModelRegistry
from latentlab.ui.common import friendly, seed_box, unpack
from latentlab.views import examples
from latentlab.views import gumbel as gv
from latentlab.views import lloyd as lv
from latentlab.views import reparam as rp
from latentlab.views import vq2d as vq

VAE_IMAGES = 8          # inputs shown by the Gumbel VAE extra
PLOT_H = 330


def _choices(registry: ModelRegistry, kinds: tuple[str, ...], keep: Any = None) -> list[tuple[str, str]]:
    return [(e.label, e.name) for e in registry.entries(kinds=kinds) if keep is None or keep(e)]


def _is_2d_gaussian(e: Any) -> bool:
    return e.latent_dim == 2 and getattr(e.config, "posterior", "gaussian") == "gaussian"


def _is_categorical(e: Any) -> bool:
    return getattr(e.config, "posterior", None) == "categorical"


def _model_dropdown(choices: list[tuple[str, str]], label: str, missing: str) -> gr.Dropdown:
    # MNIST first: the lectures' examples are digits
    first = next((v for _, v in choices if v.startswith("mnist")), choices[0][1] if choices else None)
    return gr.Dropdown(choices, value=first, label=label, info=None if choices else missing,
                       allow_custom_value=True)


def _shipped_images(dataset: str) -> np.ndarray:
    """The shipped test examples (B, 28, 28): no data set download needed on a lecture laptop."""
    files = examples.example_files(dataset)
    if not files:
        raise InputError(f"no examples shipped for {dataset!r} in assets/examples")
    return np.stack([prepare(str(f)) for f in files])


def _vq_outputs(loaded: LoadedModel) -> np.ndarray:
    """z_e (B, D, 7, 7) of the shipped examples, computed once per model."""
    def encode() -> np.ndarray:
        x = torch.from_numpy(_shipped_images(loaded.entry.dataset)).unsqueeze(1)        # (B, 1, 28, 28)
        with torch.no_grad():
            return loaded.model.encode(x).numpy()
    return loaded.memo(("lecture_math", "z_e"), encode)


# ----------------------------------------------------------------------------- Gumbel

def _build_gumbel(registry: ModelRegistry) -> None:
    first = gv.gumbel_panel("peaked K=3", 0.5, 1000, 0)
    with gr.Accordion("Gumbel-max and Gumbel-softmax", open=False):
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                logits = gr.Dropdown(list(gv.PRESETS), value="peaked K=3", allow_custom_value=True,
                                     label="logits (preset or comma-separated, 2-20 classes)")
                tau = gr.Slider(*gv.TAU_RANGE, value=0.5, step=0.05, label="temperature τ")
                n = gr.Slider(*gv.N_RANGE, value=1000, step=10, label="N samples")
                seed = seed_box(0)
                run = gr.Button("Sample", variant="primary")
            with gr.Column(scale=4):
                with gr.Row():
                    counts = gr.Plot(first.counts_figure, show_label=False)
                    relaxed = gr.Plot(first.relaxed_figure, show_label=False)
                    entropy = gr.Plot(first.entropy_figure, show_label=False)
                summary = gr.Markdown(first.summary)
        gr.Markdown(gv.EXPLAIN, latex_delimiters=explain.LATEX)

        @friendly
        def on_gumbel(lg, t, size, s):
            return unpack(gv.gumbel_panel(lg, t, size, s))[:4]

        run.click(on_gumbel, [logits, tau, n, seed], [counts, relaxed, entropy, summary], api_name="gumbel")
        _build_gumbel_vae(registry, tau, seed)


def _build_gumbel_vae(registry: ModelRegistry, tau: gr.Slider, seed: gr.Number) -> None:
    choices = _choices(registry, ("gumbel",), _is_categorical)
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            model = _model_dropdown(choices, "categorical VAE (optional)",
                                    "mnist-gumbel-20x10 is not trained yet: this part is off")
            run = gr.Button("Decode at τ", interactive=bool(choices))
        with gr.Column(scale=4):
            image = gr.Image(show_label=False, interactive=False, elem_classes="pixelated", height=200)
            note = gr.Markdown()

    @friendly
    def on_vae(name, t, s):
        loaded = registry.get(need_model(name), ("gumbel",))
        x = _shipped_images(loaded.entry.dataset)[:VAE_IMAGES]                          # (B, 28, 28)
        return unpack(gv.gumbel_vae_panel(loaded.model, x, t, s))

    run.click(on_vae, [model, tau, seed], [image, note], api_name="gumbel_vae")


# ----------------------------------------------------------------------------- quantization

def _build_lloyd(registry: ModelRegistry) -> None:
    first = lv.lloyd_init("gaussian", 4, 0)
    vqs = _choices(registry, ("vqvae",))
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            density = gr.Dropdown([(v, k) for k, v in lv.DENSITIES.items()], value="gaussian", label="density")
            levels = gr.Slider(*lv.LEVELS_RANGE, value=4, step=1, label="levels L")
            seed = seed_box(0)
            model = _model_dropdown(vqs, "VQ-VAE (for the z_e coordinate)", "no VQ-VAE checkpoint here")
            channel = gr.Number(0, precision=0, minimum=0, label="coordinate d of z_e")
            with gr.Row():
                reset = gr.Button("Reset", variant="secondary", min_width=60)
                nn = gr.Button("NN step", min_width=60)
                cen = gr.Button("Centroid step", min_width=60)
            run = gr.Button("Run to convergence", variant="primary")
        with gr.Column(scale=4):
            fig = gr.Plot(first.figure, show_label=False)
            summary = gr.Markdown(first.summary)
    gr.Markdown(lv.EXPLAIN, latex_delimiters=explain.LATEX)
    state = gr.State(first.state)

    def values(kind, name, d):
        if kind != "vq-vae":
            return None
        z = _vq_outputs(registry.get(need_model(name), ("vqvae",)))                    # (B, D, 7, 7)
        return lv.coordinate_values(z, d)

    @friendly
    def on_reset(kind, n_levels, s, name, d):
        return unpack(lv.lloyd_init(kind, n_levels, s, values(kind, name, d)))

    def stepper(action):
        @friendly
        def on_step(kind, st, name, d):
            return unpack(lv.lloyd_step(kind, st, action, values(kind, name, d)))
        return on_step

    outs = [fig, summary, state]
    reset.click(on_reset, [density, levels, seed, model, channel], outs, api_name="lloyd")
    for widget in (density, levels):
        widget.change(on_reset, [density, levels, seed, model, channel], outs,
                      api_name=f"lloyd_reset_{'density' if widget is density else 'levels'}",
                      api_visibility="private")
    nn.click(stepper("nn"), [density, state, model, channel], outs, api_name="lloyd_step_nn")
    cen.click(stepper("centroid"), [density, state, model, channel], outs, api_name="lloyd_step_centroid")
    run.click(stepper("run"), [density, state, model, channel], outs, api_name="lloyd_run")


def _build_vq2d(registry: ModelRegistry) -> None:
    first = vq.vq2d_panel(8, "k-means++", 0)
    vqs = _choices(registry, ("vqvae",))
    with gr.Row():
        with gr.Column(scale=1, min_width=240):
            k = gr.Slider(*vq.K_RANGE, value=8, step=1, label="codes K")
            init = gr.Dropdown([(v, key) for key, v in vq.INITS.items()], value="k-means++",
                               label="initialisation")
            seed = seed_box(0)
            run = gr.Button("Run k-means", variant="primary")
            model = _model_dropdown(vqs, "VQ-VAE codebook", "no VQ-VAE checkpoint here")
            show = gr.Button("Show codebook", interactive=bool(vqs))
        with gr.Column(scale=2):
            fig = gr.Plot(first.figure, show_label=False)
            summary = gr.Markdown(first.summary)
        with gr.Column(scale=2):
            code_fig = gr.Plot(show_label=False)
            code_summary = gr.Markdown()
    gr.Markdown(vq.EXPLAIN, latex_delimiters=explain.LATEX)

    @friendly
    def on_kmeans(n_codes, how, s):
        return unpack(vq.vq2d_panel(n_codes, how, s))[:2]

    @friendly
    def on_codebook(name):
        loaded = registry.get(need_model(name), ("vqvae",))
        z = vq.encoder_vectors(_vq_outputs(loaded))                                    # (B*49, D)
        return unpack(vq.codebook_panel(loaded.model.codebook.numpy(), z))[:2]

    run.click(on_kmeans, [k, init, seed], [fig, summary], api_name="vq2d")
    show.click(on_codebook, [model], [code_fig, code_summary], api_name="vq2d_codebook")


# ----------------------------------------------------------------------------- reparameterization

def _build_reparam(registry: ModelRegistry) -> None:
    choices = _choices(registry, ("vae",), _is_2d_gaussian)
    files = examples.example_files("mnist")
    with gr.Accordion("Reparameterization trick", open=False):
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                model = _model_dropdown(choices, "2-D VAE", "no 2-D VAE checkpoint here")
                example = gr.Slider(0, max(len(files) - 1, 0), value=min(6, max(len(files) - 1, 0)), step=1,
                                    label="test digit (shipped example)")
                shown = gr.Image(show_label=False, interactive=False, height=112, width=112,
                                 elem_classes="pixelated")
                m = gr.Slider(*rp.M_RANGE, value=16, step=1, label="M samples ε")
                seed = seed_box(0)
                run = gr.Button("Draw", variant="primary", interactive=bool(choices))
            with gr.Column(scale=4):
                fig = gr.Plot(show_label=False)
                images = gr.Image(show_label=False, interactive=False, elem_classes="pixelated", height=130)
                summary = gr.Markdown()
        gr.Markdown(rp.EXPLAIN, latex_delimiters=explain.LATEX)

    @friendly
    def on_reparam(name, index, n, s):
        model_ = registry.get(need_model(name), ("vae",)).model
        image = prepare(str(files[check_int("example", index, 0, len(files) - 1)]))
        return (upscale(image, 4), *unpack(rp.reparam_panel(model_, image, n, s))[:3])

    run.click(on_reparam, [model, example, m, seed], [shown, fig, images, summary], api_name="reparam")


# ----------------------------------------------------------------------------- all panels

def build_math_panels(registry: ModelRegistry) -> None:
    """The three panels, one accordion each, inside the caller's Blocks/Tab context.

    Each panel puts its controls and its result in one row at the top (visible on a
    1280x720 projector right after the click) and its explanation with the formulas under it.
    """
    _build_gumbel(registry)
    with gr.Accordion("Quantization: Lloyd-Max (1-D) and vector quantization (2-D)", open=False):
        _build_lloyd(registry)
        _build_vq2d(registry)
    _build_reparam(registry)
