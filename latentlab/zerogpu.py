"""Hugging Face ZeroGPU: train in chunks that each fit one lent-GPU call.

On a ZeroGPU Space the GPU exists only inside functions decorated with ``spaces.GPU``,
for about the ``duration`` they ask for; each call runs in a forked worker and its
arguments and results travel by pickle. So ``latentlab.jobs.runner`` wraps its chunk and
finish functions with ``GPU(duration=chunk_duration)`` / ``GPU(duration=finish_duration)``;
the manager calls the chunk with the trainer state kept on the CPU, the chunk trains the
whole epochs that fit in ``chunk_seconds()`` and streams its progress back (it is a
generator), and the finish does the code prior and the evaluation in one more call.

This module knows nothing of the jobs (they import it, not the reverse): the durations read
only what any job spec offers (``engine_kind``, ``configs()``).

Off Spaces ``spaces.GPU`` returns the function unchanged, and when the package cannot be
imported an identity decorator stands in, so this path runs (and is tested) on a CPU.
On ZeroGPU, ``spaces`` must be imported before anything initialises CUDA: import this
module (or ``spaces``) at the top of ``app.py``.

>>> @GPU(duration=30)
... def f(x):
...     return x + 1
>>> f(1)
2
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from latentlab import settings

MAX_CALL_S = 120        # what a visitor without a subscription may request per call
SETUP_MARGIN_S = 20     # worker start, moving the data to the GPU, previews


def _identity_gpu(task: Callable | None = None, *, duration: Any = None, size: Any = None):
    """Stand-in for ``spaces.GPU`` when the package is missing: decorates with nothing."""
    if task is None:
        return lambda fn: fn
    return task


try:  # a no-op outside Spaces (it checks SPACES_ZERO_GPU itself)
    import spaces

    GPU = spaces.GPU
    SPACES_AVAILABLE = True
except ImportError:  # not installed: training runs in-process
    GPU = _identity_gpu
    SPACES_AVAILABLE = False


def call_seconds() -> int:
    """GPU seconds requested per training call (``LATENT_LAB_ZEROGPU_SECONDS``, default 60:
    ZeroGPU's own default; longer requests wait longer in its queue)."""
    return settings.current().zerogpu_seconds


def chunk_seconds() -> float:
    """Training time per chunk: bounded on ZeroGPU, unbounded (0) everywhere else."""
    if not settings.current().zero_gpu:
        return 0.0
    return float(max(10, call_seconds() - SETUP_MARGIN_S))


def chunk_duration(spec: Any, state: dict | None = None, max_epochs: int = 0,
                   budget_s: float = 0.0, **_: Any) -> int:
    """Seconds to ask ZeroGPU for: the chunk's budget, or one measured epoch if longer.

    >>> chunk_duration(None, {"epoch_time_s": 100.0}, budget_s=40), chunk_duration(None, None, budget_s=40)
    (120, 60)
    """
    epoch_s = state["epoch_time_s"] if state else 0.0
    return int(min(MAX_CALL_S, max(budget_s, 1.2 * epoch_s) + SETUP_MARGIN_S))


def finish_duration(spec: Any, state: dict) -> int:
    """The VQ-VAE fits its code prior here: allow for its epochs, each guessed at one
    VQ-VAE epoch (the prior is small, but this is a guess, not a measurement)."""
    prior_epochs = spec.configs()[1].prior_epochs if spec.engine_kind == "vqvae" else 0
    guess = SETUP_MARGIN_S + 20 + prior_epochs * state.get("epoch_time_s", 0.0)
    return int(min(MAX_CALL_S, guess))


def keep_request(request: Any) -> Callable[[Callable[[], None]], None]:
    """A ``run_in`` for ``TrainingManager.start``: the job thread sees the visitor's Gradio
    request, so ZeroGPU counts the GPU time against that visitor's quota (a plain thread
    has no request and would use the Space's own)."""

    def run(body: Callable[[], None]) -> None:
        if request is not None:
            try:
                from gradio.context import LocalContext

                LocalContext.request.set(request)
            except (ImportError, AttributeError):  # another Gradio: the Space's quota applies
                pass
        body()

    return run
