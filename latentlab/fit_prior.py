"""The VQ-VAE's second stage: fit its code prior on the encoded training set.

    python -m latentlab.fit_prior checkpoints/mnist-vqvae --prior-dim 128 --prior-epochs 10

The lecture's recipe is two-stage: train the VQ-VAE, then "fit an autoregressive model over
z". ``latentlab.train`` does both in one go (it calls ``fit_prior`` after the auto-encoder's
epochs); this command repeats only the second stage on a checkpoint, so a prior of another
size or training length can be tried without retraining the encoder, decoder and codebook
(their weights are copied bit for bit, so code grids do not change).

The checkpoint is rewritten atomically with the new prior settings in ``config.json``.
``metrics.json`` keeps the training command and gains ``prior_command``; the prior-dependent
evaluation numbers are dropped (they described the old prior) and not measured again: the
new prior meets the test set only in ``python -m latentlab.evaluate``, run on the fit chosen
on validation (a selection fit that scored itself on test would tempt a choice on test). The
auto-encoder's test figures (MSE, codebook usage) stay, since it is unchanged.
``train_wall_time_s`` becomes the auto-encoder's training time plus the new prior's fitting
time, the cost of the model as shipped.

>>> from models.vqvae import VQVAE, VQVAEConfig
>>> vq = VQVAE(VQVAEConfig(num_codes=8, code_dim=4, channels=4, prior_dim=16, prior_layers=1,
...                        prior_heads=2, prior_epochs=1, prior_batch_size=32))
>>> out = fit_prior(vq, torch.rand(64, 1, 28, 28))
>>> out["prior_train_grids"], 0 < out["prior_train_nll_bits_per_code"] < 2 * math.log2(8)
(64, True)
>>> any(p.requires_grad for p in vq.code_prior.parameters())  # frozen again afterwards
False
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from latentlab import data, settings
from latentlab.augment import mirror_symmetric_classes, shift_images
from latentlab.averaging import WeightAverage, kept_weights
from latentlab.checkpoint import load_checkpoint, save_checkpoint
from latentlab.cli_flags import flag_type
from latentlab.cpuclock import CpuClock
from latentlab.errors import CheckpointError, InputError
from models.vqvae import VQVAE, VQVAEConfig
from models.vqvae2 import VQVAE2, Codes, VQVAE2Config

PRIOR_FIELDS = ("prior_dim", "prior_layers", "prior_heads", "prior_dropout", "prior_epochs",
                "prior_lr", "prior_weight_decay", "prior_batch_size", "prior_augment_shift",
                "prior_augment_share", "prior_augment_epochs", "prior_augment_rotate",
                "prior_augment_mirror", "prior_polyak_decay", "prior_input_noise", "prior_bf16")
# metrics that describe the prior being replaced; evaluate writes them afresh
STALE_PREFIXES = ("learned_prior_", "prior_test_nll", "prior_val_", "prior_chosen_epoch",
                  "prior_selected_on_validation")


# ----------------------------------------------------------------------------- fitting

def _cosine(total: int, floor: float = 0.05):
    """Learning-rate factor per step: cosine decay from 1 to ``floor`` over ``total`` steps."""
    return lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))


# A prior is fitted on code grids (N, 7, 7), or on a two-level model's Codes (top and bottom
# grids of N images): these three helpers let one loop handle both.
Grids = torch.Tensor | Codes


def _count(grids: Grids) -> int:
    return grids.count if isinstance(grids, Codes) else len(grids)


def _take(grids: Grids, index: torch.Tensor | slice) -> Grids:
    return grids.select(index) if isinstance(grids, Codes) else grids[index]


def _device_of(grids: Grids) -> torch.device:
    return grids.top.device if isinstance(grids, Codes) else grids.device


@torch.no_grad()
def _nll_bits(prior: torch.nn.Module, grids: Grids, batch_size: int = 500) -> float:
    """Mean NLL in bits per code of grids (N, 7, 7) or Codes under the prior (eval mode)."""
    was_training = prior.training
    prior.eval()
    n = _count(grids)
    total = sum(prior.nll_per_code(_take(grids, slice(i, i + batch_size))).item()
                * min(batch_size, n - i) for i in range(0, n, batch_size))
    prior.train(was_training)
    return total / max(n, 1) / math.log(2)


def _validate(prior: torch.nn.Module, val_grids: Grids, average: WeightAverage | None) -> float:
    """Validation NLL (bits per code) of the weights the fit would keep."""
    if average is None:
        return _nll_bits(prior, val_grids)
    with average.swapped_into(prior):
        return _nll_bits(prior, val_grids)


def prior_optimizer(prior: torch.nn.Module, lr: float, weight_decay: float,
                    fused: bool = True) -> torch.optim.AdamW:
    """AdamW over the prior's weights, fused on CPU and CUDA: one kernel for all its weight
    tensors (78 for 6 layers) instead of a Python loop over them: on a CPU its step takes
    2-3 ms instead of 7-9, about 1 % of a 600 ms training step (the README's throughput)."""
    device = next(prior.parameters()).device
    fused = fused and device.type in ("cpu", "cuda")
    return torch.optim.AdamW(prior.parameters(), lr=lr, weight_decay=weight_decay,
                             fused=fused or None)


def fit_code_prior(prior: torch.nn.Module, grids: Grids, config: VQVAEConfig | VQVAE2Config,
                   seed: int = 0, progress: bool = False, val_grids: Grids | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   epoch_grids: Callable[[int], Grids] | None = None) -> dict:
    """Maximum likelihood on code grids (N, 7, 7) (a ``CodePrior``) or on two-level Codes (a
    ``HierarchicalCodePrior``); returns the train NLL (bits/code) and, with
    ``val_grids``, the validation NLL after every epoch. ``epoch_grids(epoch)``, when given,
    supplies each epoch's grids (augmented data) in place of ``grids`` (same count).

    ``should_stop`` is asked after every step (a Stop button): when it says yes the fit ends
    there and keeps the prior as far as it got (the best finished epoch's weights when one
    was validated, else the current ones); ``stopped`` and ``steps`` in the result say so.

    ``config`` gives ``prior_epochs``, ``prior_lr``, ``prior_weight_decay``,
    ``prior_batch_size``, ``prior_polyak_decay`` (> 0: an EMA of the weights is what is
    validated and kept, Polyak averaging; the optimizer's path is the same) and
    ``prior_bf16`` (the training steps' matmuls in bf16; validation stays fp32). AdamW with a
    cosine decay to 5 % of the rate; grids are shuffled every epoch by a ``seed``-ed
    generator. With validation grids the weights of the epoch with the lowest validation NLL
    are kept (the number of epochs is chosen on validation, never on test). The prior's
    weights are trainable only during this call. With ``prior_epochs = 0`` the prior stays as
    initialised and the train NLL is NaN.
    """
    epochs, bs = config.prior_epochs, config.prior_batch_size
    out: dict = {"train_bits": float("nan"), "val_history": [], "best_epoch": 0,
                 "stopped": False, "steps": 0}
    n = _count(grids)
    if epochs == 0 or n == 0:
        return out
    total = epochs * math.ceil(n / bs)
    gen = torch.Generator().manual_seed(seed)
    prior.requires_grad_(True).train()
    step = _Stepper.for_prior(prior, config, total)
    best: tuple[float, dict] | None = None
    bar = tqdm(total=total, disable=not progress, desc="code prior", mininterval=2.0)
    for epoch in range(1, epochs + 1):
        batch_grids = grids if epoch_grids is None else epoch_grids(epoch)   # (N, 7, 7) or Codes
        order = torch.randperm(n, generator=gen).to(_device_of(grids))
        out["train_bits"] = _fit_epoch(prior, batch_grids, order.split(bs), step, out, bar,
                                       should_stop)
        if out["stopped"]:  # a part-epoch is not validated: the best whole epoch is kept
            break
        if val_grids is not None and _count(val_grids):
            val, entry = _validation_entry(prior, val_grids, step.average, epoch, out["train_bits"])
            out["val_history"].append(entry)
            if best is None or val < best[0]:
                best = (val, kept_weights(prior, step.average))
                out["best_epoch"] = epoch
        bar.set_postfix(bits_per_code=f"{out['train_bits']:.3f}")
    bar.close()
    _keep(prior, best, step.average, out, epochs)
    return out


@dataclasses.dataclass
class _Stepper:
    """The fit's optimizer, learning-rate schedule and optional weight average, stepped as one."""
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    average: WeightAverage | None
    bf16: bool = False

    @classmethod
    def for_prior(cls, prior: torch.nn.Module, config: VQVAEConfig | VQVAE2Config,
                  total: int) -> _Stepper:
        opt = prior_optimizer(prior, config.prior_lr, config.prior_weight_decay)
        decay = getattr(config, "prior_polyak_decay", 0.0)
        return cls(opt, torch.optim.lr_scheduler.LambdaLR(opt, _cosine(total)),
                   WeightAverage(prior, decay) if decay else None,
                   getattr(config, "prior_bf16", False))

    def precision(self, device: torch.device) -> torch.autocast:
        """The loss's forward pass in bf16 autocast when the config asks for it (the backward
        pass follows its dtypes; weights and optimizer stay fp32)."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def __call__(self, prior: torch.nn.Module, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        if self.average is not None:
            self.average.update(prior)


def _fit_epoch(prior: torch.nn.Module, grids: Grids, batches: tuple[torch.Tensor, ...],
               step: _Stepper, out: dict, bar: tqdm,
               should_stop: Callable[[], bool] | None) -> float:
    """One pass over ``grids`` in the given index ``batches``: the mean train NLL in bits per
    code. Counts ``out["steps"]``; sets ``out["stopped"]`` when ``should_stop`` says so."""
    device = _device_of(grids)
    nll_sum, count = torch.zeros((), device=device), 0
    for idx in batches:
        with step.precision(device):
            nll = prior.nll_per_code(_take(grids, idx))                      # nats per code
        step(prior, nll)
        nll_sum += nll.detach() * len(idx)
        count += len(idx)
        out["steps"] += 1
        bar.update(1)
        if should_stop is not None and should_stop():
            out["stopped"] = True
            break
    return (nll_sum / count).item() / math.log(2)


def _validation_entry(prior: torch.nn.Module, val_grids: Grids, average: WeightAverage | None,
                      epoch: int, train_bits: float) -> tuple[float, dict]:
    """The validation NLL of the kept weights and the epoch's line of ``val_history``."""
    val = _validate(prior, val_grids, average)
    entry = {"epoch": epoch, "train_bits_per_code": round(train_bits, 4),
             "val_bits_per_code": round(val, 4)}
    if average is not None:  # the live weights too: what averaging gained, same run
        entry["val_live_bits_per_code"] = round(_nll_bits(prior, val_grids), 4)
    return val, entry


def _keep(prior: torch.nn.Module, best: tuple[float, dict] | None, average: WeightAverage | None,
          out: dict, epochs: int) -> None:
    """Load the weights the fit keeps and freeze the prior: the best validated epoch's, else
    the average of the whole fit (with averaging) or the last weights."""
    if best is not None:
        prior.load_state_dict(best[1])
    else:
        if average is not None:
            prior.load_state_dict(kept_weights(prior, average))
        if not out["stopped"]:
            out["best_epoch"] = epochs
    prior.requires_grad_(False).eval()


def _replaced(grids: Grids, index: torch.Tensor, new: Grids) -> Grids:
    """A copy of ``grids`` whose entries at ``index`` are ``new`` (grids or Codes alike)."""
    if isinstance(grids, Codes):
        return Codes(*(_replaced(old, index, part) for old, part in zip(grids, new)))
    out = grids.clone()
    out[index] = new
    return out


def augmented_grids(model: VQVAE | VQVAE2, x: torch.Tensor, grids: Grids, shift: int,
                    share: float, gen: torch.Generator, rotate: float = 0.0,
                    mirror: float = 0.0, mirrorable: torch.Tensor | None = None) -> Grids:
    """One epoch's grids of the images x (N, 1, 28, 28) moved (and turned by up to ``rotate``
    degrees, and mirrored with chance ``mirror`` where ``mirrorable`` allows) by
    ``shift_images``.

    With share < 1 only the images that moved are encoded again; the rest keep ``grids``
    (the encoding is per image, so the result is the same, at a share of the cost).
    """
    moved = shift_images(x, shift, gen, share, rotate, mirror, mirrorable)  # (N, 1, 28, 28)
    if share >= 1:
        return model.encode_dataset(moved)
    index = (moved != x).flatten(1).any(1).nonzero().squeeze(1)             # (M,) moved images
    return _replaced(grids, index, model.encode_dataset(moved[index]))


def _augmenter(model: VQVAE | VQVAE2, x: torch.Tensor, y: torch.Tensor | None, grids: Grids,
               seed: int) -> Callable[[int], Grids] | None:
    """Each epoch's grids under the config's augmentation (None: the grids as they are)."""
    c = model.config
    shift, share, rotate, mirror = (c.prior_augment_shift, c.prior_augment_share,
                                    c.prior_augment_rotate, c.prior_augment_mirror)
    if not (shift or rotate or mirror):
        return None
    if mirror and (y is None or len(y) != len(x)):
        raise ValueError("prior_augment_mirror > 0 needs the training labels (y), one per "
                         "image: which classes are mirror-symmetric is decided per class")
    mirrorable = mirror_symmetric_classes(x, y) if mirror else None         # (N,)
    until = c.prior_augment_epochs or c.prior_epochs
    gen = torch.Generator().manual_seed(seed + 1)
    return lambda epoch: (augmented_grids(model, x, grids, shift, share, gen, rotate, mirror,
                                          mirrorable) if epoch <= until else grids)


def fit_prior(model: VQVAE | VQVAE2, x: torch.Tensor, seed: int = 0, progress: bool = False,
              x_val: torch.Tensor | None = None,
              should_stop: Callable[[], bool] | None = None,
              y: torch.Tensor | None = None) -> dict:
    """Encode images (N, 1, 28, 28) to code grids (both levels for a two-level VQ-VAE) and
    fit ``model.code_prior`` on them;
    returns the fit's train (and validation) NLL in bits/code, wall time and grid counts for
    metrics.json. With ``x_val`` the prior epoch is chosen on validation. A fit stopped by
    ``should_stop`` adds ``prior_stopped_early`` and ``prior_steps`` of ``prior_total_steps``.
    The labels ``y`` (N,) are needed only to mirror images (``prior_augment_mirror``).
    ``prior_train_cpu_time_s`` (all threads) and ``prior_train_steal_share`` (the host's CPU
    time the hypervisor gave to other guests meanwhile) say how much of the wall time was work.
    """
    clock = CpuClock.start()
    grids = model.encode_dataset(x)                                          # (N, 7, 7)
    val_grids = model.encode_dataset(x_val) if x_val is not None and len(x_val) else None
    augmented = _augmenter(model, x, y, grids, seed)
    fit = fit_code_prior(model.code_prior, grids, model.config, seed=seed, progress=progress,
                         val_grids=val_grids, should_stop=should_stop, epoch_grids=augmented)
    # the fitted prior on its training grids, like test and validation (the running mean of
    # an epoch's losses mixes weights from the whole epoch); a stopped or empty fit keeps that
    fitted = not fit["stopped"] and math.isfinite(fit["train_bits"])
    train_bits = _nll_bits(model.code_prior, grids) if fitted else fit["train_bits"]
    spent = clock.elapsed()
    out = {"prior_train_nll_bits_per_code": round(train_bits, 4) if math.isfinite(train_bits) else None,
           "prior_train_wall_time_s": spent["wall_s"], "prior_train_cpu_time_s": spent["cpu_s"],
           "prior_train_steal_share": spent["steal_share"], "prior_train_grids": _count(grids)}
    if fit["stopped"]:
        total = model.config.prior_epochs * math.ceil(_count(grids) / model.config.prior_batch_size)
        out.update(prior_stopped_early=True, prior_steps=fit["steps"], prior_total_steps=total)
    if fit["val_history"]:
        best = fit["val_history"][fit["best_epoch"] - 1]
        out.update(prior_val_grids=_count(val_grids), prior_chosen_epoch=fit["best_epoch"],
                   prior_val_nll_bits_per_code=best["val_bits_per_code"],
                   prior_val_history=fit["val_history"],
                   prior_val_rule=f"lowest validation NLL (the last {_count(val_grids):,} "
                                  "training images)")
    return out


# ----------------------------------------------------------------------------- refitting

def _autoencoder_seconds(metrics: dict) -> float | None:
    """Training time of the encoder/decoder/codebook alone, from the first training run."""
    if "autoencoder_train_wall_time_s" in metrics:
        return metrics["autoencoder_train_wall_time_s"]
    total, prior = metrics.get("train_wall_time_s"), metrics.get("prior_train_wall_time_s")
    return None if total is None else round(total - (prior or 0.0), 1)


def _with_new_prior(model: VQVAE | VQVAE2, changes: dict) -> VQVAE | VQVAE2:
    """A VQ-VAE with the new prior settings, an untrained prior and the old auto-encoder."""
    config = dataclasses.replace(model.config, **changes)
    fresh = type(model)(config)
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("code_prior.")}
    missing, unexpected = fresh.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("code_prior.") for k in missing)
    return fresh


# ----------------------------------------------------------------------------- public API

def refit_prior(folder: str | os.PathLike, changes: dict, seed: int = 0, subset: int = 0,
                progress: bool = False, command: str = "", val_size: int = data.VAL_SIZE) -> dict:
    """Refit the prior of the VQ-VAE in ``folder`` with ``changes`` to its prior settings.

    ``subset`` > 0 fits on the first ``subset`` training images only (for quick tries); the
    last ``val_size`` training images are held out and choose the prior's epoch.
    Returns the new metrics.json content (also written). Raises CheckpointError for a
    checkpoint that is not a VQ-VAE, InputError for a setting that is not a prior's and
    ValueError for an invalid value.
    """
    unknown = set(changes) - set(PRIOR_FIELDS)
    if unknown:
        raise InputError(f"only prior settings can change, not {sorted(unknown)}")
    model, info = load_checkpoint(folder)
    if info.kind not in ("vqvae", "vqvae2"):
        raise CheckpointError(f"{info.path}: is a {info.kind!r} checkpoint, not a VQ-VAE")
    torch.manual_seed(seed)  # the fresh prior's initial weights, then its fitting
    model = _with_new_prior(model, changes)
    (x, y), (x_val, _) = data.train_val_split(info.config.dataset, val_size)
    x, y = (x[:subset], y[:subset]) if subset > 0 else (x, y)                # (N, 1, 28, 28), (N,)
    fitted = fit_prior(model, x, seed=seed, progress=progress, x_val=x_val, y=y)
    metrics = {k: v for k, v in info.metrics.items() if not k.startswith(STALE_PREFIXES)}
    auto = _autoencoder_seconds(info.metrics)
    metrics.update(fitted, prior_command=command, prior_date=dt.datetime.now(dt.UTC).isoformat(
        timespec="seconds"), autoencoder_train_wall_time_s=auto)
    if auto is not None:
        metrics["train_wall_time_s"] = round(auto + fitted["prior_train_wall_time_s"], 1)
    save_checkpoint(info.path, model, info.kind, model.config, metrics)
    return metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a VQ-VAE checkpoint folder (rewritten in place)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=0, help="first N training images (0 = all)")
    p.add_argument("--val-size", type=int, default=data.VAL_SIZE,
                   help="last N training images held out to choose the epoch (0 = none)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--data-root", help="data folder (default $LATENT_LAB_DATA or the cache)")
    p.add_argument("--no-progress", action="store_true")
    defaults = {f.name: f.default for f in dataclasses.fields(VQVAEConfig)}
    for name in PRIOR_FIELDS:  # unset flags keep the checkpoint's own value
        p.add_argument("--" + name.replace("_", "-"), type=flag_type(type(defaults[name])),
                       default=None)
    return p.parse_args(argv)


def fit_prior_main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.data_root:
        settings.configure(data_dir=Path(args.data_root).expanduser())
    if args.threads:
        torch.set_num_threads(args.threads)
    changes = {k: getattr(args, k) for k in PRIOR_FIELDS if getattr(args, k) is not None}
    command = "python -m latentlab.fit_prior " + shlex.join(sys.argv[1:] if argv is None else argv)
    metrics = refit_prior(Path(args.checkpoint), changes, seed=args.seed, subset=args.subset,
                          progress=not args.no_progress, command=command, val_size=args.val_size)
    print(f"{args.checkpoint}: prior train NLL {metrics['prior_train_nll_bits_per_code']} "
          f"bits/code in {metrics['prior_train_wall_time_s']} s; now run "
          f"python -m latentlab.evaluate {args.checkpoint}")
    return metrics


if __name__ == "__main__":
    fit_prior_main()
