"""Server-side time of the math lecture panels (Gumbel, Lloyd-Max, 2-D VQ, reparameterization).

    python benchmarks/bench_panels_math.py [--repeats 10] [--checkpoints checkpoints] [--smoke]
                                           [--json out.json]

Each row is the median over ``--repeats`` calls of the view function a button calls (after
one warm-up call), with one torch thread, as in the app. Default rows use the widgets'
defaults; "max" rows use the largest settings the widgets allow. Model rows load the shipped
checkpoints (mnist-vae-z2, mnist-vqvae, mnist-gumbel-20x10) when present, else tiny random
models (the table says so). Target: <= 200 ms per call. ``--smoke`` uses tiny models only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
import torch

from latentlab.checkpoint import load_checkpoint
from latentlab.preprocess import prepare
from latentlab.views import examples
from latentlab.views import gumbel as gv
from latentlab.views import lloyd as lv
from latentlab.views import reparam as rp
from latentlab.views import vq2d as vq
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig

TARGET_MS = 200.0
TINY_VAE = {"channels": 4, "hidden": 16}
TINY = {
    "mnist-vae-z2": lambda: VAE(VAEConfig(latent_dim=2, **TINY_VAE)),
    "mnist-vqvae": lambda: VQVAE(VQVAEConfig(num_codes=16, code_dim=4, channels=4, prior_dim=16,
                                             prior_layers=1, prior_heads=2, kmeans_init=False)),
    "mnist-gumbel-20x10": lambda: VAE(VAEConfig(latent_dim=20, categories=10, posterior="categorical",
                                                prior="uniform", **TINY_VAE)),
}


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first plotly validators, first conv
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def load_models(root: Path, smoke: bool) -> tuple[dict[str, torch.nn.Module], dict[str, str]]:
    """name -> model (eval, no grad), name -> 'shipped' | 'tiny random'."""
    models, source = {}, {}
    for name, make in TINY.items():
        folder = root / name
        if not smoke and (folder / "model.safetensors").is_file():
            models[name], _ = load_checkpoint(folder)
            source[name] = "shipped"
        else:
            torch.manual_seed(0)
            models[name] = make()
            source[name] = "tiny random"
        models[name].eval().requires_grad_(False)
    return models, source


def cases(models: dict[str, torch.nn.Module], smoke: bool) -> dict[str, Callable[[], object]]:
    """Row name -> the view call a button makes (inputs prepared outside the timing)."""
    images = np.stack([prepare(str(f)) for f in examples.example_files("mnist")])   # (B, 28, 28)
    vqm = models["mnist-vqvae"]
    with torch.no_grad():
        z_e = vqm.encode(torch.from_numpy(images).unsqueeze(1)).numpy()             # (B, D, 7, 7)
    values, vectors, codebook = lv.coordinate_values(z_e, 0), vq.encoder_vectors(z_e), vqm.codebook.numpy()
    start = lv.lloyd_init("gaussian", 4, 0).state
    worst = lv.lloyd_init("mixture", 16, 0).state
    n_max = 200 if smoke else gv.N_RANGE[1]
    return {
        "gumbel (K=3, N=1000)": lambda: gv.gumbel_panel("peaked K=3", 0.5, 1000, 0),
        f"gumbel max (K=10, N={n_max})": lambda: gv.gumbel_panel("K=10 skewed", 0.5, n_max, 0),
        "gumbel_vae (8 digits)": lambda: gv.gumbel_vae_panel(models["mnist-gumbel-20x10"], images[:8], 0.5, 0),
        "lloyd reset (Gaussian, L=4)": lambda: lv.lloyd_init("gaussian", 4, 0),
        "lloyd_step_nn": lambda: lv.lloyd_step("gaussian", start, "nn"),
        "lloyd_step_centroid": lambda: lv.lloyd_step("gaussian", start, "centroid"),
        "lloyd_run (Gaussian, L=4)": lambda: lv.lloyd_run("gaussian", start),
        "lloyd_run max (mixture, L=16)": lambda: lv.lloyd_run("mixture", worst),
        "lloyd reset (z_e coordinate, L=8)": lambda: lv.lloyd_init("vq-vae", 8, 0, values),
        "vq2d (K=8, k-means++)": lambda: vq.vq2d_panel(8, "k-means++", 0),
        "vq2d max (K=32)": lambda: vq.vq2d_panel(32, "random points", 0),
        "vq2d_codebook": lambda: vq.codebook_panel(codebook, vectors),
        "reparam (M=16)": lambda: rp.reparam_panel(models["mnist-vae-z2"], images[6], 16, 0),
        "reparam max (M=64)": lambda: rp.reparam_panel(models["mnist-vae-z2"], images[6], 64, 0),
    }


def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"{platform.platform()} | {platform.processor() or platform.machine()} | "
            f"{os.cpu_count()} CPUs | torch {torch.__version__}, {torch.get_num_threads()} thread | "
            f"load average {load[0]:.2f}" if load[0] != "?" else "")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    ap.add_argument("--smoke", action="store_true", help="tiny models and small N (for the test)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    models, source = load_models(args.checkpoints, args.smoke)
    print(machine())
    print("models: " + ", ".join(f"{k} ({v})" for k, v in source.items()))
    rows = []
    print(f"{'view call':38s} {'median ms':>10s} {'target':>7s}")
    for name, fn in cases(models, args.smoke).items():
        ms = median_ms(fn, args.repeats)
        ok = ms <= TARGET_MS
        rows.append({"name": name, "median_ms": round(ms, 2), "target_ms": TARGET_MS, "ok": ok})
        print(f"{name:38s} {ms:10.1f} {TARGET_MS:7.0f} {'' if ok else ' SLOW'}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "models": source, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
