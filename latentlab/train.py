"""Training engine and command line.

    python -m latentlab.train --dataset mnist --model vae --prior realnvp --latent-dim 16 \
        --epochs 30 --out checkpoints/mnist-flow-z16

The whole training set sits on the training device as one tensor; each epoch is a random
permutation cut into batches, and VAE batches are binarized afresh (dynamic binarization).
``Trainer`` runs one epoch at a time and can save/restore its full state, which is what the
app's Train tab and the ZeroGPU chunking use. After the last epoch ``after_training`` runs
what follows by model kind (a VQ-VAE's code prior is fitted by ``latentlab.fit_prior``).
Under ``torchrun`` each rank trains on its shard of every permutation with
DistributedDataParallel and rank 0 writes the checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from latentlab import data, settings
from latentlab.averaging import WeightAverage, kept_weights
from latentlab.checkpoint import check_config, nonfinite_tensors, save_checkpoint
from latentlab.cli_flags import add_config_flags, check_no_clash, config_from_args
from latentlab.cpuclock import CpuClock
from latentlab.device import device_description, pick_device
from latentlab.errors import UserError
from latentlab.evaluate import quick_metrics
from latentlab.fit_prior import fit_prior
from latentlab.steps import STEPS, VQ_KINDS
from models import MODEL_KINDS

__all__ = ["STEPS", "VQ_KINDS", "TrainConfig", "Trainer", "TrainingDiverged", "after_training",
           "check_finite_weights", "device_description", "fit", "pick_device", "train_main"]
DIVERGED = "Training diverged (NaN weights); lower the learning rate."


class TrainingDiverged(UserError):
    """The weights became NaN or infinite: nothing is saved."""


def check_finite_weights(model: nn.Module) -> None:
    """Raise ``TrainingDiverged`` if any parameter or buffer holds a NaN or an infinity.

    >>> check_finite_weights(nn.Linear(2, 2))
    >>> check_finite_weights(nn.Linear(2, 2).requires_grad_(False).apply(
    ...     lambda m: m.weight.fill_(float("nan"))))
    Traceback (most recent call last):
    ...
    latentlab.train.TrainingDiverged: Training diverged (NaN weights); lower the learning rate.
    """
    if nonfinite_tensors(unwrap(model).state_dict()):
        raise TrainingDiverged(DIVERGED)


@dataclass
class TrainConfig:
    """How to train (the model's own config says what to build).

    >>> TrainConfig(epochs=2, subset=256).val_size
    10000
    >>> TrainConfig(keep_best=True, val_size=0)
    Traceback (most recent call last):
    ...
    ValueError: keep_best chooses an epoch on validation: it needs val_size > 0
    """

    dataset: str = "mnist"
    model: str = "vae"                 # vae | vqvae | vqvae2 | classifier
    epochs: int = 30
    batch_size: int = 128              # small enough for many updates per CPU minute
    lr: float = 2e-3                   # Adam; decays with a cosine to lr * min_lr_ratio
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0          # > 0: AdamW's decoupled decay (a regulariser against
                                       # the train-validation gap); 0 keeps plain Adam
    kl_warmup_epochs: float = 0.0      # beta ramps linearly from 0 over this many epochs
    seed: int = 0
    subset: int = 0                    # train on the first N images only (0 = all)
    val_size: int = 10000              # last N training images held out for validation (0 = none)
    keep_best: bool = False            # keep the weights of the epoch with the lowest val loss
    polyak_decay: float = 0.0          # > 0: validate and save an EMA of the weights
    device: str = "auto"               # auto = CUDA when present
    bf16: bool = False                 # autocast on CUDA only
    threads: int = 0                   # torch CPU threads (0 = torch's default)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or not (0 < self.lr < math.inf):
            raise ValueError("epochs and batch_size must be >= 1 and lr a finite number > 0")
        if not (0 <= self.weight_decay < math.inf):
            raise ValueError("weight_decay must be a finite number >= 0")
        if not (0 <= self.min_lr_ratio <= 1 and 0 <= self.kl_warmup_epochs < math.inf):
            raise ValueError("min_lr_ratio must lie in [0, 1] and kl_warmup_epochs be finite >= 0")
        if self.val_size < 0:
            raise ValueError("val_size must be >= 0 (0 = no validation split)")
        if not 0 <= self.polyak_decay < 1:
            raise ValueError("polyak_decay must lie in [0, 1) (0 = no weight averaging)")
        if self.keep_best and not self.val_size:
            raise ValueError("keep_best chooses an epoch on validation: it needs val_size > 0")


# ----------------------------------------------------------------------------- helpers

def dist_info() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


BINARIZED = {"vae"}  # Bernoulli decoders see binary pixels; the others see grey levels


# ----------------------------------------------------------------------------- engine

class Trainer:
    """One model, its optimizer and schedule, and the data on the device.

    >>> from models.vae import VAE, VAEConfig
    >>> t = Trainer(VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)),
    ...             TrainConfig(epochs=1, subset=128, batch_size=64, val_size=100))
    >>> logs = t.run_epoch()
    >>> logs["epoch"], logs["loss"] > 0, "val_loss" in logs
    (1, True, True)
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, kind: str | None = None):
        self.cfg = cfg
        self.kind = kind or cfg.model
        self.device = pick_device(cfg.device)
        self.rank, self.world = dist_info()
        torch.manual_seed(cfg.seed)
        (x, y), (x_val, y_val) = data.train_val_split(cfg.dataset, cfg.val_size)
        if cfg.subset:
            x, y = x[: cfg.subset], y[: cfg.subset]
        self.x, self.y = x.to(self.device), y.to(self.device)
        if self.kind in BINARIZED:  # validated on fixed bits, like the test set
            x_val = data.binarize_validation(x_val)
        self.x_val, self.y_val = x_val.to(self.device), y_val.to(self.device)
        self.best: tuple[float, int, dict] | None = None  # (val loss, epoch, CPU weights)
        self.model = model.to(self.device)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # the VQ-VAE's code prior is fitted after training, so its weights get no grads here
            self.model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=self.kind in VQ_KINDS)
        self.optimizer = (torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                            weight_decay=cfg.weight_decay) if cfg.weight_decay
                          else torch.optim.Adam(self.model.parameters(), lr=cfg.lr))
        self.steps_per_epoch = max(1, (len(self.x) // self.world) // cfg.batch_size)
        total = cfg.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cfg.min_lr_ratio + (1 - cfg.min_lr_ratio)
            * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        self.generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
        self.average = WeightAverage(unwrap(self.model), cfg.polyak_decay) if cfg.polyak_decay else None
        self.epoch = 0
        self.history: list[dict] = []

    def _beta(self, step_in_epoch: int) -> float | None:
        if self.kind != "vae" or self.cfg.kl_warmup_epochs <= 0:
            return None
        progress = (self.epoch + step_in_epoch / self.steps_per_epoch) / self.cfg.kl_warmup_epochs
        return unwrap(self.model).config.beta * min(1.0, progress)

    def _anneal(self, step_in_epoch: int) -> None:
        """Gumbel-softmax VAEs lower their temperature over the whole run."""
        model = unwrap(self.model)
        if self.kind == "vae" and model.config.posterior == "categorical":
            total = self.cfg.epochs * self.steps_per_epoch
            model.anneal((self.epoch * self.steps_per_epoch + step_in_epoch) / max(total - 1, 1))

    def _epoch_data(self) -> torch.Tensor:
        if self.kind in BINARIZED:
            g = torch.Generator(device=self.device).manual_seed(self.cfg.seed * 100003 + self.epoch)
            return data.binarize(self.x, g)
        return self.x

    def run_epoch(self, on_step: Callable[[int, dict], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> dict:
        """Train one epoch; returns the epoch's mean of each logged term (and 'stopped')."""
        self.model.train()
        xs = self._epoch_data()
        order = torch.randperm(len(xs), generator=self.generator).to(self.device)
        order = order[self.rank:: self.world]  # this rank's shard of the shared permutation
        sums: dict[str, torch.Tensor] = {}
        n, stopped = 0, False
        autocast = torch.autocast("cuda", dtype=torch.bfloat16,
                                  enabled=self.cfg.bf16 and self.device.type == "cuda")
        for i, idx in enumerate(order.split(self.cfg.batch_size)[: self.steps_per_epoch]):
            self._anneal(i)
            with autocast:
                loss, logs = STEPS[self.kind](self.model, xs[idx], self.y[idx], self._beta(i))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            if self.average is not None:
                self.average.update(unwrap(self.model))
            for k, v in logs.items():  # summed on the device: no host sync per step
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            n += 1
            if on_step is not None:
                on_step(i, logs)
            if should_stop is not None and should_stop():
                stopped = True
                break
        self.epoch += 1
        result = {k: (v / max(n, 1)).item() for k, v in sums.items()}
        result.update(self.validate())
        result.update(epoch=self.epoch, stopped=stopped)
        self.history.append(result)
        self._remember_best(result)
        return result

    @torch.no_grad()
    def validate(self, batch_size: int = 1000) -> dict:
        """Mean of each logged term on the validation split, keys prefixed ``val_``.

        Runs under a forked RNG with a fixed seed: the same bits and noise every epoch, and
        the training's random stream is left as it was.
        """
        if not len(self.x_val):
            return {}
        if self.average is not None:  # the weights that will be saved are the ones scored
            with self.average.swapped_into(unwrap(self.model)):
                return self._validate(batch_size)
        return self._validate(batch_size)

    def _validate(self, batch_size: int) -> dict:
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(data.VAL_BINARIZATION_SEED)
            for xb, yb in zip(self.x_val.split(batch_size), self.y_val.split(batch_size)):
                _, logs = STEPS[self.kind](unwrap(self.model), xb, yb, None)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v.float() * len(xb)
        self.model.train()
        return {f"val_{k}": (v / len(self.x_val)).item() for k, v in sums.items()}

    def _remember_best(self, result: dict) -> None:
        if not self.cfg.keep_best or "val_loss" not in result:
            return
        if self.best is None or result["val_loss"] < self.best[0]:
            self.best = (result["val_loss"], self.epoch, self.weights())

    def weights(self) -> dict[str, torch.Tensor]:
        """CPU copies of the weights this run saves: the EMA when averaging, else the live ones."""
        return kept_weights(unwrap(self.model), self.average)

    def restore_best(self) -> int:
        """Load the weights to save (the lowest-validation-loss epoch's, else the last, averaged
        when ``polyak_decay`` > 0); returns their epoch."""
        if self.best is None:
            if self.average is not None:
                unwrap(self.model).load_state_dict(self.weights())
            return self.epoch
        unwrap(self.model).load_state_dict(self.best[2])
        return self.best[1]

    def state_dict(self) -> dict:
        """Everything needed to resume exactly where this trainer is (for chunked training)."""
        return {"model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(),  # the reparameterization noise and dropout
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
                "epoch": self.epoch, "history": list(self.history),
                "average": None if self.average is None else self.average.state()}

    def load_state_dict(self, state: dict) -> None:
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch, self.history = state["epoch"], list(state["history"])
        if self.average is not None and state.get("average") is not None:
            self.average.load_state(state["average"], self.device)


def after_training(trainer: Trainer, progress: bool = False,
                   should_stop: Callable[[], bool] | None = None) -> dict:
    """What follows the last epoch, by model kind; returns extra metrics.json keys.

    A VQ-VAE fits its code prior on the encoded training images (the lecture's second
    stage, ``latentlab.fit_prior``); every rank fits the same prior from the same seed, so
    the ranks' weights stay equal. ``should_stop`` (the job's stop flag) ends the prior's fit
    early: the model keeps the prior as far as it got (``prior_stopped_early`` in the
    metrics). Other kinds have nothing to do.
    """
    if trainer.kind not in VQ_KINDS:
        return {}
    return fit_prior(unwrap(trainer.model), trainer.x, seed=trainer.cfg.seed,
                     progress=progress and trainer.rank == 0, x_val=trainer.x_val,
                     should_stop=should_stop, y=trainer.y)


def validation_summary(trainer: Trainer, chosen_epoch: int) -> dict:
    """What metrics.json records of the validation protocol."""
    cfg = trainer.cfg
    if not cfg.val_size:
        return {"val_size": 0}
    curve = [{k: round(v, 4) for k, v in h.items() if k.startswith("val_")} | {"epoch": h["epoch"]}
             for h in trainer.history]
    chosen = next(c for c in curve if c["epoch"] == chosen_epoch)
    return {"val_size": cfg.val_size,
            "val_split": f"the last {cfg.val_size} training images (binarized with seed "
                         f"{data.VAL_BINARIZATION_SEED} for Bernoulli decoders)",
            "val_chosen_epoch": chosen_epoch,
            "val_rule": "lowest val_loss" if cfg.keep_best else "last epoch (fixed budget)",
            "val": chosen, "val_history": curve}


# ----------------------------------------------------------------------------- CLI

def build_model_config(args: argparse.Namespace):
    """The model's config dataclass from the command-line flags that apply to it."""
    return config_from_args(MODEL_KINDS[args.model][0], args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", type=data.check_dataset)
    p.add_argument("--model", default="vae", choices=sorted(MODEL_KINDS))
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--data-root", help="data folder (default $LATENT_LAB_DATA or the cache)")
    p.add_argument("--no-progress", action="store_true")
    seen: set[str] = set()
    owned = add_config_flags(p, TrainConfig, True, seen)
    for config_cls, _ in MODEL_KINDS.values():
        check_no_clash(owned, config_cls)
        add_config_flags(p, config_cls, False, seen)
    return p.parse_args(argv)


def train_main(argv: list[str] | None = None) -> Path | None:
    args = parse_args(argv)
    if args.data_root:
        settings.configure(data_dir=Path(args.data_root).expanduser())
    if args.threads:
        torch.set_num_threads(args.threads)
    if "RANK" in os.environ and not dist.is_initialized():  # started by torchrun
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:  # a bad number is a one-line message before anything starts, not a traceback
        cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
        args.dataset = cfg.dataset
        model_cfg = check_config(build_model_config(args))
    except ValueError as exc:
        raise SystemExit(f"latentlab.train: error: {exc}") from None
    torch.manual_seed(cfg.seed)
    model = MODEL_KINDS[args.model][1](model_cfg)
    command = "python -m latentlab.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    path = fit(model, model_cfg, cfg, args.out, command, progress=not args.no_progress)
    if dist.is_initialized():
        dist.destroy_process_group()
    return path


def fit(model: nn.Module, model_cfg, cfg: TrainConfig, out: str | os.PathLike, command: str,
        progress: bool = True) -> Path | None:
    """Train for ``cfg.epochs`` and write the checkpoint (rank 0 only)."""
    from tqdm import tqdm

    trainer = Trainer(model, cfg)
    clock = CpuClock.start()
    bar = tqdm(total=cfg.epochs * trainer.steps_per_epoch, disable=not progress or trainer.rank,
               desc=f"{cfg.model} {cfg.dataset}", mininterval=2.0)

    def on_step(i: int, logs: dict) -> None:
        bar.update(1)
        if i % 50 == 0:
            bar.set_postfix(loss=f"{logs['loss'].item():.3f}", ep=trainer.epoch + 1)

    for _ in range(cfg.epochs):
        logs = trainer.run_epoch(on_step=on_step)
        if not progress and trainer.rank == 0:  # one line per epoch for logs and nohup runs
            terms = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if isinstance(v, float))
            print(f"[{cfg.model} {cfg.dataset}] epoch {trainer.epoch}/{cfg.epochs} {terms} "
                  f"({time.time() - clock.wall:.0f}s)", flush=True)
    bar.close()
    chosen_epoch = trainer.restore_best()
    model = unwrap(trainer.model)
    extra = after_training(trainer, progress=progress)
    if trainer.rank != 0:
        return None
    check_finite_weights(model)  # a diverged run saves nothing
    spent = clock.elapsed()
    metrics = {
        "command": command,
        "train_wall_time_s": spent["wall_s"],
        "train_cpu_time_s": spent["cpu_s"],        # all threads of this process
        "train_steal_share": spent["steal_share"],  # the host's ticks other guests took
        "device": device_description(trainer.device),
        "world_size": trainer.world,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "train_config": dataclasses.asdict(cfg),
        "final_epoch": trainer.history[-1],
        **validation_summary(trainer, chosen_epoch),
        **extra,
    }
    metrics.update(quick_test_figures(model, cfg))
    return save_checkpoint(out, model.cpu(), cfg.model, model_cfg, metrics)


def quick_test_figures(model: nn.Module, cfg: TrainConfig) -> dict:
    """Quick test-set numbers, only for a run without a validation split.

    A run with one is a selection run: whatever is chosen from it is chosen on validation, and
    ``python -m latentlab.evaluate`` scores the chosen model on test once, so the run itself
    must not look at the test set.
    """
    if cfg.val_size:
        return {"test_scored": False}
    return {**quick_metrics(model.eval(), cfg.dataset, kind=cfg.model), "test_scored": True}


if __name__ == "__main__":
    try:
        train_main()
    except UserError as exc:  # diverged, data missing: the message says what to do
        sys.exit(f"latentlab.train: {exc}")
