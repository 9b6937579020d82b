"""Shared test set-up: real data from the shared copy, one thread, fixed seeds."""

from pathlib import Path

import numpy as np
import pytest
from app_fixtures import digit, make_tiny_checkpoints

# ----------------------------------------------------------------------------- app model layer
# Tiny checkpoints and two test digits for the view, registry and app tests
# (module scope: each test module gets its own registry and caches).

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt")
    make_tiny_checkpoints(path)
    return path


@pytest.fixture(scope="module")
def reg(folder):
    from latentlab.registry import ModelRegistry  # imported here: a broken module fails its tests only

    return ModelRegistry(folder, assets=None)


@pytest.fixture(scope="module")
def x3() -> np.ndarray:
    return digit(3)


@pytest.fixture(scope="module")
def x7() -> np.ndarray:
    return digit(7)
