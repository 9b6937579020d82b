"""scripts/val_nll.py: runs trained on different bounds are compared on one estimate of
-log p(x) on the validation images, and a run that saw those images is refused."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from latentlab.checkpoint import save_checkpoint
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "val_nll.py"
spec = importlib.util.spec_from_file_location("val_nll", SCRIPT)
val_nll = importlib.util.module_from_spec(spec)
spec.loader.exec_module(val_nll)


def _vae(tmp_path: Path, name: str = "run", val_size: int = 10000, **kw) -> Path:
    torch.manual_seed(0)
    config = VAEConfig(latent_dim=3, channels=4, hidden=16, flow_layers=2, flow_hidden=8, **kw)
    model = VAE(config)
    with torch.no_grad():  # a posterior far wider than the prior: a loose ELBO, much to gain
        model.encoder[-1].bias[3:] = 3.0                                     # log sigma^2 of z
    return save_checkpoint(tmp_path / name, model, "vae", config, {"val_size": val_size})


@pytest.fixture
def x_val() -> torch.Tensor:
    return torch.bernoulli(torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("prior", ["normal", "realnvp"])
def test_more_samples_give_a_tighter_bound_whatever_the_training_bound(tmp_path, x_val, prior):
    run = _vae(tmp_path, prior=prior, iwae_k=3)
    one, many = (val_nll.val_nll(run, k, x_val=x_val) for k in (1, 64))
    assert one["images"] == many["images"] == 6 and many["k"] == 64
    assert math.isfinite(many["nats"]) and 0 < many["nats"] < one["nats"]
    assert val_nll.val_nll(run, 64, x_val=x_val) == many  # seeded: the same figure twice


def test_a_refit_that_saw_the_validation_images_is_refused(tmp_path):
    with pytest.raises(ValueError, match="val-size 0"):
        val_nll.val_nll(_vae(tmp_path, val_size=0), 4)


def test_a_vqvae_has_no_bound(tmp_path, x_val):
    config = VQVAEConfig(channels=4, num_codes=8, code_dim=4)
    run = save_checkpoint(tmp_path / "vq", VQVAE(config), "vqvae", config, {})
    with pytest.raises(ValueError, match="no IWAE bound"):
        val_nll.val_nll(run, 4, x_val=x_val)


def test_record_writes_the_figure_beside_the_runs_own(tmp_path, monkeypatch, x_val):
    run = _vae(tmp_path)
    monkeypatch.setattr(val_nll, "validation_images", lambda dataset: x_val)
    [result] = val_nll.main([str(run), "--k", "8", "--limit", "4", "--record"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_size"] == 10000
    assert metrics["val_nll_iwae"] == {k: result[k] for k in ("k", "nats", "images", "seed")}
    assert result["images"] == 4 and result["k"] == 8
