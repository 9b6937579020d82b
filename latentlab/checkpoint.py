"""Checkpoint folders: ``model.safetensors`` + ``config.json`` + ``metrics.json``.

Never a pickle: weights are safetensors, the config is the model's dataclass as JSON, and
the loader rebuilds the model from it through the registry in ``models``.

A folder is checked before any tensor is allocated: the config's sizes must lie within
``CONFIG_LIMITS`` (a ``latent_dim`` of 10^8 would ask for hundreds of GB), the model is first
built on the meta device and its state-dict shapes compared with the safetensors header
(read without the data), and only then are the weights read; non-finite weights are refused
(``save_checkpoint`` never writes them either).

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

import contextlib
import dataclasses
import json
import math
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

__all__ = ["CONFIG_LIMITS", "CheckpointError", "CheckpointInfo", "check_config", "check_weights",
           "config_from_dict", "load_checkpoint", "nonfinite_tensors", "read_info",
           "save_checkpoint", "update_metrics"]

FORMAT_VERSION = 1
WEIGHTS, CONFIG, METRICS = "model.safetensors", "config.json", "metrics.json"
# Sane maxima per config class (far above anything this app trains: the shipped models use
# at most 32 channels, 256 hidden units, 128 codes), so a hand-edited or hostile config.json
# is refused before any memory is asked for. Float fields must be finite.
CONFIG_LIMITS: dict[str, dict[str, int]] = {
    "VAEConfig": {"latent_dim": 1024, "channels": 512, "hidden": 8192, "flow_layers": 64,
                  "flow_hidden": 8192, "categories": 1024, "iwae_k": 64},
    "VQVAEConfig": {"num_codes": 65536, "code_dim": 1024, "channels": 512, "prior_dim": 4096,
                    "prior_layers": 64, "prior_heads": 64, "prior_epochs": 1000,
                    "prior_batch_size": 65536, "kmeans_iters": 1000, "restart_after": 10**9,
                    "prior_augment_shift": 4, "prior_augment_epochs": 1000},
    "VQVAE2Config": {"num_codes": 65536, "top_codes": 65536, "code_dim": 1024, "channels": 512,
                     "prior_dim": 4096, "prior_layers": 64, "prior_heads": 64,
                     "prior_epochs": 1000, "prior_batch_size": 65536, "kmeans_iters": 1000,
                     "restart_after": 10**9, "prior_augment_shift": 4,
                     "prior_augment_epochs": 1000},
    "ClassifierConfig": {"channels": 512, "features": 8192},
}
MAX_PARAMETERS = 200_000_000   # counted on the meta device: 800 MB of float32 at most


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
    return check_config(config_cls(**raw))


def check_config(config: Any) -> Any:
    """Return ``config`` if its sizes lie within ``CONFIG_LIMITS`` and its floats are finite.

    >>> from models.vae import VAEConfig
    >>> check_config(VAEConfig(latent_dim=10**8))
    Traceback (most recent call last):
    ...
    ValueError: latent_dim must lie between 0 and 1024 for VAEConfig, not 100000000
    """
    limits = CONFIG_LIMITS.get(type(config).__name__, {})
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, not {value}")
        hi = limits.get(f.name)
        if hi is not None and not 0 <= value <= hi:
            raise ValueError(f"{f.name} must lie between 0 and {hi} for "
                             f"{type(config).__name__}, not {value}")
    return config


def nonfinite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity.

    >>> nonfinite_tensors({"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")])})
    ['b']
    """
    return [k for k, v in state.items()
            if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the safetensors header (no tensor data is read)."""
    from safetensors import safe_open

    if not weights.is_file():
        raise CheckpointError(f"{weights}: file is missing")
    try:
        with safe_open(str(weights), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 (not iterable)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable or truncated safetensors file ({exc})") from exc


@contextlib.contextmanager
def _no_normal_init():
    """Skip ``nn.init.normal_`` while building on the meta device: its meta kernel lives in
    Python and importing it pulls in sympy (150 MB of server memory for values that do not
    exist anyway)."""
    original = torch.nn.init.normal_

    def normal_(tensor, *args, **kwargs):  # another thread's real model still gets its init
        return tensor if tensor.is_meta else original(tensor, *args, **kwargs)

    torch.nn.init.normal_ = normal_
    try:
        yield
    finally:
        torch.nn.init.normal_ = original


def _meta_model(info: CheckpointInfo) -> torch.nn.Module:
    """The model built on the meta device: shapes only, no memory."""
    from models import MODEL_KINDS

    with torch.device("meta"), _no_normal_init():
        model = MODEL_KINDS[info.kind][1](info.config)
    n = sum(v.numel() for v in model.state_dict().values())
    if n > MAX_PARAMETERS:
        raise CheckpointError(f"{info.path / CONFIG}: the config asks for {n:,} weights; "
                              f"at most {MAX_PARAMETERS:,} are loaded")
    return model


def _check_shapes(weights: Path, model: torch.nn.Module, info: CheckpointInfo) -> None:
    """The header's names and shapes must be the model's, or a message naming the mismatch."""
    header = _header_shapes(weights)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, unexpected = set(expected) - set(header), set(header) - set(expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not match {type(model).__name__}({info.config}); "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    wrong = [k for k in expected if header[k] != expected[k]]
    if wrong:
        k = wrong[0]
        raise CheckpointError(f"{weights}: tensor shapes do not match config.json: {k} is "
                              f"{header[k]}, the config needs {expected[k]}")


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


def check_weights(folder: str | os.PathLike) -> CheckpointInfo:
    """Everything ``load_checkpoint`` checks before reading tensor data: the config's bounds,
    the model's size (built on the meta device) and the header's names and shapes."""
    info = read_info(folder)
    _check_shapes(info.path / WEIGHTS, _meta_model(info), info)
    return info


def load_checkpoint(folder: str | os.PathLike, device: str | torch.device = "cpu"):
    """Check the folder (``check_weights``), then build the model from ``config.json`` and
    load its weights, refusing NaN or infinite ones; returns (model, info)."""
    from models import MODEL_KINDS

    info = check_weights(folder)
    weights = info.path / WEIGHTS
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable or truncated safetensors file ({exc})") from exc
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"{weights}: weights are not finite (NaN or inf in {bad[:3]}); "
                              "the training that wrote them diverged")
    model = MODEL_KINDS[info.kind][1](info.config)
    model.load_state_dict(state)
    return model.to(device).eval(), info


def save_checkpoint(folder: str | os.PathLike, model: torch.nn.Module, kind: str,
                    config: Any, metrics: dict | None = None) -> Path:
    """Write the three files into a temporary folder, then swap it in with a rename.

    Non-finite weights are refused (``CheckpointError``) and nothing is written.
    """
    path = Path(folder)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(f"{path}: refusing to save non-finite weights (NaN or inf in "
                              f"{bad[:3]})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=path.name + ".tmp-"))
    tmp.chmod(0o755)
    try:
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
