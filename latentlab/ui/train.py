"""The Train tab's components, wired to ``latentlab.views.train``; starts nothing until a click.

The server-wide ``TrainingManager`` runs one job at a time; a ``gr.Timer`` polls its snapshot
every two seconds, so every visitor sees the running job and a refreshed page picks it up
again. The visitor who started a job keeps its stop token in ``gr.BrowserState`` (it
survives a refresh); what their page has drawn is per-user ``gr.State``.

    with gr.Blocks() as demo:
        with gr.Tab("Train"):
            build_train(registry)     # registry.refresh() runs after each saved model
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.components.plot import PlotData

from latentlab import explain, plots, zerogpu
from latentlab.jobs import JobStatus, TrainingManager, get_manager, trains_on_cpu
from latentlab.jobs.spec import BATCH_SIZES
from latentlab.jobs.spec import RANGES as R  # the same limits as the API's checks
from latentlab.views import train as view

POLL_S = 2.0


def _plot(fig: plots.Figure | None) -> PlotData | None:
    return None if fig is None else PlotData(type="plotly", plot=plots.to_json(fig))


def _poll_outputs(p: view.Poll) -> tuple:
    """A Poll as the tab's outputs; pictures the page already shows are skipped."""
    redraw = lambda key, value: value if key in p.changed else gr.skip()
    download = gr.DownloadButton(value=p.zip_path, visible=p.zip_path is not None)
    return (p.status, p.progress, redraw("curves", _plot(p.curves)), redraw("grid", p.grid),
            redraw("download", download), gr.Button(interactive=p.can_stop), p.seen)


def _settings_column(manager: TrainingManager) -> dict[str, Any]:
    """The job's settings, in the order ``view.make_spec`` takes them, and the preset."""
    preset0 = view.initial_preset()
    p0 = view.PRESETS[preset0]
    w: dict[str, Any] = {}
    w["dataset"] = gr.Radio(["mnist", "fashion"], value="mnist", label="Data set")
    w["model"] = gr.Radio(view.available_models(), value="vae", label="Model")
    w["preset"] = gr.Dropdown([*view.PRESETS, view.CUSTOM], value=preset0, label="Preset")
    w["latent"] = gr.Slider(R["latent_dim"].lo, R["latent_dim"].hi, value=16, step=1,
                            label="Latent dimension of z",
                            info=view.LATENT_INFO)
    w["beta"] = gr.Number(value=1.0, label="beta", minimum=R["beta"].lo, maximum=R["beta"].hi,
                          info="KL weight for the VAEs, commitment weight for the VQ-VAE")
    w["codes"] = gr.Slider(R["num_codes"].lo, R["num_codes"].hi, value=128, step=4,
                           label="K: number of codebook entries", visible=False)
    w["prior_epochs"] = gr.Slider(R["prior_epochs"].lo, R["prior_epochs"].hi,
                                  value=p0["prior_epochs"], step=1, label="Code-prior epochs",
                                  info="passes of p_lambda(c) over the training codes", visible=False)
    w["epochs"] = gr.Slider(R["epochs"].lo, R["epochs"].hi, value=p0["epochs"], step=1,
                            label="Epochs")
    w["subset"] = gr.Number(value=p0["subset"], precision=0, minimum=R["subset"].lo,
                            maximum=R["subset"].hi,
                            label="Training images (0 = all that are not held out for validation)")
    w["lr"] = gr.Number(value=2e-3, label="Learning rate (Adam, cosine decay)",
                        minimum=R["lr"].lo, maximum=R["lr"].hi)
    w["batch"] = gr.Dropdown(BATCH_SIZES, value=p0["batch_size"], label="Batch size")
    w["bf16"] = gr.Checkbox(False, label="bf16 autocast", visible=not trains_on_cpu())
    w["name"] = gr.Textbox(label="Checkpoint name (optional)", max_lines=1,
                           placeholder="letters, digits, - and _; a name is made up if empty")
    with gr.Accordion("Validation", open=False):
        w["val_size"] = gr.Number(value=view.VAL_SIZE, precision=0, minimum=R["val_size"].lo,
                                  maximum=R["val_size"].hi,
                                  label="Validation images (the last N training images, held out)",
                                  info="checked after every epoch; 0 = no validation")
        w["keep_best"] = gr.Checkbox(False, label="Keep the epoch with the lowest validation loss")
    # A function value is evaluated on every page load: a page opened after a run shows that
    # run's measured time, not the "nothing measured yet" of the server's start.
    initial = [w[k].value for k in SETTINGS]

    def train_note() -> str:  # its name is the load event's api_name
        return view.settings_note(manager, initial)

    w["note"] = gr.Markdown(train_note)
    return w


def _job_column() -> dict[str, Any]:
    return {
        "status": gr.Markdown(elem_id="ll-train-status", value=view.status_markdown(JobStatus(), False)),
        "progress": gr.HTML(),
        "curves": gr.Plot(label="Loss terms (mean over each few seconds)"),
        "grid": gr.Image(label="Rows: test images, reconstructions, samples from the prior "
                               "(the VQ-VAE's samples appear once its code prior is fitted)",
                         type="numpy", interactive=False),
        "download": gr.DownloadButton("Download the checkpoint (.zip)", visible=False),
    }


def build_train(registry: Any = None, manager: TrainingManager | None = None) -> None:
    """Lay out the tab inside the caller's ``gr.Tab``; starts nothing until a click.

    ``registry.refresh()`` runs after each saved model, so it appears in every picker.
    """
    with gr.Accordion("What am I looking at? (formulas)", open=False):
        gr.Markdown(explain.TRAIN, latex_delimiters=explain.LATEX)
    _build_tab(registry, manager or get_manager())


def _build_tab(registry: Any, manager: TrainingManager) -> None:
    if registry is not None:
        manager.on_saved = lambda path: registry.refresh()
    gr.Markdown("Train your own model. It appears in every tab's model picker when it is done "
                "and can be downloaded. One job runs at a time on this server; everyone sees it.")
    with gr.Row():
        with gr.Column(scale=1):
            w = _settings_column(manager)
        with gr.Column(scale=2):
            # Start and Stop head the job's column: the status they change is right below
            # them, not a screen away under the settings.
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="ll-train-start")
                stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="ll-train-stop")
            w.update(_job_column())
            w["start"], w["stop"] = start, stop
    _wire(w, manager)


SETTINGS = ("dataset", "model", "latent", "beta", "codes", "prior_epochs", "epochs", "subset", "lr",
            "batch", "bf16", "name", "val_size", "keep_best")  # view.make_spec's order


def _wire(w: dict[str, Any], manager: TrainingManager) -> None:
    token = gr.BrowserState("", storage_key="latentlab-train-token")
    seen = gr.State({})
    _wire_job(w, manager, token, seen)
    _wire_settings(w, manager)


def _wire_job(w: dict[str, Any], manager: TrainingManager, token: gr.BrowserState,
              seen: gr.State) -> None:
    """Start, stop and the timer's poll (no queue limit: they only talk to the manager)."""
    def on_start(tok: str, dataset: str, model: str, latent_dim: float, beta: float | None,
                 num_codes: float, prior_epochs: float, epochs: float, subset: float, lr: float,
                 batch_size: float, bf16: bool, name: str, val_size: float, keep_best: bool,
                 request: gr.Request) -> tuple[str, str]:
        values = [dataset, model, latent_dim, beta, num_codes, prior_epochs, epochs, subset, lr,
                  batch_size, bf16, name, val_size, keep_best]
        return view.start_job(manager, tok, values, run_in=zerogpu.keep_request(request))

    def on_stop(tok: str) -> str:
        return view.stop_job(manager, tok)

    def on_tick(tok: str, seen_: dict) -> tuple:
        return _poll_outputs(view.poll_job(manager, tok, seen_))

    w["start"].click(on_start, [token, *(w[k] for k in SETTINGS)], [token, w["status"]],
                     api_name="train_start", concurrency_limit=None)
    w["stop"].click(on_stop, [token], [w["status"]], api_name="train_stop", concurrency_limit=None)
    shown = [w[k] for k in ("status", "progress", "curves", "grid", "download", "stop")]
    gr.Timer(POLL_S).tick(on_tick, [token, seen], [*shown, seen], api_name="train_poll",
                          concurrency_limit=None, show_progress="hidden")


def _wire_settings(w: dict[str, Any], manager: TrainingManager) -> None:
    """Presets, the model's own options, and the note that re-estimates the run's time."""
    def on_settings(*values: Any) -> str:
        return view.settings_note(manager, list(values))

    def on_preset(choice: str) -> tuple:
        values = view.preset_values(choice)
        return values if values is not None else (gr.skip(),) * 4

    def on_model(kind: str) -> tuple:
        o = view.model_options(kind)
        return (gr.Slider(visible=o.vq), gr.Slider(visible=o.vq), o.beta,
                gr.Slider(label=o.latent_label, info=o.latent_info))

    def to_custom() -> str:  # a hand-edited epoch count or size is no longer the preset
        return view.CUSTOM

    w["preset"].change(on_preset, [w["preset"]], [w["epochs"], w["subset"], w["batch"],
                                                  w["prior_epochs"]], api_name="train_preset")
    w["model"].change(on_model, [w["model"]], [w["codes"], w["prior_epochs"], w["beta"], w["latent"]],
                      api_name="train_model")
    gr.on([w[k].change for k in ("dataset", "model", "epochs", "subset", "batch", "val_size")],
          on_settings, [w[k] for k in SETTINGS], [w["note"]], api_name="train_estimate",
          show_progress="hidden")
    gr.on([w[k].input for k in ("epochs", "subset", "batch", "prior_epochs")], to_custom, None,
          [w["preset"]], api_name="train_custom", show_progress="hidden")
