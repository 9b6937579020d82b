"""What models there are: the status line, the models table, and every model picker's choices.

Each picker has a ``PickerSpec`` (which kinds it lists, whether it has a "(none)" entry, and
its default rule); ``picker(registry, dataset, spec)`` computes its choices and default.
``watch(registry, seen, datasets, specs)`` rescans and recomputes every picker only when the
listing changed since ``seen`` (``listing_version``): open pages poll it, so a model trained
in the Train tab reaches them without a reload.

>>> from latentlab.registry import REPO, ModelRegistry
>>> reg = ModelRegistry(REPO / "checkpoints")
>>> picker(reg, "mnist", RECONSTRUCT).value
['mnist-vae-z16', 'mnist-flow-z16', 'mnist-vqvae']
>>> picker(reg, "mnist", CODE_GRID).value
'mnist-vqvae'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from latentlab.registry import ModelRegistry
from latentlab.views.latent import NONE

GENERATIVE = ("vae", "vqvae")
MODEL_COLUMNS = ["name", "kind", "dataset", "latent_dim", "prior", "num_codes", "test_elbo",
                 "test_nll_iwae", "test_accuracy", "test_mse"]
METRIC_KEYS = ("test_elbo", "test_nll_iwae", "test_accuracy", "test_mse")


def model_choices(registry: ModelRegistry, dataset: str, kinds: tuple[str, ...]
                  ) -> list[tuple[str, str]]:
    """(label, name) of the working checkpoints of some kinds of one data set."""
    return [(e.label, e.name) for e in registry.entries(dataset, kinds)]


def first_of(registry: ModelRegistry, dataset: str, kinds: tuple[str, ...]) -> str | None:
    entries = registry.entries(dataset, kinds)
    return entries[0].name if entries else None


def default_models(registry: ModelRegistry, dataset: str, dim: int | None = 16,
                   with_vq: bool = False) -> list[str]:
    """A VAE and its flow-prior twin (``dim``-D if there is one), else the first model(s);
    ``with_vq`` adds the data set's VQ-VAE."""
    vaes = registry.entries(dataset, ("vae",))
    pick = [e for e in vaes if e.latent_dim == dim and e.prior == "normal"] or \
        [e for e in vaes if e.prior == "normal"] or vaes
    out = []
    if pick:
        twin = registry.twin(pick[0].name)
        out = [pick[0].name] + ([twin] if twin else [])
    vq = first_of(registry, dataset, ("vqvae",))
    if vq and (with_vq or not out) and vq not in out:
        out.append(vq)
    if not out:
        other = registry.entries(dataset, GENERATIVE)
        out = [other[0].name] if other else []
    return out


def latent_pair(registry: ModelRegistry, dataset: str) -> tuple[str | None, str | None]:
    """The Latent space tab's two sides: a 2-D VAE and its flow twin when there are some."""
    pair = default_models(registry, dataset, dim=2)
    return (pair[0] if pair else None), (pair[1] if len(pair) > 1 else None)


DefaultRule = Callable[[ModelRegistry, str], Any]


@dataclass(frozen=True)
class PickerSpec:
    """A model picker: the kinds it lists, a "(none)" entry or not, and its default.

    >>> spec = PickerSpec(("vqvae",), lambda registry, dataset: None, allow_none=True)
    >>> spec.kinds, spec.allow_none
    (('vqvae',), True)
    """

    kinds: tuple[str, ...]
    default: DefaultRule
    allow_none: bool = False


RECONSTRUCT = PickerSpec(GENERATIVE, lambda r, ds: default_models(r, ds, with_vq=True))
SAMPLE = PickerSpec(GENERATIVE, lambda r, ds: default_models(r, ds))
INTERPOLATE = PickerSpec(GENERATIVE, lambda r, ds: default_models(r, ds))
CODE_GRID = PickerSpec(("vqvae",), lambda r, ds: first_of(r, ds, ("vqvae",)))
CODE_LEVELS = PickerSpec(("vqvae2",), lambda r, ds: first_of(r, ds, ("vqvae2",)))
LATENT_A = PickerSpec(GENERATIVE, lambda r, ds: latent_pair(r, ds)[0])
LATENT_B = PickerSpec(GENERATIVE, lambda r, ds: latent_pair(r, ds)[1] or NONE, allow_none=True)


@dataclass
class Picker:
    """A picker's choices ((label, name) pairs) and its default value."""

    choices: list[tuple[str, str]]
    value: Any


def picker(registry: ModelRegistry, dataset: str, spec: PickerSpec) -> Picker:
    choices = model_choices(registry, dataset, spec.kinds)
    if spec.allow_none:
        choices = [(NONE, NONE)] + choices
    return Picker(choices, spec.default(registry, dataset))


# ----------------------------------------------------------------------------- listing

def describe(registry: ModelRegistry) -> list[dict]:
    """What is available, for API users: one dict per usable checkpoint."""
    out = []
    for e in registry.entries():
        d = {"name": e.name, "kind": e.kind, "dataset": e.dataset}
        if e.kind == "vae":
            d.update(latent_dim=e.latent_dim, prior=e.prior)
        if e.kind in ("vqvae", "vqvae2"):
            d.update(num_codes=e.num_codes)
        d.update({k: e.metrics[k] for k in METRIC_KEYS if k in e.metrics})
        out.append(d)
    return out


def models_table(registry: ModelRegistry) -> pd.DataFrame:
    rows = [[d.get(c, "") for c in MODEL_COLUMNS] for d in describe(registry)]
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)


def status(registry: ModelRegistry) -> str:
    """Warnings for broken checkpoints, and a hint when there is no model at all."""
    lines = [f"⚠️ {w}" for w in registry.warnings]
    if not registry.entries(kinds=GENERATIVE):
        lines.insert(0, "⚠️ No trained models found in `checkpoints/` yet: train one in the "
                        "**Train** tab or copy checkpoint folders there, then press ↻.")
    return "\n\n".join(lines)


@dataclass
class Outputs:
    """The models accordion, in the UI's output order."""

    status: str
    table: pd.DataFrame


def run(registry: ModelRegistry) -> Outputs:
    """Rescan the checkpoint folders and list what is there (the ↻ button)."""
    registry.refresh()
    return Outputs(status(registry), models_table(registry))


def list_models(registry: ModelRegistry) -> Outputs:
    return run(registry)


# ----------------------------------------------------------------------------- watching

def listing_version(registry: ModelRegistry) -> str:
    """A fingerprint of what is listed: it changes when a checkpoint appears, goes, is
    rewritten or breaks (no rescan; ``watch`` rescans first)."""
    listed = sorted((e.name, e.stamp) for e in registry.entries())
    key = repr((listed, sorted(registry.warnings)))
    return hashlib.sha1(key.encode()).hexdigest()[:16]


@dataclass
class Watch:
    """What an open page needs after a rescan: nothing (``changed`` False) or the new
    listing and every picker's choices, in the order of the specs it was given."""

    version: str
    changed: bool
    pickers: list[Picker] = field(default_factory=list)
    status: str = ""
    table: pd.DataFrame | None = None


def watch(registry: ModelRegistry, seen: str | None, datasets: Sequence[str],
          specs: Sequence[PickerSpec]) -> Watch:
    """Rescan (unchanged folders are not read again) and, if the listing differs from
    ``seen``, recompute each picker for its tab's data set."""
    registry.refresh()
    version = listing_version(registry)
    if version == seen:
        return Watch(version, False)
    return Watch(version, True, [picker(registry, ds, spec) for ds, spec in zip(datasets, specs)],
                 status(registry), models_table(registry))
