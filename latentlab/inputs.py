"""The API boundary: every number, choice, seed and image a user sends is checked here.

Each check returns the clean value or raises ``InputError`` (a ``UserError``) whose message is
shown as it is, so bad input never reaches a model.

>>> check_int("steps", 12.0, 2, 32)
12
>>> check_int("steps", 40, 2, 32)
Traceback (most recent call last):
...
latentlab.errors.InputError: steps must lie between 2 and 32, got 40
>>> binarize(np.full((28, 28), 0.7, np.float32), "threshold").max()
np.float32(1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from latentlab.errors import InputError

MAX_SEED = 2**31 - 1
# The ranges the widgets offer; the checks below refuse the same values with the same limits,
# so an API user and a person at the page are told the same thing.
TEMPERATURE = (0.1, 2.0)        # slider of Sample, Code grid
MAX_MODELS = 4                  # models side by side (the pickers' max_choices)
SAMPLE_COUNTS = (16, 36, 64, 100)
STEPS = (2, 32)                 # interpolation steps
IMPORTANCE_K = (1, 1000)        # Reconstruct's k
PRIOR_SAMPLES = (0, 1000)       # Latent space's black rings
BINARIZE = {
    "threshold": "pixels above 0.5 become 1 (clean strokes)",
    "random": "each pixel is 1 with its grey value as probability (seeded), as in training",
    "none": "grey levels as they are",
}


def shown(value: Any) -> str:
    """A value as a message quotes it: huge numbers and long text shortened.

    >>> shown(10**300), shown(-10**400), shown(2.5), shown(np.int64(7)), shown(float("nan"))
    ('1e+300', '-inf', '2.5', '7', 'nan')
    >>> shown("x" * 100)[-5:]
    'xx...'
    """
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        try:
            f = float(value)
        except OverflowError:  # an int beyond any float
            f = math.inf if value > 0 else -math.inf
        if abs(f) >= 1e6:
            return f"{f:.3g}"
        return str(int(value)) if isinstance(value, (int, np.integer)) else repr(f)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi] (floats with an integral value are accepted)."""
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a whole number, got {shown(value)}") from None
    if not math.isfinite(f) or f != int(f):
        raise InputError(f"{name} must be a whole number, got {shown(value)}")
    if not lo <= f <= hi:
        raise InputError(f"{name} must lie between {lo} and {hi}, got {shown(value)}")
    return int(f)


def check_float(name: str, value: Any, lo: float, hi: float) -> float:
    """A finite number in [lo, hi].

    >>> check_float("temperature", "0.5", 0.05, 3.0)
    0.5
    """
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a number, got {shown(value)}") from None
    if not (math.isfinite(f) and lo <= f <= hi):
        raise InputError(f"{name} must lie between {lo:g} and {hi:g}, got {shown(value)}")
    return f


def check_temperature(value: Any) -> float:
    """A temperature within the sliders' range.

    >>> check_temperature(0.5)
    0.5
    """
    return check_float("temperature", value, *TEMPERATURE)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices``, else a message listing them."""
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_seed(seed: Any) -> int:
    return check_int("seed", seed, 0, MAX_SEED)


def generator(seed: Any) -> torch.Generator:
    """A fresh generator for a checked seed: same seed, same draws, whatever else runs."""
    return torch.Generator().manual_seed(check_seed(seed))


def check_models(names: Any) -> list[str]:
    """A non-empty list of at most MAX_MODELS model names (a single name is accepted too)."""
    if not names:
        raise InputError("pick at least one model")
    names = [names] if isinstance(names, str) else list(names)
    if len(names) > MAX_MODELS:
        raise InputError(f"pick at most {MAX_MODELS} models to show side by side, got {len(names)}")
    return names


def need_model(name: str | None) -> str:
    """A model name, or a message saying to pick one (empty when a data set has none)."""
    if not name:
        raise InputError("pick a model first (none is available for this data set?)")
    return name


def check_image(image: Any) -> np.ndarray:
    """A (28, 28) float image in [0, 1] (what ``preprocess.prepare`` returns).

    >>> check_image(np.zeros((28, 28))).dtype
    dtype('float32')
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.shape != (28, 28):
        raise InputError(f"expected a 28x28 image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError("the image contains NaN or infinite values")
    return np.clip(arr, 0.0, 1.0)


def binarize(image: np.ndarray, mode: str, seed: int = 0) -> np.ndarray:
    """What a Bernoulli VAE sees: the grey image made binary (or left grey)."""
    check_choice("binarize", mode, tuple(BINARIZE))
    if mode == "threshold":
        return (image > 0.5).astype(np.float32)
    if mode == "random":
        u = torch.rand((28, 28), generator=generator(seed)).numpy()
        return (u < image).astype(np.float32)
    return image.astype(np.float32)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    """(28, 28) image -> (1, 1, 28, 28) float tensor, the models' batch of one."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).view(1, 1, 28, 28)
