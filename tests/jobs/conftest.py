"""Tiny jobs (a few seconds each on a CPU), a manager writing into a temporary folder, and
settings changed for one test only."""

from collections.abc import Callable

import pytest

from latentlab import settings
from latentlab.jobs import JobSpec, TrainingManager

TINY = {"vae": {"channels": 8, "hidden": 32},
        "flow": {"channels": 8, "hidden": 32, "flow_layers": 2, "flow_hidden": 16},
        "vqvae": {"channels": 4, "prior_dim": 16, "prior_layers": 1, "prior_heads": 2}}
TERMS = {"vae": {"rec_nll", "kl"}, "flow": {"rec_nll", "kl"}, "vqvae": {"recon", "commitment"}}


def make_tiny_spec(model: str = "vae", **kw) -> JobSpec:
    """256 images in batches of 32: 8 steps per epoch."""
    base = {"model": model, "latent_dim": 2, "subset": 256, "batch_size": 32, "epochs": 1,
            "model_options": TINY[model]}
    if model == "vqvae":
        base.update(latent_dim=4, num_codes=16, prior_epochs=1)
    return JobSpec(**{**base, **kw})


@pytest.fixture
def tiny_spec() -> Callable[..., JobSpec]:
    return make_tiny_spec


@pytest.fixture
def configure():
    """``configure(**changes)`` for this test; the settings are read afresh afterwards."""
    yield settings.configure
    settings.reset()


@pytest.fixture
def saved() -> list:
    return []


@pytest.fixture
def manager(tmp_path, saved):
    m = TrainingManager(root=tmp_path / "user", report_every_s=0.05, on_saved=saved.append,
                        shipped_dir=tmp_path / "shipped", downloads=tmp_path / "zips")
    yield m
    if m.status().running:  # never leave a thread training behind a failed assertion
        m.stop(m._job.token)
        m.wait(60)
