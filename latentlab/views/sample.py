"""Sample tab: grids of samples from each model's prior (or the aggregated posterior).

One "Sample from" choice covers both model kinds: ``prior`` is p(z) for a VAE and the learned
code prior for a VQ-VAE; ``q_agg`` only applies to VAEs and ``uniform`` only to VQ-VAEs.

>>> source_for("vqvae", "prior"), source_for("vae", "uniform")
('learned', None)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from latentlab import cache, render
from latentlab.data import CLASS_NAMES
from latentlab.errors import InputError
from latentlab.inputs import SAMPLE_COUNTS, check_int, check_models, check_temperature, generator
from latentlab.registry import ModelRegistry
from latentlab.testset import latent_data
from models.distributions import DiagonalGaussian

VAE_SOURCES = ("prior", "q_agg")
VQ_SOURCES = ("learned", "uniform")
# The UI's one radio -> each kind's own source name (absent: does not apply to that kind).
UI_SOURCES = {"vae": {"prior": "prior", "q_agg": "q_agg"},
              "vqvae": {"prior": "learned", "uniform": "uniform"}}
KIND_NAMES = {"vae": "VAE", "vqvae": "VQ-VAE"}


def sources_for(kind: str) -> tuple[str, ...]:
    return VAE_SOURCES if kind == "vae" else VQ_SOURCES


def source_for(kind: str, ui_source: str) -> str | None:
    """The UI's source as a ``kind`` model names it, None if it does not apply."""
    return UI_SOURCES.get(kind, {}).get(ui_source)


@dataclass
class SampleResult:
    name: str
    source: str                      # prior | q_agg | learned | uniform
    images: np.ndarray               # (n, 28, 28) in [0, 1]
    labels: list[str] | None = None  # the classifier's reading of each sample
    confidence: np.ndarray | None = None  # (n,) its top probability
    note: str = ""


def _check_source(name: str, kind: str, source: str) -> None:
    if source not in sources_for(kind):
        other = "VQ-VAE" if kind == "vae" else "VAE"
        raise InputError(f"{name} is a {KIND_NAMES[kind]}: sample from "
                         f"{' or '.join(sources_for(kind))} ('{source}' is for a {other})")


@torch.inference_mode()
def sample_grid(registry: ModelRegistry, name: str, n: int = 64, source: str = "prior",
                temperature: float = 1.0, seed: int = 0, labels: bool = False) -> SampleResult:
    """n samples of one model.

    VAE: ``prior`` draws z from p(z) (N(0,I) or the flow, temperature scaling eps), ``q_agg``
    picks a random test image x_i per sample and draws z ~ q(z|x_i) (std times temperature).
    VQ-VAE: code grids from the ``learned`` prior or the ``uniform`` one.
    """
    lm = registry.get(name, ("vae", "vqvae"))
    kind = lm.entry.kind
    n = check_int("number of samples", n, 1, max(SAMPLE_COUNTS))
    temperature = check_temperature(temperature)
    _check_source(name, kind, source)
    gen = generator(seed)
    note = ""
    if kind == "vqvae":
        images = lm.model.sample(n, prior=source, temperature=temperature, generator=gen)
    elif source == "prior":
        images = lm.model.sample(n, temperature=temperature, generator=gen)
    else:
        ld = latent_data(registry, name)
        idx = torch.randint(len(ld.mu), (n,), generator=gen)                 # (n,)
        # std times T: log sigma^2 + 2 log T
        q = DiagonalGaussian(torch.from_numpy(ld.mu)[idx],
                             torch.from_numpy(ld.logvar)[idx] + 2 * math.log(temperature))
        images = lm.model.decode_probs(q.rsample(generator=gen))            # (n, 1, 28, 28)
        note = f"q_agg from {ld.source}"
    images = images.view(n, 28, 28)                                         # (n, 1, 28, 28) -> (n, 28, 28)
    result = SampleResult(name, source, images.numpy(), note=note)
    if labels:
        _label(registry, lm.entry.dataset, images, result)
    return result


def _label(registry: ModelRegistry, dataset: str, images: torch.Tensor, result: SampleResult) -> None:
    clf = registry.classifier(dataset)
    if clf is None:
        result.note = (result.note + "; " if result.note else "") + \
            f"no {dataset} classifier checkpoint, so no labels"
        return
    probs = torch.softmax(clf.model(images.view(-1, 1, 28, 28)), -1)       # (n, 10)
    conf, pred = probs.max(-1)
    names = CLASS_NAMES[dataset]
    result.labels = [names[i] for i in pred.tolist()]
    result.confidence = conf.numpy()


def sample_image(result: SampleResult, cols: int | None = None, scale: int = 3) -> np.ndarray:
    """The samples as one grid, with the classifier's label under each one if present."""
    n = len(result.images)
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    caps = colors = None
    if result.labels is not None:
        caps = [f"{lab[:7]} {c:.2f}" for lab, c in zip(result.labels, result.confidence)]
        colors = [(20, 20, 20) if c >= 0.9 else (200, 60, 0) for c in result.confidence]
    return render.tile(result.images, cols=cols, scale=scale, captions=caps, caption_colors=colors)


# ----------------------------------------------------------------------------- the tab

@dataclass
class Outputs:
    """What the Sample tab shows, in the UI's output order."""

    gallery: list[tuple[np.ndarray, str]] = field(default_factory=list)  # one grid per model
    note: str = ""


def run(registry: ModelRegistry, models: Sequence[str], source: str = "prior", n: Any = 64,
        temperature: Any = 1.0, labels: bool = False, seed: Any = 0) -> Outputs:
    """The Sample button: one grid per model; models the source does not apply to are
    skipped with a note (all skipped is an error)."""
    out, notes = Outputs(), []
    for name in check_models(models):
        kind = registry.entry(name).kind
        s = source_for(kind, source)
        if kind not in KIND_NAMES:
            notes.append(f"⚠️ {name} is a {kind}: it labels images and cannot draw samples; "
                         "pick a VAE or a VQ-VAE.")
            continue
        if s is None:
            notes.append(f"⚠️ {name}: '{source}' does not apply to a "
                         f"{KIND_NAMES.get(kind, kind)}; skipped")
            continue
        res = sample_grid(registry, name, n, s, temperature, seed, labels)
        scale = 3 if len(res.images) <= 16 else 2
        out.gallery.append((sample_image(res, scale=scale), f"{name} · {s} · T={temperature:g}"))
        if res.note:
            notes.append(f"{name}: {res.note}")
    if not out.gallery:
        raise InputError(" ".join(notes))
    out.note = "\n\n".join(notes)
    return out


def serve(registry: ModelRegistry, models: Sequence[str], source: str = "prior", n: Any = 64,
          temperature: Any = 1.0, labels: bool = False, seed: Any = 0) -> Outputs:
    """``run`` as the app serves it: each grid a PNG file written once, and identical
    requests (same models, source, n, T, labels, seed) answered from the result cache."""
    def compute() -> Outputs:
        out = run(registry, models, source, n, temperature, labels, seed)
        out.gallery = [(cache.files().png(img), label) for img, label in out.gallery]
        return out

    parts = ("sample", id(registry), models, source, n, temperature, labels, seed,
             cache.model_stamps(registry, models))
    return cache.memoized(parts, compute)
