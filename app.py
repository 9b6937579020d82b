"""Latent Lab: an interactive tour of VAE, flow-prior VAE and VQ-VAE latent spaces.

    python app.py                       # http://127.0.0.1:7860
    python app.py --host 0.0.0.0 --port 8080
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 python app.py   # as on Spaces

Importing this module builds ``demo`` (models load lazily on first use) and starts nothing.
This file only lays out the tabs and wires them together: each tab's components live in
``latentlab.ui.<tab>``, its behaviour in ``latentlab.views.<tab>`` (plain functions the tests
and benchmarks call). Every event has an explicit ``api_name`` so the app works from
``gradio_client``.
"""

from __future__ import annotations

import os

# Numpy's BLAS would start one thread per core for every small matrix product; on a shared
# 2-core Space they only fight each other (set before numpy is first imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Gradio's queue rebuilds a pandas table of its last 10,000 events after EVERY event for its
# monitoring summary (5 % of the server's CPU under a class, growing with the run); every
# 100th event is plenty (read when demo.queue() builds the queue).
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "100")

import argparse
import importlib
from typing import Any

import gradio as gr
import torch

from latentlab import (
    explain,
    settings,
    warmup,
    zerogpu,  # noqa: F401  (imports `spaces` before anything initializes CUDA, for ZeroGPU)
)
from latentlab.preprocess import MAX_FILE_BYTES
from latentlab.registry import ModelRegistry
from latentlab.ui.code_grid import CodeGridHandles, build_code_grid
from latentlab.ui.common import CSS, THEME, friendly
from latentlab.ui.interpolate import build_interpolate
from latentlab.ui.latent import build_latent
from latentlab.ui.links import wire_links
from latentlab.ui.models import (
    build_models_panel,
    picker_refresh,
    wire_dataset,
    wire_model_watch,
    wire_models_panel,
)
from latentlab.ui.presenter import PRESENTER_CSS, PRESENTER_JS, build_header
from latentlab.ui.reconstruct import ReconstructHandles, build_reconstruct
from latentlab.ui.sample import build_sample
from latentlab.views import code_grid as code_view

# One torch thread per request: two requests then share the Space's two cores instead of
# fighting over them, and small single-image ops are faster without thread hand-offs.
torch.set_num_threads(settings.current().threads)

TAB_IDS = ("reconstruct", "sample", "interpolate", "codegrid", "latent", "train", "lecture")


# ----------------------------------------------------------------------------- optional tabs

def optional(module: str, name: str) -> Any:
    """``module.name`` if that module exists, else None (its tab is then omitted)."""
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


def build_train(registry: ModelRegistry) -> None:
    """The Train tab, written separately (its formulas included); the rest of the app works
    without it."""
    try:
        from latentlab.ui.train import build_train as build
    except ImportError as exc:
        gr.Markdown(f"The Train tab is not available in this build ({exc}).")
        return
    build(registry)


# ----------------------------------------------------------------------------- cross-tab wiring

def wire_open_in_code_grid(registry: ModelRegistry, tabs: gr.Tabs, rec: ReconstructHandles,
                           code: CodeGridHandles) -> None:
    """Reconstruct's VQ-VAE grid -> the Code grid tab, with its data set and model."""
    @friendly
    def open_in_code_grid(state: dict | None) -> tuple:
        out = code_view.open_reconstruction(registry, state)
        return gr.Tabs(selected="codegrid"), out.dataset, gr.Dropdown(
            choices=out.choices, value=out.model), out.grid

    rec.open_button.click(open_in_code_grid, [rec.vq_state],
                          [tabs, code.dataset, code.model, code.grid],
                          api_name="open_in_code_grid", api_visibility="private")


# Long actions (a UMAP recompute runs ~40 s, a region regeneration scores up to 49 cells x
# 32 candidates) take turns on one worker, so a class clicking them leaves the second core
# to everyone's quick actions (each of those keeps its own queue of 2 workers).
HEAVY_EVENTS = ("umap_recompute", "code_regenerate")
HEAVY_ID = "heavy"
# What a whole class clicks shares two workers, one per core: with a queue of two workers per
# event, eight computations fought over two cores (and the GIL) while the event loop waited
# to serve uploads and results. Under 100 students (benchmarks/bench_load.py, same seeds)
# p95 went from 1.7-2.4 s to 0.6 s and the server's CPU per request from 53 to 43 ms.
CLASS_EVENTS = ("reconstruct", "sample", "interpolate", "code_sample_learned", "levels_sample",
                "levels_redraw_bottom", "levels_top_edit", "levels_same_top")
CLASS_ID, CLASS_WORKERS = "class", 2


def limit_heavy(demo: gr.Blocks) -> None:
    """Put the HEAVY_EVENTS into one concurrency group of limit 1 and the CLASS_EVENTS into
    one of CLASS_WORKERS (Gradio makes the groups when the first event of each is queued,
    so setting them after wiring is enough)."""
    for fn in demo.fns.values():
        if fn.api_name in HEAVY_EVENTS:
            fn.concurrency_id, fn.concurrency_limit = HEAVY_ID, 1
        elif fn.api_name in CLASS_EVENTS:
            fn.concurrency_id, fn.concurrency_limit = CLASS_ID, CLASS_WORKERS


def build_tabs(registry: ModelRegistry, datasets: list[str]) -> tuple[gr.Tabs, list]:
    """Every tab in order; returns the Tabs and each tab's handles (Train and Lecture have
    none: they are wired inside their own builders)."""
    ds0 = datasets[0]
    build_lecture = optional("latentlab.ui.lecture", "build_lecture")
    with gr.Tabs() as tabs:
        with gr.Tab("Reconstruct", id="reconstruct"):
            rec = build_reconstruct(registry, datasets, ds0)
        with gr.Tab("Sample", id="sample") as tab:
            sample = build_sample(registry, datasets, ds0, tab)
        with gr.Tab("Interpolate", id="interpolate") as tab:
            interp = build_interpolate(registry, datasets, ds0, tab)
        with gr.Tab("Code grid", id="codegrid") as tab:
            code = build_code_grid(registry, datasets, ds0, tab)
        with gr.Tab("Latent space", id="latent") as tab:
            latent = build_latent(registry, datasets, ds0, tab)
        with gr.Tab("Train", id="train"):
            build_train(registry)
        if build_lecture is not None:
            with gr.Tab("Lecture", id="lecture"):
                build_lecture(registry)
    return tabs, [rec, sample, interp, code, latent]


def build_demo(registry: ModelRegistry) -> gr.Blocks:
    """Lay out the whole app around one registry (tests pass one with tiny checkpoints)."""
    datasets = registry.datasets() or ["mnist", "fashion"]
    with gr.Blocks(title="Latent Lab", delete_cache=(1800, 3600)) as demo:
        header = build_header(explain.INTRO)
        panel = build_models_panel(registry)
        tabs, handles = build_tabs(registry, datasets)
        rec, code = handles[0], handles[3]

        # -- pickers follow the data set; ↻ picks up new checkpoints ---------------------
        for tab in handles:
            event = wire_dataset(registry, tab)
            if tab is rec:  # Reconstruct shows the new data set's example reconstructed
                event.then(rec.action.fn, rec.action.inputs, rec.action.outputs,
                           api_name="dataset_reconstruct", api_visibility="private")
        refresh = picker_refresh(registry, handles)
        list_models = wire_models_panel(registry, panel, refresh)
        wire_model_watch(registry, panel, refresh)  # models trained since reach open pages

        # A fresh page opens the view its link names (``/?tab=latent&dataset=fashion``), sees
        # checkpoints trained since the server started, and shows a finished example.
        fill, select = wire_links(registry, demo, datasets, header, tabs, handles)
        demo.load(fill.fn, fill.inputs, fill.outputs, api_name="page_load_link",
                  api_visibility="private", show_progress="hidden").then(
            select.fn, select.inputs, select.outputs, api_name="page_load_tab",
            api_visibility="private", show_progress="hidden").then(
            list_models, None, [panel.status, panel.table], api_name="page_load",
            api_visibility="private", show_progress="hidden").then(
            refresh.fn, refresh.inputs, refresh.outputs, api_name="page_load_pickers",
            api_visibility="private", show_progress="hidden").then(
            rec.action.fn, rec.action.inputs, rec.action.outputs,
            api_name="page_load_reconstruct", api_visibility="private")
        wire_open_in_code_grid(registry, tabs, rec, code)
    limit_heavy(demo)
    demo.queue(default_concurrency_limit=2)
    return demo


# ----------------------------------------------------------------------------- serving

def launch_kwargs() -> dict:
    """Arguments ``launch`` needs besides host and port (Gradio 6 takes theme/css here)."""
    return {"theme": THEME, "css": CSS + PRESENTER_CSS, "js": PRESENTER_JS,
            "max_file_size": MAX_FILE_BYTES, "show_error": True}


def make_registry() -> ModelRegistry:
    """The shipped checkpoints plus the models trained in the app."""
    s = settings.current()
    return ModelRegistry(s.checkpoints, extra_roots=[s.user_checkpoint_dir])


REGISTRY = make_registry()
demo = build_demo(REGISTRY)


def main(argv: list[str] | None = None) -> None:
    s = settings.current()
    p = argparse.ArgumentParser(description="Serve Latent Lab.")
    p.add_argument("--host", default=s.host)
    p.add_argument("--port", type=int, default=s.port)
    args = p.parse_args(argv)
    if s.warm_up:  # models load and kernels build before the first student clicks
        warmup.start(REGISTRY, REGISTRY.datasets()[:1])  # the landing page's data set
    demo.launch(server_name=args.host, server_port=args.port, **launch_kwargs())


if __name__ == "__main__":
    main()
