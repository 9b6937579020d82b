"""Latent space tab: two sides (a model and one to compare with) wired to
``latentlab.views.latent``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr

from latentlab import explain
from latentlab.inputs import PRIOR_SAMPLES
from latentlab.registry import ModelRegistry
from latentlab.ui.common import (
    PROGRESS,
    TabHandles,
    explanation,
    friendly,
    friendly_steps,
    model_picker,
    plot,
    seed_box,
    unpack,
)
from latentlab.views import latent as view
from latentlab.views import models as mv


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


def latent_side(registry: ModelRegistry, ds0: str, spec: mv.PickerSpec, label: str) -> LatentSide:
    model = model_picker(mv.picker(registry, ds0, spec), label)
    # The decoded digit sits beside the map, so that it appears where the click was, not
    # below the fold.
    with gr.Row(equal_height=False):
        plane = gr.Image(label="Latent map (click to decode)", type="pil", format="png",
                         interactive=False, show_label=False, height=480, scale=3, min_width=300,
                         elem_classes="ll-plane")
        with gr.Column(scale=1, min_width=140):
            decoded = gr.Image(label="Decoded point", type="numpy", format="png",
                               interactive=False, height=170, elem_classes="pixelated ll-decoded")
            note = gr.Markdown(elem_classes="ll-note")
    stats = gr.Dataframe(view.stats_table(None), label="ELBO surgery and latent usage",
                         interactive=False, wrap=True)
    fig1, fig2 = gr.Plot(show_label=False), gr.Plot(show_label=False, visible=False)
    u, v = gr.Number(visible=False), gr.Number(visible=False)
    return LatentSide(model, plane, decoded, note, stats, fig1, fig2, u, v)


class Adapters:
    """The view functions bound to one registry, named as the API shows their inputs."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def on_latent(self, model: str | None, projection: str, prior_samples: float, seed: float):
        out = view.run(self.registry, model, projection, prior_samples, seed)
        return (gr.Image(value=out.plane, visible=out.plane is not None), out.decoded, out.stats,
                plot(out.figure), gr.Plot(value=plot(out.second_figure),
                                          visible=out.second_figure is not None), out.note)

    def on_click(self, model: str | None, projection: str, evt: gr.SelectData):
        uv = view.click(self.registry, model, projection, *evt.index)
        return (gr.skip(), gr.skip()) if uv is None else uv

    def on_decode(self, model: str | None, projection: str, u: float, v: float,
                  prior_samples: float, seed: float):
        return unpack(view.decode(self.registry, model, projection, u, v, prior_samples, seed))

    def on_umap(self, model: str | None, compare_with: str | None,
                progress=PROGRESS) -> Iterator[str]:
        # a generator: the note says what runs before the ~40 s fit, the bar follows it
        yield from view.recompute_umap_steps(self.registry, model, compare_with,
                                             progress=lambda f, text: progress(f, desc=text))


def build_latent(registry: ModelRegistry, datasets: list[str], ds0: str, tab: gr.Tab) -> TabHandles:
    explanation(explain.LATENT)
    with gr.Row():
        dataset = gr.Radio(datasets, value=ds0, label="Data set", scale=1)
        proj = gr.Radio([("auto (2-D: z itself; else PCA)", "auto"), ("PCA (live)", "pca"),
                         ("UMAP (precomputed)", "umap")], value="auto",
                        label="Map for models with more than 2 latent dims", scale=2)
        n_prior = gr.Slider(*PRIOR_SAMPLES, value=200, step=50, label="Prior samples (black rings)", scale=1)
        seed_in = seed_box()
    with gr.Row():
        draw = gr.Button("Draw", variant="primary")
        umap_btn = gr.Button("Recompute UMAP for these models (about a minute)")
    umap_note = gr.Markdown(elem_classes="ll-note", elem_id="ll-umap-note", min_height=40)
    with gr.Row():
        with gr.Column():
            side_a = latent_side(registry, ds0, mv.LATENT_A, "Model")
        with gr.Column():
            side_b = latent_side(registry, ds0, mv.LATENT_B, "Compare with")

    a = Adapters(registry)
    on_latent, on_decode = friendly(a.on_latent), friendly(a.on_decode)
    on_umap = friendly_steps(a.on_umap)
    for suffix, side in (("", side_a), ("_b", side_b)):
        outs = [side.plane, side.decoded, side.stats, side.fig1, side.fig2, side.note]
        ins = [side.model, proj, n_prior, seed_in]
        draw.click(on_latent, ins, outs, api_name=f"latent_space{suffix}")
        side.model.change(on_latent, ins, outs, api_name=f"latent_model{suffix}",
                          api_visibility="private")
        tab.select(on_latent, ins, outs, api_name=f"latent_tab{suffix}", api_visibility="private")
        side.plane.select(friendly(a.on_click), [side.model, proj], [side.u, side.v],
                          api_name=f"latent_click{suffix}", api_visibility="private").success(
            on_decode, [side.model, proj, side.u, side.v, n_prior, seed_in],
            [side.decoded, side.plane, side.note], api_name=f"latent_decode{suffix}",
            api_visibility="public" if side is side_a else "private")
    umap_btn.click(on_umap, [side_a.model, side_b.model], [umap_note], api_name="umap_recompute",
                   show_progress="full")
    return TabHandles("latent", dataset, [(side_a.model, mv.LATENT_A), (side_b.model, mv.LATENT_B)],
                      [])
