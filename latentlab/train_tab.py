"""The Train tab: pick a data set, a model and a few settings, watch it train, keep it.

The tab owns no training state. The server-wide ``TrainingManager`` (``latentlab.jobs``)
runs one job at a time; a ``gr.Timer`` polls its snapshot every two seconds, so every
visitor sees the running job and a refreshed page picks it up again. The visitor who
started a job keeps its stop token in ``gr.BrowserState`` (it survives a refresh); the
versions of the curves and the picture already drawn are per-user ``gr.State``.

    with gr.Blocks() as demo:
        with gr.Tab("Train"):
            build_train_tab(registry)     # registry.refresh() runs after each saved model
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from latentlab import zerogpu
from latentlab.jobs import (
    CPU_PRESET,
    GPU_PRESET,
    KIND_LABELS,
    PRESETS,
    JobBusyError,
    JobSpec,
    JobStatus,
    TrainingManager,
    format_seconds,
    get_manager,
    on_zerogpu,
    server_device,
    training_enabled,
    trains_on_cpu,
)
from models import MODEL_KINDS

CUSTOM = "Custom"
POLL_S = 2.0
# Curve panels per model, titled in the lecture notation.
TERMS = {
    "vae": [("rec_nll", "reconstruction -log p_theta(x|z)"), ("kl", "KL(q_phi(z|x) || p(z))"),
            ("loss", "loss = rec + beta KL")],
    "vqvae": [("recon", "reconstruction (MSE)"), ("commitment", "commitment ||z_e - sg[e]||^2"),
              ("codebook", "codebook ||sg[z_e] - e||^2"), ("perplexity", "code perplexity")],
}
TERMS["flow"] = TERMS["vae"]
DEFAULT_BETA = {"vae": 1.0, "flow": 1.0, "vqvae": 0.25}


# ----------------------------------------------------------------------------- helpers

def available_models() -> list[tuple[str, str]]:
    """(label, key) for the model radio; the VQ-VAE only when its module is present."""
    return [(label, key) for key, label in KIND_LABELS.items()
            if key != "vqvae" or "vqvae" in MODEL_KINDS]


def make_spec(dataset: str, model: str, latent_dim: float, beta: float | None,
              num_codes: float, prior_epochs: float, epochs: float, subset: float,
              lr: float, batch_size: float, bf16: bool, name: str) -> JobSpec:
    """The widgets' values as a JobSpec (raises ValueError with a readable message)."""
    def whole(label: str, value: Any, lo: int) -> int:
        if value is None or float(value) != int(float(value)) or int(float(value)) < lo:
            raise ValueError(f"{label} must be a whole number >= {lo}, got {value!r}")
        return int(float(value))

    if lr is None or not float(lr) > 0:
        raise ValueError(f"the learning rate must be > 0, got {lr!r}")
    return JobSpec(dataset=dataset, model=model, latent_dim=whole("latent dimension", latent_dim, 1),
                   beta=None if beta is None else float(beta),
                   num_codes=whole("K", num_codes, 2),
                   prior_epochs=whole("code-prior epochs", prior_epochs, 0) if model == "vqvae" else None,
                   epochs=whole("epochs", epochs, 1), subset=whole("training images", subset, 0),
                   lr=float(lr), batch_size=whole("batch size", batch_size, 1), bf16=bool(bf16),
                   name=name or "")


def device_note(manager: TrainingManager, spec: JobSpec | None) -> str:
    """Where training runs and, on a CPU, an honest word about time."""
    if not training_enabled():
        return "**Training is switched off on this server**; the other tabs work as usual."
    if on_zerogpu():
        return (f"Training runs on **ZeroGPU**: the GPU is lent in calls of about "
                f"{zerogpu.call_seconds()} s, each training the epochs that fit; between calls "
                "the state waits on the CPU. The time counts against your ZeroGPU quota.")
    if not trains_on_cpu():
        return f"Training runs on **{server_device()}**."
    text = (f"**Training runs on this server's CPU** ({server_device()}), shared with everyone "
            "using the app. Keep runs small: the CPU presets take minutes; all 60,000 images "
            "for many epochs would take hours.")
    seconds = manager.estimate_seconds(spec) if spec is not None else None
    if seconds is not None:
        text += f" Measured on this server, this run needs about **{format_seconds(seconds)}**."
    else:
        text += (" No run has been measured here yet; the bar below shows an estimate "
                 "measured from your run's own steps once it starts.")
    return text


def progress_html(s: JobStatus) -> str:
    """A bar plus one line: epoch, steps, elapsed, and the measured time left."""
    if s.job_id == 0:
        return ""
    pct = 100.0 * (1.0 if s.phase == "done" else s.fraction)
    parts = [f"epoch {min(s.epochs_done + (1 if s.running else 0), s.epochs)} of {s.epochs}",
             f"step {s.step:,} of {s.total_steps:,} ({pct:.0f}%)",
             f"{format_seconds(s.elapsed_s)} elapsed"]
    if s.eta_s is not None:
        parts.append(f"about {format_seconds(s.eta_s)} left ({s.eta_note})")
    elif s.phase == "training":
        parts.append("measuring the speed")
    elif s.running and s.eta_note:
        parts.append(s.eta_note)
    return ('<div style="border:1px solid var(--border-color-primary);border-radius:6px;'
            'height:16px;overflow:hidden"><div style="height:100%;width:'
            f'{pct:.1f}%;background:var(--color-accent)"></div></div>'
            f'<p style="margin:4px 0">{" · ".join(parts)}</p>')


def loss_figure(s: JobStatus):
    """One small panel per loss term against (fractional) epochs."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    terms = [(k, t) for k, t in TERMS.get(s.model, []) if s.curve and k in s.curve[0]]
    if not terms:
        return None
    fig = make_subplots(rows=1, cols=len(terms), subplot_titles=[t for _, t in terms])
    x = [p["epoch"] for p in s.curve]
    for i, (key, title) in enumerate(terms, start=1):
        fig.add_trace(go.Scatter(x=x, y=[p[key] for p in s.curve], mode="lines", name=title,
                                 showlegend=False), row=1, col=i)
        fig.update_xaxes(title_text="epoch", row=1, col=i)
    fig.update_layout(height=260, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      template="plotly_white")
    fig.update_annotations(font_size=11)
    return fig


def status_markdown(s: JobStatus, owner: bool) -> str:
    if s.job_id == 0:
        return "No job yet. Choose the settings and press **Start training**."
    who = "You started this job." if owner else "Someone else started this job."
    head = f"**{s.summary}** on {s.device}. {who}" if s.summary else ""
    lines = [head, s.message if not s.running else f"Status: {s.phase}. {s.message}"]
    if s.metrics and not s.running:
        numbers = {k: v for k, v in s.metrics.items() if k.startswith("test_") and isinstance(v, float)}
        if numbers:
            lines.append("Test set: " + ", ".join(f"{k} = {v:g}" for k, v in numbers.items()))
    return "\n\n".join(x for x in lines if x)


# ----------------------------------------------------------------------------- handlers

def start_job(manager: TrainingManager, token: str, values: list, request: Any = None
              ) -> tuple[str, str]:
    """Start a job from the widget values; returns (the visitor's token, message)."""
    try:
        spec = make_spec(*values)
        new_token = manager.start(spec, run_in=zerogpu.keep_request(request))
    except JobBusyError as exc:
        return token, str(exc)
    except ValueError as exc:
        return token, f"Cannot start: {exc}"
    return new_token, f"Started: {spec.summary()}."


def stop_job(manager: TrainingManager, token: str) -> str:
    return manager.stop(token)


def poll_job(manager: TrainingManager, token: str, seen: dict) -> tuple:
    """Everything the tab shows about the job; unchanged pictures are skipped (gr.skip)."""
    s = manager.status()
    owner = manager.owns(token)
    seen = dict(seen or {})
    fig, grid, download = gr.skip(), gr.skip(), gr.skip()
    if seen.get("curve") != (s.job_id, s.curve_version):
        seen["curve"] = (s.job_id, s.curve_version)
        fig = loss_figure(s)
    if seen.get("grid") != (s.job_id, s.grid_version):
        seen["grid"] = (s.job_id, s.grid_version)
        grid = s.grid if isinstance(s.grid, np.ndarray) else None
    if seen.get("zip") != (s.job_id, s.zip_path):
        seen["zip"] = (s.job_id, s.zip_path)
        download = gr.DownloadButton(value=s.zip_path, visible=s.zip_path is not None)
    stop = gr.Button(interactive=owner and s.running)
    return status_markdown(s, owner), progress_html(s), fig, grid, download, stop, seen


def preset_values(preset: str) -> tuple:
    """Epochs, images, batch size and code-prior epochs; 'Custom' leaves them as they are."""
    p = PRESETS.get(preset)
    if p is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return p["epochs"], p["subset"], p["batch_size"], p["prior_epochs"]


def model_options(model: str) -> tuple:
    """Show the VQ-VAE's K and code-prior epochs only for it; reset beta to its default."""
    vq = model == "vqvae"
    return (gr.Slider(visible=vq), gr.Slider(visible=vq), DEFAULT_BETA.get(model, 1.0),
            gr.Slider(label="Code size D of each e_k" if vq else "Latent dimension of z"))


# ----------------------------------------------------------------------------- the tab

def build_train_tab(registry: Any = None, manager: TrainingManager | None = None) -> None:
    """Lay out the tab inside the caller's ``gr.Tab``; starts nothing until a click."""
    manager = manager or get_manager()
    if registry is not None:
        manager.on_saved = lambda path: registry.refresh()
    preset0 = CPU_PRESET if trains_on_cpu() else GPU_PRESET
    p0 = PRESETS[preset0]

    gr.Markdown("Train your own model. It appears in every tab's model picker when it is done "
                "and can be downloaded. One job runs at a time on this server; everyone sees it.")
    with gr.Row():
        with gr.Column(scale=1):
            dataset = gr.Radio(["mnist", "fashion"], value="mnist", label="Data set")
            model = gr.Radio(available_models(), value="vae", label="Model")
            preset = gr.Dropdown([*PRESETS, CUSTOM], value=preset0, label="Preset")
            latent = gr.Slider(1, 64, value=16, step=1, label="Latent dimension of z",
                               info="2 lets you draw the latent plane")
            beta = gr.Number(value=1.0, label="beta",
                             info="KL weight for the VAEs, commitment weight for the VQ-VAE")
            codes = gr.Slider(4, 512, value=128, step=4, label="K: number of codebook entries",
                              visible=False)
            prior_epochs = gr.Slider(0, 30, value=p0["prior_epochs"], step=1, label="Code-prior epochs",
                                     info="passes of p_lambda(c) over the training codes",
                                     visible=False)
            epochs = gr.Slider(1, 100, value=p0["epochs"], step=1, label="Epochs")
            subset = gr.Number(value=p0["subset"], precision=0,
                               label="Training images (0 = all 60,000)")
            lr = gr.Number(value=2e-3, label="Learning rate (Adam, cosine decay)")
            batch = gr.Dropdown([32, 64, 128, 256, 512], value=p0["batch_size"], label="Batch size")
            bf16 = gr.Checkbox(False, label="bf16 autocast", visible=not trains_on_cpu())
            name = gr.Textbox(label="Checkpoint name (optional)", max_lines=1,
                              placeholder="letters, digits, - and _; a name is made up if empty")
            note = gr.Markdown(device_note(manager, None))
            with gr.Row():
                start = gr.Button("Start training", variant="primary")
                stop = gr.Button("Stop", variant="stop", interactive=False)
        with gr.Column(scale=2):
            status = gr.Markdown(status_markdown(JobStatus(), False))
            progress = gr.HTML()
            curves = gr.Plot(label="Loss terms (mean over each few seconds)")
            grid = gr.Image(label="Rows: test images, reconstructions, samples from the prior "
                                  "(the VQ-VAE's samples appear once its code prior is fitted)",
                            type="numpy", interactive=False)
            download = gr.DownloadButton("Download the checkpoint (.zip)", visible=False)
    token = gr.BrowserState("", storage_key="latentlab-train-token")
    seen = gr.State({})
    timer = gr.Timer(POLL_S)
    settings = [dataset, model, latent, beta, codes, prior_epochs, epochs, subset, lr, batch,
                bf16, name]

    def on_start(tok: str, dataset: str, model: str, latent_dim: float, beta: float | None,
                 num_codes: float, prior_epochs: float, epochs: float, subset: float, lr: float,
                 batch_size: float, bf16: bool, name: str, request: gr.Request) -> tuple[str, str]:
        values = [dataset, model, latent_dim, beta, num_codes, prior_epochs, epochs, subset, lr,
                  batch_size, bf16, name]
        return start_job(manager, tok, values, request)

    def on_stop(tok: str) -> str:
        return stop_job(manager, tok)

    def on_tick(tok: str, seen_: dict) -> tuple:
        return poll_job(manager, tok, seen_)

    def on_settings(*values: Any) -> str:
        try:
            return device_note(manager, make_spec(*values))
        except ValueError as exc:
            return f"{device_note(manager, None)}\n\nCheck the settings: {exc}"

    def on_preset(choice: str) -> tuple:
        return preset_values(choice)

    def on_model(kind: str) -> tuple:
        return model_options(kind)

    def to_custom() -> str:  # a hand-edited epoch count or size is no longer the preset
        return CUSTOM

    start.click(on_start, [token, *settings], [token, status], api_name="train_start",
                concurrency_limit=None)
    stop.click(on_stop, [token], [status], api_name="train_stop", concurrency_limit=None)
    timer.tick(on_tick, [token, seen], [status, progress, curves, grid, download, stop, seen],
               api_name="train_poll", concurrency_limit=None, show_progress="hidden")
    preset.change(on_preset, [preset], [epochs, subset, batch, prior_epochs], api_name="train_preset")
    model.change(on_model, [model], [codes, prior_epochs, beta, latent], api_name="train_model")
    gr.on([w.change for w in (dataset, model, epochs, subset, batch)], on_settings, settings,
          [note], api_name="train_estimate", show_progress="hidden")
    gr.on([w.input for w in (epochs, subset, batch, prior_epochs)], to_custom, None, [preset],
          api_name="train_custom", show_progress="hidden")
