"""The IWAE bound on the validation split: one yardstick for runs trained with different bounds.

Each run keeps the epoch with its lowest ``val_loss``, but that loss is the run's own training
bound: the ELBO for ``--iwae-k 1``, the tighter L_k for ``--iwae-k k``. Runs trained
on different bounds are therefore compared on the same estimate of -log p(x) instead:
L_k(x) = log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) with a large k, on the validation images
(the last 10,000 training images, binarized with the trainer's validation seed, so the bits
are the ones every run was validated on). The test set is not touched.

    PYTHONPATH=. python scripts/val_nll.py RUN [RUN ...] [--k 200] [--threads 2] [--record]

``--record`` writes ``val_nll_iwae`` ({"k", "nats", "images", "seed"}) into each run's
metrics.json, where ``scripts/record_selection.py`` carries it to the refit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from latentlab import data
from latentlab.checkpoint import load_checkpoint, update_metrics
from latentlab.metrics import iwae_log_px


def validation_images(dataset: str, val_size: int = data.VAL_SIZE) -> torch.Tensor:
    """The validation split as the trainer binarizes it: (val_size, 1, 28, 28) in {0, 1}."""
    _, (x_val, _) = data.train_val_split(dataset, val_size)
    return data.binarize_validation(x_val)


def val_nll(folder: str | Path, k: int = 200, limit: int | None = None, seed: int = 0,
            x_val: torch.Tensor | None = None) -> dict:
    """-L_k averaged over the validation images (nats per image) for one checkpoint.

    ``x_val`` replaces the split (tests); ``limit`` keeps its first images.
    """
    model, info = load_checkpoint(folder)
    if x_val is None and info.metrics.get("val_size", data.VAL_SIZE) != data.VAL_SIZE:
        raise ValueError(f"{folder} was trained with --val-size {info.metrics['val_size']}: it has "
                         f"seen (some of) the validation images, so their bound means nothing")
    if info.kind != "vae":
        raise ValueError(f"{folder}: a {info.kind} has no IWAE bound; only VAEs do")
    x = validation_images(info.config.dataset) if x_val is None else x_val
    x = x[:limit] if limit else x
    gen = torch.Generator().manual_seed(seed)
    nats = -iwae_log_px(model, x, k, generator=gen).mean().item()
    return {"k": k, "nats": round(nats, 4), "images": len(x), "seed": seed}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="checkpoint folders trained with --val-size 10000")
    p.add_argument("--k", type=int, default=200, help="importance samples per image")
    p.add_argument("--limit", type=int, help="only the first N validation images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--record", action="store_true", help="write val_nll_iwae to metrics.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for run in args.runs:
        result = val_nll(run, args.k, args.limit, args.seed)
        if args.record:
            update_metrics(run, {"val_nll_iwae": result})
        results.append({"run": run, **result})
        print(json.dumps(results[-1]), flush=True)
    return results


if __name__ == "__main__":
    main()
