"""The device side of a job: train a chunk of epochs, then finish (code prior, evaluation).

A chunk (``train_chunk``) rebuilds the trainer, restores its state, trains whole epochs and
hands the state back on the CPU. On a normal server a job is one chunk; on a Hugging Face
ZeroGPU Space the GPU is lent per call for a bounded time, so the chunk runs inside
``spaces.GPU`` (``train_chunk_on_gpu``, wrapped here at import time as ZeroGPU requires) and
the manager calls it until all epochs are done. ``finish_job`` then restores the chosen
epoch's weights, runs what comes after training (the VQ-VAE's code prior), evaluates briefly
and records the validation summary, like ``latentlab.train.fit``.

Stop reaches the code prior's fit too: ``state["stop_file"]`` (set by the manager; in the
state because ZeroGPU's duration function takes the same arguments as ``finish_job``) ends
it after the current step, and the model is kept with the prior as far as it got
(``prior_stopped_early`` in its metrics). Weights that became NaN or infinite are never
handed back (``TrainingDiverged``); a chunk whose epoch loss is not finite stops the job.

>>> spec = JobSpec(latent_dim=2, subset=64, batch_size=32, val_size=100,
...                model_options={"channels": 4, "hidden": 8})
>>> events = list(train_chunk(spec))
>>> [kind for kind, _ in events][0], [kind for kind, _ in events][-2:]
('start', ['epoch', 'state'])
>>> state = events[-1][1]; state["completed"], state["trainer"]["epoch"]
(1, 1)
>>> result = finish_job(spec, state)
>>> result["metrics"]["val_chosen_epoch"], "test_elbo" in result["metrics"]
(1, True)
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from latentlab import settings, zerogpu
from latentlab.device import device_description
from latentlab.evaluate import quick_metrics
from latentlab.jobs.preview import preview_grid
from latentlab.jobs.spec import JobSpec
from latentlab.train import (
    DIVERGED,
    Trainer,
    TrainingDiverged,
    after_training,
    check_finite_weights,
    validation_summary,
)
from models import MODEL_KINDS

Emit = Callable[[tuple[str, Any]], None]


# ----------------------------------------------------------------------------- where it runs

def on_zerogpu() -> bool:
    """True on a Hugging Face ZeroGPU Space (the GPU is only lent inside ``spaces.GPU``)."""
    return settings.current().zero_gpu


def server_device() -> str:
    """Where a job will train, in words; never initialises CUDA on ZeroGPU."""
    if on_zerogpu():
        return "ZeroGPU (a GPU lent per call)"
    return device_description(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def trains_on_cpu() -> bool:
    return not on_zerogpu() and not torch.cuda.is_available()


# ----------------------------------------------------------------------------- helpers

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


@dataclass(frozen=True)
class ChunkLimits:
    """When a chunk stops: after ``max_epochs`` (0 = no limit), before an epoch that would not
    fit in ``budget_s`` seconds (0 = no limit; the first always runs), or on ``stop_file``."""

    max_epochs: int = 0
    budget_s: float = 0.0
    stop_file: str = ""
    report_every_s: float = 2.0

    def another_epoch_fits(self, epoch_times: list[float], elapsed: float) -> bool:
        ran = len(epoch_times)
        if self.max_epochs and ran >= self.max_epochs:
            return False
        return not (self.budget_s and ran and elapsed + 1.2 * max(epoch_times) > self.budget_s)

    def stop_requested(self) -> bool:
        return bool(self.stop_file and os.path.exists(self.stop_file))


def to_cpu(obj: Any) -> Any:
    """Recursively move tensors to the CPU (state kept between ZeroGPU calls)."""
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def build_trainer(spec: JobSpec, state: dict | None) -> Trainer:
    """A fresh trainer, or one restored exactly (weights, optimizer, schedule, RNGs, best epoch)."""
    kind, model_cfg, cfg = spec.configs()
    torch.manual_seed(cfg.seed)
    trainer = Trainer(MODEL_KINDS[kind][1](model_cfg), cfg, kind=kind)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        trainer.best = state.get("best")  # the Trainer's own state leaves out the kept weights
    return trainer


def _iterate_in_thread(work: Callable[[Emit, Callable[[], bool]], Any]) -> Iterator[tuple]:
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


# ----------------------------------------------------------------------------- a chunk

def _train_epoch(trainer: Trainer, meter: StepMeter, emit: Emit,
                 should_stop: Callable[[], bool]) -> dict:
    """One epoch, reporting the mean loss terms whenever the meter is due and at the end."""
    def on_step(i: int, logs: dict) -> None:
        meter.add(logs)
        if meter.due():
            emit(("progress", {"step": trainer.epoch * trainer.steps_per_epoch + i + 1,
                               "terms": meter.take()}))

    logs = trainer.run_epoch(on_step=on_step, should_stop=should_stop)
    if meter.n:  # a stopped epoch's step count is not a whole epoch: the host keeps its own
        step = None if logs["stopped"] else trainer.epoch * trainer.steps_per_epoch
        emit(("progress", {"step": step, "terms": meter.take()}))
    return logs


def _run_chunk(spec: JobSpec, state: dict | None, limits: ChunkLimits, emit: Emit,
               cancelled: Callable[[], bool]) -> dict:
    start = time.monotonic()
    trainer = build_trainer(spec, state)
    emit(("start", {"steps_per_epoch": trainer.steps_per_epoch,
                    "device": device_description(trainer.device)}))
    meter = StepMeter(limits.report_every_s)
    completed, stopped, epoch_times = (state["completed"] if state else 0), False, []
    while (trainer.epoch < trainer.cfg.epochs and not stopped
           and limits.another_epoch_fits(epoch_times, time.monotonic() - start)):
        t0 = time.monotonic()
        logs = _train_epoch(trainer, meter, emit, lambda: cancelled() or limits.stop_requested())
        epoch_times.append(time.monotonic() - t0)
        if not math.isfinite(logs.get("loss", 0.0)):  # no point in more epochs of NaN
            raise TrainingDiverged(DIVERGED)
        stopped = logs["stopped"]
        completed += 0 if stopped else 1
        grid = preview_grid(trainer.model, spec.dataset, samples=spec.engine_kind != "vqvae")
        emit(("epoch", {"logs": logs, "completed": completed, "epoch_time_s": epoch_times[-1],
                        "grid": grid}))
    return {"trainer": to_cpu(trainer.state_dict()), "best": to_cpu(trainer.best),
            "completed": completed, "stopped": stopped,
            "epoch_time_s": max(epoch_times, default=0.0)}


def train_chunk(spec: JobSpec, state: dict | None = None, max_epochs: int = 0,
                budget_s: float = 0.0, stop_file: str = "",
                report_every_s: float = 2.0) -> Iterator[tuple[str, Any]]:
    """Train whole epochs from ``state`` (None = from scratch) on this process's device.

    Stops as ``ChunkLimits`` says or when all epochs are done. Yields ("start", info),
    ("progress", {step, terms}) at most every ``report_every_s`` seconds, ("epoch",
    {logs, grid, ...}) and finally ("state", state) with every tensor on the CPU, ready for
    the next chunk.
    """
    limits = ChunkLimits(max_epochs, budget_s, stop_file, report_every_s)
    yield from _iterate_in_thread(
        lambda emit, cancelled: _run_chunk(spec, state, limits, emit, cancelled))


def finish_job(spec: JobSpec, state: dict) -> dict:
    """After the last epoch: the chosen epoch's weights (the best one with ``keep_best``),
    ``after_training`` (the VQ-VAE fits its code prior; ``state["stop_file"]`` stops it), a
    quick evaluation, the validation summary and a final preview. Returns CPU weights,
    metrics, grid and device; raises ``TrainingDiverged`` for non-finite weights."""
    trainer = build_trainer(spec, state)
    chosen_epoch = trainer.restore_best()
    stop_file = state.get("stop_file") or ""
    extra = after_training(trainer, progress=False,
                           should_stop=lambda: bool(stop_file) and os.path.exists(stop_file))
    model = trainer.model.eval()
    check_finite_weights(model)
    metrics = {**validation_summary(trainer, chosen_epoch), **extra,
               **quick_metrics(model, spec.dataset, kind=spec.engine_kind)}
    return {"weights": to_cpu(model.state_dict()), "metrics": metrics,
            "grid": preview_grid(model, spec.dataset), "device": device_description(trainer.device)}


# Wrapped at import time: ZeroGPU registers its functions before the app launches.
train_chunk_on_gpu = zerogpu.GPU(duration=zerogpu.chunk_duration)(train_chunk)
finish_on_gpu = zerogpu.GPU(duration=zerogpu.finish_duration)(finish_job)
