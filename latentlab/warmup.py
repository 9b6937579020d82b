"""Warm the server before a class arrives: load the models every tab opens with and run each
tab's default action once.

A class opens the app within seconds of each other. Without this, the first requests load
checkpoints, read the latent assets and build torch's kernels for each layer shape while
a hundred more requests wait behind them (that start-up queue was most of the load test's
latency tail). ``python app.py`` calls ``start`` after building the demo, in a daemon thread,
so the page is served at once and importing ``app`` still starts nothing.

>>> from latentlab.registry import ModelRegistry
>>> warm(ModelRegistry(root="no-such-folder", assets=None), ["mnist"])  # nothing to load
[]
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence

from latentlab import testset
from latentlab.errors import UserError
from latentlab.registry import ModelRegistry
from latentlab.views import elbo_gap, examples, models, reconstruct, sample
from latentlab.views import interpolate as interp

log = logging.getLogger(__name__)
SPECS = (models.RECONSTRUCT, models.SAMPLE, models.INTERPOLATE, models.CODE_GRID,
         models.LATENT_A, models.LATENT_B)


def default_names(registry: ModelRegistry, dataset: str) -> list[str]:
    """Every model a tab's picker selects on a fresh page of ``dataset``, in order, once."""
    names: list[str] = []
    for spec in SPECS:
        value = spec.default(registry, dataset)
        for name in value if isinstance(value, list) else [value]:
            if name and name != models.NONE and name not in names:
                names.append(name)
    return names


def _run_defaults(registry: ModelRegistry, dataset: str, names: list[str]) -> None:
    """Each tab's default action once, with the data set's first two example digits."""
    a, b = examples.first_example(dataset, 0), examples.first_example(dataset, 1)
    if a is None or b is None:
        return
    # serve, as the page's first event does: its answer is then kept for every fresh page
    reconstruct.serve(registry, a, models.RECONSTRUCT.default(registry, dataset))
    sample.run(registry, models.SAMPLE.default(registry, dataset))
    interp.run(registry, a, b, models.INTERPOLATE.default(registry, dataset))
    for name in names:
        kind = registry.entry(name).kind
        if kind == "vae":
            testset.latent_data(registry, name)
        elif kind == "vqvae":
            testset.code_data(registry, name)


def warm(registry: ModelRegistry, datasets: Sequence[str]) -> list[str]:
    """Load the default models of each data set (and its classifier) and run the defaults;
    returns the names loaded. A broken checkpoint is logged and skipped, never raised."""
    loaded: list[str] = []
    for dataset in datasets:
        names = default_names(registry, dataset)
        for name in names:
            try:
                registry.get(name)
                loaded.append(name)
            except UserError as exc:
                log.warning("warm-up: %s", exc)
        registry.classifier(dataset)
        try:
            _run_defaults(registry, dataset, [n for n in names if n in loaded])
        except UserError as exc:
            log.warning("warm-up of %s: %s", dataset, exc)
    if elbo_gap.DEFAULT_MODEL in {e.name for e in registry.entries(kinds=("vae",))}:
        try:  # the ELBO-gap panel's image-independent half, for its default settings
            elbo_gap.prior_decodes(registry.get(elbo_gap.DEFAULT_MODEL).model)
        except UserError as exc:
            log.warning("warm-up: %s", exc)
    return loaded


def start(registry: ModelRegistry, datasets: Sequence[str]) -> threading.Thread:
    """``warm`` in a daemon thread; logs one line when done."""
    def job() -> None:
        # Linux: this thread alone at nice 10, so the server's own work goes first
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        t0 = time.perf_counter()
        names = warm(registry, datasets)
        log.info("warm-up: %d models ready in %.1f s", len(names), time.perf_counter() - t0)

    thread = threading.Thread(target=job, name="warm-up", daemon=True)
    thread.start()
    return thread
