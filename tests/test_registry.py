"""The registry: listing, loading once, broken folders, refresh, and the per-model caches."""

import shutil

import numpy as np
import pytest

from latentlab import registry as rg
from latentlab import testset as ts
from latentlab.checkpoint import save_checkpoint
from latentlab.errors import CheckpointError, DataMissingError, InputError, UserError
from models.vae import VAE, VAEConfig

VAES = ["mnist-vae-z2", "mnist-flow-z2", "mnist-vae-z4", "mnist-flow-z4"]


def test_registry_lists_loads_once_and_reports_broken(reg):
    names = [e.name for e in reg.entries()]
    assert set(VAES + ["mnist-vqvae", "mnist-classifier"]) <= set(names)
    assert "mnist-broken" not in names
    assert any("mnist-broken" in w and "JSON" in w for w in reg.warnings)
    assert reg.get("mnist-vae-z2") is reg.get("mnist-vae-z2")
    assert reg.twin("mnist-vae-z2") == "mnist-flow-z2" and reg.twin("mnist-flow-z4") == "mnist-vae-z4"
    assert reg.datasets() == ["mnist"]
    with pytest.raises(InputError, match="no checkpoint named"):
        reg.get("nope")
    with pytest.raises(CheckpointError, match="cannot be used"):
        reg.get("mnist-broken")
    with pytest.raises(InputError, match="needs one of: vqvae"):
        reg.get("mnist-vae-z2", ("vqvae",))
    assert reg.entry("mnist-vqvae").num_codes == 16 and reg.entry("mnist-vae-z2").num_codes is None


def test_refresh_picks_up_new_and_changed_checkpoints(tmp_path):
    cfg = VAEConfig(latent_dim=2, channels=4, hidden=16)
    save_checkpoint(tmp_path / "a", VAE(cfg), "vae", cfg)
    reg = rg.ModelRegistry(tmp_path, assets=None)
    first = reg.get("a")
    assert reg.refresh() == []
    save_checkpoint(tmp_path / "b", VAE(cfg), "vae", cfg)            # new
    save_checkpoint(tmp_path / "a", VAE(cfg), "vae", cfg)            # retrained in place
    assert sorted(reg.refresh()) == ["a", "b"]
    assert reg.get("a") is not first
    (tmp_path / "b" / "model.safetensors").write_bytes(b"garbage")    # truncated on disk
    reg.refresh()
    with pytest.raises(UserError, match="cannot be used"):
        reg.get("b")
    assert any(w.startswith("b:") for w in reg.warnings)
    shutil.rmtree(tmp_path / "a")
    reg.refresh()
    assert [e.name for e in reg.entries()] == []


def test_registry_lists_checkpoints_trained_in_the_app(tmp_path):
    shipped, user = tmp_path / "checkpoints", tmp_path / "user"
    cfg = VAEConfig(latent_dim=2, channels=4, hidden=8)
    save_checkpoint(shipped / "mnist-a", VAE(cfg), "vae", cfg)
    registry = rg.ModelRegistry(shipped, assets=None, extra_roots=[user])
    assert [e.name for e in registry.entries("mnist")] == ["mnist-a"]
    save_checkpoint(user / "my-run", VAE(cfg), "vae", cfg)       # what the Train tab writes
    assert registry.refresh() == ["my-run"]
    assert [e.name for e in registry.entries("mnist")] == ["mnist-a", "my-run"]


def test_memo_and_recent_caches(reg):
    lm = reg.get("mnist-vae-z2")
    calls = []
    assert lm.memo("k", lambda: calls.append(1) or 5) == 5 and lm.memo("k", lambda: 6) == 5
    for i in range(12):
        lm.recent("group", i, lambda i=i: i, size=4)
    assert list(lm.cache["group"]) == [8, 9, 10, 11] and calls == [1]
    lm.forget(lambda key: key == "k")
    assert "k" not in lm.cache


def test_latent_and_code_data_live(reg):
    ld = ts.latent_data(reg, "mnist-vae-z4")
    assert ld.mu.shape == ld.logvar.shape == (ts.LIVE_SUBSET, 4) and len(ld.labels) == ts.LIVE_SUBSET
    assert ld.source.startswith("computed live") and ts.latent_data(reg, "mnist-vae-z4") is ld
    cd = ts.code_data(reg, "mnist-vqvae")
    assert cd.counts.sum() == 49 * ts.LIVE_SUBSET and cd.z_e.shape[1] == 4
    assert len(cd.z_e_code) == len(cd.z_e) and cd.z_e_code.max() < 16
    with pytest.raises(InputError, match="needs one of: vae"):
        ts.latent_data(reg, "mnist-vqvae")


def test_encode_codes_snaps_with_the_quantizer(reg):
    import torch

    model = reg.get("mnist-vqvae").model
    x = torch.rand(4, 1, 28, 28)
    counts, z_e, codes = ts.encode_codes(model, x, keep=50)
    assert counts.sum() == 4 * 49 and z_e.shape == (50, 4)
    d2 = ((z_e[:, None, :] - model.codebook.numpy()[None]) ** 2).sum(-1)      # (50, K)
    assert np.array_equal(codes, d2.argmin(1))


def test_missing_test_set_is_a_data_missing_error(monkeypatch):
    from latentlab import data

    def absent(*args, **kwargs):
        raise RuntimeError("Dataset not found")

    monkeypatch.setattr(data, "load_split", absent)
    with pytest.raises(DataMissingError, match="not available"):
        ts.load_test_images("mnist", 10, binary=False)


def _nan_vae(folder):
    """A tiny VAE checkpoint whose weights hold NaN (written past save_checkpoint's check)."""
    from safetensors.torch import save_file

    cfg = VAEConfig(latent_dim=2, channels=4, hidden=16)
    path = save_checkpoint(folder, VAE(cfg), "vae", cfg)
    state = {k: v.clone() for k, v in VAE(cfg).state_dict().items()}
    next(v for v in state.values() if v.is_floating_point()).fill_(float("nan"))
    save_file(state, str(path / "model.safetensors"))
    return path


def test_a_trained_model_with_nan_weights_is_not_listed_and_warned_about_once(tmp_path, caplog):
    from latentlab.views import latent

    shipped, user = tmp_path / "shipped", tmp_path / "user"
    cfg = VAEConfig(latent_dim=2, channels=4, hidden=16)
    save_checkpoint(shipped / "good", VAE(cfg), "vae", cfg)
    _nan_vae(user / "diverged")
    with caplog.at_level("WARNING", logger="latentlab.registry"):
        reg = rg.ModelRegistry(shipped, assets=None, extra_roots=[user])
        reg.refresh()  # unchanged: not read, not warned about again
    assert [e.name for e in reg.entries()] == ["good"]
    (warning,) = [w for w in reg.warnings if w.startswith("diverged:")]
    assert "weights are not finite" in warning and "\n" not in warning
    assert len([r for r in caplog.records if "diverged" in r.getMessage()]) == 1
    with pytest.raises(CheckpointError, match="cannot be used"):  # an API call by name
        latent.run(reg, "diverged")  # a clear message, never "coroutine raised StopIteration"


def test_a_shipped_checkpoint_with_nan_weights_is_refused_when_loaded(tmp_path):
    _nan_vae(tmp_path / "nan")
    reg = rg.ModelRegistry(tmp_path, assets=None)  # shipped: only the header is read at listing
    with pytest.raises(CheckpointError, match="weights are not finite"):
        reg.get("nan")
    assert any(w.startswith("nan:") and "not finite" in w for w in reg.warnings)


def test_refresh_reads_only_new_or_changed_folders(tmp_path, monkeypatch):
    cfg = VAEConfig(latent_dim=2, channels=4, hidden=16)
    save_checkpoint(tmp_path / "a", VAE(cfg), "vae", cfg)
    reg = rg.ModelRegistry(tmp_path, assets=None)
    reads = []
    read = rg.ModelRegistry._read_entry
    monkeypatch.setattr(rg.ModelRegistry, "_read_entry",
                        staticmethod(lambda path, *a: reads.append(path.name) or read(path, *a)))
    assert reg.refresh() == [] and reads == []
    save_checkpoint(tmp_path / "b", VAE(cfg), "vae", cfg)
    assert reg.refresh() == ["b"] and reads == ["b"]


def test_an_oversized_config_is_listed_as_broken_without_allocating(tmp_path):
    import json
    import time

    cfg = VAEConfig(latent_dim=2, channels=4, hidden=16)
    path = save_checkpoint(tmp_path / "huge", VAE(cfg), "vae", cfg)
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["latent_dim"] = 10**8
    (path / "config.json").write_text(json.dumps(meta))
    start = time.perf_counter()
    reg = rg.ModelRegistry(tmp_path, assets=None, extra_roots=[])
    assert reg.entries() == [] and "latent_dim must lie between" in reg.warnings[0]
    assert time.perf_counter() - start < 1.0
