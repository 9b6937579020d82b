"""Every setting read from the environment, in one frozen dataclass, read in one place.

The app, the CLIs and the tests ask ``current()``; nothing else reads ``os.environ``. A CLI
flag such as ``--data-root`` changes the settings with ``configure(data_dir=...)`` rather
than by writing the environment, and tests use ``configure`` / ``reset``.

| variable | field | default |
|---|---|---|
| LATENT_LAB_DATA | data_dir | unset: ``<cache_dir>/datasets`` (torchvision may download there) |
| LATENT_LAB_CACHE | cache_dir | ``~/.cache/latent-lab`` |
| LATENT_LAB_CHECKPOINTS | checkpoints | ``<repo>/checkpoints`` |
| LATENT_LAB_USER_CKPT | user_checkpoints | ``<checkpoints>/user`` |
| LATENT_LAB_THREADS | threads | 1 (torch threads of the app) |
| LATENT_LAB_TRAINING | training | on (``off`` hides the Train tab's Start) |
| LATENT_LAB_WARM_UP | warm_up | on (``python app.py`` loads the default models at start) |
| LATENT_LAB_CPU_MAX_IMAGE_EPOCHS | cpu_max_image_epochs | 200000 |
| LATENT_LAB_ZEROGPU_SECONDS | zerogpu_seconds | 60 |
| LATENT_LAB_MAX_USER_MODELS | max_user_models | 20 (models trained in the app; the oldest is removed) |
| LATENT_LAB_MAX_USER_MB | max_user_bytes | 200 MB (their total size; the oldest is removed) |
| SPACES_ZERO_GPU | zero_gpu | false (set by Hugging Face on ZeroGPU Spaces) |
| HF_TOKEN | hf_token | unset |
| GRADIO_SERVER_NAME / GRADIO_SERVER_PORT | host / port | 127.0.0.1 / 7860 |

>>> s = Settings.from_env({"LATENT_LAB_THREADS": "2", "LATENT_LAB_TRAINING": "off"})
>>> s.threads, s.training
(2, False)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_OFF = ("0", "off", "false", "no")
_ON = ("1", "t", "true", "on", "yes")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"${name} must be a whole number, not {raw!r}") from None


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True)
class Settings:
    """The deployment's settings (see the module's table for the variables)."""

    data_dir: Path | None = None
    cache_dir: Path = Path.home() / ".cache" / "latent-lab"
    checkpoints: Path = REPO / "checkpoints"
    user_checkpoints: Path | None = None
    threads: int = 1
    training: bool = True
    warm_up: bool = True
    cpu_max_image_epochs: int = 200_000
    zerogpu_seconds: int = 60
    max_user_models: int = 20
    max_user_bytes: int = 200 * 2**20
    zero_gpu: bool = False
    hf_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            data_dir=_path(env, "LATENT_LAB_DATA"),
            cache_dir=_path(env, "LATENT_LAB_CACHE") or d.cache_dir,
            checkpoints=_path(env, "LATENT_LAB_CHECKPOINTS") or d.checkpoints,
            user_checkpoints=_path(env, "LATENT_LAB_USER_CKPT"),
            threads=max(1, _int(env, "LATENT_LAB_THREADS", d.threads)),
            training=env.get("LATENT_LAB_TRAINING", "on").strip().lower() not in _OFF,
            warm_up=env.get("LATENT_LAB_WARM_UP", "on").strip().lower() not in _OFF,
            cpu_max_image_epochs=_int(env, "LATENT_LAB_CPU_MAX_IMAGE_EPOCHS", d.cpu_max_image_epochs),
            zerogpu_seconds=_int(env, "LATENT_LAB_ZEROGPU_SECONDS", d.zerogpu_seconds),
            max_user_models=max(1, _int(env, "LATENT_LAB_MAX_USER_MODELS", d.max_user_models)),
            max_user_bytes=max(1, _int(env, "LATENT_LAB_MAX_USER_MB", 200)) * 2**20,
            zero_gpu=env.get("SPACES_ZERO_GPU", "").strip().lower() in _ON,
            hf_token=env.get("HF_TOKEN") or None,
            host=env.get("GRADIO_SERVER_NAME", d.host),
            port=_int(env, "GRADIO_SERVER_PORT", d.port),
        )

    @property
    def data_root(self) -> Path:
        """The folder holding ``MNIST/`` and ``FashionMNIST/`` (torchvision's layout)."""
        return self.data_dir or self.cache_dir / "datasets"

    @property
    def user_checkpoint_dir(self) -> Path:
        """Where models trained in the app go (shipped ones are never overwritten)."""
        return self.user_checkpoints or self.checkpoints / "user"


_current: Settings | None = None


def current() -> Settings:
    """The settings in force: read from the environment on first use, then kept."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def configure(**changes) -> Settings:
    """Replace some settings (a CLI flag, a test) and return the new ones."""
    global _current
    _current = dataclasses.replace(current(), **changes)
    return _current


def reset() -> None:
    """Forget the settings: the next ``current()`` reads the environment again."""
    global _current
    _current = None
