"""What a visitor asked for in the Train tab, checked, and its translation to engine configs.

A ``JobSpec`` speaks the app's words (a VAE, a VAE with a flow prior, a VQ-VAE); ``configs()``
turns it into what ``latentlab.train`` runs: (engine kind, model config, ``TrainConfig``), and
``command()`` writes the equivalent ``python -m latentlab.train`` line for ``metrics.json``.

``RANGES`` holds each setting's limits once: the Train tab's widgets take their minimum and
maximum from it and ``JobSpec`` refuses anything outside (NaN and infinities included), so
the API cannot ask for more than the widgets allow.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
from dataclasses import dataclass, field
from typing import Any

from latentlab import data
from latentlab.checkpoint import check_config
from latentlab.errors import InputError
from latentlab.train import TrainConfig
from models import MODEL_KINDS

# App-level model kinds -> (engine kind in MODEL_KINDS, VAE prior or None)
APP_KINDS = {"vae": ("vae", "normal"), "flow": ("vae", "realnvp"), "vqvae": ("vqvae", None)}
KIND_LABELS = {"vae": "VAE with N(0, I) prior", "flow": "VAE with a flow prior (RealNVP)",
               "vqvae": "VQ-VAE, then its code prior"}
# Settings of the engine that the spec never passes on (the CLI has its own flags for them).
_NOT_TRAIN_FLAGS = ("dataset", "model")


@dataclass(frozen=True)
class Range:
    """A setting's limits (inclusive) and its name on the Train tab.

    >>> RANGES["beta"].check(0.5), RANGES["epochs"].check(3.0)
    (0.5, 3)
    >>> RANGES["lr"].check(float("nan"))
    Traceback (most recent call last):
    latentlab.errors.InputError: Learning rate must be a number between 1e-06 and 1, got nan
    """

    label: str
    lo: float
    hi: float
    integer: bool = True

    def check(self, value: Any) -> Any:
        """``value`` as an int (whole-number settings) or float inside the range, or InputError."""
        try:
            number = float(value)
            ok = (not isinstance(value, bool) and math.isfinite(number)
                  and self.lo <= number <= self.hi and (not self.integer or number.is_integer()))
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            kind = "a whole number" if self.integer else "a number"
            raise InputError(f"{self.label} must be {kind} between {self.lo:g} and {self.hi:g}, "
                             f"got {value!r}")
        return int(number) if self.integer else number


# The Train tab's limits, defined once (the widgets read them too). beta and the prior's
# epochs may also be None in a spec: the model's default.
RANGES: dict[str, Range] = {
    "latent_dim": Range("Latent dimension", 1, 64),
    "beta": Range("beta", 0.0, 100.0, integer=False),
    "num_codes": Range("K (codebook entries)", 4, 512),
    "prior_epochs": Range("Code-prior epochs", 0, 30),
    "epochs": Range("Epochs", 1, 100),
    "subset": Range("Training images", 0, 60_000),
    "lr": Range("Learning rate", 1e-6, 1.0, integer=False),
    "batch_size": Range("Batch size", 8, 512),
    "val_size": Range("Validation images", 0, 50_000),
}
BATCH_SIZES = [32, 64, 128, 256, 512]   # the tab's choices (the API may ask for any in range)


@dataclass
class JobSpec:
    """A training job in the app's words; invalid ones raise ``InputError`` when made.

    >>> kind, model_cfg, train_cfg = JobSpec(model="flow", latent_dim=2).configs()
    >>> kind, model_cfg.prior, train_cfg.epochs, train_cfg.val_size
    ('vae', 'realnvp', 1, 10000)
    >>> JobSpec(model="gan")
    Traceback (most recent call last):
    latentlab.errors.InputError: unknown model kind 'gan'; choose one of ['flow', 'vae', 'vqvae']
    """

    dataset: str = "mnist"
    model: str = "vae"            # vae | flow | vqvae (see APP_KINDS)
    latent_dim: int = 16          # z for the VAEs; the code size D of each e_k for the VQ-VAE
    beta: float | None = None     # KL weight (VAE) or commitment weight (VQ); None = default
    num_codes: int = 128          # K, the codebook size (VQ-VAE only)
    prior_epochs: int | None = None  # code-prior epochs (VQ-VAE only); None = model default
    epochs: int = 1
    lr: float = 2e-3
    batch_size: int = 128
    subset: int = 0               # first N training images (0 = all not held out)
    val_size: int = TrainConfig.val_size  # last N training images held out for validation
    keep_best: bool = False       # keep the epoch with the lowest validation loss
    name: str = ""                # checkpoint folder name; sanitized, auto when empty
    seed: int = 0
    bf16: bool = False            # autocast on CUDA only (ignored on the CPU)
    model_options: dict = field(default_factory=dict)  # any other model-config field

    def __post_init__(self):
        try:
            self.dataset = data.check_dataset(self.dataset)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if self.model not in APP_KINDS:
            raise InputError(f"unknown model kind {self.model!r}; choose one of {sorted(APP_KINDS)}")
        if APP_KINDS[self.model][0] not in MODEL_KINDS:
            raise InputError(f"the {KIND_LABELS[self.model]} is not available in this build")
        for name, limits in RANGES.items():
            value = getattr(self, name)
            if value is not None or name not in ("beta", "prior_epochs"):
                setattr(self, name, limits.check(value))
        self.configs()  # fails early on any impossible combination

    @property
    def engine_kind(self) -> str:
        return APP_KINDS[self.model][0]

    def configs(self) -> tuple[str, Any, TrainConfig]:
        """(engine kind, model config, TrainConfig); raises InputError with a clear message."""
        kind = self.engine_kind
        config_cls = MODEL_KINDS[kind][0]
        unknown = set(self.model_options) - {f.name for f in dataclasses.fields(config_cls)}
        if unknown:
            raise InputError(f"{config_cls.__name__} has no fields {sorted(unknown)}")
        try:
            model_cfg = check_config(config_cls(**self._model_values()))
            train_cfg = TrainConfig(
                dataset=self.dataset, model=kind, epochs=self.epochs, lr=self.lr,
                batch_size=self.batch_size, subset=self.subset, val_size=self.val_size,
                keep_best=self.keep_best, seed=self.seed, bf16=self.bf16)
        except (TypeError, ValueError) as exc:
            raise InputError(str(exc)) from None
        return kind, model_cfg, train_cfg

    def _model_values(self) -> dict[str, Any]:
        """The model config's fields this spec sets (model_options override the rest)."""
        kind, prior = APP_KINDS[self.model]
        values: dict[str, Any] = {"dataset": self.dataset}
        if kind == "vae":
            values.update(latent_dim=self.latent_dim, prior=prior)
        else:
            values.update(code_dim=self.latent_dim, num_codes=self.num_codes)
            if self.prior_epochs is not None:
                values["prior_epochs"] = self.prior_epochs
        if self.beta is not None:
            values["beta"] = self.beta
        return {**values, **self.model_options}

    def images(self) -> int:
        """How many training images an epoch sees (the validation images are not among them)."""
        n = len(data.load_split(self.dataset, train=True)[0])
        if self.val_size >= n:
            raise InputError(f"the validation split must leave training images: val_size < {n:,}, "
                             f"not {self.val_size:,}")
        n -= self.val_size
        return min(self.subset, n) if self.subset else n

    def summary(self) -> str:
        """One line for people: the model, the data and how much training."""
        size = (f"K={self.num_codes} codes of size {self.latent_dim}" if self.model == "vqvae"
                else f"latent dimension {self.latent_dim}")
        return (f"{KIND_LABELS[self.model]} on {self.dataset} ({size}), "
                f"{self.epochs} epoch(s) on {self.images():,} images")

    def command(self, out: str | os.PathLike) -> str:
        """The equivalent ``python -m latentlab.train`` command (recorded in metrics.json).

        >>> JobSpec(model="flow", latent_dim=2, subset=256).command("ck")
        'python -m latentlab.train --dataset mnist --model vae --latent-dim 2 --prior realnvp --epochs 1 --subset 256 --out ck'
        """
        kind, model_cfg, cfg = self.configs()
        defaults = MODEL_KINDS[kind][0]()
        changed = [(f.name, getattr(model_cfg, f.name)) for f in dataclasses.fields(model_cfg)
                   if f.name != "dataset" and getattr(model_cfg, f.name) != getattr(defaults, f.name)]
        changed += [(f.name, getattr(cfg, f.name)) for f in dataclasses.fields(TrainConfig)
                    if f.name not in _NOT_TRAIN_FLAGS and getattr(cfg, f.name) != f.default]
        args = ["--dataset", cfg.dataset, "--model", kind]
        for name, value in changed:
            args += ["--" + name.replace("_", "-"), str(value)]
        return "python -m latentlab.train " + shlex.join([*args, "--out", str(out)])
