"""Lecture panels on trained models: the ELBO gap as K grows, latent traversals and the beta
sweep, why an autoencoder cannot sample, and ELBO surgery with three priors side by side.

``build_model_panels(registry)`` adds one accordion per panel inside the caller's Gradio
context. Adapters look the models up (one registry line), fetch what is cached per model
(test-set encodings through ``LoadedModel.memo``), call the view and unpack its outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from latentlab import explain
from latentlab.errors import InputError
from latentlab.inputs import check_int, need_model
from latentlab.preprocess import prepare, upscale
from latentlab.registry import LoadedModel, ModelRegistry
from latentlab.testset import load_test_images
from latentlab.ui.common import friendly, seed_box, unpack
from latentlab.views import autoencoder as av
from latentlab.views import elbo_gap as eg
from latentlab.views import examples
from latentlab.views import surgery as sv
from latentlab.views import traversal as tv

N_TEST = 2000             # test images behind the autoencoder and surgery panels
STATS_IMAGES = 500        # test images for per-dimension KL when metrics.json has none to use
SWEEP_PREFIX = "mnist-vae-z16-beta"
SWEEP_METRICS = ("test_kl", "test_rec_nll", "active_units", "test_nll_iwae")
TRAIN_NOTE = "not trained yet: train it with scripts/train_lecture.sh"
DEFAULT_EXAMPLE = 6       # a "3" among the shipped MNIST examples
CACHE = "lecture_models"  # prefix of this module's keys in LoadedModel.memo


# ----------------------------------------------------------------------------- helpers

def _gaussian(e: Any) -> bool:
    return getattr(e.config, "posterior", "gaussian") == "gaussian"


def _autoencoder(e: Any) -> bool:
    return getattr(e.config, "posterior", None) == "deterministic"


def _two_d(prior: str) -> Callable[[Any], bool]:
    return lambda e: _gaussian(e) and e.latent_dim == 2 and e.prior == prior


def _choices(registry: ModelRegistry, keep: Callable[[Any], bool]) -> list[tuple[str, str]]:
    return [(e.label, e.name) for e in registry.entries(kinds=("vae", "autoencoder")) if keep(e)]


def _dropdown(choices: list[tuple[str, str]], label: str, missing: str,
              prefer: str | None = None) -> gr.Dropdown:
    names = [n for _, n in choices]
    value = prefer if prefer in names else (names[0] if names else None)
    return gr.Dropdown(choices, value=value, label=label, info=None if choices else missing,
                       allow_custom_value=True)


def _example(dataset: str, index: Any) -> np.ndarray:
    """Shipped example ``index`` of the model's data set as the 28x28 image in [0, 1]."""
    files = examples.example_files(dataset)
    if not files:
        raise InputError(f"no examples shipped for {dataset!r} in assets/examples")
    return prepare(str(files[check_int("example", index, 0, len(files) - 1)]))


def _example_slider() -> gr.Slider:
    last = max(len(examples.example_files("mnist")) - 1, 0)
    return gr.Slider(0, last, value=min(DEFAULT_EXAMPLE, last), step=1,
                     label="test digit (shipped example)")


def _shown() -> gr.Image:
    return gr.Image(show_label=False, interactive=False, height=84, width=84,
                    elem_classes="pixelated", buttons=[])


def _grid_image(label: str, height: int) -> gr.Image:
    return gr.Image(label=label, interactive=False, height=height, scale=1, min_width=120,
                    elem_classes="pixelated")


def _test_images(dataset: str, n: int):
    return load_test_images(dataset, n, binary=True)[0]                      # (n, 1, 28, 28)


def dimension_stats(loaded: LoadedModel) -> tuple[Any, Any]:
    """Per-dimension KL and Var_x(E_q z_d) for the traversal: metrics.json for an N(0, I)
    prior when it has them, else computed once per model on test images (the flow's
    variances must be taken in its base space, which metrics.json does not hold)."""
    m = loaded.entry.metrics
    if loaded.entry.prior == "normal" and "kl_per_dim" in m and "active_unit_variances" in m:
        return m["kl_per_dim"], m["active_unit_variances"]
    return loaded.memo((CACHE, "dimension_stats", STATS_IMAGES), lambda: tv.dimension_stats(
        loaded.model, _test_images(loaded.entry.dataset, STATS_IMAGES)))


def surgery_summary(loaded: LoadedModel) -> sv.ModelSummary:
    """Encodings, ELBO split and grid densities of one model: computed once per model."""
    return loaded.memo((CACHE, "surgery", N_TEST), lambda: sv.summarize(
        loaded.model, _test_images(loaded.entry.dataset, N_TEST)))


def sweep_entries(registry: ModelRegistry) -> list[dict]:
    """The beta-sweep checkpoints' test metrics, as the beta_sweep view takes them."""
    return [{"name": e.name, "beta": getattr(e.config, "beta", None),
             **{k: e.metrics.get(k) for k in SWEEP_METRICS}}
            for e in registry.entries(kinds=("vae",)) if e.name.startswith(SWEEP_PREFIX)]


# ----------------------------------------------------------------------------- ELBO gap

def _build_elbo_gap(registry: ModelRegistry) -> None:
    choices = _choices(registry, _gaussian)
    with gr.Accordion("ELBO gap as K grows: prior sampling, ELBO, IWAE", open=False):
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                model = _dropdown(choices, "VAE", "no VAE checkpoint here", eg.DEFAULT_MODEL)
                example = _example_slider()
                shown = _shown()
                k_max = gr.Slider(10, eg.K_MAX, value=eg.K_DEFAULT, step=10, label="largest K")
                repeats = gr.Slider(1, eg.REPEATS_MAX, value=eg.REPEATS_DEFAULT, step=1,
                                    label="repeats R")
                seed = seed_box(0)
                run = gr.Button("Estimate", variant="primary", interactive=bool(choices))
            with gr.Column(scale=4):
                fig = gr.Plot(show_label=False)
                summary = gr.Markdown()
                with gr.Accordion("numbers (means over the repeats)", open=False):
                    table = gr.Dataframe(headers=["K", "prior sampling", "ELBO", "L_K"],
                                         interactive=False)
        gr.Markdown(eg.EXPLAIN, latex_delimiters=explain.LATEX)

    @friendly
    def on_gap(name, index, k, r, s):
        loaded = registry.get(need_model(name), ("vae",))
        image = _example(loaded.entry.dataset, index)
        out = eg.run(loaded.model, image, k, r, s)
        return (upscale((image > 0.5).astype(np.float32), 3), *unpack(out)[:3])

    run.click(on_gap, [model, example, k_max, repeats, seed], [shown, fig, summary, table],
              api_name="elbo_gap")


# ----------------------------------------------------------------------------- traversal + beta

def _traversal_tab(registry: ModelRegistry) -> None:
    choices = _choices(registry, _gaussian)
    with gr.Tab("Traversal"), gr.Row():
        with gr.Column(scale=1, min_width=240):
            model = _dropdown(choices, "VAE", "no VAE checkpoint here", eg.DEFAULT_MODEL)
            example = _example_slider()
            shown = _shown()
            columns = gr.Slider(tv.COLUMNS_MIN, tv.COLUMNS_MAX, value=9, step=2, label="columns")
            span = gr.Slider(0.5, 5.0, value=tv.SPAN, step=0.5, label="span ±t")
            run = gr.Button("Traverse", variant="primary", interactive=bool(choices))
        with gr.Column(scale=3):
            # no pixelated class: a tall grid is shrunk to fit, and its labels stay legible
            image = gr.Image(show_label=False, interactive=False, height=500)
        with gr.Column(scale=2):
            table = gr.Dataframe(headers=["dim", "KL", "Var E_q[z_d]", "active"],
                                 interactive=False, max_height=500)

    @friendly
    def on_traverse(name, index, cols, t):
        loaded = registry.get(need_model(name), ("vae",))
        image_ = _example(loaded.entry.dataset, index)
        kl, var = dimension_stats(loaded)
        out = tv.run(loaded.model, image_, cols, t, kl_per_dim=kl, variances=var)
        return upscale((image_ > 0.5).astype(np.float32), 3), out.image, out.table

    run.click(on_traverse, [model, example, columns, span], [shown, image, table],
              api_name="traversal")


def _sweep_tab(registry: ModelRegistry) -> None:
    names = [e["name"] for e in sweep_entries(registry)]
    with gr.Tab("β sweep: rate vs distortion"), gr.Row():
        with gr.Column(scale=1, min_width=240):
            current = _dropdown([(n, n) for n in names], "highlight",
                                f"no {SWEEP_PREFIX}* checkpoint: {TRAIN_NOTE}")
            show = gr.Button("Show the sweep", variant="primary")
        with gr.Column(scale=4):
            fig = gr.Plot(show_label=False)
            table = gr.Dataframe(headers=["model", "β", "KL", "rec NLL", "active units",
                                          "IWAE NLL"], interactive=False)

    @friendly
    def on_sweep(name):
        return unpack(tv.beta_sweep(sweep_entries(registry), name))

    show.click(on_sweep, [current], [fig, table], api_name="beta_sweep")


def _build_traversal(registry: ModelRegistry) -> None:
    with gr.Accordion("Latent traversals and β-VAE", open=False):
        with gr.Tabs():
            _traversal_tab(registry)
            _sweep_tab(registry)
        gr.Markdown(tv.EXPLAIN, latex_delimiters=explain.LATEX)


# ----------------------------------------------------------------------------- autoencoder

def _build_autoencoder(registry: ModelRegistry) -> None:
    aes = _choices(registry, _autoencoder)
    vaes = _choices(registry, lambda e: _gaussian(e) and e.prior == "normal")
    # the 2-D autoencoder draws its codes without a projection; its twin: same data, same size
    first = next((n for _, n in aes if n == "mnist-ae-z2"), aes[0][1] if aes else None)
    own = registry.entry(first) if first else None
    same = [n for _, n in vaes if own and registry.entry(n).latent_dim == own.latent_dim
            and registry.entry(n).dataset == own.dataset]
    with gr.Accordion("An autoencoder cannot sample", open=False):
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                ae = _dropdown(aes, "autoencoder", f"mnist-ae-z2 / mnist-ae-z16 {TRAIN_NOTE}", first)
                vae = _dropdown(vaes, "VAE with N(0, I) (same latent size)",
                                "no VAE checkpoint here", same[0] if same else None)
                n = gr.Slider(1, av.N_MAX, value=16, step=1, label="samples from N(0, I)")
                seed = seed_box(0)
                run = gr.Button("Compare", variant="primary", interactive=bool(aes and vaes))
            with gr.Column(scale=4):
                fig = gr.Plot(show_label=False)
                summary = gr.Markdown()
                with gr.Row():
                    ae_img = _grid_image("AE decoder, z ~ N(0, I)", 240)
                    vae_img = _grid_image("VAE decoder, same z", 240)
                    table = gr.Dataframe(headers=["dim", "AE mean", "AE std", "VAE mean",
                                                  "VAE std"], interactive=False, max_height=240,
                                         scale=3)
        gr.Markdown(av.EXPLAIN, latex_delimiters=explain.LATEX)

    @friendly
    def on_compare(ae_name, vae_name, size, s):
        a = registry.get(need_model(ae_name), ("autoencoder",))
        v = registry.get(need_model(vae_name), ("vae",))
        if a.entry.dataset != v.entry.dataset:
            raise InputError(f"{a.entry.name} is a {a.entry.dataset} model and {v.entry.name} "
                             f"a {v.entry.dataset} one: pick two of the same data set")
        x = _test_images(a.entry.dataset, N_TEST)
        encoded = a.memo((CACHE, "ae_codes", v.entry.name), lambda: av.encode(a.model, v.model, x))
        out = av.run(a.model, v.model, x, size, s, encoded=encoded)
        return out.figure, out.summary, out.ae_samples, out.vae_samples, out.table

    run.click(on_compare, [ae, vae, n, seed], [fig, summary, ae_img, vae_img, table],
              api_name="autoencoder")


# ----------------------------------------------------------------------------- surgery

def _build_surgery(registry: ModelRegistry) -> None:
    normals, flows = _choices(registry, _two_d("normal")), _choices(registry, _two_d("realnvp"))
    with gr.Accordion("ELBO surgery: N(0, I), flow prior and aggregated posterior", open=False):
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                vae = _dropdown(normals, "2-D VAE with N(0, I)", "no 2-D VAE checkpoint here",
                                "mnist-vae-z2")
                flow = _dropdown(flows, "2-D VAE with the flow prior", "no 2-D flow-prior VAE "
                                 "checkpoint here", "mnist-flow-z2")
                n = gr.Slider(1, 64, value=16, step=1, label="samples per prior")
                seed = seed_box(0)
                run = gr.Button("Compare priors", variant="primary",
                                interactive=bool(normals and flows))
                gr.Markdown("The first run per model encodes 2000 test images (a few seconds); "
                            "later runs reuse them.", elem_classes="ll-note")
            with gr.Column(scale=4):
                fig = gr.Plot(show_label=False)
                with gr.Row():
                    images = [_grid_image(label, 240) for label in
                              ("z ~ N(0, I), VAE", "z ~ p_λ, flow model", "z ~ q_agg, flow model")]
                    table = gr.Dataframe(headers=["part (nats)", "N(0, I)", "flow"],
                                         interactive=False, scale=2)
        gr.Markdown(sv.EXPLAIN, latex_delimiters=explain.LATEX)

    @friendly
    def on_surgery(vae_name, flow_name, size, s):
        v = registry.get(need_model(vae_name), ("vae",))
        f = registry.get(need_model(flow_name), ("vae",))
        out = sv.run(v.model, f.model, surgery_summary(v), surgery_summary(f), size, s)
        return out.figure, *images_of(out), out.table

    run.click(on_surgery, [vae, flow, n, seed], [fig, *images, table], api_name="surgery_priors")


def images_of(out: sv.Outputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return out.samples_normal, out.samples_flow, out.samples_agg


# ----------------------------------------------------------------------------- all panels

def build_model_panels(registry: ModelRegistry) -> None:
    """The four model panels, one accordion each, inside the caller's Blocks/Tab context."""
    _build_elbo_gap(registry)
    _build_traversal(registry)
    _build_autoencoder(registry)
    _build_surgery(registry)
