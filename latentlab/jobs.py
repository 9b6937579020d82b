"""Training jobs started from the app: one at a time per server, in a background thread.

The Train tab never trains in its own event handler. It asks the server-wide
``TrainingManager`` to start a job and then polls ``manager.status()`` every few seconds,
so a refreshed browser (or a second visitor) simply sees the running job again.

A job is a sequence of *chunks*. A chunk (``train_chunk``) rebuilds the trainer, restores
its state, trains whole epochs and hands the state back on the CPU. On a normal server a
job is one chunk; on a Hugging Face ZeroGPU Space the GPU is lent per call for a bounded
time, so ``latentlab.zerogpu`` wraps the chunk in ``spaces.GPU`` and the manager calls it
until all epochs are done. ``finish_job`` then fits what comes after training (the
VQ-VAE's code prior), evaluates briefly, and the manager writes the checkpoint atomically
into the user folder (``$LATENT_LAB_USER_CKPT`` or ``checkpoints/user``).

>>> manager = TrainingManager(root="/tmp/ckpts")                          # doctest: +SKIP
>>> token = manager.start(JobSpec(model="vae", latent_dim=2, subset=5000))  # doctest: +SKIP
>>> manager.wait().checkpoint                                           # doctest: +SKIP
'/tmp/ckpts/mnist-vae-z2-20250101-120000'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import queue
import re
import secrets
import shlex
import shutil
import tempfile
import threading
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentlab import data, render
from latentlab.checkpoint import save_checkpoint
from latentlab.train import TrainConfig, Trainer, device_description
from models import MODEL_KINDS

USER_CKPT_ENV = "LATENT_LAB_USER_CKPT"
TRAINING_ENV = "LATENT_LAB_TRAINING"          # "off" hides training on a public Space
CPU_CAP_ENV = "LATENT_LAB_CPU_MAX_IMAGE_EPOCHS"
CPU_CAP_DEFAULT = 200_000   # epochs x images: about 10-20 min on a busy 2-core CPU
REPO = Path(__file__).resolve().parents[1]
SHIPPED_DIR = REPO / "checkpoints"
MAX_CURVE_POINTS = 2000     # the loss curves are thinned beyond this (memory, plot speed)
log = logging.getLogger(__name__)

# App-level model kinds -> (engine kind in MODEL_KINDS, VAE prior or None)
APP_KINDS = {"vae": ("vae", "normal"), "flow": ("vae", "realnvp"), "vqvae": ("vqvae", None)}
KIND_LABELS = {"vae": "VAE with N(0, I) prior", "flow": "VAE with a flow prior (RealNVP)",
               "vqvae": "VQ-VAE, then its code prior"}

# Presets. Measured on a 2-core CPU shared with other training (load ~4): "CPU quick" took
# 42 s for the VAE (13 s training, 19 s evaluation) and, with 10 code-prior epochs, 4 min
# for the VQ-VAE (prior 183 s), hence fewer prior epochs on the CPU presets.
PRESETS: dict[str, dict] = {
    "CPU quick: 1 epoch on 5,000 images":
        {"epochs": 1, "subset": 5000, "batch_size": 128, "prior_epochs": 2},
    "CPU longer: 3 epochs on 10,000 images":
        {"epochs": 3, "subset": 10000, "batch_size": 128, "prior_epochs": 4},
    "GPU full: 20 epochs on all 60,000 images":
        {"epochs": 20, "subset": 0, "batch_size": 128, "prior_epochs": 10},
}
CPU_PRESET, _, GPU_PRESET = PRESETS


class JobBusyError(RuntimeError):
    """Another training job is running on this server; the message says how far it is."""


# ----------------------------------------------------------------------------- the spec

@dataclass
class JobSpec:
    """What a user asked for in the Train tab; ``configs()`` turns it into engine configs.

    >>> kind, model_cfg, train_cfg = JobSpec(model="flow", latent_dim=2).configs()
    >>> kind, model_cfg.prior, train_cfg.epochs
    ('vae', 'realnvp', 1)
    """

    dataset: str = "mnist"
    model: str = "vae"            # vae | flow | vqvae (see APP_KINDS)
    latent_dim: int = 16          # z for the VAEs; the code size D of each e_k for the VQ-VAE
    beta: float | None = None     # KL weight (VAE) or commitment weight (VQ); None = default
    num_codes: int = 128          # K, the codebook size (VQ-VAE only)
    prior_epochs: int | None = None  # code-prior epochs (VQ-VAE only); None = model default
    epochs: int = 1
    lr: float = 2e-3
    batch_size: int = 128
    subset: int = 0               # first N training images (0 = all)
    name: str = ""                # checkpoint folder name; sanitized, auto when empty
    seed: int = 0
    bf16: bool = False            # autocast on CUDA only (ignored on the CPU)
    model_options: dict = field(default_factory=dict)  # any other model-config field

    def __post_init__(self):
        self.dataset = data.check_dataset(self.dataset)
        if self.model not in APP_KINDS:
            raise ValueError(f"unknown model kind {self.model!r}; choose one of {sorted(APP_KINDS)}")
        if APP_KINDS[self.model][0] not in MODEL_KINDS:
            raise ValueError(f"the {KIND_LABELS[self.model]} is not available in this build")
        if self.subset < 0:
            raise ValueError("subset must be >= 0 (0 = the whole training set)")
        self.configs()  # fails early on any impossible combination

    @property
    def engine_kind(self) -> str:
        return APP_KINDS[self.model][0]

    def configs(self) -> tuple[str, Any, TrainConfig]:
        """(engine kind, model config, TrainConfig); raises ValueError with a clear message."""
        kind, prior = APP_KINDS[self.model]
        config_cls = MODEL_KINDS[kind][0]
        names = {f.name for f in dataclasses.fields(config_cls)}
        unknown = set(self.model_options) - names
        if unknown:
            raise ValueError(f"{config_cls.__name__} has no fields {sorted(unknown)}")
        values: dict[str, Any] = {"dataset": self.dataset}
        if kind == "vae":
            values.update(latent_dim=self.latent_dim, prior=prior)
        else:
            values.update(code_dim=self.latent_dim, num_codes=self.num_codes)
            if self.prior_epochs is not None:
                values["prior_epochs"] = self.prior_epochs
        if self.beta is not None:
            values["beta"] = self.beta
        values.update(self.model_options)
        try:
            model_cfg = config_cls(**values)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
        train_cfg = TrainConfig(dataset=self.dataset, model=kind, epochs=self.epochs, lr=self.lr,
                                batch_size=self.batch_size, subset=self.subset, seed=self.seed,
                                bf16=self.bf16)
        return kind, model_cfg, train_cfg

    def images(self) -> int:
        """How many training images an epoch sees."""
        n = len(data.load_split(self.dataset, train=True)[0])
        return min(self.subset, n) if self.subset else n

    def summary(self) -> str:
        size = (f"K={self.num_codes} codes of size {self.latent_dim}" if self.model == "vqvae"
                else f"latent dimension {self.latent_dim}")
        return (f"{KIND_LABELS[self.model]} on {self.dataset} ({size}), "
                f"{self.epochs} epoch(s) on {self.images():,} images")

    def command(self, out: str | os.PathLike) -> str:
        """The equivalent ``python -m latentlab.train`` command (recorded in metrics.json)."""
        kind, model_cfg, cfg = self.configs()
        args = ["--dataset", cfg.dataset, "--model", kind]
        defaults = MODEL_KINDS[kind][0]()
        for f in dataclasses.fields(model_cfg):
            value = getattr(model_cfg, f.name)
            if f.name != "dataset" and value != getattr(defaults, f.name):
                args += ["--" + f.name.replace("_", "-"), str(value)]
        for f in dataclasses.fields(TrainConfig):
            value = getattr(cfg, f.name)
            if f.name not in ("dataset", "model") and value != f.default:
                args += ["--" + f.name.replace("_", "-"), str(value)]
        return "python -m latentlab.train " + shlex.join([*args, "--out", str(out)])


# ----------------------------------------------------------------------------- helpers

def training_enabled() -> bool:
    """Training can be switched off per deployment (``LATENT_LAB_TRAINING=off``)."""
    return os.environ.get(TRAINING_ENV, "on").strip().lower() not in ("0", "off", "false", "no")


def on_zerogpu() -> bool:
    """True on a Hugging Face ZeroGPU Space (the GPU is only lent inside ``spaces.GPU``)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def server_device() -> str:
    """Where a job will train, in words; never initialises CUDA on ZeroGPU."""
    if on_zerogpu():
        return "ZeroGPU (a GPU lent per call)"
    if torch.cuda.is_available():
        return device_description(torch.device("cuda"))
    return device_description(torch.device("cpu"))


def trains_on_cpu() -> bool:
    return not on_zerogpu() and not torch.cuda.is_available()


def cpu_cap() -> int:
    return int(os.environ.get(CPU_CAP_ENV, CPU_CAP_DEFAULT))


def user_checkpoint_dir() -> Path:
    """Folder for checkpoints trained in the app (shipped ones are never overwritten)."""
    env = os.environ.get(USER_CKPT_ENV)
    return Path(env).expanduser() if env else SHIPPED_DIR / "user"


def sanitize_name(raw: str) -> str:
    """A safe folder name: ASCII letters, digits, '-' and '_' only, at most 64 characters.

    >>> sanitize_name("../../etc/passwd"), sanitize_name("My VAE (z=2)")
    ('etc-passwd', 'My-VAE-z-2')
    """
    text = unicodedata.normalize("NFKD", raw or "").encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")[:64].strip("-_")


def default_name(spec: JobSpec) -> str:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    size = f"k{spec.num_codes}" if spec.model == "vqvae" else f"z{spec.latent_dim}"
    return f"{spec.dataset}-{spec.model}-{size}-{stamp}"


def unique_folder(root: Path, name: str, shipped: Path | None = SHIPPED_DIR) -> Path:
    """``root/name``, with -2, -3, ... appended if it exists here or among shipped models."""
    base = sanitize_name(name) or "model"
    candidate, n = base, 1
    while (root / candidate).exists() or (shipped is not None and (shipped / candidate).exists()):
        n += 1
        candidate = f"{base}-{n}"
    path = (root / candidate).resolve()
    if path.parent != root.resolve():  # sanitize_name makes this impossible; keep it that way
        raise ValueError(f"refusing to write outside {root}: {name!r}")
    return path


def remove_stale_temporaries(root: Path) -> None:
    """Delete ``*.tmp-*`` folders left by a process killed in the middle of a save."""
    if root.is_dir():
        for p in root.glob("*.tmp-*"):
            shutil.rmtree(p, ignore_errors=True)


def zip_checkpoint(folder: str | os.PathLike, dest_dir: str | os.PathLike | None = None) -> Path:
    """Zip a checkpoint folder (written to a temporary name, then renamed)."""
    folder = Path(folder)
    dest = Path(dest_dir) if dest_dir else Path(tempfile.gettempdir()) / "latentlab-downloads"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{folder.name}.zip"
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=target.name + ".tmp-")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            if f.is_file():
                zf.write(f, f"{folder.name}/{f.name}")
    os.replace(tmp, target)
    return target


def _to_cpu(obj: Any) -> Any:
    """Recursively move tensors to the CPU (state kept between ZeroGPU calls)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


@torch.no_grad()
def preview_grid(model: torch.nn.Module, dataset: str, samples: bool = True, n: int = 8,
                 seed: int = 1234) -> np.ndarray:
    """Test images, their reconstructions and (optionally) samples, as one uint8 grid.

    Uses the models' verbs only, no global random numbers (so previews never change what
    training draws next).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    if hasattr(model, "encode_to_indices"):                      # VQ-VAE: grey images
        x = data.load_split(dataset, train=False)[0][:n].to(device)
        rows = [x, model.decode_indices(model.encode_to_indices(x))]
    else:                                                        # VAE: binary images, z = mu
        x = data.binarized_test_set(dataset)[:n].to(device)
        rows = [x, torch.sigmoid(model.decode(model.encode(x)[0]))]
    if samples:
        gen = torch.Generator(device=device).manual_seed(seed)
        rows.append(model.sample(n, generator=gen))
    model.train(was_training)
    images = torch.cat(rows)[:, 0].float().clamp(0, 1).cpu().numpy()        # (rows * n, 28, 28)
    return render.tile(images, cols=n)


class StepMeter:
    """Sums logged terms on the device; ``take()`` syncs with the host once per report.

    >>> m = StepMeter(every_s=2.0)
    >>> m.add({"loss": torch.tensor(1.0)}); m.add({"loss": torch.tensor(3.0)})
    >>> m.take()
    {'loss': 2.0}
    """

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0
        self.last = time.monotonic()

    def add(self, logs: dict) -> None:
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach().float()
        self.n += 1

    def due(self) -> bool:
        return self.n > 0 and time.monotonic() - self.last >= self.every_s

    def take(self) -> dict[str, float]:
        keys = list(self.sums)
        values = (torch.stack([self.sums[k] for k in keys]) / self.n).tolist()  # one sync
        self.sums, self.n, self.last = {}, 0, time.monotonic()
        return dict(zip(keys, values))


# ----------------------------------------------------------------------------- device side

def _build_trainer(spec: JobSpec, state: dict | None) -> Trainer:
    """A fresh trainer, or one restored exactly (weights, optimizer, schedule, RNGs)."""
    kind, model_cfg, cfg = spec.configs()
    torch.manual_seed(cfg.seed)
    trainer = Trainer(MODEL_KINDS[kind][1](model_cfg), cfg, kind=kind)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
    return trainer


def _iterate_in_thread(work: Callable[[Callable, Callable[[], bool]], Any]) -> Iterator[tuple]:
    """Run ``work(emit, cancelled)`` in a thread and yield what it emits, then ("state", result).

    A generator is what ``spaces.GPU`` streams back from its worker process, and training
    reports through callbacks, so the two meet at a queue. Closing the generator cancels.
    """
    q: queue.Queue = queue.Queue()
    cancel = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="latentlab-chunk") as pool:
        future = pool.submit(work, q.put, cancel.is_set)
        future.add_done_callback(lambda _: q.put(("done", None)))
        try:
            while (item := q.get())[0] != "done":
                yield item
            yield "state", future.result()  # raises the chunk's exception, if any
        finally:
            cancel.set()


def _run_chunk(spec: JobSpec, state: dict | None, max_epochs: int, budget_s: float,
               stop_file: str, report_every_s: float, emit: Callable, cancelled: Callable) -> dict:
    start = time.monotonic()
    trainer = _build_trainer(spec, state)
    emit(("start", {"steps_per_epoch": trainer.steps_per_epoch,
                    "device": device_description(trainer.device)}))
    meter = StepMeter(report_every_s)
    completed = state["completed"] if state else 0
    stopped, epoch_times, ran = False, [], 0

    def should_stop() -> bool:
        return cancelled() or bool(stop_file and os.path.exists(stop_file))

    def on_step(i: int, logs: dict) -> None:
        meter.add(logs)
        if meter.due():
            emit(("progress", {"step": trainer.epoch * trainer.steps_per_epoch + i + 1,
                               "terms": meter.take()}))

    while trainer.epoch < trainer.cfg.epochs and not stopped:
        elapsed = time.monotonic() - start
        if (max_epochs and ran >= max_epochs) or (
                budget_s and ran and elapsed + 1.2 * max(epoch_times) > budget_s):
            break
        t0 = time.monotonic()
        logs = trainer.run_epoch(on_step=on_step, should_stop=should_stop)
        epoch_times.append(time.monotonic() - t0)
        stopped, ran = logs["stopped"], ran + 1
        completed += 0 if stopped else 1
        if meter.n:
            emit(("progress", {"step": trainer.epoch * trainer.steps_per_epoch
                               if not stopped else None, "terms": meter.take()}))
        emit(("epoch", {"logs": logs, "completed": completed, "epoch_time_s": epoch_times[-1],
                        "grid": preview_grid(trainer.model, spec.dataset,
                                             samples=spec.engine_kind != "vqvae")}))
    return {"trainer": _to_cpu(trainer.state_dict()), "completed": completed, "stopped": stopped,
            "epoch_time_s": max(epoch_times, default=0.0)}


def train_chunk(spec: JobSpec, state: dict | None = None, max_epochs: int = 0,
                budget_s: float = 0.0, stop_file: str = "",
                report_every_s: float = 2.0) -> Iterator[tuple[str, Any]]:
    """Train whole epochs from ``state`` (None = from scratch) on this process's device.

    Stops after ``max_epochs`` epochs (0 = no limit), before an epoch that would not fit in
    ``budget_s`` seconds (0 = no limit; the first always runs), when ``stop_file`` exists,
    or when all epochs are done. Yields ("start", info), ("progress", {step, terms}) at
    most every ``report_every_s`` seconds, ("epoch", {logs, grid, ...}) and finally
    ("state", state) with every tensor on the CPU, ready for the next chunk.
    """
    yield from _iterate_in_thread(lambda emit, cancelled: _run_chunk(
        spec, state, max_epochs, budget_s, stop_file, report_every_s, emit, cancelled))


def finish_job(spec: JobSpec, state: dict) -> dict:
    """After the last epoch: ``after_training`` (the VQ-VAE fits its code prior), a quick
    evaluation and a final preview. Returns CPU weights, metrics, grid and device."""
    from latentlab.evaluate import quick_metrics

    trainer = _build_trainer(spec, state)
    model = trainer.model
    post = getattr(model, "after_training", None)
    extra = post(trainer, progress=False) if post else {}
    model.eval()
    metrics = {**(extra or {}), **quick_metrics(model, spec.dataset, kind=spec.engine_kind)}
    return {"weights": _to_cpu(model.state_dict()), "metrics": metrics,
            "grid": preview_grid(model, spec.dataset), "device": device_description(trainer.device)}


# ----------------------------------------------------------------------------- manager

ACTIVE = ("starting", "training", "stopping", "finishing")


@dataclass(frozen=True)
class JobStatus:
    """A read-only snapshot of the current (or last) job, safe to hand to any visitor."""

    job_id: int = 0
    phase: str = "idle"           # idle | starting | training | stopping | finishing | done | stopped | failed
    message: str = "No training job has run on this server yet."
    summary: str = ""
    model: str = ""
    step: int = 0
    total_steps: int = 0
    epochs_done: int = 0
    epochs: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None    # measured: remaining steps / steps per second so far
    eta_note: str = ""            # what the estimate is made of
    curve: tuple = ()             # ({"step", "epoch", term: value, ...}, ...)
    curve_version: int = 0
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


def format_seconds(s: float | None) -> str:
    if s is None:
        return "unknown"
    s = round(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass
class _Job:
    job_id: int
    spec: JobSpec
    token: str
    stop_file: str
    summary: str
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"
    message: str = "Starting: loading the data."
    steps_per_epoch: int = 0
    step: int = 0
    epochs_done: int = 0
    rate_origin: tuple[float, int] | None = None   # (time, step) of the first report
    rate_last: tuple[float, int] | None = None     # (time, step) of the latest report
    train_started: float | None = None             # when the first chunk reported "start"
    finish_started: float | None = None
    curve: list = field(default_factory=list)
    curve_version: int = 0
    grid: np.ndarray | None = None
    grid_version: int = 0
    checkpoint: str | None = None
    zip_path: str | None = None
    metrics: dict = field(default_factory=dict)
    device: str = ""
    finished: float | None = None


class TrainingManager:
    """Runs at most one training job at a time and reports on it to anyone who asks.

    ``chunk_fn`` / ``finish_fn`` default to the ``spaces.GPU``-wrapped ``train_chunk`` /
    ``finish_job`` from ``latentlab.zerogpu`` (plain calls off ZeroGPU). ``chunk_epochs``
    and ``chunk_seconds`` bound each chunk (0 = unbounded: one chunk for the whole job).

    >>> m = TrainingManager(root=tmp, chunk_epochs=1)          # doctest: +SKIP
    >>> token = m.start(JobSpec(latent_dim=2, subset=256))     # doctest: +SKIP
    >>> m.wait().phase                                         # doctest: +SKIP
    'done'
    """

    def __init__(self, root: str | os.PathLike | None = None, *, chunk_fn: Callable | None = None,
                 finish_fn: Callable | None = None, chunk_epochs: int = 0,
                 chunk_seconds: float = 0.0, report_every_s: float = 2.0,
                 on_saved: Callable[[Path], None] | None = None,
                 shipped_dir: Path | None = SHIPPED_DIR, downloads: Path | None = None):
        if chunk_fn is None or finish_fn is None:
            from latentlab import zerogpu  # imported here: zerogpu imports this module

            chunk_fn = chunk_fn or zerogpu.train_chunk_on_gpu
            finish_fn = finish_fn or zerogpu.finish_on_gpu
        self.root = Path(root) if root is not None else user_checkpoint_dir()
        self.chunk_fn, self.finish_fn = chunk_fn, finish_fn
        self.chunk_epochs, self.chunk_seconds = chunk_epochs, chunk_seconds
        self.report_every_s = report_every_s
        self.on_saved = on_saved
        self.shipped_dir = shipped_dir
        self.downloads = Path(downloads or Path(tempfile.gettempdir()) / "latentlab-downloads")
        self._lock = threading.Lock()
        self._job: _Job | None = None
        self._thread: threading.Thread | None = None
        self._ids = 0
        self._measured: dict[str, dict[str, float]] = {}  # per model kind, from past jobs

    # -- public API -------------------------------------------------------------
    def start(self, spec: JobSpec, run_in: Callable[[Callable[[], None]], None] | None = None) -> str:
        """Start a job and return the owner's token (needed to stop it).

        Raises ``JobBusyError`` (with the running job's progress) if one is running and
        ``ValueError`` for a job this server will not run. ``run_in`` wraps the thread's
        body, e.g. to keep the visitor's ZeroGPU quota context.
        """
        if not training_enabled():
            raise ValueError("Training is switched off on this server.")
        self._check_cpu_cap(spec)
        with self._lock:
            if self._job is not None and self._job.phase in ACTIVE:
                raise JobBusyError("Another training job is running on this server, one job at "
                                   "a time. " + self._status_locked().describe())
            self._ids += 1
            fd, stop_file = tempfile.mkstemp(prefix="latentlab-stop-")
            os.close(fd)
            os.unlink(stop_file)  # the file's existence is the stop signal
            job = _Job(self._ids, spec, secrets.token_hex(16), stop_file, spec.summary())
            self._job = job
            body = (lambda: run_in(lambda: self._run(job))) if run_in else (lambda: self._run(job))
            self._thread = threading.Thread(target=body, daemon=True, name=f"latentlab-job-{job.job_id}")
            self._thread.start()
        return job.token

    def stop(self, token: str | None) -> str:
        """Ask the running job to stop after its current step; only its owner may."""
        with self._lock:
            job = self._job
            if job is None or job.phase not in ACTIVE:
                return "No training job is running."
            if not token or not secrets.compare_digest(token, job.token):
                return "Only the person who started this job can stop it."
            if job.phase == "finishing":
                return "The job is already evaluating and saving; it cannot be stopped now."
            Path(job.stop_file).touch()
            job.phase, job.message = "stopping", "Stopping after the current step."
            return job.message

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
        rate = self._measured.get(spec.model, {}).get("s_per_image")
        finish = self._finish_estimate(spec)
        if rate is None or finish is None:
            return None
        return rate * spec.images() * spec.epochs + finish

    # -- the job thread ---------------------------------------------------------
    def _run(self, job: _Job) -> None:
        try:
            # loaded here so that a forked ZeroGPU worker inherits the tensors
            data.load_split(job.spec.dataset, train=True)
            data.binarized_test_set(job.spec.dataset)
            state = self._train(job)
            if state is None or state["completed"] < 1:
                self._end(job, "stopped", "Stopped before the first epoch finished; nothing was saved.")
                return
            self._update(job, phase="finishing", message=self._finishing_message(job.spec),
                         finish_started=time.monotonic())
            result = self.finish_fn(job.spec, state)
            self._remember_times(job, result["metrics"])
            self._save(job, state, result)
        except Exception as exc:  # the app stays up; the visitor sees what went wrong
            log.exception("training job %d failed", job.job_id)
            self._end(job, "failed", f"Training failed ({type(exc).__name__}: {exc}). Nothing was saved.")
        finally:
            Path(job.stop_file).unlink(missing_ok=True)

    def _train(self, job: _Job) -> dict | None:
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

    def _on_event(self, job: _Job, kind: str, payload: Any) -> None:
        with self._lock:
            now = time.monotonic()
            if kind == "start":
                job.steps_per_epoch, job.device = payload["steps_per_epoch"], payload["device"]
                job.train_started = job.train_started or now
                if job.phase == "starting":
                    job.phase, job.message = "training", "Training."
            elif kind == "progress":
                step = payload["step"] if payload["step"] is not None else job.step
                job.step = max(job.step, step)
                if job.rate_origin is None:
                    job.rate_origin = (now, job.step)
                job.rate_last = (now, job.step)
                spe = max(job.steps_per_epoch, 1)
                job.curve.append({"step": job.step, "epoch": round(job.step / spe, 3), **payload["terms"]})
                if len(job.curve) > MAX_CURVE_POINTS:
                    job.curve = job.curve[::2]
                job.curve_version += 1
            elif kind == "epoch":
                job.epochs_done = payload["completed"]
                job.grid, job.grid_version = payload["grid"], job.grid_version + 1
                if not payload["logs"]["stopped"]:
                    job.step = max(job.step, job.epochs_done * job.steps_per_epoch)

    def _save(self, job: _Job, state: dict, result: dict) -> None:
        kind, model_cfg, cfg = job.spec.configs()
        model = MODEL_KINDS[kind][1](model_cfg)
        model.load_state_dict(result["weights"])
        self.root.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.root)
        folder = unique_folder(self.root, job.spec.name or default_name(job.spec), self.shipped_dir)
        history = state["trainer"]["history"]
        metrics = {
            "command": job.spec.command(folder),
            "source": "Latent Lab Train tab",
            "train_wall_time_s": round(time.monotonic() - job.started, 1),
            "device": result["device"],
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "train_config": dataclasses.asdict(cfg),
            "epochs_completed": state["completed"],
            "stopped_early": bool(state["stopped"]),
            "final_epoch": history[-1] if history else {},
            **result["metrics"],
        }
        path = save_checkpoint(folder, model, kind, model_cfg, metrics)
        notes, zip_path = [], None
        try:
            for old in self.downloads.glob("*.zip"):  # only the latest job's zip is offered
                old.unlink(missing_ok=True)
            zip_path = str(zip_checkpoint(path, self.downloads))
        except OSError as exc:
            notes.append(f"the zip could not be written ({exc})")
        if self.on_saved is not None:
            try:
                self.on_saved(path)
            except Exception as exc:  # a picker that fails to refresh must not lose the model
                log.exception("refreshing the model pickers failed")
                notes.append(f"the model pickers could not be refreshed ({exc})")
        with self._lock:
            job.checkpoint, job.zip_path, job.metrics = str(path), zip_path, metrics
            job.grid, job.grid_version = result["grid"], job.grid_version + 1
        verb = "Stopped early and saved" if state["stopped"] else "Done. Saved"
        extra = (" Note: " + "; ".join(notes) + ".") if notes else ""
        self._end(job, "stopped" if state["stopped"] else "done",
                  f"{verb} as '{path.name}' after {state['completed']} complete epoch(s).{extra}")

    # -- small helpers ----------------------------------------------------------
    def _check_cpu_cap(self, spec: JobSpec) -> None:
        work = spec.images() * spec.epochs
        if trains_on_cpu() and work > cpu_cap():
            raise ValueError(
                f"On this CPU a run is capped at {cpu_cap():,} image-epochs (epochs x images) to "
                f"keep the app responsive for everyone; this one asks for {work:,}. Use fewer "
                f"epochs or a subset.")

    @staticmethod
    def _seconds_per_step(job: _Job) -> float | None:
        """Wall time per training step between the first and the latest report."""
        if job.rate_origin is None or job.rate_last is None or job.rate_last[1] <= job.rate_origin[1]:
            return None
        (t0, s0), (t1, s1) = job.rate_origin, job.rate_last
        return (t1 - t0) / (s1 - s0)

    def _remember_times(self, job: _Job, metrics: dict) -> None:
        """Keep this job's measured speeds to estimate the next job of the same kind."""
        seen = self._measured.setdefault(job.spec.model, {})
        per_step = self._seconds_per_step(job)
        if per_step is None and job.train_started and job.finish_started and job.step:
            # a short job can end before a second progress report: use the whole phase
            per_step = (job.finish_started - job.train_started) / job.step
        if per_step is not None:
            seen["s_per_image"] = per_step / job.spec.batch_size
        finish_s = time.monotonic() - (job.finish_started or time.monotonic())
        prior_s = float(metrics.get("prior_train_wall_time_s", 0.0))
        work = self._prior_work(job.spec)
        if work:
            seen["s_per_prior_grid_epoch"] = prior_s / work
        seen["eval_s"] = max(0.0, finish_s - prior_s)

    @staticmethod
    def _prior_work(spec: JobSpec) -> int:
        """Code grids times code-prior epochs (0 for models without a code prior)."""
        if spec.engine_kind != "vqvae":
            return 0
        return spec.images() * spec.configs()[1].prior_epochs

    def _finish_estimate(self, spec: JobSpec) -> float | None:
        seen = self._measured.get(spec.model, {})
        if "eval_s" not in seen:
            return None
        return seen["eval_s"] + seen.get("s_per_prior_grid_epoch", 0.0) * self._prior_work(spec)

    def _eta(self, job: _Job, now: float) -> tuple[float | None, str]:
        finish = self._finish_estimate(job.spec)
        if job.phase == "finishing":
            if finish is None:
                return None, "no estimate for this phase until one job of this kind has finished here"
            return max(0.0, finish - (now - job.finish_started)), "measured on the last such job here"
        per_step = self._seconds_per_step(job)
        if job.phase not in ("training", "stopping") or per_step is None:
            return None, ""
        total = job.spec.epochs * job.steps_per_epoch
        train = max(0, total - job.step) * per_step
        if finish is None:
            return train, "training measured from this run's steps; evaluation not included yet"
        return train + finish, "measured from this run's steps and the last such job's evaluation"

    @staticmethod
    def _finishing_message(spec: JobSpec) -> str:
        if spec.engine_kind == "vqvae":
            return "Fitting the code prior p_lambda(c) on the training codes, then evaluating and saving."
        return "Evaluating on the test set and saving."

    def _update(self, job: _Job, **changes) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(job, k, v)

    def _end(self, job: _Job, phase: str, message: str) -> None:
        self._update(job, phase=phase, message=message, finished=time.monotonic())

    def _status_locked(self) -> JobStatus:
        job = self._job
        if job is None:
            return JobStatus(device=server_device())
        now = job.finished or time.monotonic()
        total = job.spec.epochs * job.steps_per_epoch
        eta, note = self._eta(job, now)
        return JobStatus(
            job_id=job.job_id, phase=job.phase, message=job.message, summary=job.summary,
            model=job.spec.model, step=job.step, total_steps=total, epochs_done=job.epochs_done,
            epochs=job.spec.epochs, elapsed_s=now - job.started, eta_s=eta, eta_note=note,
            curve=tuple(job.curve), curve_version=job.curve_version, grid=job.grid,
            grid_version=job.grid_version, checkpoint=job.checkpoint, zip_path=job.zip_path,
            metrics=dict(job.metrics), device=job.device or server_device())


_MANAGER: TrainingManager | None = None
_MANAGER_LOCK = threading.Lock()


def get_manager() -> TrainingManager:
    """The server-wide manager (created on first use, so importing starts nothing)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            from latentlab import zerogpu

            _MANAGER = TrainingManager(chunk_seconds=zerogpu.chunk_seconds())
        return _MANAGER
