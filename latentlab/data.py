"""MNIST / Fashion-MNIST as whole tensors, binarized the way the VAE literature does.

The data root is ``latentlab.settings.current().data_root``: ``$LATENT_LAB_DATA`` (for
example ``../shared/datasets``, or ``--data-root`` on the command line), else
``<cache_dir>/datasets`` where torchvision downloads the files. A read-only root (the shared
copy) is mirrored into the writable cache first, because torchvision unpacks the ``.gz``
archives into ``raw/`` beside them.

>>> x, y = load_split("mnist", train=False)
>>> x.shape, x.dtype, y[:3].tolist()
(torch.Size([10000, 1, 28, 28]), torch.float32, [7, 2, 1])
>>> bits = binarized_test_set("mnist")
>>> set(bits.unique().tolist()), torch.equal(bits, binarized_test_set("mnist"))
({0.0, 1.0}, True)
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

import torch

from latentlab import settings

DATASETS = {"mnist": "MNIST", "fashion": "FashionMNIST"}
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
TEST_BINARIZATION_SEED = 1234  # every model is scored on the same bits
VAL_BINARIZATION_SEED = 4321   # every model is validated on the same bits
VAL_SIZE = 10000               # the last 10,000 training images: the documented validation split


# ----------------------------------------------------------------------------- helpers

def check_dataset(name: str) -> str:
    """Normalise a data-set name ('fashion-mnist' -> 'fashion'); raise on unknown names."""
    key = name.lower().replace("_", "-")
    key = {"fashion-mnist": "fashion", "fashionmnist": "fashion"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return key


def data_root() -> Path:
    """The folder that holds ``MNIST/`` and ``FashionMNIST/`` (torchvision layout)."""
    return settings.current().data_root


def _writable_root(root: Path, folder: str) -> Path:
    """Mirror ``root/folder/raw/*.gz`` into the cache when ``root`` is read-only."""
    raw = root / folder / "raw"
    if not raw.is_dir() or os.access(raw, os.W_OK):
        return root
    cache = settings.current().cache_dir / "datasets"
    dst = cache / folder / "raw"
    dst.mkdir(parents=True, exist_ok=True)
    for src in raw.glob("*.gz"):
        target = dst / src.name
        if not target.exists() or target.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, target)
    return cache


# ----------------------------------------------------------------------------- loading

@lru_cache(maxsize=8)
def load_split(name: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float in [0, 1] of shape (N, 1, 28, 28) and labels (N,) int64."""
    from torchvision import (
        datasets,  # imported lazily: the app does not need it to start
    )

    key = check_dataset(name)
    folder = DATASETS[key]
    root = _writable_root(data_root(), folder)
    cls = getattr(datasets, folder)
    ds = cls(root=str(root), train=train, download=True)
    x = ds.data.unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28)
    return x, ds.targets.long()


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per pixel with the grey value as probability (u < x, u ~ U(0, 1)).

    Written out rather than ``torch.bernoulli`` so the bits depend only on the generator's
    uniform stream, the same on every device and thread count.
    """
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (u < x).to(x.dtype)


def train_val_split(name: str, val_size: int = VAL_SIZE
                    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """((x_train, y_train), (x_val, y_val)): the last ``val_size`` training images are held out.

    Every choice (epochs, prior size, early stopping, temperatures) is made on the validation
    part; the test set is scored once at the end.
    """
    x, y = load_split(name, train=True)
    if not 0 <= val_size < len(x):
        raise ValueError(f"val_size must lie in [0, {len(x)}), not {val_size}")
    cut = len(x) - val_size
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


@lru_cache(maxsize=4)
def binarized_test_set(name: str, seed: int = TEST_BINARIZATION_SEED) -> torch.Tensor:
    """The test images binarized once with a fixed seed: (10000, 1, 28, 28) in {0, 1}.

    Every reported number uses the default seed; another ``seed`` draws other bits (to see
    how much a metric moves with the binarization).
    """
    x, _ = load_split(name, train=False)
    return binarize(x, torch.Generator().manual_seed(seed))
