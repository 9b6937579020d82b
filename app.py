"""Latent Lab: an interactive tour of VAE, flow-prior VAE and VQ-VAE latent spaces.

    python app.py                       # http://127.0.0.1:7860
    python app.py --host 0.0.0.0 --port 8080
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 python app.py   # as on Spaces

Importing this module builds ``demo`` (models load lazily on first use) and starts nothing.
Every callback converts its inputs, calls one function of ``latentlab.service`` and formats
the result; every event has an explicit ``api_name`` so the app works from ``gradio_client``.
"""

from __future__ import annotations

import os

# Numpy's BLAS would start one thread per core for every small matrix product; on a shared
# 2-core Space they only fight each other (set before numpy is first imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import functools
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import torch
from gradio.components.plot import PlotData

from latentlab import code_grid as cg
from latentlab import (
    explain,
    render,
    zerogpu,  # noqa: F401  (imports `spaces` before anything initializes CUDA, for ZeroGPU)
)
from latentlab import latent_view as lv
from latentlab import service as svc
from latentlab.jobs import user_checkpoint_dir
from latentlab.preprocess import MAX_FILE_BYTES, PreprocessError, prepare, upscale

REPO = Path(__file__).resolve().parent
EXAMPLES = REPO / "assets" / "examples"
# One torch thread per request: two requests then share the Space's two cores instead of
# fighting over them, and small single-image ops are faster without thread hand-offs.
torch.set_num_threads(int(os.environ.get("LATENT_LAB_THREADS", "1")))

CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; }
.gallery-pixelated img { image-rendering: pixelated; }
#ll-header h1 { margin-bottom: 0.2em; }
.ll-note { font-size: 0.9em; color: var(--body-text-color-subdued); }
"""
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="orange")
BINARIZE_CHOICES = [("threshold at 0.5", "threshold"), ("random (seeded, as in training)", "random"),
                    ("grey levels", "none")]
CELL = 40  # pixels per cell of the coloured code map (clicks are mapped back with it)
SEED_INFO = "same seed + same settings = same picture"
PROGRESS = gr.Progress()  # the marker Gradio looks for to report a callback's progress


# ----------------------------------------------------------------------------- helpers

def friendly(fn):
    """Turn the errors a user can fix into a visible gr.Error; the app stays up."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (svc.ServiceError, PreprocessError) as exc:
            raise gr.Error(str(exc)) from exc
    return wrapper


def to_input(value: Any) -> np.ndarray:
    """Whatever an image component hands over -> the (28, 28) image the models see."""
    return prepare(value)


def big(image28: np.ndarray, scale: int = 8) -> np.ndarray:
    return upscale(image28, scale)


def plot(fig: dict | None) -> PlotData | None:
    """A plotly figure dict from ``latentlab.render`` as what gr.Plot sends to the browser."""
    return None if fig is None else PlotData(type="plotly", plot=render.to_json(fig))


def example_files(dataset: str) -> list[Path]:
    folder = EXAMPLES / dataset
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def example_items(dataset: str) -> list[tuple[str, str]]:
    """Gallery items: (path, caption) for the shipped test-set examples."""
    from latentlab.data import CLASS_NAMES

    names = CLASS_NAMES.get(dataset, [str(i) for i in range(10)])
    out = []
    for p in example_files(dataset):
        label = p.stem.rsplit("-", 1)[-1]
        out.append((str(p), names[int(label)] if label.isdigit() and int(label) < 10 else p.stem))
    return out


def model_choices(registry: svc.ModelRegistry, dataset: str, kinds: tuple[str, ...]
                  ) -> list[tuple[str, str]]:
    return [(e.label, e.name) for e in registry.entries(dataset, kinds)]


def default_models(registry: svc.ModelRegistry, dataset: str, kinds: tuple[str, ...] = ("vae",),
                   dim: int | None = 16, with_vq: bool = False) -> list[str]:
    """A VAE and its flow-prior twin (16-D if there is one), else the first model(s);
    ``with_vq`` adds the data set's VQ-VAE."""
    vaes = registry.entries(dataset, ("vae",))
    pick = [e for e in vaes if e.latent_dim == dim and e.prior == "normal"] or \
        [e for e in vaes if e.prior == "normal"] or vaes
    out = []
    if pick:
        twin = registry.twin(pick[0].name)
        out = [pick[0].name] + ([twin] if twin else [])
    vq = first_of(registry, dataset, ("vqvae",))
    if vq and (with_vq or not out) and vq not in out:
        out.append(vq)
    if not out:
        other = registry.entries(dataset, kinds)
        out = [other[0].name] if other else []
    return out


def model_picker(choices: list, value: Any, label: str, multiselect: bool = False
                 ) -> gr.Dropdown:
    """A model dropdown that also accepts names outside its listed choices: API users may
    name any checkpoint (of any data set, or trained after the page was built); the
    service checks the name and explains an unknown one."""
    return gr.Dropdown(choices, value=value, label=label, multiselect=multiselect,
                       max_choices=4 if multiselect else None, allow_custom_value=True)


def first_of(registry: svc.ModelRegistry, dataset: str, kinds: tuple[str, ...]) -> str | None:
    entries = registry.entries(dataset, kinds)
    return entries[0].name if entries else None


def status_markdown(registry: svc.ModelRegistry, extra: list[str] | None = None) -> str:
    lines = [f"⚠️ {w}" for w in registry.warnings + (extra or [])]
    if not registry.entries(kinds=("vae", "vqvae")):
        lines.insert(0, "⚠️ No trained models found in `checkpoints/` yet: train one in the "
                        "**Train** tab or copy checkpoint folders there, then press ↻.")
    return "\n\n".join(lines)


def explanation(text: str) -> None:
    with gr.Accordion("What am I looking at? (formulas)", open=False):
        gr.Markdown(text, latex_delimiters=explain.LATEX)


def seed_box(value: int = 0) -> gr.Number:
    return gr.Number(value=value, precision=0, minimum=0, maximum=svc.MAX_SEED, label="Seed",
                     info=SEED_INFO)


GIF_DIR = Path(tempfile.mkdtemp(prefix="latentlab-gif-"))


def gif_path(frames: np.ndarray) -> str:
    """Write the GIF to a fresh file; GIFs older than 10 minutes are removed (Gradio has
    copied them into its own cache by then)."""
    now = time.time()
    for old in GIF_DIR.glob("*.gif"):
        if now - old.stat().st_mtime > 600:
            old.unlink(missing_ok=True)
    path = GIF_DIR / f"interpolation-{time.time_ns()}.gif"
    return str(render.save_gif(frames, path))


# ----------------------------------------------------------------------------- input panel

class ImageUpload(gr.Image):
    """A ``gr.Image`` that hands over the uploaded file's path without decoding it, so that
    ``latentlab.preprocess`` (size limits, decompression-bomb guard) explains bad files.

    ``is_template`` makes Gradio use the ordinary Image widget in the browser.
    """

    is_template = True

    def preprocess(self, payload: Any) -> str | None:
        if payload is None:
            return None
        if payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        try:
            return super().preprocess(payload)
        except Exception as exc:
            raise gr.Error(f"cannot read this image ({type(exc).__name__}: {exc})") from exc


@dataclass
class InputPanel:
    """Upload / draw / pick-an-example, and the 28x28 image the models will see."""

    upload: gr.Image
    sketch: gr.Sketchpad
    gallery: gr.Gallery
    seen: gr.Image


def input_panel(title: str, dataset: str, height: int = 230, example: int | None = None,
                columns: int = 4) -> InputPanel:
    gr.Markdown(f"**{title}**")
    with gr.Tabs():
        with gr.Tab("Examples"):
            gallery = gr.Gallery(example_items(dataset), columns=columns, height=height,
                                 allow_preview=False, show_label=False, format="png",
                                 elem_classes="gallery-pixelated", object_fit="contain")
        with gr.Tab("Draw"):
            gr.Markdown("Pick the **brush** (left toolbar), then draw one large digit; it is "
                        "converted to 28×28 as you draw.", elem_classes="ll-note")
            # 300 px is no multiple of 28, so a drawing is never taken for an upscaled 28x28
            sketch = gr.Sketchpad(type="numpy", image_mode="RGBA", canvas_size=(300, 300),
                                  height=height + 90, show_label=False, layers=False,
                                  transforms=(), brush=gr.Brush(default_size=22, colors=["#000000"],
                                                                color_mode="fixed"))
        with gr.Tab("Upload"):
            upload = ImageUpload(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                 height=height, show_label=False)
    first = None
    if example is not None and len(example_files(dataset)) > example:
        first = big(prepare(str(example_files(dataset)[example])))
    seen = gr.Image(first, label="What the model sees (28×28)", type="numpy", format="png",
                    interactive=False, height=170, elem_classes="pixelated",
                    buttons=["download"])
    return InputPanel(upload, sketch, gallery, seen)


def wire_input(panel: InputPanel, dataset: gr.Radio, key: str, then=None) -> None:
    """Events: any new input -> the 28x28 preview -> (optionally) the tab's action."""

    @friendly
    def from_upload(image: str | None) -> np.ndarray:
        return big(to_input(image))

    def from_sketch(value: dict | None) -> Any:
        try:
            return big(to_input(value))
        except PreprocessError:  # an empty or cleared canvas: keep the last picture
            return gr.skip()

    @friendly
    def from_example(ds: str, evt: gr.SelectData) -> np.ndarray:
        return load_example(ds, evt.index)

    events = [
        panel.upload.upload(from_upload, [panel.upload], [panel.seen],
                            api_name="prepare" if key == "rec" else f"{key}_upload",
                            api_visibility="public" if key == "rec" else "private"),
        panel.sketch.change(from_sketch, [panel.sketch], [panel.seen], api_name=f"{key}_draw",
                            api_visibility="private", trigger_mode="always_last",
                            show_progress="hidden"),
        panel.gallery.select(from_example, [dataset], [panel.seen], api_name=f"{key}_pick",
                             api_visibility="private"),
    ]
    if then is not None:
        for ev, which in zip(events, ("upload", "draw", "pick")):
            then(ev, which)


@friendly
def load_example(dataset: str, index: float) -> np.ndarray:
    """A shipped test example as the models see it (upscaled 28x28)."""
    files = example_files(dataset)
    if not files:
        raise svc.ServiceError(f"no examples shipped for {dataset!r} in assets/examples")
    i = svc.check_int("example index", index, 0, len(files) - 1)
    return big(to_input(str(files[i])))


# ----------------------------------------------------------------------------- Reconstruct

@dataclass
class ReconstructTab:
    dataset: gr.Radio
    models: gr.Dropdown
    panel: InputPanel
    vq_state: gr.State
    open_button: gr.Button
    action: Any
    inputs: list
    outputs: list


def build_reconstruct(registry: svc.ModelRegistry, datasets: list[str], ds0: str) -> ReconstructTab:
    explanation(explain.RECONSTRUCT)
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            dataset = gr.Radio(datasets, value=ds0, label="Data set")
            models = model_picker(model_choices(registry, ds0, ("vae", "vqvae")),
                                  default_models(registry, ds0, with_vq=True),
                                  "Models (side by side)", multiselect=True)
            panel = input_panel("Input", ds0, example=6)
            with gr.Accordion("Options", open=False):
                k_in = gr.Slider(1, 1000, value=100, step=1, label="k: importance samples",
                                 info="for the IWAE bound L_k and the ELBO estimate")
                binar = gr.Radio(BINARIZE_CHOICES, value="threshold", label="Input pixels (VAEs)")
                seed_in = seed_box()
            run = gr.Button("Reconstruct", variant="primary")
        with gr.Column(scale=3, min_width=400):
            recon = gr.Gallery(label="VAE input (binarized) and each model's reconstruction",
                               columns=4, height=230, allow_preview=False, format="png",
                               elem_classes="gallery-pixelated", object_fit="contain")
            table = gr.Dataframe(label="ELBO terms (nats; higher log p is better)",
                                 headers=["quantity", "model", "meaning"], interactive=False,
                                 wrap=True)
            post = gr.Plot(label="Posterior q(z|x)")
            with gr.Row():
                codes = gr.Image(label="VQ-VAE code grid of the input", type="numpy", format="png",
                                 interactive=False, height=300, visible=False, show_label=False)
                open_button = gr.Button("VQ-VAE: open this 7×7 code grid in the Code grid tab ↗",
                                        visible=False)
            note = gr.Markdown(elem_classes="ll-note")
    vq_state = gr.State(None)

    @friendly
    def on_reconstruct(image: Any, models: list[str], k: float, seed: float, binarize: str):
        res = svc.reconstruct(registry, models or [], to_input(image), k, seed, binarize)
        items = [(big(res.binary, 6), "VAE input (binary)")] if any(
            m.kind == "vae" for m in res.models) else []
        items += [(big(m.image, 6), m.name) for m in res.models]
        headers, rows = svc.metrics_table(res)
        vq = next((m for m in res.models if m.kind == "vqvae"), None)
        grid_img = render.code_map(vq.codes, vq.num_codes, CELL) if vq else None
        state = {"model": vq.name, "grid": vq.codes.tolist()} if vq else None
        return (items, pd.DataFrame(rows, columns=headers),
                plot(svc.posterior_figure(registry, res)),
                gr.Image(value=grid_img, visible=vq is not None), gr.Button(visible=vq is not None),
                state,
                "\n\n".join(f"⚠️ {w}" for w in res.warnings))

    inputs = [panel.seen, models, k_in, seed_in, binar]
    outputs = [recon, table, post, codes, open_button, vq_state, note]
    run.click(on_reconstruct, inputs, outputs, api_name="reconstruct")
    wire_input(panel, dataset, "rec", then=lambda ev, which: ev.success(
        on_reconstruct, inputs, outputs, api_name=f"reconstruct_after_{which}",
        api_visibility="private"))
    return ReconstructTab(dataset, models, panel, vq_state, open_button, on_reconstruct, inputs,
                          outputs)


# ----------------------------------------------------------------------------- Sample

def build_sample(registry: svc.ModelRegistry, datasets: list[str], ds0: str, tab: gr.Tab) -> tuple:
    explanation(explain.SAMPLE)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            dataset = gr.Radio(datasets, value=ds0, label="Data set")
            models = model_picker(model_choices(registry, ds0, ("vae", "vqvae")),
                                  default_models(registry, ds0), "Models (side by side)",
                                  multiselect=True)
            source = gr.Radio([("prior p(z) (VQ-VAE: learned code prior)", "prior"),
                               ("aggregated posterior q_agg (VAE only)", "q_agg"),
                               ("uniform code prior (VQ-VAE only)", "uniform")],
                              value="prior", label="Sample from")
            n_in = gr.Radio([16, 36, 64, 100], value=64, label="How many")
            temp = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature T",
                             info="scales the noise: T < 1 sharper and more alike, T > 1 wilder")
            labels_in = gr.Checkbox(False, label="Classifier label under each sample")
            seed_in = seed_box()
            run = gr.Button("Sample", variant="primary")
        with gr.Column(scale=3):
            grids = gr.Gallery(label="Samples (click one to enlarge)", columns=2, height="auto",
                               allow_preview=True, format="png", elem_classes="gallery-pixelated",
                               object_fit="contain")
            note = gr.Markdown(elem_classes="ll-note")

    @friendly
    def on_sample(models: list[str], source: str, n: float, temperature: float, labels: bool,
                  seed: float):
        if not models:
            raise svc.ServiceError("pick at least one model")
        items, notes = [], []
        for name in models:
            kind = registry.entry(name).kind
            s = {"vae": {"prior": "prior", "q_agg": "q_agg"},
                 "vqvae": {"prior": "learned", "uniform": "uniform"}}[kind].get(source)
            if s is None:
                notes.append(f"⚠️ {name}: '{source}' does not apply to a "
                             f"{'VAE' if kind == 'vae' else 'VQ-VAE'}; skipped")
                continue
            res = svc.sample_grid(registry, name, n, s, temperature, seed, labels)
            scale = 3 if len(res.images) <= 16 else 2
            items.append((svc.sample_image(res, scale=scale), f"{name} · {s} · T={temperature:g}"))
            if res.note:
                notes.append(f"{name}: {res.note}")
        if not items:
            raise svc.ServiceError(" ".join(notes))
        return items, "\n\n".join(notes)

    inputs = [models, source, n_in, temp, labels_in, seed_in]
    run.click(on_sample, inputs, [grids, note], api_name="sample")
    tab.select(on_sample, inputs, [grids, note], api_name="sample_tab", api_visibility="private")
    return dataset, models


# ----------------------------------------------------------------------------- Interpolate

def build_interpolate(registry: svc.ModelRegistry, datasets: list[str], ds0: str,
                      tab: gr.Tab) -> tuple:
    explanation(explain.INTERPOLATE)
    dataset = gr.Radio(datasets, value=ds0, label="Data set")
    with gr.Row():
        with gr.Column(min_width=260):
            panel_a = input_panel("Start A", ds0, height=180, example=6, columns=3)
        with gr.Column(min_width=260):
            panel_b = input_panel("End B", ds0, height=180, example=14, columns=3)
        with gr.Column(min_width=260):
            models = model_picker(model_choices(registry, ds0, ("vae", "vqvae")),
                                  default_models(registry, ds0), "Models", multiselect=True)
            steps_in = gr.Slider(2, 32, value=12, step=1, label="Steps")
            method_in = gr.Radio(["linear", "spherical"], value="linear", label="Path")
            base = gr.Checkbox(True, label="Flow-prior models: also through the base space z*")
            binar = gr.Radio(BINARIZE_CHOICES, value="threshold", label="Input pixels (VAEs)")
            run = gr.Button("Interpolate", variant="primary")
    strips = gr.Image(label="Decoded paths (one row per model and space)", type="numpy",
                      format="png", interactive=False, show_label=True)
    with gr.Row():
        density = gr.Plot(label="Prior log-density along the path")
        with gr.Column():
            gif = gr.Image(label="Animated strip (GIF)", type="filepath", interactive=False,
                           height=240)
            gif_file = gr.File(label="Download the GIF")
    note = gr.Markdown(elem_classes="ll-note")

    @friendly
    def on_interpolate(image_a: Any, image_b: Any, models: list[str], steps: float, method: str,
                       flow_base: bool, binarize: str):
        if not models:
            raise svc.ServiceError("pick at least one model")
        xa, xb = to_input(image_a), to_input(image_b)
        results = []
        for name in models:
            e = registry.entry(name)
            spaces = ["z_e"] if e.kind == "vqvae" else \
                ["z", "base"] if flow_base and e.prior == "realnvp" else ["z"]
            results += [svc.interpolate(registry, name, xa, xb, steps, method, s, binarize)
                        for s in spaces]
        strip = render.stack([svc.interpolation_strip(r) for r in results],
                             [r.label for r in results])
        fig = plot(render.line_chart(results[0].t, {r.label: r.log_prior for r in results},
                                     "log p(z_t) along the path (VQ: log p_λ(codes_t))", "t",
                                     "log density (nats)"))
        frames = np.concatenate([r.images for r in results], axis=2)         # (S, 28, 28*R)
        path = gif_path(frames)
        msg = "GIF frames: " + ", ".join(r.label for r in results) + " (left to right)"
        return strip, fig, path, path, msg

    inputs = [panel_a.seen, panel_b.seen, models, steps_in, method_in, base, binar]
    outputs = [strips, density, gif, gif_file, note]
    run.click(on_interpolate, inputs, outputs, api_name="interpolate")
    tab.select(on_interpolate, inputs, outputs, api_name="interpolate_tab",
               api_visibility="private")
    wire_input(panel_a, dataset, "interp_a")
    wire_input(panel_b, dataset, "interp_b")
    return dataset, models, panel_a, panel_b


# ----------------------------------------------------------------------------- Code grid

@dataclass
class CodeGridTab:
    model: gr.Dropdown
    grid: gr.Dataframe
    dataset: gr.Radio
    panel: InputPanel


def empty_grid() -> list[list[int]]:
    return [[0] * svc.GRID for _ in range(svc.GRID)]


def code_table() -> gr.Dataframe:
    """An editable 7x7 table of integers; rows and columns cannot be added."""
    with warnings.catch_warnings():  # (n, "fixed") is the only way to pin the size in Gradio 6.x
        warnings.simplefilter("ignore", DeprecationWarning)
        return gr.Dataframe(value=empty_grid(), headers=[str(c) for c in range(svc.GRID)],
                            datatype="number", type="array", row_count=(svc.GRID, "fixed"),
                            column_count=(svc.GRID, "fixed"), interactive=True,
                            show_row_numbers=False, label="Code grid (edit any cell)",
                            scale=3)


def build_code_grid(registry: svc.ModelRegistry, datasets: list[str], ds0: str,
                    tab: gr.Tab) -> CodeGridTab:
    explanation(explain.CODE_GRID)
    vq0 = first_of(registry, ds0, ("vqvae",))
    with gr.Row():
        with gr.Column(scale=2, min_width=280):
            dataset = gr.Radio(datasets, value=ds0, label="Data set")
            model = model_picker(model_choices(registry, ds0, ("vqvae",)), vq0, "VQ-VAE")
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

    @friendly
    def on_encode(image: Any, model: str | None) -> list[list[int]]:
        return cg.code_grid_from_image(registry, _need(model), to_input(image)).tolist()

    @friendly
    def on_decode(grid: Any, model: str | None, cells: str):
        res = cg.decode_code_grid(registry, _need(model), grid)
        mask = cg.parse_cells(cells)
        text = (f"**−log₂ p(grid)**: learned prior **{res.bits_learned:.1f} bits**, uniform prior "
                f"{res.bits_uniform:.1f} bits (49·log₂ {res.num_codes}). Fewer bits = the learned "
                "prior finds this grid more typical.")
        return big(res.image), render.code_map(res.grid, res.num_codes, CELL, mask), text

    @friendly
    def on_paint(grid: Any, model: str | None, cells: str, code: float) -> list[list[int]]:
        return cg.paint_cells(registry, _need(model), grid, cells, code).tolist()

    @friendly
    def on_regenerate(grid: Any, model: str | None, cells: str, temperature: float,
                      seed: float) -> list[list[int]]:
        return cg.regenerate_cells(registry, _need(model), grid, cells, temperature,
                                   seed).tolist()

    def sampler(prior: str):
        @friendly
        def on_new(model: str | None, temperature: float, seed: float) -> list[list[int]]:
            return cg.sample_code_grid(registry, _need(model), prior, temperature, seed).tolist()
        return on_new

    @friendly
    def on_model(model: str | None, grid: Any, image: Any):
        if not model:
            return None, gr.skip()
        atlas_img = cg.codebook_atlas(registry, model)[0]
        k = registry.entry(model).config.num_codes
        try:
            if np.any(cg.parse_code_grid(grid, k)):  # all zeros = the placeholder: replace it
                return atlas_img, gr.skip()
        except svc.ServiceError:  # the grid does not fit this codebook: start afresh
            pass
        if image is not None:
            return atlas_img, cg.code_grid_from_image(registry, model, to_input(image)).tolist()
        return atlas_img, cg.sample_code_grid(registry, model, "learned", 1.0, 0).tolist()

    def on_map_click(cells: str, evt: gr.SelectData) -> Any:
        rc = render.code_map_cell(*evt.index, cell=CELL)
        return gr.skip() if rc is None else cg.toggle_cell(cells, *rc)

    def on_atlas_click(name: str | None, evt: gr.SelectData) -> Any:
        if not name:
            return gr.skip()
        k = registry.entry(name).config.num_codes
        i = render.atlas_cell(int(evt.index[0]), int(evt.index[1]), k)
        return gr.skip() if i is None else i

    grid.change(on_decode, [grid, model, cells_in], [decoded, cmap, info], api_name="code_decode",
                trigger_mode="always_last", show_progress="hidden")
    cells_in.submit(on_decode, [grid, model, cells_in], [decoded, cmap, info], api_name="code_select",
                 api_visibility="private")
    clear.click(lambda: "", None, [cells_in], api_name="code_clear", api_visibility="private") \
        .then(on_decode, [grid, model, cells_in], [decoded, cmap, info],
              api_name="code_clear_redraw", api_visibility="private")
    cmap.select(on_map_click, [cells_in], [cells_in], api_name="code_cell_click",
                api_visibility="private").success(
        on_decode, [grid, model, cells_in], [decoded, cmap, info], api_name="code_click_redraw",
        api_visibility="private", show_progress="hidden")
    paint.click(on_paint, [grid, model, cells_in, code_in], [grid], api_name="code_paint")
    regen.click(on_regenerate, [grid, model, cells_in, temp, seed_in], [grid], api_name="code_regenerate")
    new_uniform.click(sampler("uniform"), [model, temp, seed_in], [grid], api_name="code_sample_uniform")
    new_learned.click(sampler("learned"), [model, temp, seed_in], [grid], api_name="code_sample_learned")
    model.change(on_model, [model, grid, panel.seen], [atlas, grid], api_name="code_atlas")
    tab.select(on_model, [model, grid, panel.seen], [atlas, grid], api_name="code_tab",
               api_visibility="private")
    atlas.select(on_atlas_click, [model], [code_in], api_name="code_pick", api_visibility="private")
    wire_input(panel, dataset, "code", then=lambda ev, key: ev.success(
        on_encode, [panel.seen, model], [grid], api_name="code_encode" if key == "upload"
        else f"code_encode_{key}", api_visibility="public" if key == "upload" else "private"))
    return CodeGridTab(model, grid, dataset, panel)


def _need(name: str | None) -> str:
    if not name:
        raise svc.ServiceError("pick a model first (none is available for this data set?)")
    return name


# ----------------------------------------------------------------------------- Latent space

@dataclass
class LatentSide:
    model: gr.Dropdown
    plane: gr.Image
    decoded: gr.Image
    note: gr.Markdown
    stats: gr.Dataframe
    fig1: gr.Plot
    fig2: gr.Plot
    u: gr.Number
    v: gr.Number


NONE = "(none)"


def latent_side(registry: svc.ModelRegistry, ds0: str, value: str | None, label: str,
                allow_none: bool) -> LatentSide:
    choices = model_choices(registry, ds0, ("vae", "vqvae"))
    model = model_picker(([(NONE, NONE)] if allow_none else []) + choices,
                         value or (NONE if allow_none else None), label)
    plane = gr.Image(label="Latent map (click to decode)", type="pil", format="png",
                     interactive=False, show_label=False, height=560)
    with gr.Row():
        decoded = gr.Image(label="Decoded point", type="numpy", format="png", interactive=False,
                           height=170, elem_classes="pixelated", scale=1)
        note = gr.Markdown(elem_classes="ll-note")
    stats = gr.Dataframe(_stats_df(None), label="ELBO surgery and latent usage", interactive=False,
                         wrap=True)
    fig1, fig2 = gr.Plot(show_label=False), gr.Plot(show_label=False, visible=False)
    u, v = gr.Number(visible=False), gr.Number(visible=False)
    return LatentSide(model, plane, decoded, note, stats, fig1, fig2, u, v)


def default_latent_pair(registry: svc.ModelRegistry, dataset: str) -> tuple[str | None, str | None]:
    pair = default_models(registry, dataset, ("vae", "vqvae"), dim=2)
    a = pair[0] if pair else None
    b = pair[1] if len(pair) > 1 else None
    return a, b


def build_latent(registry: svc.ModelRegistry, datasets: list[str], ds0: str, tab: gr.Tab) -> tuple:
    explanation(explain.LATENT)
    a0, b0 = default_latent_pair(registry, ds0)
    with gr.Row():
        dataset = gr.Radio(datasets, value=ds0, label="Data set", scale=1)
        proj = gr.Radio([("auto (2-D: z itself; else PCA)", "auto"), ("PCA (live)", "pca"),
                         ("UMAP (precomputed)", "umap")], value="auto",
                        label="Map for models with more than 2 latent dims", scale=2)
        n_prior = gr.Slider(0, 1000, value=200, step=50, label="Prior samples (black rings)", scale=1)
        seed_in = seed_box()
    with gr.Row():
        draw = gr.Button("Draw", variant="primary")
        umap_btn = gr.Button("Recompute UMAP for these models (about a minute)")
    umap_note = gr.Markdown(elem_classes="ll-note")
    with gr.Row():
        with gr.Column():
            side_a = latent_side(registry, ds0, a0, "Model", allow_none=False)
        with gr.Column():
            side_b = latent_side(registry, ds0, b0, "Compare with", allow_none=True)

    @friendly
    def on_latent(model: str | None, projection: str, prior_samples: float, seed: float):
        if not model or model == NONE:
            return (gr.Image(value=None, visible=False), None, _stats_df(None), None,
                    gr.Plot(value=None, visible=False), "")
        name = model
        if registry.entry(name).kind == "vqvae":
            st = lv.vq_stats(registry, name)
            f1, f2 = lv.latent_figures(registry, name, st)
            return (gr.Image(value=None, visible=False), None, _stats_df(st), plot(f1),
                    gr.Plot(value=plot(f2), visible=True), f"Numbers from {st.source}.")
        img, geo = lv.plane_image(registry, name, projection, prior_samples, seed)
        st = lv.vae_stats(registry, name)
        f1, _ = lv.latent_figures(registry, name, st)
        where = {"z": "the latent plane itself", "pca": "a PCA of the posterior means",
                 "umap": "a UMAP of the posterior means"}[geo.projection]
        return (gr.Image(value=img, visible=True), None, _stats_df(st), plot(f1),
                gr.Plot(value=None, visible=False),
                (f"Map: {where}. Posteriors from {svc.latent_data(registry, name).source}; "
                 f"numbers from {st.source}."))

    def on_click(model: str | None, projection: str, evt: gr.SelectData):
        if not model or model == NONE or registry.entry(model).kind != "vae":
            return gr.skip(), gr.skip()
        uv = lv.click_to_map(registry, model, projection, *evt.index)
        return (gr.skip(), gr.skip()) if uv is None else uv

    @friendly
    def on_decode(model: str | None, projection: str, u: float, v: float, prior_samples: float,
                  seed: float):
        if u is None or v is None:
            raise svc.ServiceError("give both map coordinates u and v")
        point = lv.decode_point(registry, _need(model), projection, u, v, prior_samples, seed)
        return big(point.image, 6), point.plane, point.note

    @friendly
    def on_umap(model: str | None, compare_with: str | None, progress=PROGRESS) -> str:
        todo = [m for m in (model, compare_with) if m and m != NONE
                and registry.entry(m).kind == "vae" and registry.entry(m).latent_dim > 2]
        if not todo:
            raise svc.ServiceError("UMAP is for VAEs with more than 2 latent dims; "
                                   "2-D models are drawn directly")
        msgs = [lv.compute_umap(registry, m, progress=lambda f, t: progress(f, desc=t))
                for m in todo]
        return "; ".join(msgs) + ". Choose the UMAP map above to see it."

    for i, side in enumerate((side_a, side_b)):
        suffix = "" if i == 0 else "_b"
        outs = [side.plane, side.decoded, side.stats, side.fig1, side.fig2, side.note]
        ins = [side.model, proj, n_prior, seed_in]
        draw.click(on_latent, ins, outs, api_name=f"latent_space{suffix}")
        side.model.change(on_latent, ins, outs, api_name=f"latent_model{suffix}",
                          api_visibility="private")
        tab.select(on_latent, ins, outs, api_name=f"latent_tab{suffix}", api_visibility="private")
        side.plane.select(on_click, [side.model, proj], [side.u, side.v],
                          api_name=f"latent_click{suffix}", api_visibility="private").success(
            on_decode, [side.model, proj, side.u, side.v, n_prior, seed_in],
            [side.decoded, side.plane, side.note], api_name=f"latent_decode{suffix}",
            api_visibility="public" if i == 0 else "private")
    umap_btn.click(on_umap, [side_a.model, side_b.model], [umap_note], api_name="umap_recompute")
    return dataset, side_a, side_b


def _stats_df(st: lv.LatentStats | None) -> pd.DataFrame:
    rows = [list(r) for r in st.rows] if st else []
    return pd.DataFrame(rows, columns=["quantity", "value", "note"])


# ----------------------------------------------------------------------------- the app

TAB_IDS = ("reconstruct", "sample", "interpolate", "codegrid", "latent", "train")
MODEL_COLUMNS = ["name", "kind", "dataset", "latent_dim", "prior", "num_codes", "test_elbo",
                 "test_nll_iwae", "test_accuracy", "test_mse"]


def models_table(registry: svc.ModelRegistry) -> pd.DataFrame:
    rows = [[d.get(c, "") for c in MODEL_COLUMNS] for d in svc.describe(registry)]
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)


def build_demo(registry: svc.ModelRegistry) -> gr.Blocks:
    """Lay out the whole app around one registry (tests pass one with tiny checkpoints)."""
    datasets = registry.datasets() or ["mnist", "fashion"]
    ds0 = datasets[0]
    with gr.Blocks(title="Latent Lab", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(explain.INTRO, elem_id="ll-header")
        with gr.Row():
            status = gr.Markdown(status_markdown(registry))
        with gr.Accordion("Models on this server", open=False):
            table = gr.Dataframe(value=models_table(registry), interactive=False)
            refresh = gr.Button("↻ Rescan checkpoints/", size="sm")
        with gr.Tabs() as tabs:
            with gr.Tab("Reconstruct", id="reconstruct"):
                rec = build_reconstruct(registry, datasets, ds0)
            with gr.Tab("Sample", id="sample") as sample_tab:
                sam_ds, sam_models = build_sample(registry, datasets, ds0, sample_tab)
            with gr.Tab("Interpolate", id="interpolate") as interp_tab:
                int_ds, int_models, int_a, int_b = build_interpolate(registry, datasets, ds0,
                                                                      interp_tab)
            with gr.Tab("Code grid", id="codegrid") as code_tab:
                code_ui = build_code_grid(registry, datasets, ds0, code_tab)
            with gr.Tab("Latent space", id="latent") as latent_tab:
                lat_ds, side_a, side_b = build_latent(registry, datasets, ds0, latent_tab)
            with gr.Tab("Train", id="train"):
                build_train(registry)

        # -- pickers follow the data set; ↻ picks up new checkpoints --------------------
        pickers = [(rec.dataset, rec.models, ("vae", "vqvae"), "pair+vq"),
                   (sam_ds, sam_models, ("vae", "vqvae"), "pair"),
                   (int_ds, int_models, ("vae", "vqvae"), "pair"),
                   (code_ui.dataset, code_ui.model, ("vqvae",), "first"),
                   (lat_ds, side_a.model, ("vae", "vqvae"), "latent_a"),
                   (lat_ds, side_b.model, ("vae", "vqvae"), "latent_b")]

        def picker_update(ds: str, kinds: tuple, how: str, set_value: bool) -> gr.Dropdown:
            choices = model_choices(registry, ds, kinds)
            if how == "latent_b":
                choices = [(NONE, NONE)] + choices
            if not set_value:
                return gr.Dropdown(choices=choices)
            a, b = default_latent_pair(registry, ds)
            value = {"pair": default_models(registry, ds), "pair+vq": default_models(
                registry, ds, with_vq=True), "first": first_of(registry, ds, kinds),
                     "latent_a": a, "latent_b": b or NONE}[how]
            return gr.Dropdown(choices=choices, value=value)

        def on_dataset(dds: list[int], examples: list[int], ds: str) -> list:
            """New data set: its models in the pickers, its examples in the galleries, and
            one of them as the input (so the tab never mixes data sets)."""
            ups = [picker_update(ds, pickers[i][2], pickers[i][3], True) for i in dds]
            files = example_files(ds)
            seen = [big(prepare(str(files[i]))) if i < len(files) else None for i in examples]
            return [*ups, *[gr.Gallery(value=example_items(ds)) for _ in examples], *seen]

        for key, radio, panels, dds in (
                ("rec", rec.dataset, [(rec.panel, 6)], [0]), ("sample", sam_ds, [], [1]),
                ("interp", int_ds, [(int_a, 6), (int_b, 14)], [2]),
                ("code", code_ui.dataset, [(code_ui.panel, 16)], [3]), ("latent", lat_ds, [], [4, 5])):
            event = radio.input(
                functools.partial(on_dataset, dds, [i for _, i in panels]), [radio],
                [pickers[i][1] for i in dds] + [p.gallery for p, _ in panels]
                + [p.seen for p, _ in panels], api_name=f"dataset_{key}", api_visibility="private")
            if key == "rec":
                event.then(rec.action, rec.inputs, rec.outputs, api_name="dataset_reconstruct",
                           api_visibility="private")

        def list_models() -> tuple[str, pd.DataFrame]:
            registry.refresh()
            return status_markdown(registry), models_table(registry)

        def update_pickers(*dsets: str) -> list:
            return [picker_update(ds, kinds, how, False)
                    for ds, (_, _, kinds, how) in zip(dsets, pickers)]

        ds_inputs, dropdowns = [p[0] for p in pickers], [p[1] for p in pickers]
        refresh.click(list_models, None, [status, table], api_name="list_models").then(
            update_pickers, ds_inputs, dropdowns, api_name="refresh_pickers",
            api_visibility="private")
        # A fresh page sees checkpoints trained since the server started, and opens on a
        # finished example instead of an empty screen.
        def open_tab(request: gr.Request) -> Any:
            """Deep links: ``/?tab=latent`` opens that tab (handy in lecture slides)."""
            tab = request.query_params.get("tab") if request else None
            return gr.Tabs(selected=tab) if tab in TAB_IDS else gr.skip()

        demo.load(open_tab, None, [tabs], api_name="page_load_tab", api_visibility="private",
                  show_progress="hidden")
        demo.load(list_models, None, [status, table], api_name="page_load",
                  api_visibility="private", show_progress="hidden").then(
            update_pickers, ds_inputs, dropdowns, api_name="page_load_pickers",
            api_visibility="private", show_progress="hidden").then(
            rec.action, rec.inputs, rec.outputs, api_name="page_load_reconstruct",
            api_visibility="private")

        # -- cross-tab actions ------------------------------------------------------------
        def open_in_code_grid(state: dict | None):
            if not state:
                raise gr.Error("reconstruct with a VQ-VAE first")
            ds = registry.entry(state["model"]).dataset
            return (gr.Tabs(selected="codegrid"), ds,
                    gr.Dropdown(choices=model_choices(registry, ds, ("vqvae",)), value=state["model"]),
                    state["grid"])

        rec.open_button.click(open_in_code_grid, [rec.vq_state],
                              [tabs, code_ui.dataset, code_ui.model, code_ui.grid],
                              api_name="open_in_code_grid", api_visibility="private")
    demo.queue(default_concurrency_limit=2)
    return demo


def build_train(registry: svc.ModelRegistry) -> None:
    """The Train tab, written separately; the rest of the app works without it."""
    try:
        from latentlab.train_tab import build_train_tab
    except ImportError as exc:
        gr.Markdown(f"The Train tab is not available in this build ({exc}).")
        return
    explanation(explain.TRAIN)
    build_train_tab(registry)


def launch_kwargs() -> dict:
    """Arguments ``launch`` needs besides host and port (Gradio 6 takes theme/css here)."""
    return {"theme": THEME, "css": CSS, "max_file_size": MAX_FILE_BYTES, "show_error": True}


REGISTRY = svc.ModelRegistry(os.environ.get("LATENT_LAB_CHECKPOINTS", REPO / "checkpoints"),
                             extra_roots=[user_checkpoint_dir()])
demo = build_demo(REGISTRY)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Serve Latent Lab.")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = p.parse_args(argv)
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main()
