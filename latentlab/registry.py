"""Checkpoints on disk, the models loaded from them, and what is cached per model.

``ModelRegistry`` lists every checkpoint folder (``ModelEntry``: config and metrics read,
weights not loaded), loads a model once on first use (``LoadedModel``) and keeps its
per-model caches (``LoadedModel.memo``; what is cached from the test set is in
``latentlab.testset``). Everything here is shared by all users and read-only.

>>> reg = ModelRegistry(REPO / "checkpoints")
>>> [e.name for e in reg.entries("mnist", kinds=("vqvae",))]
['mnist-vqvae']
>>> reg.twin("mnist-vae-z2")
'mnist-flow-z2'
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from latentlab import checkpoint
from latentlab.data import check_dataset
from latentlab.errors import CheckpointError, InputError

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")
log = logging.getLogger(__name__)


def _check_weights_header(path: Path) -> None:
    """Fail early (at scan time, before any load) on a missing or garbled weights file."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc


def _check_finite_weights(folder: Path) -> None:
    """Refuse NaN or infinite weights (reads them all: only for the small trained models)."""
    from safetensors.torch import load_file

    checkpoint.check_weights(folder)  # bounded sizes and matching shapes before reading data
    bad = checkpoint.nonfinite_tensors(load_file(str(folder / "model.safetensors")))
    if bad:
        raise CheckpointError(f"weights are not finite (NaN or inf in {bad[:3]}); the training "
                              "that wrote them diverged")


def _stamp(path: Path) -> tuple:
    """What changes when a checkpoint folder is rewritten: its files' times and sizes."""
    out = []
    for f in ("config.json", "model.safetensors", "metrics.json"):
        try:
            st = (path / f).stat()
        except OSError:
            continue
        out.append((f, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- entries

@dataclass
class ModelEntry:
    """A checkpoint folder as listed (config and metrics read, weights not yet loaded).

    >>> e = ModelRegistry(REPO / "checkpoints").entry("mnist-flow-z2")
    >>> e.kind, e.dataset, e.latent_dim, e.prior
    ('vae', 'mnist', 2, 'realnvp')
    """

    name: str
    path: Path
    kind: str = "?"
    dataset: str = "?"
    config: Any = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    stamp: tuple = ()

    @property
    def latent_dim(self) -> int | None:
        return getattr(self.config, "latent_dim", None)

    @property
    def prior(self) -> str | None:
        return getattr(self.config, "prior", None) if self.kind == "vae" else None

    @property
    def num_codes(self) -> int | None:
        return getattr(self.config, "num_codes", None) if self.kind in ("vqvae", "vqvae2") else None

    @property
    def label(self) -> str:
        if self.kind == "vae":
            prior = "flow prior" if self.prior == "realnvp" else "N(0,I) prior"
            beta = getattr(self.config, "beta", 1.0)
            return f"{self.name}  (VAE, {prior}, {self.latent_dim}-D z" + (
                f", β={beta:g})" if beta != 1.0 else ")")
        if self.kind == "autoencoder":
            return f"{self.name}  (plain autoencoder, {self.latent_dim}-D code)"
        if self.kind == "gumbel":
            return (f"{self.name}  (Gumbel-softmax VAE, {self.latent_dim} x "
                    f"{self.config.categories}-way categorical)")
        if self.kind == "vqvae":
            return f"{self.name}  (VQ-VAE, K={self.num_codes} codes, 7x7 grid)"
        if self.kind == "vqvae2":
            return (f"{self.name}  (two-level VQ-VAE: 2x2 top grid of {self.config.top_codes} "
                    f"codes, 7x7 bottom grid of {self.num_codes})")
        return f"{self.name}  ({self.kind})"


@dataclass
class LoadedModel:
    """A model in memory with its per-model cache (test-set posteriors, atlas, ...).

    >>> lm = ModelRegistry(REPO / "checkpoints").get("mnist-vqvae")
    >>> lm.memo("answer", lambda: 42), lm.memo("answer", lambda: 0)
    (42, 42)
    """

    entry: ModelEntry
    model: torch.nn.Module
    sha: str
    cache: dict = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def memo(self, key: Any, fn: Callable[[], T]) -> T:
        """Compute once per model (thread-safe); later calls return the stored value."""
        if key in self.cache:
            return self.cache[key]
        with self.lock:
            if key not in self.cache:
                self.cache[key] = fn()
        return self.cache[key]

    def recent(self, group: str, key: Any, fn: Callable[[], T], size: int = 8) -> T:
        """Like ``memo`` but keeps only the ``size`` most recently used keys of a group
        (renders that depend on user settings such as a seed must not pile up)."""
        with self.lock:
            store = self.cache.setdefault(group, OrderedDict())
            if key in store:
                store.move_to_end(key)
                return store[key]
            value = store[key] = fn()
            while len(store) > size:
                store.popitem(last=False)
            return value

    def forget(self, match: Callable[[Any], bool]) -> None:
        """Drop the cached values whose key matches (after a map was recomputed)."""
        with self.lock:
            for key in [k for k in self.cache if match(k)]:
                del self.cache[key]


# ----------------------------------------------------------------------------- registry

def family(kind: str, config: Any) -> str:
    """The kind the app lists a checkpoint under: a VAE with a deterministic code is an
    "autoencoder" and one with categorical latents a "gumbel" VAE, because the tabs built on a
    Gaussian posterior (ELBO terms, q_agg, the latent plane) do not apply to them.

    >>> from models.vae import VAEConfig
    >>> family("vae", VAEConfig()), family("vae", VAEConfig(posterior="deterministic"))
    ('vae', 'autoencoder')
    """
    posterior = getattr(config, "posterior", "gaussian")
    if kind == "vae" and posterior == "deterministic":
        return "autoencoder"
    if kind == "vae" and posterior == "categorical":
        return "gumbel"
    return kind


class ModelRegistry:
    """Every checkpoint under ``root`` (and ``extra_roots``), loaded lazily once, read-only.

    >>> reg = ModelRegistry(REPO / "checkpoints", assets=None)
    >>> reg.get("mnist-vae-z2") is reg.get("mnist-vae-z2")     # loaded once
    True
    >>> reg.refresh()            # after training: names of new or changed folders
    []
    """

    def __init__(self, root: str | Path = REPO / "checkpoints",
                 assets: str | Path | None = REPO / "assets", extra_roots: Sequence[Path] = ()):
        self.root = Path(root)
        self.extra_roots = [Path(r) for r in extra_roots]  # e.g. models trained in the app
        self.assets = Path(assets) if assets else None
        self._entries: dict[str, ModelEntry] = {}
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()
        self._loading: dict[str, threading.Lock] = {}  # one per name: loads do not queue up
        self.refresh()

    # -- listing ------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Rescan the folders; returns the names that are new or whose files changed."""
        found: dict[str, ModelEntry] = {}
        folders = [p for root in (self.root, *self.extra_roots) if root.is_dir()
                   for p in sorted(root.glob("*")) if p.is_dir() and ".tmp-" not in p.name]
        for path in folders:
            if (path / "config.json").exists():
                old = self._entries.get(path.name)  # unchanged files are not read again
                found[path.name] = (old if old is not None and old.path == path
                                    and old.stamp == _stamp(path)
                                    else self._read_entry(path, path.parent in self.extra_roots))
        with self._lock:
            changed = [n for n, e in found.items()
                       if n not in self._entries or self._entries[n].stamp != e.stamp]
            for n in changed:
                if found[n].error:  # one line per broken checkpoint, when it appears
                    log.warning("checkpoint %s is not listed: %s", n, found[n].error)
            for name in set(self._loaded) - {n for n in found if n not in changed}:
                del self._loaded[name]
            self._entries = found
        return changed

    @staticmethod
    def _read_entry(path: Path, trained_here: bool = False) -> ModelEntry:
        """Config and metrics, the weights' header; for a model trained in the app (small, and
        made by a run that may have diverged) also every weight's value."""
        stamp = _stamp(path)
        try:
            info = checkpoint.read_info(path)
            dataset = check_dataset(getattr(info.config, "dataset", "mnist"))
            _check_weights_header(path / "model.safetensors")
            if trained_here:
                _check_finite_weights(path)
            return ModelEntry(path.name, path, family(info.kind, info.config), dataset,
                              info.config, info.metrics, stamp=stamp)
        except (checkpoint.CheckpointError, CheckpointError, ValueError, TypeError,
                OSError) as exc:
            return ModelEntry(path.name, path, error=str(exc), stamp=stamp)

    def entries(self, dataset: str | None = None, kinds: Sequence[str] | None = None
                ) -> list[ModelEntry]:
        """Working checkpoints, optionally of one data set and some kinds."""
        with self._lock:
            out = [e for e in self._entries.values() if e.error is None]
        return [e for e in out if (dataset is None or e.dataset == dataset)
                and (kinds is None or e.kind in kinds)]

    def datasets(self) -> list[str]:
        """Data sets with a generative model, MNIST first (the lectures start there)."""
        from latentlab.data import DATASETS

        have = {e.dataset for e in self.entries(kinds=("vae", "vqvae"))}
        return [d for d in DATASETS if d in have]

    @property
    def warnings(self) -> list[str]:
        """One line per checkpoint that cannot be used (broken on disk or failed to load)."""
        with self._lock:
            return [f"{e.name}: {e.error}" for e in self._entries.values() if e.error]

    def entry(self, name: str) -> ModelEntry:
        """The listed checkpoint ``name``; an unknown or broken one is a UserError."""
        with self._lock:
            e = self._entries.get(name)
        if e is None:
            known = ", ".join(x.name for x in self.entries()) or "none"
            raise InputError(f"no checkpoint named {name!r} (available: {known})")
        if e.error:
            raise CheckpointError(f"checkpoint {name} cannot be used: {e.error}")
        return e

    def twin(self, name: str) -> str | None:
        """The same VAE with the other prior (N(0,I) <-> flow), for side-by-side views."""
        e = self.entry(name)
        for o in self.entries(e.dataset, ("vae",)):
            if e.kind == "vae" and o.latent_dim == e.latent_dim and o.prior != e.prior:
                return o.name
        return None

    # -- loading ------------------------------------------------------------------
    def get(self, name: str, kinds: Sequence[str] | None = None) -> LoadedModel:
        """The loaded model (first call loads it); a broken file becomes a CheckpointError."""
        e = self.entry(name)
        if kinds is not None and e.kind not in kinds:
            raise InputError(f"{name} is a model of kind '{e.kind}'; this action needs one of: "
                             f"{', '.join(kinds)}")
        loaded = self._loaded.get(name)
        if loaded is not None:  # the common case takes no lock: a class's requests never wait
            return loaded       # behind another model's (seconds long) first load
        with self._lock:
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:
            loaded = self._loaded.get(name)
            if loaded is None:
                loaded = self._load(e)
                with self._lock:
                    self._loaded[name] = loaded
        return loaded

    @staticmethod
    def _load(e: ModelEntry) -> LoadedModel:
        try:
            model, _ = checkpoint.load_checkpoint(e.path)
            return LoadedModel(e, model.eval().requires_grad_(False),
                               _sha(e.path / "model.safetensors"))
        except (checkpoint.CheckpointError, OSError, RuntimeError, ValueError) as exc:
            e.error = f"failed to load ({exc})"
            raise CheckpointError(f"checkpoint {e.name} cannot be used: {exc}") from exc

    def classifier(self, dataset: str) -> LoadedModel | None:
        """The data set's classifier (for labels under samples), or None if absent/broken."""
        for e in self.entries(dataset, ("classifier",)):
            try:
                return self.get(e.name)
            except CheckpointError:
                continue
        return None

    def asset(self, name: str, sha: str) -> dict[str, np.ndarray] | None:
        """Precomputed arrays ``assets/latent/NAME.npz`` if they belong to these weights."""
        if self.assets is None:
            return None
        path = self.assets / "latent" / f"{name}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return None
        return arrays if str(arrays.get("sha", "")) == sha else None
