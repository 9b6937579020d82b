"""Training throughput (images/s) for each model kind on the current device.

The code priors are timed on random 7x7 grids (one grid = one image): the small default the
training command and Train tab fit, and the wider one the shipped VQ-VAEs carry.

    python benchmarks/bench_train.py [--repeats 5] [--steps 20] [--batch-size 128] [--json out.json]
                                     [--only "code prior"]

Each repeat times ``--steps`` optimizer steps of the real training step function (the same
``latentlab.train.STEPS`` the trainer uses) on random batches of the real shapes, after two
warm-up steps; the table gives the median over repeats. The machine, torch threads and the
load average are printed, because other processes on a 2-core machine change the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from latentlab.device import pick_device
from latentlab.train import STEPS
from models import MODEL_KINDS


def model_specs() -> dict[str, tuple[str, object]]:
    """The shipped configurations: name -> (kind, config)."""
    specs = {}
    vae_cfg = MODEL_KINDS["vae"][0]
    specs["vae N(0,I) z=16"] = ("vae", vae_cfg(latent_dim=16, prior="normal"))
    specs["vae RealNVP z=16"] = ("vae", vae_cfg(latent_dim=16, prior="realnvp"))
    specs["vae N(0,I) z=2"] = ("vae", vae_cfg(latent_dim=2, prior="normal"))
    specs["classifier"] = ("classifier", MODEL_KINDS["classifier"][0]())
    specs["vq-vae"] = ("vqvae", MODEL_KINDS["vqvae"][0]())
    specs["code prior 64x4"] = ("code_prior", (64, 4))    # VQVAEConfig's default
    specs["code prior 128x6"] = ("code_prior", (128, 6))  # the shipped priors (fit_prior)
    # the same with AdamW's per-tensor loop: what fit_prior used before its fused optimizer
    specs["code prior 128x6 unfused"] = ("code_prior", (128, 6, False))
    # bf16 autocast (--prior-bf16 yes): AMX matmuls on this repository's Xeon
    specs["code prior 128x6 bf16"] = ("code_prior", (128, 6, True, True))
    return specs


def prior_settings(config: tuple) -> tuple[int, int, bool, bool]:
    """A code-prior spec (dim, layers[, fused[, bf16]]) with its defaults filled in.

    >>> prior_settings((128, 6)), prior_settings((128, 6, False))
    ((128, 6, True, False), (128, 6, False, False))
    """
    dim, layers, *flags = config
    return (dim, layers, *flags, *(True, False)[len(flags):])


def _prior_step(config: tuple, batch_size: int, device: torch.device):
    """One maximum-likelihood step of a code prior (dim, layers[, fused[, bf16]]) on random
    grids, with the optimizer and precision ``latentlab.fit_prior`` uses."""
    from latentlab.fit_prior import prior_optimizer
    from models.code_prior import TransformerCodePrior

    num_codes = MODEL_KINDS["vqvae"][0]().num_codes
    dim, layers, fused, bf16 = prior_settings(config)
    prior = TransformerCodePrior(num_codes, dim, layers).to(device).train()
    opt = prior_optimizer(prior, lr=1e-3, weight_decay=0.01, fused=fused)
    grids = torch.randint(num_codes, (batch_size, 7, 7), device=device)  # (B, 7, 7)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = prior.nll_per_code(grids)  # the loss latentlab.fit_prior minimises
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _model_step(kind: str, config, batch_size: int, device: torch.device):
    """One training step of a model kind, the trainer's own step function, on random data."""
    model = MODEL_KINDS[kind][1](config).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch_size, 1, 28, 28, device=device)
    if kind == "vae":
        x = (x > 0.5).float()
    y = torch.randint(0, 10, (batch_size,), device=device)

    def step():
        loss, _ = STEPS[kind](model, x, y, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def time_steps(kind: str, config, steps: int, batch_size: int, device: torch.device) -> float:
    """Images per second over ``steps`` training steps (after two warm-up steps)."""
    torch.manual_seed(0)
    step = (_prior_step(config, batch_size, device) if kind == "code_prior"
            else _model_step(kind, config, batch_size, device))

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--only", default="", help="only the models whose name contains this")
    args = p.parse_args()
    device = pick_device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, device {device}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, load avg {load:.2f}")
    print(f"{'model':<26} {'images/s (median)':>18} {'min':>8} {'max':>8}  s/epoch (60k)")
    results = {}
    for name, (kind, cfg) in model_specs().items():
        if args.only not in name:
            continue
        runs = [time_steps(kind, cfg, args.steps, args.batch_size, device) for _ in range(args.repeats)]
        med = statistics.median(runs)
        results[name] = {"median_images_per_s": med, "runs": runs}
        print(f"{name:<26} {med:>18.0f} {min(runs):>8.0f} {max(runs):>8.0f}  {60000 / med:8.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(device), "load_avg": load, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
