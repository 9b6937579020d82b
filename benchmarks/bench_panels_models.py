"""Server-side time of the model lecture panels (ELBO gap, traversal, beta sweep, autoencoder,
ELBO surgery).

    python benchmarks/bench_panels_models.py [--repeats 3] [--threads 1] [--checkpoints checkpoints]
                                             [--data-root DIR] [--smoke] [--json out.json]

Each row is the median over ``--repeats`` calls of the view function a button calls (after
one warm-up call). Models are the shipped checkpoints mnist-vae-z2, mnist-flow-z2,
mnist-vae-z16 (and mnist-ae-z2 when trained; else an untrained autoencoder of the same size,
which costs the same). What the ui adapter caches per model (test-set encodings for the
surgery and autoencoder panels, per-dimension stats for a flow traversal) is computed
outside the timed call; the "first call" rows time it once. Target: <= 1500 ms per call.
The "cpu ms" column is the process's CPU time per call: with one thread it is the wall time
the call would take on an idle machine (the wall time grows with other processes' load).
``--smoke`` uses tiny random models and random images (for the test).
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

import torch

from latentlab import settings
from latentlab.checkpoint import load_checkpoint, read_info
from latentlab.errors import DataMissingError
from latentlab.preprocess import prepare
from latentlab.testset import load_test_images
from latentlab.views import autoencoder as av
from latentlab.views import elbo_gap as eg
from latentlab.views import examples
from latentlab.views import surgery as sv
from latentlab.views import traversal as tv
from models.vae import VAE, VAEConfig

TARGET_MS = 1500.0
N_TEST = 2000
TINY = {"channels": 4, "hidden": 16, "flow_layers": 2, "flow_hidden": 8}
SPECS = {
    "mnist-vae-z2": {"latent_dim": 2},
    "mnist-flow-z2": {"latent_dim": 2, "prior": "realnvp"},
    "mnist-vae-z16": {"latent_dim": 16},
    "mnist-ae-z2": {"latent_dim": 2, "posterior": "deterministic"},
}


def median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``repeats`` calls (CPU time of this process: on a
    shared, loaded machine it is what the call would take alone, with one thread)."""
    fn()  # warm-up: plotly validators, first convolutions
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(1000 * (time.perf_counter() - t))
        cpu.append(1000 * (time.process_time() - c))
    return statistics.median(wall), statistics.median(cpu)


def once_ms(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return 1000 * (time.perf_counter() - t), out


def load_models(root: Path, smoke: bool) -> tuple[dict, dict, dict]:
    """name -> model (eval), name -> where it came from, name -> metrics.json."""
    models, source, metrics = {}, {}, {}
    for name, spec in SPECS.items():
        folder = root / name
        if not smoke and (folder / "model.safetensors").is_file():
            models[name], info = load_checkpoint(folder)
            source[name], metrics[name] = "shipped", info.metrics
        else:
            torch.manual_seed(0)
            models[name] = VAE(VAEConfig(**spec, **(TINY if smoke else {})))
            source[name] = "tiny random" if smoke else "untrained, shipped size"
            metrics[name] = {}
        models[name].eval().requires_grad_(False)
    return models, source, metrics


def sweep_entries(root: Path) -> list[dict]:
    """The beta-sweep checkpoints' metrics, or three made-up points when none is trained."""
    out = []
    for folder in sorted(root.glob("mnist-vae-z16-beta*")):
        info = read_info(folder)
        out.append({"name": folder.name, "beta": info.config.beta, **info.metrics})
    return out or [{"name": f"fake-beta{b}", "beta": b, "test_kl": 30 / b, "test_rec_nll": 60 + 8 * b,
                    "active_units": 16} for b in (0.5, 1.0, 2.0, 4.0)]


def load_images(smoke: bool) -> tuple[torch.Tensor, str]:
    """The first N_TEST binarized test images, or random binary images of the same count
    (the same cost) when the test set is not on this machine."""
    if not smoke:
        try:
            return load_test_images("mnist", N_TEST, binary=True)[0], "MNIST test set"
        except DataMissingError as exc:
            print(f"note: {exc}; timing on random binary images instead")
    n = 200 if smoke else N_TEST
    x = torch.bernoulli(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    return x, "random binary images"


def cases(models: dict, metrics: dict, root: Path, smoke: bool) -> tuple[dict, list[dict]]:
    """Row name -> the view call a button makes; and the once-per-model rows already timed."""
    image = prepare(str(examples.example_files("mnist")[6]))
    x, source = load_images(smoke)
    vae, flow, z16, ae = (models[n] for n in SPECS)
    once = []
    ms, summaries = once_ms(lambda: (sv.summarize(vae, x), sv.summarize(flow, x)))
    once.append({"name": f"surgery first call ({len(x)} {source}, 2 models)", "median_ms": ms})
    ms, stats = once_ms(lambda: tv.dimension_stats(flow, x[:500]))
    once.append({"name": "traversal first call (flow stats, 500 images)", "median_ms": ms})
    kl16 = metrics["mnist-vae-z16"].get("kl_per_dim") or tv.dimension_stats(z16, x[:500])[0]
    sweep = sweep_entries(root)
    k, r = (50, 2) if smoke else (eg.K_DEFAULT, eg.REPEATS_DEFAULT)
    big = 100 if smoke else eg.K_MAX
    ms, _ = once_ms(lambda: eg.run(z16, image, big, r, 1))
    once.append({"name": f"elbo_gap first call of a seed (K={big}, R={r}: decodes the prior side)",
                 "median_ms": ms})
    encoded = av.encode(ae, vae, x)  # the app's adapter caches these per model pair
    rows = {
        f"elbo_gap mnist-vae-z2 (K={k}, R={r})": lambda: eg.run(vae, image, k, r, 0),
        f"elbo_gap mnist-flow-z2 (K={k}, R={r})": lambda: eg.run(flow, image, k, r, 0),
        f"elbo_gap mnist-vae-z16 (K={k}, R={r})": lambda: eg.run(z16, image, k, r, 0),
        f"elbo_gap mnist-vae-z16 (K={big}, R={r}; prior side kept)": lambda: eg.run(z16, image, big, r, 0),
        "traversal mnist-vae-z16 (9 columns)": lambda: tv.run(z16, image, 9, 3.0, kl_per_dim=kl16),
        "traversal mnist-flow-z2 (9 columns)": lambda: tv.run(flow, image, 9, 3.0, kl_per_dim=stats[0], variances=stats[1]),
        "beta_sweep": lambda: tv.beta_sweep(sweep, sweep[0]["name"]),
        f"autoencoder z2 ({len(x)} codes, 16 samples; encodings cached as in the app)":
            lambda: av.run(ae, vae, x, 16, 0, encoded=encoded),
        "surgery_priors (80x80 grid, 16 samples)": lambda: sv.run(vae, flow, *summaries, 16, 0),
    }
    return rows, once


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.platform()} | {platform.processor() or platform.machine()} | "
            f"{os.cpu_count()} CPUs | torch {torch.__version__}, {torch.get_num_threads()} "
            f"thread(s) | load average {load:.2f}")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the app uses 1)")
    ap.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    ap.add_argument("--smoke", action="store_true", help="tiny random models (for the test)")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="folder holding MNIST/ (default: $LATENT_LAB_DATA or the cache)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.data_root:
        settings.configure(data_dir=args.data_root)
    torch.set_num_threads(args.threads)
    models, source, metrics = load_models(args.checkpoints, args.smoke)
    print(machine())
    print("models: " + ", ".join(f"{k} ({v})" for k, v in source.items()))
    timed, once = cases(models, metrics, args.checkpoints, args.smoke)
    print(f"{'view call':52s} {'median ms':>10s} {'cpu ms':>8s} {'target':>7s}")
    rows = []
    for row in once:
        print(f"{row['name']:52s} {row['median_ms']:10.1f} {'':>8s} {'(once)':>7s}")
    for name, fn in timed.items():
        ms, cpu = median_ms(fn, args.repeats)
        ok = ms <= TARGET_MS
        rows.append({"name": name, "median_ms": round(ms, 2), "cpu_ms": round(cpu, 2),
                     "target_ms": TARGET_MS, "ok": ok})
        print(f"{name:52s} {ms:10.1f} {cpu:8.1f} {TARGET_MS:7.0f} {'' if ok else ' SLOW'}")
    rows += [{**row, "median_ms": round(row["median_ms"], 2), "target_ms": None, "ok": None}
             for row in once]
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "models": source, "rows": rows},
                                        indent=1))
    return rows


if __name__ == "__main__":
    main()
