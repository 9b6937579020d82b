"""Checkpoint folders: round trip, and clear errors for missing / truncated / mismatched files."""

import json
from pathlib import Path

import pytest
import torch

from latentlab.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_info,
    save_checkpoint,
    update_metrics,
)
from latentlab.errors import UserError
from models.classifier import Classifier, ClassifierConfig
from models.vae import VAE, VAEConfig


@pytest.fixture
def saved(tmp_path):
    cfg = VAEConfig(latent_dim=2, channels=4, hidden=8, prior="realnvp", flow_layers=2, flow_hidden=8)
    model = VAE(cfg).eval()
    path = save_checkpoint(tmp_path / "ck", model, "vae", cfg, {"note": 1})
    return model, path


def test_round_trip_gives_identical_outputs(saved):
    model, path = saved
    loaded, info = load_checkpoint(path)
    assert info.kind == "vae" and info.config == model.config and info.metrics == {"note": 1}
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x)[0], model.encode(x)[0])
        z = torch.randn(4, 2)
        assert torch.equal(loaded.decode(z), model.decode(z))
        assert torch.equal(loaded.prior.log_prob(z), model.prior.log_prob(z))
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "metrics.json", "model.safetensors"]


def test_save_replaces_atomically_and_leaves_no_temp(saved):
    model, path = saved
    save_checkpoint(path, model, "vae", model.config, {"note": 2})
    assert read_info(path).metrics == {"note": 2}
    assert [p.name for p in path.parent.iterdir()] == ["ck"]
    assert update_metrics(path, {"x": 3}) == {"note": 2, "x": 3}


def test_missing_folder_and_files_are_named(tmp_path, saved):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    _, path = saved
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: file is missing"):
        load_checkpoint(path)


def test_truncated_weights(saved):
    _, path = saved
    blob = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable or truncated"):
        load_checkpoint(path)


def test_config_that_does_not_match_weights(saved):
    _, path = saved
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["latent_dim"] = 5
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shapes do not match"):
        load_checkpoint(path)


@pytest.mark.parametrize("text,match", [
    ("{not json", "not valid JSON"),
    ('{"kind": "vae"}', "needs the keys"),
    ('{"kind": "gan", "config": {}}', "unknown model kind"),
    ('{"kind": "vae", "config": {"latent_dim": 2, "colour": 1}}', "unknown fields"),
    ('{"kind": "vae", "config": {"prior": "vamp"}}', "does not fit"),
])
def test_malformed_config(saved, text, match):
    _, path = saved
    (path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_other_kind_of_model_weights(tmp_path):
    cfg = ClassifierConfig(channels=4, features=8)
    path = save_checkpoint(tmp_path / "clf", Classifier(cfg), "classifier", cfg)
    meta = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({"kind": "vae", "config": {"latent_dim": 2}}))
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_checkpoint(path)
    assert meta["kind"] == "classifier"


def test_checkpoint_error_is_the_user_error_of_errors_py():
    from latentlab import errors

    assert CheckpointError is errors.CheckpointError
    assert issubclass(CheckpointError, UserError) and not issubclass(CheckpointError, RuntimeError)


@pytest.mark.parametrize("name", ["mnist-vqvae", "fashion-vqvae", "mnist-vae-z16", "mnist-flow-z2"])
def test_shipped_checkpoints_load(name):
    model, info = load_checkpoint(Path(__file__).resolve().parents[1] / "checkpoints" / name)
    assert info.name == name and not model.training and info.metrics
