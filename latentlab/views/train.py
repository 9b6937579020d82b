"""Train tab: the widgets' values as a job, and what the tab shows about the running job.

Plain functions of the server-wide ``TrainingManager`` (``latentlab.jobs``) and the widget
values; ``latentlab.ui.train`` binds them to components. The tab owns no training state: it
starts a job, then polls the manager's snapshot, so every visitor sees the running job.

>>> preset_values(CPU_PRESET), preset_values(CUSTOM)
((1, 5000, 128, 2), None)
>>> model_options("vqvae")
ModelOptions(vq=True, beta=0.25, latent_label='Code size D of each e_k', latent_info='length of each codebook vector e_k (the grid stays 7x7)')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentlab import data, plots, zerogpu
from latentlab.errors import BusyError, InputError, UserError
from latentlab.jobs import (
    KIND_LABELS,
    JobSpec,
    JobStatus,
    TrainingManager,
    format_seconds,
    on_zerogpu,
    server_device,
    training_enabled,
    trains_on_cpu,
)
from latentlab.train import TrainConfig
from models import MODEL_KINDS

CUSTOM = "Custom"
# Presets. Measured on a 2-core CPU shared with other training (load ~4): "CPU quick" took
# 42 s for the VAE (13 s training, 19 s evaluation) and, with 10 code-prior epochs, 4 min
# for the VQ-VAE (prior 183 s), hence fewer prior epochs on the CPU presets.
PRESETS: dict[str, dict] = {
    "CPU quick: 1 epoch on 5,000 images":
        {"epochs": 1, "subset": 5000, "batch_size": 128, "prior_epochs": 2},
    "CPU longer: 3 epochs on 10,000 images":
        {"epochs": 3, "subset": 10000, "batch_size": 128, "prior_epochs": 4},
    "GPU full: 20 epochs on all 50,000 training images":
        {"epochs": 20, "subset": 0, "batch_size": 128, "prior_epochs": 10},
}
CPU_PRESET, _, GPU_PRESET = PRESETS
# Curve panels per model, titled in the lecture notation.
TERMS = {
    # two short lines each: side by side on a phone, one-line titles ran into each other
    "vae": [("rec_nll", "reconstruction<br>-log p_θ(x|z)"), ("kl", "KL<br>q_φ(z|x) || p(z)"),
            ("loss", "loss<br>rec + β KL")],
    "vqvae": [("recon", "reconstruction<br>(MSE)"), ("commitment", "commitment<br>||z_e - sg[e]||²"),
              ("codebook", "codebook<br>||sg[z_e] - e||²"), ("perplexity", "code<br>perplexity")],
}
TERMS["flow"] = TERMS["vae"]
DEFAULT_BETA = {"vae": 1.0, "flow": 1.0, "vqvae": 0.25}
VAL_SIZE = TrainConfig.val_size
LATENT_INFO = "2 lets you draw the latent plane"


# ----------------------------------------------------------------------------- settings

def available_models() -> list[tuple[str, str]]:
    """(label, key) for the model radio; the VQ-VAE only when its module is present."""
    return [(label, key) for key, label in KIND_LABELS.items()
            if key != "vqvae" or "vqvae" in MODEL_KINDS]


def _whole(label: str, value: Any, lo: int) -> int:
    """A widget's number as a whole number >= lo, or an InputError naming the widget."""
    try:
        number = float(value)
        ok = number == int(number) and int(number) >= lo
    except (TypeError, ValueError, OverflowError):  # None, text, nan, inf
        ok = False
    if not ok:
        raise InputError(f"{label} must be a whole number >= {lo}, got {value!r}")
    return int(number)


def _number(label: str, value: Any, strict: bool = True) -> float:
    """A widget's number as a finite float > 0 (>= 0 when not strict), or an InputError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not ((number > 0 if strict else number >= 0) and number < float("inf")):
        raise InputError(f"{label} must be {'>' if strict else '>='} 0, got {value!r}")
    return number


def make_spec(dataset: str, model: str, latent_dim: float, beta: float | None,
              num_codes: float, prior_epochs: float, epochs: float, subset: float,
              lr: float, batch_size: float, bf16: bool, name: str,
              val_size: float = VAL_SIZE, keep_best: bool = False) -> JobSpec:
    """The widgets' values as a JobSpec (raises InputError with a readable message)."""
    return JobSpec(
        dataset=dataset, model=model, latent_dim=_whole("latent dimension", latent_dim, 1),
        beta=None if beta is None else _number("beta", beta, strict=False),
        num_codes=_whole("K", num_codes, 2),
        prior_epochs=_whole("code-prior epochs", prior_epochs, 0) if model == "vqvae" else None,
        epochs=_whole("epochs", epochs, 1), subset=_whole("training images", subset, 0),
        lr=_number("the learning rate", lr), batch_size=_whole("batch size", batch_size, 1),
        bf16=bool(bf16), val_size=_whole("validation images", val_size, 0),
        keep_best=bool(keep_best), name=name or "")


def preset_values(preset: str) -> tuple[int, int, int, int] | None:
    """Epochs, images, batch size and code-prior epochs; None ('Custom'): leave them as they are."""
    p = PRESETS.get(preset)
    return None if p is None else (p["epochs"], p["subset"], p["batch_size"], p["prior_epochs"])


@dataclass(frozen=True)
class ModelOptions:
    """What the settings show for a model: the VQ-VAE's K and prior epochs, beta, the z label."""

    vq: bool
    beta: float
    latent_label: str
    latent_info: str


def model_options(model: str) -> ModelOptions:
    """Show the VQ-VAE's K and code-prior epochs only for it; reset beta to its default."""
    vq = model == "vqvae"
    if vq:  # the VQ-VAE's latent is a 7x7 grid of codes whatever D is: no plane to draw
        return ModelOptions(True, DEFAULT_BETA["vqvae"], "Code size D of each e_k",
                            "length of each codebook vector e_k (the grid stays 7x7)")
    return ModelOptions(False, DEFAULT_BETA.get(model, 1.0), "Latent dimension of z", LATENT_INFO)


def initial_preset() -> str:
    return CPU_PRESET if trains_on_cpu() else GPU_PRESET


# ----------------------------------------------------------------------------- notes

def device_note(manager: TrainingManager, spec: JobSpec | None) -> str:
    """Where training runs and, on a CPU, an honest word about time."""
    if not training_enabled():
        return "**Training is switched off on this server**; the other tabs work as usual."
    if spec is not None and not data.available(spec.dataset):  # said before Start, not after
        return f"**{data.missing_message(spec.dataset)}**"
    if on_zerogpu():
        return (f"Training runs on **ZeroGPU**: the GPU is lent in calls of about "
                f"{zerogpu.call_seconds()} s, each training the epochs that fit; between calls "
                "the state waits on the CPU. The time counts against your ZeroGPU quota.")
    if not trains_on_cpu():
        return f"Training runs on **{server_device()}**."
    text = (f"**Training runs on this server's CPU** ({server_device()}), shared with everyone "
            "using the app. Keep runs small: the CPU presets take minutes; all 50,000 training "
            "images for many epochs would take hours.")
    seconds = manager.estimate_seconds(spec) if spec is not None else None
    if seconds is not None:
        text += f" Measured on this server, this run needs about **{format_seconds(seconds)}**."
    else:
        text += (" No run has been measured here yet; the bar below shows an estimate "
                 "measured from your run's own steps once it starts.")
    return text


def settings_note(manager: TrainingManager, values: list) -> str:
    """The device note for the current widget values, or what is wrong with them."""
    try:
        return device_note(manager, make_spec(*values))
    except UserError as exc:
        return f"{device_note(manager, None)}\n\nCheck the settings: {exc}"


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


def _numbers(values: dict, prefix: str) -> str:
    return ", ".join(f"{k} = {v:g}" for k, v in values.items()
                     if k.startswith(prefix) and isinstance(v, float))


def status_markdown(s: JobStatus, owner: bool) -> str:
    """Who started the job, what it is doing, and its validation and test numbers."""
    if s.job_id == 0:
        return "No job yet. Choose the settings and press **Start training**."
    who = "You started this job." if owner else "Someone else started this job."
    head = f"**{s.summary}** on {s.device}. {who}" if s.summary else ""
    lines = [head, s.message if not s.running else f"Status: {s.phase}. {s.message}"]
    val = s.metrics.get("val") if not s.running else s.validation
    if val and _numbers(val, "val_"):
        lines.append(f"Validation (epoch {val['epoch']}): {_numbers(val, 'val_')}")
    if s.metrics and not s.running and _numbers(s.metrics, "test_"):
        lines.append("Test set: " + _numbers(s.metrics, "test_"))
    return "\n\n".join(x for x in lines if x)


# ----------------------------------------------------------------------------- curves

@dataclass(frozen=True)
class LossPanel:
    """One loss term against (fractional) epochs."""

    key: str
    title: str
    x: list[float]
    y: list[float]


def loss_panels(s: JobStatus) -> list[LossPanel]:
    """The model's loss terms that the job has reported, in the tab's order."""
    terms = [(k, t) for k, t in TERMS.get(s.model, []) if s.curve and k in s.curve[0]]
    x = [p["epoch"] for p in s.curve]
    return [LossPanel(key, title, x, [p[key] for p in s.curve]) for key, title in terms]


def loss_figure(s: JobStatus) -> plots.Figure | None:
    """One small panel per loss term side by side (a plotly figure dict), None before any."""
    panels = loss_panels(s)
    if not panels:
        return None
    gap = 0.07
    width = (1 - gap * (len(panels) - 1)) / len(panels)
    traces, layout, titles = [], {}, []
    for i, p in enumerate(panels):
        ax, left = ("" if i == 0 else str(i + 1)), i * (width + gap)
        traces.append({"type": "scatter", "mode": "lines", "x": p.x, "y": p.y, "name": p.title,
                       "showlegend": False, "xaxis": f"x{ax}", "yaxis": f"y{ax}"})
        layout[f"xaxis{ax}"] = {**plots.AXIS, "domain": [left, left + width], "anchor": f"y{ax}",
                                "title": {"text": "epoch"}}
        layout[f"yaxis{ax}"] = {**plots.AXIS, "anchor": f"x{ax}"}
        titles.append({"text": p.title, "x": left + width / 2, "y": 1.0, "xref": "paper",
                       "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                       "showarrow": False, "font": {"size": 11}})
    fig = plots.figure(traces, "", height=260, annotations=titles, **layout)
    fig["layout"]["margin"] = {"l": 40, "r": 10, "t": 56, "b": 40}
    return fig


# ----------------------------------------------------------------------------- handlers

def start_job(manager: TrainingManager, token: str, values: list,
              run_in: Callable[[Callable[[], None]], None] | None = None) -> tuple[str, str]:
    """Start a job from the widget values; returns (the visitor's token, message)."""
    try:
        spec = make_spec(*values)
        new_token = manager.start(spec, run_in=run_in)
    except BusyError as exc:
        return token, str(exc)
    except UserError as exc:
        return token, f"Cannot start: {exc}"
    return new_token, f"Started: {spec.summary()}."


def stop_job(manager: TrainingManager, token: str) -> str:
    return manager.stop(token)


@dataclass(frozen=True)
class Poll:
    """Everything the tab shows about the job. ``changed`` names the pictures to redraw
    (curves, grid, download); the others are as the visitor's page already shows them."""

    status: str
    progress: str
    curves: plots.Figure | None
    grid: np.ndarray | None
    zip_path: str | None
    can_stop: bool
    seen: dict
    changed: frozenset[str]


def poll_job(manager: TrainingManager, token: str, seen: dict | None) -> Poll:
    """The manager's snapshot for this visitor; ``seen`` is what their page has drawn."""
    s = manager.status()
    owner = manager.owns(token)
    seen, changed = dict(seen or {}), set()
    for key, version in (("curves", (s.job_id, s.curve_version)),
                         ("grid", (s.job_id, s.grid_version)), ("download", (s.job_id, s.zip_path))):
        if seen.get(key) != version:
            seen[key] = version
            changed.add(key)
    grid = s.grid if isinstance(s.grid, np.ndarray) else None
    return Poll(status_markdown(s, owner), progress_html(s),
                loss_figure(s) if "curves" in changed else None, grid, s.zip_path,
                owner and s.running, seen, frozenset(changed))
