"""Checkpoint folders: ``model.safetensors`` + ``config.json`` + ``metrics.json``.

Never a pickle: weights are safetensors, the config is the model's dataclass as JSON, and
the loader rebuilds the model from it through the registry in ``models``.

>>> import tempfile
>>> from models.vae import VAE, VAEConfig
>>> folder = save_checkpoint(tempfile.mkdtemp() + "/tiny", VAE(VAEConfig(latent_dim=2)), "vae",
...                          VAEConfig(latent_dim=2), {"note": 1})
>>> model, info = load_checkpoint(folder)
>>> info.kind, info.config.latent_dim, info.metrics
('vae', 2, {'note': 1})
>>> load_checkpoint(folder.parent / "missing")
Traceback (most recent call last):
...
latentlab.errors.CheckpointError: .../missing: checkpoint folder does not exist
>>> shutil.rmtree(folder.parent)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from latentlab.errors import CheckpointError

__all__ = ["CheckpointError", "CheckpointInfo", "config_from_dict", "load_checkpoint",
           "read_info", "save_checkpoint", "update_metrics"]

FORMAT_VERSION = 1
WEIGHTS, CONFIG, METRICS = "model.safetensors", "config.json", "metrics.json"


@dataclass
class CheckpointInfo:
    """What a checkpoint folder says about its model besides the weights.

    >>> CheckpointInfo(Path("checkpoints/mnist-vqvae"), "vqvae", None).name
    'mnist-vqvae'
    """

    path: Path
    kind: str
    config: Any
    metrics: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


# ----------------------------------------------------------------------------- helpers

def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc


def _config_from_dict(kind: str, raw: dict, path: Path):
    from models import MODEL_KINDS

    if kind not in MODEL_KINDS:
        raise CheckpointError(f"{path}: unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    config_cls, _ = MODEL_KINDS[kind]
    try:
        return config_from_dict(config_cls, raw)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: config does not fit {config_cls.__name__}: {exc}") from exc


def config_from_dict(config_cls, raw: dict):
    """Rebuild a config dataclass (all configs are flat); unknown keys are an error."""
    unknown = set(raw) - {f.name for f in dataclasses.fields(config_cls)}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    return config_cls(**raw)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- public API

def read_info(folder: str | os.PathLike) -> CheckpointInfo:
    """Read ``config.json`` and ``metrics.json`` (no weights)."""
    path = Path(folder)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint folder does not exist")
    meta = _read_json(path / CONFIG)
    if not isinstance(meta, dict) or "kind" not in meta or "config" not in meta:
        raise CheckpointError(f"{path / CONFIG}: needs the keys 'kind' and 'config'")
    config = _config_from_dict(meta["kind"], meta["config"], path / CONFIG)
    metrics = _read_json(path / METRICS) if (path / METRICS).exists() else {}
    return CheckpointInfo(path=path, kind=meta["kind"], config=config, metrics=metrics)


def load_checkpoint(folder: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model from ``config.json`` and load its weights; returns (model, info)."""
    from models import MODEL_KINDS

    info = read_info(folder)
    weights = info.path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: file is missing")
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable or truncated safetensors file ({exc})") from exc
    model = MODEL_KINDS[info.kind][1](info.config)
    expected = model.state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not match {type(model).__name__}({info.config}); "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    wrong = [k for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{weights}: tensor shapes do not match config.json: {k} is "
                              f"{tuple(state[k].shape)}, the config needs {tuple(expected[k].shape)}")
    model.load_state_dict(state)
    return model.to(device).eval(), info


def save_checkpoint(folder: str | os.PathLike, model: torch.nn.Module, kind: str,
                    config: Any, metrics: dict | None = None) -> Path:
    """Write the three files into a temporary folder, then swap it in with a rename."""
    path = Path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".tmp-"))
    tmp.chmod(0o755)
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        meta = {"format_version": FORMAT_VERSION, "kind": kind, "config": dataclasses.asdict(config)}
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / METRICS).write_text(json.dumps(metrics or {}, indent=2) + "\n")
        old = path.with_name(path.name + ".tmp-old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def update_metrics(folder: str | os.PathLike, new: dict) -> dict:
    """Merge ``new`` into ``metrics.json`` atomically and return the result."""
    path = Path(folder) / METRICS
    metrics = _read_json(path) if path.exists() else {}
    metrics.update(new)
    _atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")
    return metrics
