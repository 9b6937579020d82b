"""Test-set encodings cached per model: a VAE's posteriors, a VQ-VAE's code usage.

Read from ``assets/latent/NAME.npz`` when the file belongs to the loaded weights (see
``scripts/make_assets.py``), else computed live on the first ``LIVE_SUBSET`` test images
(needs the data set on disk); either way once per model, in ``LoadedModel.memo``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from latentlab.errors import DataMissingError
from latentlab.registry import ModelRegistry

LIVE_SUBSET = 2000          # test images encoded live when no precomputed asset is shipped


@dataclass
class LatentData:
    """A VAE's posteriors of (a subset of) the test set, plus precomputed maps.

    Read from ``assets/latent/NAME.npz`` when it matches the weights, else computed live
    on the first ``LIVE_SUBSET`` binarized test images (needs the data set on disk).

    >>> from latentlab.registry import REPO
    >>> ld = latent_data(ModelRegistry(REPO / "checkpoints"), "mnist-vae-z2")
    >>> ld.mu.shape[1], ld.source.startswith("assets/")
    (2, True)
    """

    mu: np.ndarray                 # (N, D) posterior means
    logvar: np.ndarray             # (N, D) posterior log-variances
    labels: np.ndarray             # (N,) test labels
    source: str                    # where the arrays came from, for the screen
    umap: np.ndarray | None = None          # (N, 2) UMAP map of mu
    umap_prior: np.ndarray | None = None    # (M, 2) prior samples placed in that map
    density: np.ndarray | None = None       # (G, G) log p(z) on the 2-D plane's grid
    extent: float | None = None             # the 2-D plane spans [-extent, extent]^2


@dataclass
class CodeData:
    """A VQ-VAE's test-set code usage and a sample of encoder outputs z_e.

    >>> from latentlab.registry import REPO
    >>> cd = code_data(ModelRegistry(REPO / "checkpoints"), "mnist-vqvae")
    >>> len(cd.counts), len(cd.z_e) == len(cd.z_e_code)
    (128, True)
    """

    counts: np.ndarray             # (K,) how often each code is chosen over the test images
    z_e: np.ndarray                # (M, D) encoder output vectors (a random subset of cells)
    z_e_code: np.ndarray           # (M,) the code each of them snaps to
    source: str


def load_test_images(dataset: str, n: int, binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n test images (binarized with the evaluation seed if ``binary``)."""
    from latentlab import data

    try:
        x, y = data.load_split(dataset, train=False)
        if binary:
            x = data.binarized_test_set(dataset)
    except (DataMissingError, OSError, RuntimeError) as exc:  # no data here, no network
        raise DataMissingError(f"no precomputed assets for this checkpoint and the {dataset} "
                               f"test set is not available to compute them ({exc})") from exc
    return x[:n], y[:n]


@torch.inference_mode()
def encode_posteriors(model: torch.nn.Module, x: torch.Tensor, batch: int = 500
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances (N, D) of binarized images (N, 1, 28, 28)."""
    parts = [model.posterior(xb) for xb in x.split(batch)]
    return (torch.cat([q.mu for q in parts]).numpy(), torch.cat([q.logvar for q in parts]).numpy())


@torch.inference_mode()
def encode_codes(model: torch.nn.Module, x: torch.Tensor, keep: int = 3000, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code usage counts (K,) over images (N, 1, 28, 28) and ``keep`` random z_e vectors
    with the code each snaps to (the quantizer's own nearest-code verb)."""
    k = model.config.num_codes
    counts = torch.zeros(k, dtype=torch.long)
    vecs = []
    for xb in x.split(500):
        z_e = model.encode(xb)                                               # (B, D, 7, 7)
        counts += torch.bincount(model.quantizer.quantize(z_e).flatten(), minlength=k)
        vecs.append(z_e.movedim(1, -1).reshape(-1, z_e.shape[1]))           # (B*49, D)
    flat = torch.cat(vecs)
    pick = torch.randperm(len(flat), generator=torch.Generator().manual_seed(seed))[:keep]
    sub = flat[pick]                                                        # (M, D)
    codes = model.quantizer.quantize(sub[:, :, None, None]).view(-1)       # (M, D, 1, 1) -> (M,)
    return counts.numpy(), sub.numpy(), codes.numpy()


def _optional(a: dict, key: str) -> np.ndarray | None:
    return a[key].astype(np.float32) if key in a else None


def latent_data(registry: ModelRegistry, name: str) -> LatentData:
    """The VAE's cached test-set posteriors (assets or live), computed once per model."""
    lm = registry.get(name, ("vae",))

    def build() -> LatentData:
        a = registry.asset(name, lm.sha)
        if a is not None and "mu" in a:
            return LatentData(
                a["mu"].astype(np.float32), a["logvar"].astype(np.float32),
                a["labels"].astype(np.int64), f"assets/latent/{name}.npz ({len(a['mu'])} test images)",
                _optional(a, "umap"), _optional(a, "umap_prior"), _optional(a, "density"),
                float(a["extent"]) if "extent" in a else None)
        x, y = load_test_images(lm.entry.dataset, LIVE_SUBSET, binary=True)
        mu, logvar = encode_posteriors(lm.model, x)
        return LatentData(mu, logvar, y.numpy(), f"computed live on the first {len(x)} test images")

    return lm.memo("latent", build)


def code_data(registry: ModelRegistry, name: str) -> CodeData:
    """The VQ-VAE's cached code usage (assets or live), computed once per model."""
    lm = registry.get(name, ("vqvae",))

    def build() -> CodeData:
        a = registry.asset(name, lm.sha)
        if a is not None and "counts" in a:
            return CodeData(a["counts"].astype(np.int64), a["z_e"].astype(np.float32),
                            a["z_e_code"].astype(np.int64), f"assets/latent/{name}.npz")
        x, _ = load_test_images(lm.entry.dataset, LIVE_SUBSET, binary=False)
        counts, z_e, codes = encode_codes(lm.model, x)
        return CodeData(counts, z_e, codes, f"computed live on the first {len(x)} test images")

    return lm.memo("codes", build)
