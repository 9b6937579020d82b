"""Refit the learned code prior of a trained VQ-VAE checkpoint, keeping its auto-encoder.

    python -m latentlab.fit_prior checkpoints/mnist-vqvae --prior-dim 128 --prior-epochs 10

The lecture's recipe is two-stage: train the VQ-VAE, then "fit an autoregressive model over
z". The training command does both in one go; this command repeats only the second stage,
so a prior of another size or training length can be tried without retraining the encoder,
decoder and codebook (their weights are copied bit for bit, so code grids do not change).

The checkpoint is rewritten atomically with the new prior settings in ``config.json``.
``metrics.json`` keeps the training command and gains ``prior_command``; the prior-dependent
evaluation numbers are dropped (they described the old prior), so run
``python -m latentlab.evaluate`` afterwards. ``train_wall_time_s`` becomes the auto-encoder's
training time plus the new prior's fitting time, the cost of the model as shipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shlex
import sys
from pathlib import Path

import torch

from latentlab import data
from latentlab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.vqvae import VQVAE, VQVAEConfig

PRIOR_FIELDS = ("prior_dim", "prior_layers", "prior_heads", "prior_dropout", "prior_epochs",
                "prior_lr", "prior_batch_size")
# metrics that describe the prior being replaced; evaluate writes them afresh
STALE_PREFIXES = ("learned_prior_", "prior_test_nll")


# ----------------------------------------------------------------------------- helpers

def _autoencoder_seconds(metrics: dict) -> float | None:
    """Training time of the encoder/decoder/codebook alone, from the first training run."""
    if "autoencoder_train_wall_time_s" in metrics:
        return metrics["autoencoder_train_wall_time_s"]
    total, prior = metrics.get("train_wall_time_s"), metrics.get("prior_train_wall_time_s")
    return None if total is None else round(total - (prior or 0.0), 1)


def _with_new_prior(model: VQVAE, changes: dict) -> VQVAE:
    """A VQ-VAE with the new prior settings, an untrained prior and the old auto-encoder."""
    config = dataclasses.replace(model.config, **changes)
    fresh = VQVAE(config)
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("code_prior.")}
    missing, unexpected = fresh.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("code_prior.") for k in missing)
    return fresh


# ----------------------------------------------------------------------------- public API

def refit_prior(folder: str | os.PathLike, changes: dict, seed: int = 0, subset: int = 0,
                progress: bool = False, command: str = "") -> dict:
    """Refit the prior of the VQ-VAE in ``folder`` with ``changes`` to its prior settings.

    ``subset`` > 0 fits on the first ``subset`` training images only (for quick tries).
    Returns the new metrics.json content (also written). Raises CheckpointError for a
    checkpoint that is not a VQ-VAE and ValueError for an unknown or invalid setting.
    """
    unknown = set(changes) - set(PRIOR_FIELDS)
    if unknown:
        raise ValueError(f"only prior settings can change, not {sorted(unknown)}")
    model, info = load_checkpoint(folder)
    if info.kind != "vqvae":
        raise CheckpointError(f"{info.path}: is a {info.kind!r} checkpoint, not a VQ-VAE")
    torch.manual_seed(seed)  # the fresh prior's initial weights, then its fitting
    model = _with_new_prior(model, changes)
    x, _ = data.load_split(info.config.dataset, train=True)
    x = x[:subset] if subset > 0 else x                                      # (N, 1, 28, 28)
    fitted = model.fit_prior(x, seed=seed, progress=progress)
    metrics = {k: v for k, v in info.metrics.items() if not k.startswith(STALE_PREFIXES)}
    auto = _autoencoder_seconds(info.metrics)
    metrics.update(fitted, prior_command=command, prior_date=dt.datetime.now(dt.UTC).isoformat(
        timespec="seconds"), autoencoder_train_wall_time_s=auto)
    if auto is not None:
        metrics["train_wall_time_s"] = round(auto + fitted["prior_train_wall_time_s"], 1)
    metrics.update(model.quick_metrics(info.config.dataset))
    save_checkpoint(info.path, model, "vqvae", model.config, metrics)
    return metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a VQ-VAE checkpoint folder (rewritten in place)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=0, help="first N training images (0 = all)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--data-root", help=f"data folder (default ${data.DATA_ENV} or the cache)")
    p.add_argument("--no-progress", action="store_true")
    defaults = {f.name: f.default for f in dataclasses.fields(VQVAEConfig)}
    for name in PRIOR_FIELDS:  # unset flags keep the checkpoint's own value
        p.add_argument("--" + name.replace("_", "-"), type=type(defaults[name]), default=None)
    return p.parse_args(argv)


def fit_prior_main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.data_root:
        os.environ[data.DATA_ENV] = args.data_root
    if args.threads:
        torch.set_num_threads(args.threads)
    changes = {k: getattr(args, k) for k in PRIOR_FIELDS if getattr(args, k) is not None}
    command = "python -m latentlab.fit_prior " + shlex.join(sys.argv[1:] if argv is None else argv)
    metrics = refit_prior(Path(args.checkpoint), changes, seed=args.seed, subset=args.subset,
                          progress=not args.no_progress, command=command)
    print(f"{args.checkpoint}: prior train NLL {metrics['prior_train_nll_bits_per_code']} "
          f"bits/code in {metrics['prior_train_wall_time_s']} s; now run "
          f"python -m latentlab.evaluate {args.checkpoint}")
    return metrics


if __name__ == "__main__":
    fit_prior_main()
