"""Set-up shared by the tests and the doctests: real data from the shared copy, one thread."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent
SHARED = REPO.parent / "shared" / "datasets"
if "LATENT_LAB_DATA" not in os.environ and SHARED.is_dir():
    os.environ["LATENT_LAB_DATA"] = str(SHARED)

torch.set_num_threads(1)  # tests are many small ops; threads only add overhead here

collect_ignore = ["app.py", "benchmarks", "scripts", "checkpoints", "assets", "docs"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(torch=torch, np=np)
