"""Shared test set-up: real data from the shared copy, one thread, fixed seeds."""

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
if "LATENT_LAB_DATA" not in os.environ and SHARED.is_dir():
    os.environ["LATENT_LAB_DATA"] = str(SHARED)

torch.set_num_threads(1)  # tests are many small ops; threads only add overhead here


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
