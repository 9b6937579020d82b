"""The models accordion (status, table, ↻), data-set switches and picker refreshes, wired to
``latentlab.views.models`` and ``latentlab.views.examples``.

``wire_model_watch`` adds a timer to every open page: every ``WATCH_S`` seconds it rescans the
checkpoint folders and updates the pickers, status and table only if the listing changed, so a
model trained in the Train tab (or one removed to make room) reaches pages already open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr

from latentlab.registry import ModelRegistry
from latentlab.ui.common import TabHandles, dropdown, unpack
from latentlab.views import examples
from latentlab.views import models as view

WATCH_S = 45.0   # a new model shows up within this; a tick that finds no change sends nothing


@dataclass
class ModelsPanel:
    status: gr.Markdown
    table: gr.Dataframe
    refresh: gr.Button


def build_models_panel(registry: ModelRegistry) -> ModelsPanel:
    with gr.Row():
        status = gr.Markdown(view.status(registry))
    with gr.Accordion("Models on this server", open=False):
        table = gr.Dataframe(value=view.models_table(registry), interactive=False)
        refresh = gr.Button("↻ Rescan checkpoints/", size="sm")
    return ModelsPanel(status, table, refresh)


def wire_dataset(registry: ModelRegistry, tab: TabHandles) -> gr.events.Dependency:
    """The tab's data-set radio -> its pickers, example galleries and first inputs."""
    specs = [spec for _, spec in tab.pickers]
    firsts = [p.example or 0 for p in tab.panels]

    def on_dataset(dataset: str) -> list:
        out = examples.switch_dataset(registry, dataset, specs, firsts)
        return [*map(dropdown, out.pickers), *[gr.Gallery(value=g) for g in out.galleries],
                *out.seen]

    outputs = [dd for dd, _ in tab.pickers] + [p.gallery for p in tab.panels] + \
        [p.seen for p in tab.panels]
    return tab.dataset.input(on_dataset, [tab.dataset], outputs, api_name=f"dataset_{tab.key}",
                             api_visibility="private")


@dataclass
class PickerRefresh:
    """Every picker of the app with its data-set radio: new checkpoints show up in all."""

    fn: Callable[..., list]
    inputs: list
    outputs: list
    specs: list = field(default_factory=list)   # each output's PickerSpec


def picker_refresh(registry: ModelRegistry, tabs: list[TabHandles]) -> PickerRefresh:
    pairs = [(t.dataset, dd, spec) for t in tabs for dd, spec in t.pickers]
    specs = [spec for _, _, spec in pairs]

    def update_pickers(*datasets: str) -> list:
        return [dropdown(view.picker(registry, ds, spec), set_value=False)
                for ds, spec in zip(datasets, specs)]

    return PickerRefresh(update_pickers, [r for r, _, _ in pairs], [dd for _, dd, _ in pairs],
                         specs)


def wire_models_panel(registry: ModelRegistry, panel: ModelsPanel, refresh: PickerRefresh
                      ) -> Callable[[], tuple]:
    """↻ -> rescan, status and table, then every picker; returns the listing adapter (the
    page load runs it too)."""
    def list_models() -> tuple:
        return unpack(view.run(registry))

    panel.refresh.click(list_models, None, [panel.status, panel.table],
                        api_name="list_models").then(
        refresh.fn, refresh.inputs, refresh.outputs, api_name="refresh_pickers",
        api_visibility="private")
    return list_models


def model_watcher(registry: ModelRegistry, refresh: PickerRefresh) -> Callable[..., list]:
    """The timer's function: (seen version, each picker's data set) -> [version, status, table,
    *pickers], every component skipped when nothing changed."""
    def watch_models(seen: str, *datasets: str) -> list:
        w = view.watch(registry, seen, datasets, refresh.specs)
        if not w.changed:
            return [seen, *[gr.skip()] * (2 + len(refresh.outputs))]
        return [w.version, w.status, w.table,
                *(dropdown(p, set_value=False) for p in w.pickers)]

    return watch_models


def wire_model_watch(registry: ModelRegistry, panel: ModelsPanel, refresh: PickerRefresh
                     ) -> gr.Timer:
    """Every open page rescans every ``WATCH_S`` s and takes new pickers only on a change."""
    seen = gr.State(view.listing_version(registry))
    timer = gr.Timer(WATCH_S)
    timer.tick(model_watcher(registry, refresh), [seen, *refresh.inputs],
               [seen, panel.status, panel.table, *refresh.outputs], api_name="watch_models",
               api_visibility="private", show_progress="hidden", concurrency_limit=None)
    return timer
