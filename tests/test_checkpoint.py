"""Checkpoint folders: round trip, and clear errors for missing / truncated / mismatched files."""

import json
import subprocess
import sys
import time
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


def _write_config(path: Path, **changes) -> None:
    meta = json.loads((path / "config.json").read_text())
    meta["config"].update(changes)
    (path / "config.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("field, value", [("latent_dim", 10**8), ("channels", 10**6),
                                          ("hidden", 10**9), ("flow_hidden", 10**7)])
def test_huge_config_is_refused_before_anything_is_allocated(saved, field, value):
    _, path = saved
    _write_config(path, **{field: value})
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=f"config.json.*{field} must lie between 0 and"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("field", ["beta", "prior_lr"])
def test_non_finite_config_floats_are_refused(tmp_path, field):
    from models.vqvae import VQVAE, VQVAEConfig

    cfg = VQVAEConfig(num_codes=8, code_dim=4, channels=4, prior_dim=16, prior_layers=1,
                      prior_heads=2)
    path = save_checkpoint(tmp_path / "vq", VQVAE(cfg), "vqvae", cfg)
    (path / "config.json").write_text((path / "config.json").read_text().replace(
        f'"{field}": {getattr(cfg, field)}', f'"{field}": NaN'))
    with pytest.raises(CheckpointError, match=f"{field} must be a finite number"):
        load_checkpoint(path)


def test_shapes_are_compared_with_the_header_before_the_data_is_read(saved, monkeypatch):
    from latentlab import checkpoint

    _, path = saved
    _write_config(path, hidden=9)  # same names, other shapes
    monkeypatch.setattr(checkpoint, "load_file", lambda *a, **k: pytest.fail("data was read"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor shapes do not match "
                                              r"config.json: .* is \(8,?.*\), the config needs"):
        load_checkpoint(path)


def test_non_finite_weights_are_neither_saved_nor_loaded(tmp_path, saved):
    from safetensors.torch import save_file

    model, path = saved
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="refusing to save non-finite weights"):
        save_checkpoint(tmp_path / "nan", model, "vae", model.config)
    assert not (tmp_path / "nan").exists() and not list(tmp_path.glob("nan.tmp-*"))
    # a file written by something else is refused when loaded
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="weights are not finite"):
        load_checkpoint(path)


def test_check_config_bounds_every_model_kind():
    from latentlab.checkpoint import CONFIG_LIMITS, check_config
    from models import MODEL_KINDS

    for config_cls, _ in MODEL_KINDS.values():
        assert check_config(config_cls()) == config_cls()  # the defaults are inside the limits
        assert config_cls.__name__ in CONFIG_LIMITS
    from models.vae import VAEConfig
    with pytest.raises(ValueError, match="iwae_k must lie between 0 and 64"):
        check_config(VAEConfig(iwae_k=10**6))  # a million decoder passes per image: refused


def test_the_meta_shape_check_leaves_real_initialisation_alone():
    """The meta build skips normal_ only for meta tensors (no sympy import, no server memory),
    and puts the real function back."""
    from latentlab.checkpoint import _no_normal_init
    original = torch.nn.init.normal_
    with _no_normal_init():
        real = torch.nn.init.normal_(torch.zeros(1000), std=1.0)
        assert real.std() > 0.5                                              # still random
        with torch.device("meta"):
            torch.nn.init.normal_(torch.empty(3))
    assert torch.nn.init.normal_ is original
    # in a fresh process, checking a VQ-VAE (its transformer prior is built on meta) does not
    # import the Python meta kernels and sympy
    code = ("import sys; from latentlab.checkpoint import check_weights; "
            "check_weights('checkpoints/mnist-vqvae'); print('sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    assert out.stdout.strip() == "False", out.stderr[-500:]
