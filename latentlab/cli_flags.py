"""Command-line flags made from config dataclasses: one ``--flag`` per primitive field."""

from __future__ import annotations

import argparse
import dataclasses

SKIPPED = ("dataset", "model")  # chosen by their own flags, with their own checks


def str2bool(v: str) -> bool:
    """
    >>> str2bool("Yes"), str2bool("0")
    (True, False)
    """
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {v!r}")


def flag_type(kind: type):
    """The argparse ``type`` for a field of type ``kind``: a yes/no parser for a bool
    (``bool("no")`` would be True), else ``kind`` itself.

    >>> flag_type(bool)("no"), flag_type(float)("0.1")
    (False, 0.1)
    """
    return str2bool if kind is bool else kind


def add_config_flags(p: argparse.ArgumentParser, config_cls: type, defaults: bool,
                     seen: set[str]) -> set[str]:
    """Add a flag per primitive field of ``config_cls`` not in ``seen``; returns the names added.

    Model flags default to None (``defaults=False``) so that each model's own config
    defaults apply; fields several model configs share get one flag.
    """
    added = set()
    for f in dataclasses.fields(config_cls):
        if f.name in seen or f.name in SKIPPED:
            continue
        kind = type(f.default) if f.default is not dataclasses.MISSING else str
        if kind not in (int, float, str, bool):
            continue
        seen.add(f.name)
        added.add(f.name)
        p.add_argument("--" + f.name.replace("_", "-"), type=flag_type(kind),
                       default=f.default if defaults else None)
    return added


def check_no_clash(owned: set[str], config_cls: type) -> None:
    """A model field named like a training field would be silently set by the training flag
    (as a VQ-VAE's codebook ``ema_decay`` would by a weight-averaging one): refuse it.

    >>> @dataclasses.dataclass
    ... class C:
    ...     lr: float = 1.0
    >>> check_no_clash({"lr", "epochs"}, C)
    Traceback (most recent call last):
    ...
    TypeError: C's fields ['lr'] clash with training flags of the same name
    """
    clash = sorted(owned & {f.name for f in dataclasses.fields(config_cls)})
    if clash:
        raise TypeError(f"{config_cls.__name__}'s fields {clash} clash with training flags "
                        "of the same name")


def config_from_args(config_cls: type, args: argparse.Namespace):
    """``config_cls`` built from the flags that name its fields (unset ones keep its defaults)."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return config_cls(**{k: v for k, v in vars(args).items() if k in names and v is not None})
