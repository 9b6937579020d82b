"""MNIST / Fashion-MNIST as whole tensors, binarized the way the VAE literature does.

The data root is ``latentlab.settings.current().data_root``: ``$LATENT_LAB_DATA`` (for
example ``../shared/datasets``, or ``--data-root`` on the command line), else
``<cache_dir>/datasets`` where torchvision downloads the files. A read-only root (the shared
copy) is mirrored into the writable cache first, because torchvision unpacks the ``.gz``
archives into ``raw/`` beside them.

``available(name)`` says whether a data set's IDX files (``.gz`` or unpacked) are in one of
those places; when they are not, ``load_split`` raises ``DataMissingError`` with one sentence
on what to do (``missing_message``) instead of torchvision's download error. Prepare a
machine before it goes offline with

    python -m latentlab.data download [--dataset mnist|fashion|all] [--root DIR]

>>> available("mnist")
True
>>> x, y = load_split("mnist", train=False)
>>> x.shape, x.dtype, y[:3].tolist()
(torch.Size([10000, 1, 28, 28]), torch.float32, [7, 2, 1])
>>> bits = binarized_test_set("mnist")
>>> set(bits.unique().tolist()), torch.equal(bits, binarized_test_set("mnist"))
({0.0, 1.0}, True)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import torch

from latentlab import settings
from latentlab.errors import DataMissingError

DATASETS = {"mnist": "MNIST", "fashion": "FashionMNIST"}
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
TEST_BINARIZATION_SEED = 1234  # every model is scored on the same bits
VAL_BINARIZATION_SEED = 4321   # every model is validated on the same bits
VAL_SIZE = 10000               # the last 10,000 training images: the documented validation split
LABELS = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")  # in <root>/<folder>/raw/, each unpacked or as .gz


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


def cache_root() -> Path:
    """Where ``download`` puts the data by default and where the app looks after
    ``$LATENT_LAB_DATA``."""
    return settings.current().cache_dir / "datasets"


def _has_files(root: Path, folder: str) -> bool:
    raw = root / folder / "raw"
    return all((raw / f).is_file() or (raw / f"{f}.gz").is_file() for f in IDX_FILES)


def find_root(name: str) -> Path | None:
    """The first of ``$LATENT_LAB_DATA`` and the cache that holds the data set, else None."""
    folder = DATASETS[check_dataset(name)]
    roots = [r for r in (settings.current().data_dir, cache_root()) if r is not None]
    return next((r for r in roots if _has_files(r, folder)), None)


def available(name: str) -> bool:
    """True when the data set's four IDX files are on this machine (nothing is downloaded)."""
    return find_root(name) is not None


def missing_message(name: str) -> str:
    """One sentence on what to do when the data set is not on this machine.

    >>> missing_message("fashion")  # doctest: +ELLIPSIS
    'Fashion-MNIST is not on this server: run `python -m latentlab.data download --dataset fashion` on a machine with internet, or set LATENT_LAB_DATA to a folder holding FashionMNIST/raw...'
    """
    key = check_dataset(name)
    return (f"{LABELS[key]} is not on this server: run `python -m latentlab.data download "
            f"--dataset {key}` on a machine with internet, or set LATENT_LAB_DATA to a folder "
            f"holding {DATASETS[key]}/raw (looked in {_looked_in()}).")


def _looked_in() -> str:
    s = settings.current()
    return " and ".join(str(r) for r in (s.data_dir, cache_root()) if r is not None)


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

def load_split(name: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float in [0, 1] of shape (N, 1, 28, 28) and labels (N,) int64; a data set
    that is not on this machine is a ``DataMissingError`` (nothing is downloaded)."""
    key = check_dataset(name)
    root = find_root(key)
    if root is None:
        raise DataMissingError(missing_message(key))
    return _load(key, train, root)


@lru_cache(maxsize=8)
def _load(key: str, train: bool, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision import (
        datasets,  # imported lazily: the app does not need it to start
    )

    folder = DATASETS[key]
    cls = getattr(datasets, folder)
    try:  # download=True only unpacks the .gz files found; it fetches nothing here
        ds = cls(root=str(_writable_root(root, folder)), train=train, download=True)
    except (RuntimeError, OSError) as exc:  # a truncated or unreadable file
        raise DataMissingError(f"{missing_message(key)[:-1]}; the files there are "
                               f"incomplete ({exc}).") from exc
    x = ds.data.unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28)
    return x, ds.targets.long()


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One Bernoulli draw per pixel with the grey value as probability (u < x, u ~ U(0, 1)).

    Written out rather than ``torch.bernoulli`` so the bits depend only on the generator's
    uniform stream, the same on every device and thread count.
    """
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (u < x).to(x.dtype)


def binarize_validation(x_val: torch.Tensor) -> torch.Tensor:
    """The validation images on the bits every model is validated on (one fixed seed)."""
    return binarize(x_val, torch.Generator().manual_seed(VAL_BINARIZATION_SEED))


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


# ----------------------------------------------------------------------------- download CLI

def download(name: str, root: Path | None = None) -> Path:
    """Fetch a data set with torchvision into ``root`` (default: the cache); returns the root."""
    from torchvision import datasets

    key = check_dataset(name)
    root = Path(root) if root is not None else cache_root()
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        getattr(datasets, DATASETS[key])(root=str(root), train=train, download=True)
    return root


def _dataset_choice(value: str) -> str:
    if value.lower() == "all":
        return "all"
    try:
        return check_dataset(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} or 'all'") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``download [--dataset mnist|fashion|all] [--root DIR]``.

    >>> args = parse_args(["download", "--dataset", "Fashion-MNIST", "--root", "/tmp/d"])
    >>> args.command, args.dataset, str(args.root)
    ('download', 'fashion', '/tmp/d')
    """
    p = argparse.ArgumentParser(prog="python -m latentlab.data",
                                description="Prepare the data sets before a machine goes offline.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="fetch MNIST and/or Fashion-MNIST with torchvision")
    d.add_argument("--dataset", type=_dataset_choice, default="all",
                   help="mnist, fashion or all (default)")
    d.add_argument("--root", type=Path, default=None,
                   help="target folder (default: the cache, ~/.cache/latent-lab/datasets)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Path]:
    args = parse_args(argv)
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    roots = []
    for name in names:
        roots.append(download(name, args.root))
        print(f"{LABELS[name]}: ready in {roots[-1] / DATASETS[name]}")
    if args.root is not None and args.root != cache_root():
        print(f"point the app at it with: export LATENT_LAB_DATA={args.root}")
    return roots


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError) as exc:  # no network: say so in one line
        sys.exit(f"download failed ({exc}); this command needs internet access")
