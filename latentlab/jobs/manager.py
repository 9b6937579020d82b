"""Training jobs started from the app: one at a time per server, in a background thread.

The Train tab never trains in its own event handler. It asks the server-wide
``TrainingManager`` to start a job and then polls ``manager.status()`` every few seconds,
so a refreshed browser (or a second visitor) simply sees the running job again. The job's
thread calls the device side (``latentlab.jobs.runner``) chunk by chunk, then finishes and
writes the checkpoint atomically into the user folder (``settings.user_checkpoint_dir``).

Before a job starts, its settings are checked (``JobSpec``) and so is the data set (one
sentence on what to do when it is missing). Stop works during the VQ-VAE's code-prior fit
too: the model is then saved with the prior as far as it got. A diverged job (NaN weights)
saves nothing. After each save the oldest models trained in the app are removed beyond
``settings.max_user_models`` / ``max_user_bytes`` (shipped models never), and the status
message says which.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from latentlab import data, settings, zerogpu
from latentlab.checkpoint import save_checkpoint
from latentlab.errors import BusyError, DataMissingError, InputError, UserError
from latentlab.jobs import runner
from latentlab.jobs.estimate import TimeEstimate, format_seconds
from latentlab.jobs.files import (
    TRAINED_SOURCE,
    default_name,
    prune_trained,
    remove_stale_temporaries,
    unique_folder,
    zip_checkpoint,
)
from latentlab.jobs.spec import JobSpec
from models import MODEL_KINDS

MAX_CURVE_POINTS = 2000     # the loss curves are thinned beyond this (memory, plot speed)
ACTIVE = ("starting", "training", "stopping", "finishing")
log = logging.getLogger(__name__)


def training_enabled() -> bool:
    """Training can be switched off per deployment (``LATENT_LAB_TRAINING=off``)."""
    return settings.current().training


def cpu_cap() -> int:
    """Epochs x images a job may ask for when it trains on the CPU."""
    return settings.current().cpu_max_image_epochs


def user_checkpoint_dir() -> Path:
    """Folder for checkpoints trained in the app (shipped ones are never overwritten)."""
    return settings.current().user_checkpoint_dir


@dataclass(frozen=True)
class JobStatus:
    """What anyone may see of the current (or last) job; the manager replaces it, never edits it.

    >>> s = JobStatus(job_id=1, phase="training", summary="VAE", step=25, total_steps=100, epochs=2)
    >>> s.running, s.fraction, s.describe()
    (True, 0.25, 'VAE: training, epoch 1 of 2, 25% done.')
    """

    job_id: int = 0
    phase: str = "idle"           # idle | starting | training | stopping | finishing | done | stopped | failed
    message: str = "No training job has run on this server yet."
    summary: str = ""
    model: str = ""
    step: int = 0
    total_steps: int = 0
    epochs_done: int = 0
    epochs: int = 0
    elapsed_s: float = 0.0        # filled in when a snapshot is taken
    eta_s: float | None = None    # measured: remaining steps / steps per second so far
    eta_note: str = ""            # what the estimate is made of
    curve: tuple = ()             # ({"step", "epoch", term: value, ...}, ...)
    curve_version: int = 0
    validation: dict = field(default_factory=dict)  # the last epoch's val_* terms and its number
    grid: np.ndarray | None = None
    grid_version: int = 0
    checkpoint: str | None = None
    zip_path: str | None = None
    metrics: dict = field(default_factory=dict)
    device: str = ""

    @property
    def running(self) -> bool:
        return self.phase in ACTIVE

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def describe(self) -> str:
        """One line for people: what runs, how far it is, how long it has left."""
        if not self.running:
            return self.message
        left = f", about {format_seconds(self.eta_s)} left" if self.eta_s is not None else ""
        return (f"{self.summary}: {self.phase}, epoch {min(self.epochs_done + 1, self.epochs)} "
                f"of {self.epochs}, {self.fraction:.0%} done{left}.")


@dataclass
class Job:
    """The live job: its public ``status`` (a JobStatus, replaced on each change) plus what
    only the manager sees (the spec, the owner's token, the stop file, the clock)."""

    spec: JobSpec
    token: str
    stop_file: str
    status: JobStatus
    started: float = field(default_factory=time.monotonic)
    steps_per_epoch: int = 0
    rate_origin: tuple[float, int] | None = None   # (time, step) of the first report
    rate_last: tuple[float, int] | None = None     # (time, step) of the latest report
    train_started: float | None = None             # when the first chunk reported "start"
    finish_started: float | None = None
    finished: float | None = None


class TrainingManager:
    """Runs at most one training job at a time and reports on it to anyone who asks.

    ``chunk_fn`` / ``finish_fn`` default to the ``spaces.GPU``-wrapped ``train_chunk`` /
    ``finish_job`` of ``latentlab.jobs.runner`` (plain calls off ZeroGPU). ``chunk_epochs``
    and ``chunk_seconds`` bound each chunk (0 = unbounded: one chunk for the whole job).
    ``shipped_dir`` (default: the deployment's checkpoints) holds names a job never takes.

    >>> import tempfile; tmp = Path(tempfile.mkdtemp())
    >>> m = TrainingManager(root=tmp / "user", chunk_epochs=1, downloads=tmp / "zips")
    >>> token = m.start(JobSpec(latent_dim=2, subset=64, batch_size=32, val_size=100,
    ...                         name="tiny", model_options={"channels": 4, "hidden": 8}))
    >>> s = m.wait(120); s.phase, Path(s.checkpoint).name, s.metrics["epochs_completed"]
    ('done', 'tiny', 1)
    """

    def __init__(self, root: str | os.PathLike | None = None, *, chunk_fn: Callable | None = None,
                 finish_fn: Callable | None = None, chunk_epochs: int = 0,
                 chunk_seconds: float = 0.0, report_every_s: float = 2.0,
                 on_saved: Callable[[Path], None] | None = None,
                 shipped_dir: Path | Literal["settings"] | None = "settings",
                 downloads: Path | None = None):
        self.root = Path(root) if root is not None else user_checkpoint_dir()
        self.chunk_fn = chunk_fn or runner.train_chunk_on_gpu
        self.finish_fn = finish_fn or runner.finish_on_gpu
        self.chunk_epochs, self.chunk_seconds = chunk_epochs, chunk_seconds
        self.report_every_s = report_every_s
        self.on_saved = on_saved
        self.shipped_dir = settings.current().checkpoints if shipped_dir == "settings" else shipped_dir
        self.downloads = Path(downloads or Path(tempfile.gettempdir()) / "latentlab-downloads")
        self.estimate = TimeEstimate()
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._thread: threading.Thread | None = None
        self._ids = 0

    # -- public API -------------------------------------------------------------
    def start(self, spec: JobSpec, run_in: Callable[[Callable[[], None]], None] | None = None) -> str:
        """Start a job and return the owner's token (needed to stop it).

        Raises ``BusyError`` (with the running job's progress) if one is running, and a
        ``UserError`` for a job this server will not run. ``run_in`` wraps the thread's
        body, e.g. to keep the visitor's ZeroGPU quota context.
        """
        self._check_allowed(spec)
        summary = spec.summary()
        with self._lock:
            if self._job is not None and self._job.status.running:
                raise BusyError("Another training job is running on this server, one job at "
                                "a time. " + self._status_locked().describe())
            self._ids += 1
            job = Job(spec, secrets.token_hex(16), _new_stop_file(), JobStatus(
                job_id=self._ids, phase="starting", message="Starting: loading the data.",
                summary=summary, model=spec.model, epochs=spec.epochs))
            self._job = job
            body = (lambda: run_in(lambda: self._run(job))) if run_in else (lambda: self._run(job))
            self._thread = threading.Thread(target=body, daemon=True, name=f"latentlab-job-{self._ids}")
            self._thread.start()
        return job.token

    def stop(self, token: str | None) -> str:
        """Ask the running job to stop after its current step; only its owner may."""
        with self._lock:
            job = self._job
            if job is None or not job.status.running:
                return "No training job is running."
            if not token or not secrets.compare_digest(token, job.token):
                return "Only the person who started this job can stop it."
            finishing = job.status.phase == "finishing" or job.finish_started is not None
            if finishing and job.spec.engine_kind != "vqvae":
                return "The job is already evaluating and saving; it cannot be stopped now."
            Path(job.stop_file).touch()
            message = ("Stopping the code prior's fit after the current step; the model is saved "
                       "with the prior as far as it got." if finishing
                       else "Stopping after the current step.")
            self._set(job, phase="stopping", message=message)
            return job.status.message

    def status(self) -> JobStatus:
        with self._lock:
            return self._status_locked()

    def owns(self, token: str | None) -> bool:
        with self._lock:
            return bool(token and self._job and secrets.compare_digest(token, self._job.token))

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the current job's thread ends (for tests and scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def estimate_seconds(self, spec: JobSpec) -> float | None:
        """The whole job's time from the last job of the same kind on this server, if any."""
        return self.estimate.whole_job(spec)

    # -- the job thread ---------------------------------------------------------
    def _run(self, job: Job) -> None:
        try:
            # loaded here so that a forked ZeroGPU worker inherits the tensors
            data.load_split(job.spec.dataset, train=True)
            data.binarized_test_set(job.spec.dataset)
            state = self._train(job)
            if state is None or state["completed"] < 1:
                self._end(job, "stopped", "Stopped before the first epoch finished; nothing was saved.")
                return
            # only a Stop pressed from now on cuts the code prior's fit short
            Path(job.stop_file).unlink(missing_ok=True)
            with self._lock:
                job.finish_started = time.monotonic()
                self._set(job, phase="finishing", message=_finishing_message(job.spec))
            result = self.finish_fn(job.spec, {**state, "stop_file": job.stop_file})
            if not result["metrics"].get("prior_stopped_early"):  # a cut fit is no estimate
                self.estimate.remember(job, result["metrics"])
            self._save(job, state, result)
        except UserError as exc:  # diverged, data gone: the message says what to do
            log.warning("training job %d ended: %s", job.status.job_id, exc)
            self._end(job, "failed", f"{exc} Nothing was saved.")
        except Exception as exc:  # the app stays up; the visitor sees what went wrong
            log.exception("training job %d failed", job.status.job_id)
            self._end(job, "failed", f"Training failed ({type(exc).__name__}: {exc}). Nothing was saved.")
        finally:
            Path(job.stop_file).unlink(missing_ok=True)

    def _train(self, job: Job) -> dict | None:
        state = None
        while True:
            for kind, payload in self.chunk_fn(
                    job.spec, state, max_epochs=self.chunk_epochs, budget_s=self.chunk_seconds,
                    stop_file=job.stop_file, report_every_s=self.report_every_s):
                self._on_event(job, kind, payload)
                if kind == "state":
                    state = payload
            if state is None or state["stopped"] or state["trainer"]["epoch"] >= job.spec.epochs:
                return state
            if os.path.exists(job.stop_file):  # asked to stop between two chunks
                return {**state, "stopped": True}

    def _on_event(self, job: Job, kind: str, payload: Any) -> None:
        handler = {"start": _on_start, "progress": _on_progress, "epoch": _on_epoch}.get(kind)
        if handler is not None:
            with self._lock:
                handler(job, payload, time.monotonic())

    def _save(self, job: Job, state: dict, result: dict) -> None:
        path, metrics = self._write_checkpoint(job, state, result)
        notes: list[str] = []
        self._prune(path, notes)
        zip_path = self._offer_zip(path, notes)
        if self.on_saved is not None:
            try:
                self.on_saved(path)
            except Exception as exc:  # a picker that fails to refresh must not lose the model
                log.exception("refreshing the model pickers failed")
                notes.append(f"the model pickers could not be refreshed ({exc})")
        with self._lock:
            self._set(job, checkpoint=str(path), zip_path=zip_path, metrics=metrics,
                      grid=result["grid"], grid_version=job.status.grid_version + 1)
        prior_cut = bool(metrics.get("prior_stopped_early"))
        verb = ("Stopped during the code prior's fit and saved" if prior_cut
                else "Stopped early and saved" if state["stopped"] else "Done. Saved")
        if prior_cut:
            notes.insert(0, f"the code prior ran {metrics['prior_steps']} of "
                            f"{metrics['prior_total_steps']} steps")
        extra = (" Note: " + "; ".join(notes) + ".") if notes else ""
        self._end(job, "stopped" if state["stopped"] or prior_cut else "done",
                  f"{verb} as '{path.name}' after {state['completed']} complete epoch(s).{extra}")

    def _prune(self, path: Path, notes: list[str]) -> None:
        """Keep the server's models trained in the app within the deployment's limits."""
        s = settings.current()
        removed = prune_trained(self.root, path, s.max_user_models, s.max_user_bytes)
        if removed:
            names = ", ".join(f"'{n}'" for n in removed)
            notes.append(f"this server keeps at most {s.max_user_models} trained models "
                         f"({s.max_user_bytes / 2**20:.0f} MB), so the oldest ({names}) "
                         f"{'was' if len(removed) == 1 else 'were'} removed")

    def _write_checkpoint(self, job: Job, state: dict, result: dict) -> tuple[Path, dict]:
        kind, model_cfg, cfg = job.spec.configs()
        model = MODEL_KINDS[kind][1](model_cfg)
        model.load_state_dict(result["weights"])
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.root)
        folder = unique_folder(self.root, job.spec.name or default_name(job.spec), self.shipped_dir)
        history = state["trainer"]["history"]
        metrics = {
            "command": job.spec.command(folder),
            "source": TRAINED_SOURCE,
            "train_wall_time_s": round(time.monotonic() - job.started, 1),
            "device": result["device"],
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "train_config": dataclasses.asdict(cfg),
            "epochs_completed": state["completed"],
            "stopped_early": bool(state["stopped"]),
            "final_epoch": history[-1] if history else {},
            **result["metrics"],
        }
        return save_checkpoint(folder, model, kind, model_cfg, metrics), metrics

    def _offer_zip(self, path: Path, notes: list[str]) -> str | None:
        """Zip the checkpoint for download; only the latest job's zip is offered."""
        try:
            for old in self.downloads.glob("*.zip"):
                old.unlink(missing_ok=True)
            return str(zip_checkpoint(path, self.downloads))
        except OSError as exc:
            notes.append(f"the zip could not be written ({exc})")
            return None

    # -- small helpers ----------------------------------------------------------
    def _check_allowed(self, spec: JobSpec) -> None:
        if not training_enabled():
            raise UserError("Training is switched off on this server.")
        if not data.available(spec.dataset):
            raise DataMissingError(data.missing_message(spec.dataset))
        work = spec.images() * spec.epochs
        if runner.trains_on_cpu() and work > cpu_cap():
            raise InputError(
                f"On this CPU a run is capped at {cpu_cap():,} image-epochs (epochs x images) to "
                f"keep the app responsive for everyone; this one asks for {work:,}. Use fewer "
                f"epochs or a subset.")

    @staticmethod
    def _set(job: Job, **changes: Any) -> None:
        """Replace the job's public status (the caller holds the lock)."""
        job.status = replace(job.status, **changes)

    def _end(self, job: Job, phase: str, message: str) -> None:
        with self._lock:
            job.finished = time.monotonic()
            self._set(job, phase=phase, message=message)

    def _status_locked(self) -> JobStatus:
        job = self._job
        if job is None:
            return JobStatus(device=runner.server_device())
        now = job.finished or time.monotonic()
        eta, note = self.estimate.eta(job, now)
        return replace(job.status, elapsed_s=now - job.started, eta_s=eta, eta_note=note,
                       device=job.status.device or runner.server_device())


# ----------------------------------------------------------------------------- events

def _on_start(job: Job, info: dict, now: float) -> None:
    job.steps_per_epoch = info["steps_per_epoch"]
    job.train_started = job.train_started or now
    changes: dict[str, Any] = {"device": info["device"],
                               "total_steps": job.spec.epochs * job.steps_per_epoch}
    if job.status.phase == "starting":
        changes.update(phase="training", message="Training.")
    job.status = replace(job.status, **changes)


def _on_progress(job: Job, info: dict, now: float) -> None:
    s = job.status
    step = max(s.step, info["step"] if info["step"] is not None else s.step)
    job.rate_origin = job.rate_origin or (now, step)
    job.rate_last = (now, step)
    point = {"step": step, "epoch": round(step / max(job.steps_per_epoch, 1), 3), **info["terms"]}
    curve = (*s.curve, point)
    if len(curve) > MAX_CURVE_POINTS:
        curve = curve[::2]
    job.status = replace(s, step=step, curve=curve, curve_version=s.curve_version + 1)


def _on_epoch(job: Job, info: dict, now: float) -> None:
    s, logs = job.status, info["logs"]
    done = info["completed"]
    step = s.step if logs["stopped"] else max(s.step, done * job.steps_per_epoch)
    val = {k: v for k, v in logs.items() if k.startswith("val_")}
    job.status = replace(s, epochs_done=done, step=step, grid=info["grid"],
                         grid_version=s.grid_version + 1,
                         validation={"epoch": logs["epoch"], **val} if val else s.validation)


def _finishing_message(spec: JobSpec) -> str:
    if spec.engine_kind == "vqvae":
        return "Fitting the code prior p_lambda(c) on the training codes, then evaluating and saving."
    return "Evaluating on the test set and saving."


def _new_stop_file() -> str:
    """A fresh path whose existence will be the stop signal (so it must not exist yet)."""
    fd, stop_file = tempfile.mkstemp(prefix="latentlab-stop-")
    os.close(fd)
    os.unlink(stop_file)
    return stop_file


_MANAGER: TrainingManager | None = None
_MANAGER_LOCK = threading.Lock()


def get_manager() -> TrainingManager:
    """The server-wide manager (created on first use, so importing starts nothing)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = TrainingManager(chunk_seconds=zerogpu.chunk_seconds())
        return _MANAGER
