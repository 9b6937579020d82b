"""The model layer behind the app: a registry of checkpoints and one plain function per action.

Every function takes the ``ModelRegistry`` and plain Python / numpy inputs and returns a small
dataclass of numpy arrays, PIL images and numbers, so the Gradio callbacks in ``app.py`` only
convert and format, and the same functions are what the tests and benchmarks call.

>>> registry = ModelRegistry("checkpoints")                           # doctest: +SKIP
>>> out = reconstruct(registry, ["mnist-vae-z16"], image28, k=100)    # doctest: +SKIP
>>> out.models[0].numbers["iwae"] >= out.models[0].numbers["elbo"]    # doctest: +SKIP
True

The Latent space and Code grid tabs have their own modules on the same pattern,
``latentlab.latent_view`` and ``latentlab.code_grid``.

Errors the user can fix (a wrong option, a bad number, a malformed code grid, a broken
checkpoint) raise ``ServiceError`` with a message meant for the screen.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentlab import render
from latentlab.checkpoint import CheckpointError, load_checkpoint, read_info
from latentlab.data import CLASS_NAMES, check_dataset

REPO = Path(__file__).resolve().parents[1]
GRID = 7
BINARIZE = {
    "threshold": "pixels above 0.5 become 1 (clean strokes)",
    "random": "each pixel is 1 with its grey value as probability (seeded), as in training",
    "none": "grey levels as they are",
}
VAE_SOURCES = ("prior", "q_agg")
VQ_SOURCES = ("learned", "uniform")
LIVE_SUBSET = 2000          # test images encoded live when no precomputed asset is shipped
MAX_SEED = 2**31 - 1


class ServiceError(ValueError):
    """Something the user can fix; the message is shown as it is."""


# ----------------------------------------------------------------------------- validation

def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi] (floats with an integral value are accepted)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ServiceError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise ServiceError(f"{name} must be a whole number, got {value!r}")
    if not lo <= int(f) <= hi:
        raise ServiceError(f"{name} must lie between {lo} and {hi}, got {int(f)}")
    return int(f)


def check_float(name: str, value: Any, lo: float, hi: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ServiceError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(f) and lo <= f <= hi):
        raise ServiceError(f"{name} must lie between {lo} and {hi}, got {value!r}")
    return f


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ServiceError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def generator(seed: Any) -> torch.Generator:
    return torch.Generator().manual_seed(check_int("seed", seed, 0, MAX_SEED))


def check_image(image: Any) -> np.ndarray:
    """A (28, 28) float image in [0, 1] (what ``preprocess.prepare`` returns)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.shape != (28, 28):
        raise ServiceError(f"expected a 28x28 image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ServiceError("the image contains NaN or infinite values")
    return np.clip(arr, 0.0, 1.0)


def binarize(image: np.ndarray, mode: str, seed: int = 0) -> np.ndarray:
    """What a Bernoulli VAE sees: the grey image made binary (or left grey)."""
    check_choice("binarize", mode, tuple(BINARIZE))
    if mode == "threshold":
        return (image > 0.5).astype(np.float32)
    if mode == "random":
        u = torch.rand((28, 28), generator=generator(seed)).numpy()
        return (u < image).astype(np.float32)
    return image.astype(np.float32)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).view(1, 1, 28, 28)


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


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- registry

@dataclass
class ModelEntry:
    """A checkpoint folder as listed (config and metrics read, weights not yet loaded)."""

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
    def label(self) -> str:
        if self.kind == "vae":
            prior = "flow prior" if self.prior == "realnvp" else "N(0,I) prior"
            return f"{self.name}  (VAE, {prior}, {self.latent_dim}-D z)"
        if self.kind == "vqvae":
            return f"{self.name}  (VQ-VAE, K={self.config.num_codes} codes, 7x7 grid)"
        return f"{self.name}  ({self.kind})"


@dataclass
class LoadedModel:
    """A model in memory with its per-model cache (test-set posteriors, atlas, ...)."""

    entry: ModelEntry
    model: torch.nn.Module
    sha: str
    cache: dict = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def memo(self, key: Any, fn: Callable[[], Any]) -> Any:
        """Compute once per model (thread-safe); later calls return the stored value."""
        if key in self.cache:
            return self.cache[key]
        with self.lock:
            if key not in self.cache:
                self.cache[key] = fn()
        return self.cache[key]

    def recent(self, group: str, key: Any, fn: Callable[[], Any], size: int = 8) -> Any:
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


class ModelRegistry:
    """Every checkpoint under ``root``, loaded lazily once, read-only, shared by all users.

    >>> reg = ModelRegistry("checkpoints")                     # doctest: +SKIP
    >>> [e.name for e in reg.entries("mnist", kinds=("vae",))]  # doctest: +SKIP
    ['mnist-flow-z16', 'mnist-flow-z2', 'mnist-vae-z16', 'mnist-vae-z2']
    >>> reg.refresh()   # after training: picks up new or changed folders  # doctest: +SKIP
    """

    def __init__(self, root: str | Path = REPO / "checkpoints",
                 assets: str | Path | None = REPO / "assets", extra_roots: Sequence[Path] = ()):
        self.root = Path(root)
        self.extra_roots = [Path(r) for r in extra_roots]  # e.g. models trained in the app
        self.assets = Path(assets) if assets else None
        self._entries: dict[str, ModelEntry] = {}
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()
        self.refresh()

    # -- listing ------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Rescan the folder; returns the names that are new or whose files changed."""
        found: dict[str, ModelEntry] = {}
        folders = [p for root in (self.root, *self.extra_roots) if root.is_dir()
                   for p in sorted(root.glob("*")) if p.is_dir() and ".tmp-" not in p.name]
        for path in folders:
            if (path / "config.json").exists():
                found[path.name] = self._read_entry(path)
        with self._lock:
            changed = [n for n, e in found.items()
                       if n not in self._entries or self._entries[n].stamp != e.stamp]
            for name in set(self._loaded) - {n for n in found if n not in changed}:
                del self._loaded[name]
            self._entries = found
        return changed

    @staticmethod
    def _read_entry(path: Path) -> ModelEntry:
        stamp = tuple((f, (path / f).stat().st_mtime_ns) for f in
                      ("config.json", "model.safetensors", "metrics.json") if (path / f).exists())
        try:
            info = read_info(path)
            dataset = check_dataset(getattr(info.config, "dataset", "mnist"))
            _check_weights_header(path / "model.safetensors")
            return ModelEntry(path.name, path, info.kind, dataset, info.config, info.metrics,
                              stamp=stamp)
        except (CheckpointError, ValueError, TypeError, OSError) as exc:
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
        with self._lock:
            e = self._entries.get(name)
        if e is None:
            known = ", ".join(x.name for x in self.entries()) or "none"
            raise ServiceError(f"no checkpoint named {name!r} (available: {known})")
        if e.error:
            raise ServiceError(f"checkpoint {name} cannot be used: {e.error}")
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
        """The loaded model (first call loads it); a broken file becomes a ServiceError."""
        e = self.entry(name)
        if kinds is not None and e.kind not in kinds:
            raise ServiceError(f"{name} is a {e.kind}; this needs a {' or '.join(kinds)}")
        with self._lock:
            loaded = self._loaded.get(name)
            if loaded is None:
                try:
                    model, _ = load_checkpoint(e.path)
                    loaded = LoadedModel(e, model.eval().requires_grad_(False),
                                         _sha(e.path / "model.safetensors"))
                except (CheckpointError, OSError, RuntimeError, ValueError) as exc:
                    e.error = f"failed to load ({exc})"
                    raise ServiceError(f"checkpoint {name} cannot be used: {exc}") from exc
                self._loaded[name] = loaded
        return loaded

    def classifier(self, dataset: str) -> LoadedModel | None:
        """The data set's classifier (for labels under samples), or None if absent/broken."""
        for e in self.entries(dataset, ("classifier",)):
            try:
                return self.get(e.name)
            except ServiceError:
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


# ----------------------------------------------------------------------------- cached data

@dataclass
class LatentData:
    """A VAE's posteriors of (a subset of) the test set, plus precomputed maps.

    Read from ``assets/latent/NAME.npz`` when it matches the weights, else computed live
    on the first ``LIVE_SUBSET`` binarized test images (needs the data set on disk).
    """

    mu: np.ndarray                 # (N, D) posterior means
    logvar: np.ndarray             # (N, D) posterior log-variances
    labels: np.ndarray             # (N,) test labels
    source: str                    # where the arrays came from, for the screen
    umap: np.ndarray | None = None          # (N, 2) UMAP map of mu
    umap_prior: np.ndarray | None = None    # (M, 2) prior samples placed in that map
    density: np.ndarray | None = None       # (G, G) log p(z) on the 2-D plane's grid
    extent: float | None = None             # the 2-D plane spans [-extent, extent]^2


def _test_images(dataset: str, n: int, binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from latentlab import data

    try:
        x, y = data.load_split(dataset, train=False)
        if binary:
            x = data.binarized_test_set(dataset)
    except Exception as exc:  # no data on this machine (and no network)
        raise ServiceError(f"no precomputed assets for this checkpoint and the {dataset} test "
                           f"set is not available to compute them ({exc})") from exc
    return x[:n], y[:n]


@torch.inference_mode()
def encode_posteriors(model: torch.nn.Module, x: torch.Tensor, batch: int = 500
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances (N, D) of binarized images (N, 1, 28, 28)."""
    parts = [model.encode(xb) for xb in x.split(batch)]
    return (torch.cat([p[0] for p in parts]).numpy(), torch.cat([p[1] for p in parts]).numpy())


def latent_data(registry: ModelRegistry, name: str) -> LatentData:
    """The VAE's cached test-set posteriors (assets or live), computed once per model."""
    lm = registry.get(name, ("vae",))

    def build() -> LatentData:
        a = registry.asset(name, lm.sha)
        if a is not None and "mu" in a:
            return LatentData(
                a["mu"].astype(np.float32), a["logvar"].astype(np.float32),
                a["labels"].astype(np.int64), f"assets/latent/{name}.npz ({len(a['mu'])} test images)",
                a["umap"].astype(np.float32) if "umap" in a else None,
                a["umap_prior"].astype(np.float32) if "umap_prior" in a else None,
                a["density"].astype(np.float32) if "density" in a else None,
                float(a["extent"]) if "extent" in a else None)
        x, y = _test_images(lm.entry.dataset, LIVE_SUBSET, binary=True)
        mu, logvar = encode_posteriors(lm.model, x)
        return LatentData(mu, logvar, y.numpy(), f"computed live on the first {len(x)} test images")

    return lm.memo("latent", build)


@dataclass
class CodeData:
    """A VQ-VAE's test-set code usage and a sample of encoder outputs z_e."""

    counts: np.ndarray             # (K,) how often each code is chosen over the test images
    z_e: np.ndarray                # (M, D) encoder output vectors (a random subset of cells)
    z_e_code: np.ndarray           # (M,) the code each of them snaps to
    source: str


def code_data(registry: ModelRegistry, name: str) -> CodeData:
    lm = registry.get(name, ("vqvae",))

    def build() -> CodeData:
        a = registry.asset(name, lm.sha)
        if a is not None and "counts" in a:
            return CodeData(a["counts"].astype(np.int64), a["z_e"].astype(np.float32),
                            a["z_e_code"].astype(np.int64), f"assets/latent/{name}.npz")
        x, _ = _test_images(lm.entry.dataset, LIVE_SUBSET, binary=False)
        counts, z_e, codes = encode_codes(lm.model, x)
        return CodeData(counts, z_e, codes, f"computed live on the first {len(x)} test images")

    return lm.memo("codes", build)


@torch.inference_mode()
def encode_codes(model: torch.nn.Module, x: torch.Tensor, keep: int = 3000, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code usage counts (K,) over images (N, 1, 28, 28) and ``keep`` random z_e vectors."""
    from models.quantizer import nearest_code

    k = model.config.num_codes
    counts = torch.zeros(k, dtype=torch.long)
    vecs = []
    for xb in x.split(500):
        z_e = model.encode(xb)                                               # (B, D, 7, 7)
        flat = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])                  # (B*49, D)
        counts += torch.bincount(nearest_code(flat, model.codebook), minlength=k)
        vecs.append(flat)
    flat = torch.cat(vecs)
    pick = torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))[:keep]
    sub = flat[pick]
    return counts.numpy(), sub.numpy(), nearest_code(sub, model.codebook).numpy()


# ----------------------------------------------------------------------------- reconstruct

@dataclass
class ModelReconstruction:
    """One model's view of the input."""

    name: str
    kind: str
    image: np.ndarray                     # (28, 28) reconstruction in [0, 1]
    numbers: dict[str, float]             # see RECON_ROWS / VQ_ROWS for the keys
    mu: np.ndarray | None = None          # (D,) posterior mean (VAE)
    std: np.ndarray | None = None         # (D,) posterior standard deviation (VAE)
    codes: np.ndarray | None = None       # (7, 7) code grid (VQ-VAE)
    num_codes: int | None = None


@dataclass
class ReconstructResult:
    image: np.ndarray                     # (28, 28) the grey input
    binary: np.ndarray                    # (28, 28) what the Bernoulli VAEs see
    models: list[ModelReconstruction]
    warnings: list[str]
    k: int


RECON_ROWS = {  # key -> (row label, what it means); nats per image
    "rec_nll": ("reconstruction −log p(x|z)", "mean over the k samples z ~ q(z|x)"),
    "kl": ("KL(q(z|x) ‖ p(z))", "mean of log q(z|x) − log p(z) over the same samples"),
    "elbo": ("ELBO = −rec − KL", "lower bound on log p(x)"),
    "iwae": ("log p(x) ≈ L_k (IWAE)", "log of the mean importance weight: a tighter bound"),
    "gap": ("L_k − ELBO", "how loose the ELBO is for this input"),
}
VQ_ROWS = {
    "mse": ("reconstruction MSE per pixel", "VQ-VAE: decoder output vs input"),
    "bits_learned": ("−log₂ p_λ(codes) (bits)", "learned prior's code length of this grid"),
    "bits_uniform": ("−log₂ uniform(codes) (bits)", "49 log₂ K: the uniform prior's"),
}


def _vae_reconstruct(model: torch.nn.Module, x: torch.Tensor, k: int,
                     gen: torch.Generator) -> tuple[np.ndarray, dict, np.ndarray, np.ndarray]:
    """ELBO parts and the IWAE bound from the same k posterior samples.

    log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x); ELBO ≈ mean_i log w_i and
    L_k = log mean_i w_i, so L_k >= ELBO holds for every draw (Jensen).
    """
    q = model.posterior(x)                                                  # batch (1,)
    log_px, log_pz, log_q = model.importance_terms(x, k, gen)               # (k, 1) each
    log_w = (log_px + log_pz - log_q).double()
    elbo = log_w.mean().item()
    iwae = (torch.logsumexp(log_w, 0) - math.log(k)).item()
    numbers = {"rec_nll": -log_px.mean().item(), "kl": (log_q - log_pz).mean().item(),
               "elbo": elbo, "iwae": iwae, "gap": iwae - elbo}
    image = model.decode_probs(q.mean).view(28, 28).numpy()
    return image, numbers, q.mean[0].numpy(), q.stddev[0].numpy()


def _vq_reconstruct(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, dict, np.ndarray]:
    codes = model.encode_to_indices(x)                                      # (1, 7, 7)
    x_hat = model.decode_indices(codes)                                     # (1, 1, 28, 28)
    k = model.config.num_codes
    numbers = {"mse": (x_hat - x).pow(2).mean().item(),
               "bits_learned": -model.prior("learned").log_prob(codes).item() / math.log(2),
               "bits_uniform": GRID * GRID * math.log2(k)}
    return x_hat.view(28, 28).numpy(), numbers, codes[0].numpy()


@torch.inference_mode()
def reconstruct(registry: ModelRegistry, names: Sequence[str], image: np.ndarray, k: int = 100,
                seed: int = 0, binarize_mode: str = "threshold") -> ReconstructResult:
    """Each model's reconstruction of a 28x28 image, with its ELBO terms and IWAE bound
    (VAEs, on the binarized image) or its code grid and code lengths (VQ-VAEs, grey image)."""
    image = check_image(image)
    k = check_int("k (importance samples)", k, 1, 5000)
    if not names:
        raise ServiceError("pick at least one model")
    binary = binarize(image, binarize_mode, check_int("seed", seed, 0, MAX_SEED))
    out, warnings = [], []
    for name in names:
        try:
            lm = registry.get(name, ("vae", "vqvae"))
        except ServiceError as exc:
            warnings.append(str(exc))
            continue
        if lm.entry.kind == "vae":
            rec, numbers, mu, std = _vae_reconstruct(lm.model, as_tensor(binary), k, generator(seed))
            out.append(ModelReconstruction(name, "vae", rec, numbers, mu, std))
        else:
            rec, numbers, codes = _vq_reconstruct(lm.model, as_tensor(image))
            out.append(ModelReconstruction(name, "vqvae", rec, numbers, codes=codes,
                                           num_codes=lm.model.config.num_codes))
    if not out:
        raise ServiceError("none of the chosen models could be used: " + "; ".join(warnings))
    return ReconstructResult(image, binary, out, warnings, k)


def metrics_table(result: ReconstructResult) -> tuple[list[str], list[list[str]]]:
    """Rows = quantities, columns = models: the numbers side by side (nats unless bits)."""
    headers = ["quantity"] + [m.name for m in result.models] + ["meaning"]
    rows = []
    for rows_def in (RECON_ROWS, VQ_ROWS):
        for key, (label, meaning) in rows_def.items():
            vals = [m.numbers.get(key) for m in result.models]
            if all(v is None for v in vals):
                continue
            if key == "iwae":
                label = label.replace("L_k", f"L_{result.k}")
            fmt = "{:.4f}" if key == "mse" else "{:.2f}"
            rows.append([label] + ["—" if v is None else fmt.format(v) for v in vals] + [meaning])
    return headers, rows


def posterior_figure(registry: ModelRegistry, result: ReconstructResult) -> dict | None:
    """Plotly figure (dict) of the VAEs' posteriors: ellipses over q_agg for 2-D models,
    else mean +- std bars; None when no VAE was chosen."""
    vaes = [m for m in result.models if m.kind == "vae"]
    if not vaes:
        return None
    if all(len(m.mu) == 2 for m in vaes):
        ld = latent_data(registry, vaes[0].name)
        dataset = registry.entry(vaes[0].name).dataset
        ell = [(m.name, m.mu, m.std) for m in vaes]
        n = min(len(ld.mu), 2000)  # enough dots to show q_agg; fewer keep the figure light
        fig = render.posterior_ellipses(ld.mu[:n], ld.labels[:n], ell, CLASS_NAMES[dataset])
        if len(vaes) > 1:
            fig["layout"]["title"]["text"] += f" (dots: {vaes[0].name})"
        return fig
    return render.posterior_bars([(m.name, m.mu, m.std) for m in vaes])


# ----------------------------------------------------------------------------- sample

@dataclass
class SampleResult:
    name: str
    source: str                      # prior | q_agg | learned | uniform
    images: np.ndarray               # (n, 28, 28) in [0, 1]
    labels: list[str] | None = None  # the classifier's reading of each sample
    confidence: np.ndarray | None = None  # (n,) its top probability
    note: str = ""


def sources_for(kind: str) -> tuple[str, ...]:
    return VAE_SOURCES if kind == "vae" else VQ_SOURCES


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
    n = check_int("number of samples", n, 1, 256)
    temperature = check_float("temperature", temperature, 0.05, 3.0)
    if source not in sources_for(kind):
        other = "VQ-VAE" if kind == "vae" else "VAE"
        raise ServiceError(f"{name} is a {'VAE' if kind == 'vae' else 'VQ-VAE'}: sample from "
                           f"{' or '.join(sources_for(kind))} ('{source}' is for a {other})")
    gen = generator(seed)
    note = ""
    if kind == "vqvae":
        images = lm.model.sample(n, prior=source, temperature=temperature, generator=gen)
    elif source == "prior":
        images = lm.model.sample(n, temperature=temperature, generator=gen)
    else:
        ld = latent_data(registry, name)
        idx = torch.randint(len(ld.mu), (n,), generator=gen)                 # (n,)
        mu, logvar = torch.from_numpy(ld.mu)[idx], torch.from_numpy(ld.logvar)[idx]
        z = mu + temperature * torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        images = torch.sigmoid(lm.model.decode(z))
        note = f"q_agg from {ld.source}"
    images = images.view(n, 28, 28)
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


# ----------------------------------------------------------------------------- interpolate

SPACES = {
    "z": "latent z (posterior means, decoded directly)",
    "base": "flow base space z* = f(z): interpolate z*, map back with g = f⁻¹",
    "z_e": "VQ-VAE encoder output z_e before quantization; each step is snapped to codes",
}


@dataclass
class InterpolationResult:
    name: str
    space: str
    method: str
    t: np.ndarray                    # (S,) path positions in [0, 1]
    images: np.ndarray               # (S, 28, 28) decoded path
    log_prior: np.ndarray            # (S,) log p(z_t) (VAE) or log p_lambda(codes_t) (VQ), nats
    codes: np.ndarray | None = None  # (S, 7, 7) VQ codes along the path
    changed: np.ndarray | None = None      # (S,) cells whose code differs from the step before
    unquantized: np.ndarray | None = None  # (S, 28, 28) VQ: z_e(t) decoded without snapping

    @property
    def label(self) -> str:
        return f"{self.name} · {self.space} · {self.method}"


def path_points(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, method: str) -> torch.Tensor:
    """Points between two vectors (D,) at positions t (S,): linear or spherical -> (S, D).

    Spherical (slerp) follows the great circle between the directions of a and b with the
    lengths blended linearly: Gaussian-like latents keep a typical norm instead of
    shrinking towards the origin halfway.
    """
    check_choice("method", method, ("linear", "spherical"))
    t = t.to(a.dtype).unsqueeze(1)                                          # (S, 1)
    if method == "linear":
        return (1 - t) * a + t * b
    na, nb = a.norm(), b.norm()
    if na < 1e-8 or nb < 1e-8:
        return (1 - t) * a + t * b
    cos = torch.clamp((a @ b) / (na * nb), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega < 1e-4:
        return (1 - t) * a + t * b
    direction = (torch.sin((1 - t) * omega) * a / na + torch.sin(t * omega) * b / nb) / torch.sin(omega)
    return direction * ((1 - t) * na + t * nb)


@torch.inference_mode()
def interpolate(registry: ModelRegistry, name: str, image_a: np.ndarray, image_b: np.ndarray,
                steps: int = 16, method: str = "linear", space: str = "z",
                binarize_mode: str = "threshold") -> InterpolationResult:
    """Decode a path between two inputs' latents, with the prior's log-density along it."""
    lm = registry.get(name, ("vae", "vqvae"))
    steps = check_int("steps", steps, 2, 32)
    check_choice("method", method, ("linear", "spherical"))
    check_choice("space", space, tuple(SPACES))
    kind, prior = lm.entry.kind, lm.entry.prior
    if kind == "vqvae" and space != "z_e":
        raise ServiceError(f"{name} is a VQ-VAE: interpolate in z_e (before quantization)")
    if kind == "vae" and space == "z_e":
        raise ServiceError(f"{name} is a VAE: z_e is the VQ-VAE's encoder output; use z or base")
    if space == "base" and prior != "realnvp":
        raise ServiceError(f"{name} has the N(0,I) prior, whose base space is z itself; "
                           "the base space z* needs a flow-prior model")
    t = torch.linspace(0, 1, steps)
    a, b = check_image(image_a), check_image(image_b)
    if kind == "vqvae":
        return _interpolate_vq(lm.model, name, as_tensor(a), as_tensor(b), t, method)
    model = lm.model
    mu_a = model.encode(as_tensor(binarize(a, binarize_mode)))[0][0]          # (D,)
    mu_b = model.encode(as_tensor(binarize(b, binarize_mode)))[0][0]
    if space == "base":
        ends = model.prior.to_base(torch.stack([mu_a, mu_b]))               # (2, D) z*
        z = model.prior.from_base(path_points(ends[0], ends[1], t, method))  # (S, D)
    else:
        z = path_points(mu_a, mu_b, t, method)                              # (S, D)
    images = torch.sigmoid(model.decode(z)).view(steps, 28, 28)
    return InterpolationResult(name, space, method, t.numpy(), images.numpy(),
                               model.prior.log_prob(z).numpy())


def _interpolate_vq(model, name: str, xa: torch.Tensor, xb: torch.Tensor, t: torch.Tensor,
                    method: str) -> InterpolationResult:
    from models.quantizer import nearest_code

    za, zb = model.encode(xa)[0], model.encode(xb)[0]                      # (D, 7, 7) each
    d = za.shape[0]
    path = path_points(za.flatten(), zb.flatten(), t, method).view(-1, d, GRID, GRID)  # (S, D, 7, 7)
    flat = path.movedim(1, -1).reshape(-1, d)                               # (S*49, D)
    codes = nearest_code(flat, model.codebook).view(-1, GRID, GRID)         # (S, 7, 7)
    images = model.decode_indices(codes).view(-1, 28, 28)
    raw = model.decode(path).view(-1, 28, 28)
    changed = torch.zeros(len(codes), dtype=torch.long)
    changed[1:] = (codes[1:] != codes[:-1]).flatten(1).sum(1)
    log_prior = model.prior("learned").log_prob(codes)
    return InterpolationResult(name, "z_e", method, t.numpy(), images.numpy(), log_prior.numpy(),
                               codes.numpy(), changed.numpy(), raw.numpy())


def interpolation_strip(result: InterpolationResult, scale: int | None = None) -> np.ndarray:
    """The path as one row (two rows for a VQ-VAE: snapped to codes, and raw z_e decoded)."""
    s = len(result.images)
    scale = scale or (3 if s <= 16 else 2)
    caps = [f"t={v:.2f}" for v in result.t]
    if result.codes is None:
        return render.tile(result.images, cols=s, scale=scale, captions=caps)
    caps = [f"{c} changed" if i else "start" for i, c in enumerate(result.changed)]
    both = np.concatenate([result.images, result.unquantized])
    return render.tile(both, cols=s, scale=scale, captions=caps + ["z_e decoded raw"] * s)


def interpolation_gif(result: InterpolationResult, path: str | Path) -> Path:
    return render.save_gif(result.images, path)


# ----------------------------------------------------------------------------- listing

def describe(registry: ModelRegistry) -> list[dict]:
    """What is available, for API users: one dict per usable checkpoint."""
    out = []
    for e in registry.entries():
        d = {"name": e.name, "kind": e.kind, "dataset": e.dataset}
        if e.kind == "vae":
            d.update(latent_dim=e.latent_dim, prior=e.prior)
        if e.kind == "vqvae":
            d.update(num_codes=e.config.num_codes)
        for key in ("test_elbo", "test_nll_iwae", "test_accuracy", "test_mse"):
            if key in e.metrics:
                d[key] = e.metrics[key]
        out.append(d)
    return out
