"""The model layer behind the app: a registry of checkpoints and one plain function per action.

Every function takes the ``ModelRegistry`` and plain Python / numpy inputs and returns a small
dataclass of numpy arrays, PIL images and numbers, so the Gradio callbacks in ``app.py`` only
convert and format, and the same functions are what the tests and benchmarks call.

>>> registry = ModelRegistry("checkpoints")                           # doctest: +SKIP
>>> out = reconstruct(registry, ["mnist-vae-z16"], image28, k=100)    # doctest: +SKIP
>>> out.models[0].numbers["iwae"] >= out.models[0].numbers["elbo"]    # doctest: +SKIP
True

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
from models.vae import bernoulli_log_prob, gaussian_log_prob

REPO = Path(__file__).resolve().parents[1]
GRID = 7
BINARIZE = {
    "threshold": "pixels above 0.5 become 1 (clean strokes)",
    "random": "each pixel is 1 with its grey value as probability (seeded), as in training",
    "none": "grey levels as they are",
}
VAE_SOURCES = ("prior", "q_agg")
VQ_SOURCES = ("learned", "uniform")
# Each Gibbs update of a regenerated cell scores only the 32 codes most likely given the cells
# before it, not all K: about 4x faster with K = 128, and the codes it skips carry almost no
# mass (the prior's per-cell entropy is about 2.5 bits). See TransformerCodePrior.regenerate.
REGENERATE_TOP_K = 32
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


def _tensor(image: np.ndarray) -> torch.Tensor:
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
    mu, logvar = model.encode(x)                                            # (1, D)
    eps = torch.randn((k, *mu.shape), generator=gen)                        # (k, 1, D)
    z = mu + torch.exp(0.5 * logvar) * eps                                  # (k, 1, D)
    logits = model.decode(torch.cat([mu.unsqueeze(0), z]))                  # (k+1, 1, 1, 28, 28)
    log_px = bernoulli_log_prob(logits[1:], x.unsqueeze(0))                 # (k, 1)
    log_pz = model.prior.log_prob(z)                                        # (k, 1)
    log_q = gaussian_log_prob(z, mu, logvar)                                # (k, 1)
    log_w = (log_px + log_pz - log_q).double()
    elbo = log_w.mean().item()
    iwae = (torch.logsumexp(log_w, 0) - math.log(k)).item()
    numbers = {"rec_nll": -log_px.mean().item(), "kl": (log_q - log_pz).mean().item(),
               "elbo": elbo, "iwae": iwae, "gap": iwae - elbo}
    image = torch.sigmoid(logits[0]).view(28, 28).numpy()
    return image, numbers, mu[0].numpy(), torch.exp(0.5 * logvar[0]).numpy()


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
            rec, numbers, mu, std = _vae_reconstruct(lm.model, _tensor(binary), k, generator(seed))
            out.append(ModelReconstruction(name, "vae", rec, numbers, mu, std))
        else:
            rec, numbers, codes = _vq_reconstruct(lm.model, _tensor(image))
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
        return _interpolate_vq(lm.model, name, _tensor(a), _tensor(b), t, method)
    model = lm.model
    mu_a = model.encode(_tensor(binarize(a, binarize_mode)))[0][0]          # (D,)
    mu_b = model.encode(_tensor(binarize(b, binarize_mode)))[0][0]
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


# ----------------------------------------------------------------------------- latent space

PROJECTIONS = ("auto", "z", "pca", "umap")
DENSITY_GRID = 96            # log p(z) evaluated on a 96x96 grid, smoothed up to the image


@dataclass
class PlaneGeometry:
    """A 2-D picture of a VAE's latent space: the map of the test posterior means."""

    projection: str                   # z | pca | umap
    coords: np.ndarray                # (N, 2) the test posterior means in the map
    labels: np.ndarray                # (N,)
    view: render.PlaneView
    axis_names: tuple[str, str]
    density: np.ndarray | None = None         # (G, G) log p(z) on the view's grid ('z' only)
    pca: tuple[np.ndarray, np.ndarray] | None = None  # (mean (D,), components (2, D))


def plane_extent(mu: np.ndarray, prior_z: np.ndarray) -> float:
    """Half-width of the square 2-D plane: covers 99.5% of the posterior means and of the
    prior samples, at least [-3, 3], rounded up to 0.5."""
    reach = max(np.percentile(np.abs(mu), 99.5), np.percentile(np.abs(prior_z), 99.5), 3.0)
    return float(min(np.ceil(reach * 2) / 2, 10.0))


@torch.inference_mode()
def density_grid(prior: torch.nn.Module, extent: float, g: int = DENSITY_GRID) -> np.ndarray:
    """log p(z) at the centres of a g x g grid over [-extent, extent]^2; row i = y_i."""
    axis = torch.linspace(-extent, extent, g)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    z = torch.stack([xx.flatten(), yy.flatten()], -1)                       # (g*g, 2)
    return prior.log_prob(z).view(g, g).numpy()


def _reference_prior(model: torch.nn.Module, n: int = 2000) -> np.ndarray:
    with torch.inference_mode():
        return model.prior.sample(n, generator=torch.Generator().manual_seed(0)).numpy()


def _pca(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and the top two principal directions (2, D), from the D x D covariance
    (in torch, which keeps to the app's one thread; numpy's BLAS may spawn many)."""
    x = torch.from_numpy(np.asarray(mu, np.float64))
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / max(len(x) - 1, 1)                    # (D, D)
    _, vecs = torch.linalg.eigh(cov)                                        # ascending
    return mean.numpy(), vecs[:, [-1, -2]].T.numpy()


def _square_view(coords: np.ndarray) -> render.PlaneView:
    lo, hi = np.percentile(coords, 0.5, axis=0), np.percentile(coords, 99.5, axis=0)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 * 1.15 + 1e-3
    return render.PlaneView(centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)


def resolve_projection(registry: ModelRegistry, name: str, projection: str) -> str:
    check_choice("projection", projection, PROJECTIONS)
    d = registry.entry(name).latent_dim
    if d == 2:
        return "z"
    if projection == "z":
        raise ServiceError(f"{name} has a {d}-D latent space: pick PCA or UMAP to map it to 2-D")
    return "pca" if projection == "auto" else projection


def plane_geometry(registry: ModelRegistry, name: str, projection: str = "auto") -> PlaneGeometry:
    """The map (cached per model and projection); click coordinates refer to its view."""
    lm = registry.get(name, ("vae",))
    proj = resolve_projection(registry, name, projection)

    def build() -> PlaneGeometry:
        ld = latent_data(registry, name)
        if proj == "z":
            extent = ld.extent or plane_extent(ld.mu, _reference_prior(lm.model))
            density = ld.density if ld.density is not None and ld.extent == extent \
                else density_grid(lm.model.prior, extent)
            view = render.PlaneView(-extent, extent, -extent, extent)
            return PlaneGeometry("z", ld.mu, ld.labels, view, ("z1", "z2"), density=density)
        if proj == "pca":
            mean, comps = _pca(ld.mu)
            coords = (ld.mu - mean) @ comps.T                               # (N, 2)
            return PlaneGeometry("pca", coords, ld.labels, _square_view(coords),
                                 ("PC 1", "PC 2"), pca=(mean, comps))
        if ld.umap is None:
            raise ServiceError(f"no UMAP map shipped for {name}: press 'Recompute UMAP' "
                               "(about a minute) or use PCA")
        return PlaneGeometry("umap", ld.umap, ld.labels[: len(ld.umap)], _square_view(ld.umap),
                             ("UMAP 1", "UMAP 2"))

    return lm.memo(("plane", proj), build)


@torch.inference_mode()
def prior_in_map(registry: ModelRegistry, name: str, geo: PlaneGeometry, n: int, seed: int
                 ) -> np.ndarray:
    """n prior samples placed in the same 2-D map as the posterior means: (n, 2)."""
    lm = registry.get(name, ("vae",))
    if geo.projection == "umap":
        ld = latent_data(registry, name)
        return ld.umap_prior[:n] if ld.umap_prior is not None else np.zeros((0, 2))
    z = lm.model.prior.sample(n, generator=generator(seed)).numpy()         # (n, D)
    if geo.projection == "pca":
        mean, comps = geo.pca
        return (z - mean) @ comps.T
    return z


def plane_image(registry: ModelRegistry, name: str, projection: str = "auto",
                n_prior: int = 200, seed: int = 0):
    """The rendered map (PIL) and its geometry, cached per (projection, n_prior, seed)."""
    n_prior = check_int("prior samples", n_prior, 0, 2000)
    geo = plane_geometry(registry, name, projection)
    lm = registry.get(name, ("vae",))

    def build():
        prior_xy = prior_in_map(registry, name, geo, n_prior, seed) if n_prior else None
        title = {"z": "latent plane z", "pca": "PCA of the posterior means",
                 "umap": "UMAP of the posterior means"}[geo.projection]
        return render.render_plane(geo.view, geo.coords, geo.labels, prior_xy, geo.density,
                                   geo.axis_names, title=f"{name}: {title} (click to decode)",
                                   class_names=CLASS_NAMES[lm.entry.dataset])

    key = (geo.projection, n_prior, check_int("seed", seed, 0, MAX_SEED))
    return lm.recent(f"plane-img-{geo.projection}", key, build), geo


def click_to_map(registry: ModelRegistry, name: str, projection: str, px: float, py: float
                 ) -> tuple[float, float] | None:
    """Pixel of the rendered map -> map coordinates, None outside the plot area."""
    geo = plane_geometry(registry, name, projection)
    return geo.view.to_data(px, py) if geo.view.inside(px, py) else None


@dataclass
class DecodedPoint:
    image: np.ndarray            # (28, 28) decoded
    z: np.ndarray                # (D,) the latent point that was decoded
    plane: Any                   # PIL image of the map with a marker there
    note: str


@torch.inference_mode()
def decode_point(registry: ModelRegistry, name: str, projection: str, u: float, v: float,
                 n_prior: int = 200, seed: int = 0) -> DecodedPoint:
    """Decode the latent point under map coordinates (u, v).

    2-D model: z = (u, v). PCA: z = mean + u pc1 + v pc2 (the plane through the data mean).
    UMAP has no inverse: the posterior mean of the nearest test image in the map is decoded.
    """
    lm = registry.get(name, ("vae",))
    u, v = check_float("u", u, -1e3, 1e3), check_float("v", v, -1e3, 1e3)
    img, geo = plane_image(registry, name, projection, n_prior, seed)
    if geo.projection == "z":
        z, note = np.array([u, v], np.float32), f"z = ({u:.2f}, {v:.2f})"
    elif geo.projection == "pca":
        mean, comps = geo.pca
        z = (mean + u * comps[0] + v * comps[1]).astype(np.float32)
        note = f"z = mean + {u:.2f}·PC1 + {v:.2f}·PC2"
    else:
        i = int(np.argmin(((geo.coords - [u, v]) ** 2).sum(1)))
        z = latent_data(registry, name).mu[i]
        u, v = map(float, geo.coords[i])
        note = f"UMAP has no inverse: decoded the nearest test posterior mean (#{i})"
    image = torch.sigmoid(lm.model.decode(torch.from_numpy(z)[None])).view(28, 28).numpy()
    log_p = lm.model.prior.log_prob(torch.from_numpy(z)[None]).item()
    return DecodedPoint(image, z, render.mark(img, geo.view, (u, v)),
                        f"{note}; log p(z) = {log_p:.2f}")


def compute_umap(registry: ModelRegistry, name: str, n_points: int = 2000, n_prior: int = 300,
                 progress: Callable[[float, str], None] | None = None,
                 reducer: Any = None) -> str:
    """Fit UMAP on the posterior means (slow: numba compiles on first use) and keep the map
    in memory for this model; prior samples are placed with UMAP's ``transform``.

    ``reducer``: any object with ``fit_transform`` / ``transform`` (tests pass a fast one).
    """
    lm = registry.get(name, ("vae",))
    if (lm.entry.latent_dim or 0) <= 2:
        raise ServiceError(f"{name} has a 2-D latent space: it is drawn directly, no UMAP needed")
    say = progress or (lambda f, m: None)
    ld = latent_data(registry, name)
    if reducer is None:
        say(0.05, "importing umap-learn (the first time, numba compiles for ~30-40 s)")
        import umap

        reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0)
    n = min(n_points, len(ld.mu))
    say(0.3, f"fitting UMAP on {n} posterior means")
    coords = reducer.fit_transform(ld.mu[:n]).astype(np.float32)
    say(0.85, f"placing {n_prior} prior samples in the map")
    prior_z = lm.model.prior.sample(n_prior, generator=torch.Generator().manual_seed(1)).numpy()
    with lm.lock:
        ld.umap, ld.umap_prior = coords, reducer.transform(prior_z).astype(np.float32)
        for key in [k for k in lm.cache if "umap" in (k if isinstance(k, tuple) else (k,))
                    or k == "plane-img-umap"]:
            del lm.cache[key]
    say(1.0, "done")
    return f"UMAP of {n} posterior means and {n_prior} prior samples computed"


@dataclass
class LatentStats:
    """Numbers beside the latent map: ELBO surgery, active units, KL per dimension."""

    rows: list[tuple[str, str, str]]          # (quantity, value, meaning)
    source: str
    kl_per_dim: np.ndarray | None = None      # (D,)
    kl_reference: str = ""
    unit_variance: np.ndarray | None = None   # (D,) Cov_x(E_q[z_d])


def _fmt(v: Any, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def vae_stats(registry: ModelRegistry, name: str) -> LatentStats:
    """From ``metrics.json`` (written by ``python -m latentlab.evaluate``) when present;
    otherwise estimated live from the cached test posteriors (no reconstruction term)."""
    e = registry.entry(name)
    m = e.metrics
    surgery = m.get("elbo_surgery")
    if isinstance(surgery, dict) and "kl_per_dim" in m:
        rows = [
            ("test ELBO", _fmt(m.get("test_elbo", surgery.get("elbo"))), "mean over the test set"),
            ("reconstruction E_q log p(x|z)", _fmt(surgery.get("reconstruction")), "first term"),
            ("average KL(q(z|x) ‖ p(z))", _fmt(surgery.get("avg_kl")), "= I_q + marginal KL"),
            ("mutual information I_q[x, z]", _fmt(surgery.get("mutual_information")),
             f"≤ log N = {_fmt(surgery.get('log_n'))}"),
            ("marginal KL(q_agg ‖ p(z))", _fmt(surgery.get("marginal_kl")),
             "0 when the prior equals q_agg"),
        ]
        if "test_nll_iwae" in m:
            rows.append((f"−log p(x) (IWAE, k={m.get('iwae_k', '?')})", _fmt(m["test_nll_iwae"]),
                         "test NLL"))
        rows.append(("active units", f"{m.get('active_units', '?')} of {e.latent_dim}",
                     "Cov_x E_q[z_d] > 0.01"))
        var = m.get("active_unit_variances")
        n_test = f" ({m['eval_n_test']} test images)" if "eval_n_test" in m else ""
        return LatentStats(rows, f"metrics.json{n_test}",
                           np.asarray(m["kl_per_dim"], np.float32), m.get("kl_per_dim_reference", ""),
                           None if var is None else np.asarray(var, np.float32))
    lm = registry.get(name, ("vae",))
    return lm.memo("stats-live", lambda: _live_vae_stats(registry, name))


@torch.inference_mode()
def _live_vae_stats(registry: ModelRegistry, name: str) -> LatentStats:
    from latentlab.metrics import active_units, elbo_surgery, kl_per_dim

    lm, ld = registry.get(name, ("vae",)), latent_data(registry, name)
    model = lm.model
    n = min(len(ld.mu), LIVE_SUBSET)  # q_agg costs N^2: a few thousand points is plenty here
    mu, logvar = torch.from_numpy(ld.mu[:n]), torch.from_numpy(ld.logvar[:n])
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    kl = model.kl_terms(z, mu, logvar)                                      # (N,)
    s = elbo_surgery(mu, logvar, model.prior, torch.zeros(len(mu)), kl,
                     generator=torch.Generator().manual_seed(1))
    n_active, var = active_units(mu)
    normal = lm.entry.prior == "normal"
    rows = [
        ("average KL(q(z|x) ‖ p(z))", _fmt(s["avg_kl"]), "= I_q + marginal KL"),
        ("mutual information I_q[x, z]", _fmt(s["mutual_information"]), f"≤ log N = {_fmt(s['log_n'])}"),
        ("marginal KL(q_agg ‖ p(z))", _fmt(s["marginal_kl"]), "0 when the prior equals q_agg"),
        ("active units", f"{n_active} of {mu.shape[1]}", "Cov_x E_q[z_d] > 0.01"),
        ("reconstruction, ELBO", "—", "run python -m latentlab.evaluate for these"),
    ]
    ref = "prior N(0, I)" if normal else "N(0, 1) per dim (the flow prior does not factorise)"
    return LatentStats(rows, f"estimated live on {n} test posteriors", kl_per_dim(mu, logvar).numpy(),
                       ref, var.numpy())


def vq_stats(registry: ModelRegistry, name: str) -> LatentStats:
    e = registry.entry(name)
    m, cd = e.metrics, code_data(registry, name)
    k = len(cd.counts)
    p = cd.counts / max(cd.counts.sum(), 1)
    perplexity = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    rows = [
        ("codes used", f"{int((cd.counts > 0).sum())} of {k}", cd.source),
        ("dead codes", str(m.get("dead_codes", int((cd.counts == 0).sum()))), "never chosen on the test set"),
        ("perplexity exp H(code)", _fmt(float(m.get("codebook_perplexity", perplexity)), 1),
         f"effective number of codes (max {k})"),
    ]
    for key, label, meaning in (
            ("test_mse", "test MSE per pixel", "reconstruction"),
            ("test_psnr_db", "test PSNR (dB)", "10 log10(1/MSE)"),
            ("prior_test_nll_bits_per_code", "learned prior: bits per code", "test grids"),
            ("uniform_prior_nll_bits_per_code", "uniform prior: bits per code", "log2 K")):
        if key in m:
            rows.append((label, _fmt(float(m[key]), 4 if key == "test_mse" else 2), meaning))
    src = "metrics.json" if "dead_codes" in m else cd.source
    return LatentStats(rows, src)


def latent_figures(registry: ModelRegistry, name: str, stats: LatentStats) -> list[dict | None]:
    """Charts beside the map: KL per dimension (VAE) or codebook usage + Voronoi (VQ-VAE).

    Built once per model (they only change with the weights) and reused.
    """
    lm = registry.get(name, ("vae", "vqvae"))
    return lm.memo(("figures", stats.source), lambda: _latent_figures(registry, name, stats))


def _latent_figures(registry: ModelRegistry, name: str, stats: LatentStats) -> list[dict | None]:
    e = registry.entry(name)
    if e.kind == "vae":
        if stats.kl_per_dim is None:
            return [None, None]
        kl = stats.kl_per_dim
        colors = ["#1f77b4" if v > 0.05 else "#d62728" for v in kl]
        ref = stats.kl_reference or "prior N(0, I)"
        title = f"KL per dimension vs {ref}<br><sup>red: collapsed (carries ~no information)</sup>"
        fig = render.bar_chart([f"z{i + 1}" for i in range(len(kl))], kl, title, "dimension",
                               "nats", colors)
        return [fig, None]
    cd = code_data(registry, name)
    lm = registry.get(name, ("vqvae",))
    k = len(cd.counts)
    palette = render.code_hex(k)
    usage = render.bar_chart(list(range(k)), np.maximum(cd.counts, 0.5), "Codebook usage over the "
                             "test set (log scale; 0.5 = dead)", "code k", "count", palette, log_y=True)
    codebook = lm.model.codebook.detach().numpy()
    mean, comps = _pca(np.concatenate([codebook, cd.z_e]))
    scatter = render.codebook_scatter((codebook - mean) @ comps.T, cd.counts,
                                      (cd.z_e - mean) @ comps.T, cd.z_e_code, k)
    return [usage, scatter]


# ----------------------------------------------------------------------------- code grid

def _cell_int(value: Any, r: int, c: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ServiceError(f"cell (row {r}, col {c}) holds {value!r}, not a code index")
    try:
        f = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ServiceError(f"cell (row {r}, col {c}) holds {value!r}, which is not a whole "
                           "number; each cell needs a code index") from None
    if not math.isfinite(f) or f != int(f):
        raise ServiceError(f"cell (row {r}, col {c}) holds {value!r}, which is not a whole number")
    return int(f)


def parse_code_grid(value: Any, num_codes: int) -> np.ndarray:
    """A 7x7 table of code indices (lists, numpy, a DataFrame or text) -> (7, 7) int64.

    Raises ServiceError naming the first bad cell: wrong shape, not a whole number, or an
    index outside [0, K).
    """
    if value is None:
        raise ServiceError("no code grid yet: encode an image or sample a grid first")
    if isinstance(value, dict) and "data" in value:
        value = value["data"]
    if hasattr(value, "values") and hasattr(value, "columns"):        # pandas DataFrame
        value = value.values.tolist()
    if isinstance(value, str):
        value = [row.replace(",", " ").split() for row in value.strip().splitlines() if row.strip()]
    rows = value.tolist() if isinstance(value, np.ndarray) else value
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in rows):
        raise ServiceError("the code grid must be a table of 7 rows of 7 whole numbers")
    shape = (len(rows), max((len(r) for r in rows), default=0))
    if len(rows) != GRID or any(len(r) != GRID for r in rows):
        raise ServiceError(f"the code grid must be 7 rows x 7 columns, got {shape[0]} rows "
                           f"of lengths {sorted({len(r) for r in rows})}")
    grid = np.array([[_cell_int(v, r, c) for c, v in enumerate(row)] for r, row in enumerate(rows)],
                    dtype=np.int64)
    bad = np.argwhere((grid < 0) | (grid >= num_codes))
    if len(bad):
        r, c = bad[0]
        raise ServiceError(f"cell (row {r}, col {c}) holds code {grid[r, c]}, outside [0, {num_codes}) "
                           f"for this codebook of K={num_codes}")
    return grid


def _span(token: str) -> range:
    token = token.strip()
    if token in ("*", ""):
        return range(GRID)
    lo, _, hi = token.partition("-")
    a = check_int("cell row/column", lo, 0, GRID - 1)
    b = check_int("cell row/column", hi, 0, GRID - 1) if hi else a
    return range(min(a, b), max(a, b) + 1)


def parse_cells(text: Any) -> np.ndarray:
    """Cell selection text -> (7, 7) bool mask.

    ``"3,4"`` one cell (row 3, column 4; rows and columns count from 0), ``"0-2,*"`` rows
    0..2 in every column, ``"all"``; several separated by ``;``.

    >>> int(parse_cells("3,4; 0-1,5-6").sum())
    5
    """
    mask = np.zeros((GRID, GRID), bool)
    text = "" if text is None else str(text)
    if text.strip().lower() == "all":
        return ~mask
    for part in text.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        if part.count(",") != 1:
            raise ServiceError(f"cannot read the cell selection {part.strip()!r}: write 'row,col' "
                               "such as '3,4', ranges such as '0-2,*', or 'all'")
        r, c = part.split(",")
        for i in _span(r):
            mask[i, list(_span(c))] = True
    return mask


def format_cells(mask: np.ndarray) -> str:
    return "; ".join(f"{r},{c}" for r, c in np.argwhere(mask))


def toggle_cell(text: Any, row: int, col: int) -> str:
    mask = parse_cells(text)
    mask[check_int("row", row, 0, GRID - 1), check_int("column", col, 0, GRID - 1)] ^= True
    return format_cells(mask)


@dataclass
class CodeGridResult:
    grid: np.ndarray             # (7, 7) code indices
    image: np.ndarray            # (28, 28) decoded
    bits_learned: float          # -log2 p_lambda(grid)
    bits_uniform: float          # 49 log2 K
    num_codes: int


def _vq(registry: ModelRegistry, name: str):
    return registry.get(name, ("vqvae",)).model


@torch.inference_mode()
def code_grid_from_image(registry: ModelRegistry, name: str, image: np.ndarray) -> np.ndarray:
    """The 7x7 code grid the encoder assigns to a 28x28 image."""
    return _vq(registry, name).encode_to_indices(_tensor(check_image(image)))[0].numpy()


@torch.inference_mode()
def decode_code_grid(registry: ModelRegistry, name: str, grid: Any) -> CodeGridResult:
    """Decode a (possibly hand-edited) code grid and score it under both priors."""
    model = _vq(registry, name)
    k = model.config.num_codes
    g = torch.from_numpy(parse_code_grid(grid, k))[None]                    # (1, 7, 7)
    image = model.decode_indices(g).view(28, 28).numpy()
    bits = -model.prior("learned").log_prob(g).item() / math.log(2)
    return CodeGridResult(g[0].numpy(), image, bits, GRID * GRID * math.log2(k), k)


def paint_cells(registry: ModelRegistry, name: str, grid: Any, cells: Any, code: Any) -> np.ndarray:
    """Set the selected cells to one code."""
    k = _vq(registry, name).config.num_codes
    g = parse_code_grid(grid, k)
    mask = parse_cells(cells)
    if not mask.any():
        raise ServiceError("no cells selected: click cells on the coloured map or type e.g. '3,4'")
    g[mask] = check_int("code", code, 0, k - 1)
    return g


@torch.inference_mode()
def regenerate_cells(registry: ModelRegistry, name: str, grid: Any, cells: Any,
                     temperature: float = 1.0, seed: int = 0, prior: str = "learned") -> np.ndarray:
    """Redraw the selected cells from a prior given all the others (the rest stays)."""
    model = _vq(registry, name)
    check_choice("prior", prior, VQ_SOURCES)
    g = torch.from_numpy(parse_code_grid(grid, model.config.num_codes))[None]
    mask = torch.from_numpy(parse_cells(cells))[None]
    if not mask.any():
        raise ServiceError("no cells selected: click cells on the coloured map or type e.g. '3,4'")
    t = check_float("temperature", temperature, 0.05, 3.0)
    kw = {"top_k": REGENERATE_TOP_K} if prior == "learned" else {}
    return model.prior(prior).regenerate(g, mask, t, generator(seed), **kw)[0].numpy()


@torch.inference_mode()
def sample_code_grid(registry: ModelRegistry, name: str, prior: str = "learned",
                     temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    model = _vq(registry, name)
    check_choice("prior", prior, VQ_SOURCES)
    t = check_float("temperature", temperature, 0.05, 3.0)
    return model.prior(prior).sample(1, t, generator(seed))[0].numpy()


def codebook_atlas(registry: ModelRegistry, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every code decoded alone (a grid filled with code k) with its test-set usage count."""
    lm = registry.get(name, ("vqvae",))

    @torch.inference_mode()
    def build():
        k = lm.model.config.num_codes
        grids = torch.arange(k).view(k, 1, 1).expand(k, GRID, GRID)          # (K, 7, 7)
        images = torch.cat([lm.model.decode_indices(g) for g in grids.split(256)]).view(k, 28, 28)
        counts = code_data(registry, name).counts
        return render.atlas(images.numpy(), counts), counts

    return lm.memo("atlas", build)


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
