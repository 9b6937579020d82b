"""Precompute the small files the app ships in ``assets/`` so its first views are fast.

    python scripts/make_assets.py                 # examples + every checkpoint in checkpoints/
    python scripts/make_assets.py --only mnist-vae-z16 --no-umap

* ``assets/examples/{dataset}/NN-L.png``: 2 test images per class (L = label), 28x28 grey.
* ``assets/latent/{name}.npz`` per VAE: the posterior means / log-variances of the first
  ``--n`` binarized test images (float16), labels, and for 2-D models the prior's log-density
  grid; for higher-D models a UMAP map of the means with prior samples placed in it.
* ``assets/latent/{name}.npz`` per VQ-VAE: code usage over the whole test set and a sample of
  encoder outputs z_e with their codes (the Voronoi picture).

Each file records the sha of the weights it was made from; the app ignores a file whose sha
does not match (then it computes what it needs live).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from latentlab import data
from latentlab.registry import ModelRegistry
from latentlab.testset import encode_codes, encode_posteriors
from latentlab.views import latent_map

PER_CLASS = 2


def make_examples(out: Path, dataset: str) -> list[Path]:
    """The first PER_CLASS test images of each class, as 28x28 grey PNGs."""
    x, y = data.load_split(dataset, train=False)
    folder = out / "examples" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    paths = []
    for c in range(10):
        for j, i in enumerate((y == c).nonzero().flatten()[:PER_CLASS].tolist()):
            img = Image.fromarray((x[i, 0].numpy() * 255).round().astype(np.uint8), mode="L")
            path = folder / f"{c * PER_CLASS + j:02d}-{c}.png"
            img.save(path, optimize=True)
            paths.append(path)
    return paths


def _umap(mu: np.ndarray, prior_z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import umap

    reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0)
    coords = reducer.fit_transform(mu)
    return coords.astype(np.float16), reducer.transform(prior_z).astype(np.float16)


@torch.inference_mode()
def vae_arrays(lm, n: int, with_umap: bool, n_prior: int = 500) -> dict[str, np.ndarray]:
    x = data.binarized_test_set(lm.entry.dataset)[:n]
    _, y = data.load_split(lm.entry.dataset, train=False)
    mu, logvar = encode_posteriors(lm.model, x)
    out = {"sha": np.array(lm.sha), "mu": mu.astype(np.float16), "logvar": logvar.astype(np.float16),
           "labels": y[:n].numpy().astype(np.uint8)}
    if mu.shape[1] == 2:
        extent = latent_map.plane_extent(mu, latent_map.reference_prior(lm.model))
        out["extent"] = np.array(extent, np.float32)
        out["density"] = latent_map.density_grid(lm.model.prior, extent).astype(np.float32)
    elif with_umap:
        prior_z = lm.model.prior.sample(n_prior, generator=torch.Generator().manual_seed(1)).numpy()
        out["umap"], out["umap_prior"] = _umap(mu, prior_z)
    return out


@torch.inference_mode()
def vq_arrays(lm) -> dict[str, np.ndarray]:
    x, _ = data.load_split(lm.entry.dataset, train=False)
    counts, z_e, codes = encode_codes(lm.model, x)
    return {"sha": np.array(lm.sha), "counts": counts.astype(np.int64),
            "z_e": z_e.astype(np.float16), "z_e_code": codes.astype(np.int16)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", default=str(REPO / "checkpoints"))
    p.add_argument("--out", default=str(REPO / "assets"))
    p.add_argument("--only", nargs="*", help="checkpoint names (default: all)")
    p.add_argument("--n", type=int, default=5000, help="test images per VAE map")
    p.add_argument("--no-umap", action="store_true")
    p.add_argument("--no-examples", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    if not args.no_examples:
        for ds in data.DATASETS:
            print(f"examples {ds}: {len(make_examples(out, ds))} images")
    registry = ModelRegistry(args.checkpoints, assets=None)
    for w in registry.warnings:
        print("skipping broken checkpoint:", w)
    (out / "latent").mkdir(parents=True, exist_ok=True)
    for e in registry.entries(kinds=("vae", "vqvae")):
        if args.only and e.name not in args.only:
            continue
        start = time.time()
        lm = registry.get(e.name)
        arrays = vae_arrays(lm, args.n, not args.no_umap) if e.kind == "vae" else vq_arrays(lm)
        path = out / "latent" / f"{e.name}.npz"
        np.savez_compressed(path, **arrays)
        print(f"{path.relative_to(out.parent)}: {path.stat().st_size / 1024:.0f} KB "
              f"in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
