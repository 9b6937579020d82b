"""How long a job will take, from what this server measured, never from a guess.

While a job trains, the time left is the remaining steps times the seconds per step measured
between its own first and latest progress reports. The phase after training (code prior,
evaluation) and whole-job estimates come from the last finished job of the same kind here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from latentlab.jobs.manager import Job
    from latentlab.jobs.spec import JobSpec


def format_seconds(s: float | None) -> str:
    """Seconds for people.

    >>> format_seconds(42.4), format_seconds(125), format_seconds(7300), format_seconds(None)
    ('42 s', '2 min 05 s', '2 h 01 min', 'unknown')
    """
    if s is None:
        return "unknown"
    s = round(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def seconds_per_step(job: Job) -> float | None:
    """Wall time per training step between the first and the latest report."""
    if job.rate_origin is None or job.rate_last is None or job.rate_last[1] <= job.rate_origin[1]:
        return None
    (t0, s0), (t1, s1) = job.rate_origin, job.rate_last
    return (t1 - t0) / (s1 - s0)


def prior_work(spec: JobSpec) -> int:
    """Code grids times code-prior epochs (0 for models without a code prior)."""
    if spec.engine_kind != "vqvae":
        return 0
    return spec.images() * spec.configs()[1].prior_epochs


class TimeEstimate:
    """Speeds measured on this server, per app model kind (vae, flow, vqvae).

    >>> TimeEstimate().whole_job(None) is None   # nothing measured yet: no estimate
    True
    """

    def __init__(self) -> None:
        self.measured: dict[str, dict[str, float]] = {}

    def remember(self, job: Job, metrics: dict) -> None:
        """Keep a finished job's measured speeds to estimate the next job of the same kind."""
        seen = self.measured.setdefault(job.spec.model, {})
        per_step = seconds_per_step(job)
        if per_step is None and job.train_started and job.finish_started and job.status.step:
            # a short job can end before a second progress report: use the whole phase
            per_step = (job.finish_started - job.train_started) / job.status.step
        if per_step is not None:
            seen["s_per_image"] = per_step / job.spec.batch_size
        finish_s = time.monotonic() - (job.finish_started or time.monotonic())
        prior_s = float(metrics.get("prior_train_wall_time_s", 0.0))
        work = prior_work(job.spec)
        if work:
            seen["s_per_prior_grid_epoch"] = prior_s / work
        seen["eval_s"] = max(0.0, finish_s - prior_s)

    def finish(self, spec: JobSpec) -> float | None:
        """Seconds for the phase after training (code prior and evaluation), if measured."""
        seen = self.measured.get(spec.model, {})
        if "eval_s" not in seen:
            return None
        return seen["eval_s"] + seen.get("s_per_prior_grid_epoch", 0.0) * prior_work(spec)

    def whole_job(self, spec: JobSpec | None) -> float | None:
        """The whole job's time from the last job of the same kind on this server, if any."""
        if spec is None:
            return None
        rate = self.measured.get(spec.model, {}).get("s_per_image")
        finish = self.finish(spec)
        if rate is None or finish is None:
            return None
        return rate * spec.images() * spec.epochs + finish

    def eta(self, job: Job, now: float) -> tuple[float | None, str]:
        """Seconds left for a job at ``now``, and what that number is made of."""
        finish = self.finish(job.spec)
        phase = job.status.phase
        if phase == "finishing":
            if finish is None:
                return None, "no estimate for this phase until one job of this kind has finished here"
            return max(0.0, finish - (now - job.finish_started)), "measured on the last such job here"
        per_step = seconds_per_step(job)
        if phase not in ("training", "stopping") or per_step is None:
            return None, ""
        train = max(0, job.status.total_steps - job.status.step) * per_step
        if finish is None:
            return train, "training measured from this run's steps; evaluation not included yet"
        return train + finish, "measured from this run's steps and the last such job's evaluation"
