"""Shared test set-up: real data from the shared copy, one thread, fixed seeds."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
if "LATENT_LAB_DATA" not in os.environ and SHARED.is_dir():
    os.environ["LATENT_LAB_DATA"] = str(SHARED)

from app_fixtures import digit, make_tiny_checkpoints

from latentlab import service as svc

torch.set_num_threads(1)  # tests are many small ops; threads only add overhead here


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- app model layer
# Tiny checkpoints and two test digits for the service, latent_view and code_grid tests
# (module scope: each test module gets its own registry and caches).

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt")
    make_tiny_checkpoints(path)
    return path


@pytest.fixture(scope="module")
def reg(folder) -> svc.ModelRegistry:
    return svc.ModelRegistry(folder, assets=None)


@pytest.fixture(scope="module")
def x3() -> np.ndarray:
    return digit(3)


@pytest.fixture(scope="module")
def x7() -> np.ndarray:
    return digit(7)
