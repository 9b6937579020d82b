"""The models accordion (status, table, ↻), data-set switches and picker refreshes, wired to
``latentlab.views.models`` and ``latentlab.views.examples``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from latentlab.registry import ModelRegistry
from latentlab.ui.common import TabHandles, dropdown, unpack
from latentlab.views import examples
from latentlab.views import models as view


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


def picker_refresh(registry: ModelRegistry, tabs: list[TabHandles]) -> PickerRefresh:
    pairs = [(t.dataset, dd, spec) for t in tabs for dd, spec in t.pickers]
    specs = [spec for _, _, spec in pairs]

    def update_pickers(*datasets: str) -> list:
        return [dropdown(view.picker(registry, ds, spec), set_value=False)
                for ds, spec in zip(datasets, specs)]

    return PickerRefresh(update_pickers, [r for r, _, _ in pairs], [dd for _, dd, _ in pairs])


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
