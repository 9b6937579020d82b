"""The app's model layer, called as plain functions on tiny checkpoints (and shipped ones)."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from app_fixtures import digit

from latentlab import code_grid as cg
from latentlab import latent_view as lv
from latentlab import render
from latentlab import service as svc
from latentlab.checkpoint import save_checkpoint
from models.vae import VAE, VAEConfig

REPO = Path(__file__).resolve().parents[1]
VAES = ["mnist-vae-z2", "mnist-flow-z2", "mnist-vae-z4", "mnist-flow-z4"]


# ----------------------------------------------------------------------------- registry

def test_registry_lists_loads_once_and_reports_broken(reg):
    names = [e.name for e in reg.entries()]
    assert set(VAES + ["mnist-vqvae", "mnist-classifier"]) <= set(names)
    assert "mnist-broken" not in names
    assert any("mnist-broken" in w and "JSON" in w for w in reg.warnings)
    assert reg.get("mnist-vae-z2") is reg.get("mnist-vae-z2")
    assert reg.twin("mnist-vae-z2") == "mnist-flow-z2" and reg.twin("mnist-flow-z4") == "mnist-vae-z4"
    assert reg.datasets() == ["mnist"]
    with pytest.raises(svc.ServiceError, match="no checkpoint named"):
        reg.get("nope")
    with pytest.raises(svc.ServiceError, match="cannot be used"):
        reg.get("mnist-broken")
    with pytest.raises(svc.ServiceError, match="needs a vqvae"):
        reg.get("mnist-vae-z2", ("vqvae",))


def test_refresh_picks_up_new_and_changed_checkpoints(tmp_path):
    cfg = VAEConfig(latent_dim=2, channels=4, hidden=16)
    save_checkpoint(tmp_path / "a", VAE(cfg), "vae", cfg)
    reg = svc.ModelRegistry(tmp_path, assets=None)
    first = reg.get("a")
    assert reg.refresh() == []
    save_checkpoint(tmp_path / "b", VAE(cfg), "vae", cfg)            # new
    save_checkpoint(tmp_path / "a", VAE(cfg), "vae", cfg)            # retrained in place
    assert sorted(reg.refresh()) == ["a", "b"]
    assert reg.get("a") is not first
    (tmp_path / "b" / "model.safetensors").write_bytes(b"garbage")    # truncated on disk
    reg.refresh()
    with pytest.raises(svc.ServiceError, match="cannot be used"):
        reg.get("b")
    assert any(w.startswith("b:") for w in reg.warnings)
    shutil.rmtree(tmp_path / "a")
    reg.refresh()
    assert [e.name for e in reg.entries()] == []


# ----------------------------------------------------------------------------- reconstruct

@pytest.mark.parametrize("mode", ["threshold", "random", "none"])
def test_reconstruct_numbers_are_consistent(reg, x3, mode):
    res = svc.reconstruct(reg, VAES + ["mnist-vqvae"], x3, k=50, seed=1, binarize_mode=mode)
    assert [m.name for m in res.models] == VAES + ["mnist-vqvae"]
    assert set(np.unique(res.binary)) <= ({0.0, 1.0} if mode != "none" else set(np.unique(x3)))
    for m in res.models:
        assert m.image.shape == (28, 28) and 0 <= m.image.min() and m.image.max() <= 1
        if m.kind == "vae":
            n = m.numbers
            assert n["iwae"] >= n["elbo"] - 1e-9                      # L_k >= ELBO (same draws)
            assert math.isclose(n["elbo"], -(n["rec_nll"] + n["kl"]), rel_tol=1e-5)
            assert n["rec_nll"] > 0 and math.isclose(n["gap"], n["iwae"] - n["elbo"])
            assert m.mu.shape == m.std.shape == (int(m.name[-1]),) and (m.std > 0).all()
        else:
            assert m.codes.shape == (7, 7) and 0 <= m.codes.min() and m.codes.max() < m.num_codes
            assert math.isclose(m.numbers["bits_uniform"], 49 * math.log2(m.num_codes))
            assert m.numbers["bits_learned"] > 0 and m.numbers["mse"] >= 0


def test_reconstruct_seed_k_and_errors(reg, x3):
    a = svc.reconstruct(reg, ["mnist-flow-z2"], x3, k=20, seed=5).models[0].numbers
    b = svc.reconstruct(reg, ["mnist-flow-z2"], x3, k=20, seed=5).models[0].numbers
    assert a == b
    one = svc.reconstruct(reg, ["mnist-vae-z2"], x3, k=1).models[0].numbers
    assert math.isclose(one["iwae"], one["elbo"], abs_tol=1e-6)
    res = svc.reconstruct(reg, ["mnist-vae-z2", "nope", "mnist-classifier"], x3)
    assert len(res.models) == 1 and len(res.warnings) == 2
    for kwargs, msg in [({"k": 0}, "between"), ({"k": 2.5}, "whole number"),
                        ({"seed": -1}, "between"), ({"binarize_mode": "x"}, "binarize")]:
        with pytest.raises(svc.ServiceError, match=msg):
            svc.reconstruct(reg, ["mnist-vae-z2"], x3, **kwargs)
    with pytest.raises(svc.ServiceError, match="at least one"):
        svc.reconstruct(reg, [], x3)
    with pytest.raises(svc.ServiceError, match="28x28"):
        svc.reconstruct(reg, ["mnist-vae-z2"], np.zeros((5, 5)))


def test_metrics_table_and_posterior_figures(reg, x3):
    res = svc.reconstruct(reg, ["mnist-vae-z2", "mnist-flow-z2", "mnist-vqvae"], x3, k=10)
    headers, rows = svc.metrics_table(res)
    assert headers == ["quantity", "mnist-vae-z2", "mnist-flow-z2", "mnist-vqvae", "meaning"]
    assert all(len(r) == len(headers) for r in rows) and any("L_10" in r[0] for r in rows)
    fig2d = svc.posterior_figure(reg, res)
    assert any(t["type"] == "scattergl" for t in fig2d["data"])     # q_agg dots + ellipses
    assert json.loads(render.to_json(fig2d))["layout"]["height"] > 0
    res4 = svc.reconstruct(reg, ["mnist-vae-z4", "mnist-flow-z4"], x3, k=10)
    assert [t["type"] for t in svc.posterior_figure(reg, res4)["data"]] == ["bar", "bar"]
    assert svc.posterior_figure(reg, svc.reconstruct(reg, ["mnist-vqvae"], x3)) is None


# ----------------------------------------------------------------------------- sample

@pytest.mark.parametrize("name, source", [("mnist-vae-z2", "prior"), ("mnist-flow-z4", "prior"),
                                          ("mnist-flow-z2", "q_agg"), ("mnist-vqvae", "learned"),
                                          ("mnist-vqvae", "uniform")])
def test_sample_grid(reg, name, source):
    res = svc.sample_grid(reg, name, 9, source, temperature=0.8, seed=3, labels=True)
    assert res.images.shape == (9, 28, 28) and 0 <= res.images.min() and res.images.max() <= 1
    assert len(res.labels) == 9 and ((res.confidence > 0) & (res.confidence <= 1)).all()
    again = svc.sample_grid(reg, name, 9, source, temperature=0.8, seed=3)
    other = svc.sample_grid(reg, name, 9, source, temperature=0.8, seed=4)
    assert np.array_equal(res.images, again.images) and again.labels is None
    if source != "uniform" or name != "mnist-vqvae":
        assert not np.array_equal(res.images, other.images)
    grid = svc.sample_image(res)
    assert grid.ndim == 3 and grid.shape[2] == 3 and grid.dtype == np.uint8


def test_sample_rejects_impossible_combinations(reg):
    for name, source in [("mnist-vae-z2", "uniform"), ("mnist-vqvae", "q_agg")]:
        with pytest.raises(svc.ServiceError, match="sample from"):
            svc.sample_grid(reg, name, 4, source)
    with pytest.raises(svc.ServiceError, match="temperature"):
        svc.sample_grid(reg, "mnist-vae-z2", 4, "prior", temperature=0)
    with pytest.raises(svc.ServiceError, match="number of samples"):
        svc.sample_grid(reg, "mnist-vae-z2", 1000)


# ----------------------------------------------------------------------------- interpolate

def test_path_points():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 1.0])
    t = torch.linspace(0, 1, 5)
    lin = svc.path_points(a, b, t, "linear")
    sph = svc.path_points(a, b, t, "spherical")
    for p in (lin, sph):
        assert torch.allclose(p[0], a) and torch.allclose(p[-1], b, atol=1e-6)
    assert torch.allclose(sph.norm(dim=1), (1 - t) * 3 + t * 1, atol=1e-5)  # norms blend linearly
    assert lin[2].norm() < sph[2].norm()


@pytest.mark.parametrize("name, space", [("mnist-vae-z2", "z"), ("mnist-flow-z4", "z"),
                                         ("mnist-flow-z2", "base"), ("mnist-vqvae", "z_e")])
@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolate(reg, x3, x7, name, space, method):
    res = svc.interpolate(reg, name, x3, x7, steps=7, method=method, space=space)
    assert res.images.shape == (7, 28, 28) and res.t.shape == res.log_prior.shape == (7,)
    assert np.isfinite(res.log_prior).all()
    if space == "z_e":
        assert res.codes.shape == (7, 7, 7) and res.changed[0] == 0
        assert res.changed.sum() >= (res.codes[0] != res.codes[-1]).sum()
        assert np.array_equal(res.codes[0], cg.code_grid_from_image(reg, name, x3))
    else:
        rec = svc.reconstruct(reg, [name], x3).models[0].image
        assert np.allclose(res.images[0], rec, atol=1e-5)          # the path starts at mu_A
    strip = svc.interpolation_strip(res)
    assert strip.shape[1] > strip.shape[0] and strip.dtype == np.uint8


def test_interpolate_rejects_impossible_combinations(reg, x3, x7):
    for name, space, msg in [("mnist-vae-z2", "base", "flow-prior"), ("mnist-vqvae", "z", "z_e"),
                             ("mnist-vae-z2", "z_e", "VQ-VAE")]:
        with pytest.raises(svc.ServiceError, match=msg):
            svc.interpolate(reg, name, x3, x7, space=space)
    with pytest.raises(svc.ServiceError, match="steps"):
        svc.interpolate(reg, "mnist-vae-z2", x3, x7, steps=40)


def test_gif(reg, x3, x7, tmp_path):
    from PIL import Image

    res = svc.interpolate(reg, "mnist-vae-z2", x3, x7, steps=5)
    path = svc.interpolation_gif(res, tmp_path / "a.gif")
    with Image.open(path) as gif:  # identical frames get merged, their durations add up
        assert gif.format == "GIF" and gif.size == (168, 168)
        total = 0
        for i in range(gif.n_frames):
            gif.seek(i)
            total += gif.info["duration"]
    assert total == 8 * 120                                                # there and back


# ----------------------------------------------------------------------------- listing

def test_describe(reg):
    rows = {d["name"]: d for d in svc.describe(reg)}
    assert rows["mnist-vae-z2"]["latent_dim"] == 2 and rows["mnist-vqvae"]["num_codes"] == 16


# ----------------------------------------------------------------------------- shipped models

SHIPPED = svc.ModelRegistry(REPO / "checkpoints")
SHIPPED_GEN = [e.name for e in SHIPPED.entries(kinds=("vae", "vqvae"))]


@pytest.mark.parametrize("name", SHIPPED_GEN)
def test_shipped_checkpoint(name, x3, x7):
    """Every shipped generative checkpoint works end to end through the service."""
    e = SHIPPED.entry(name)
    x = digit(3) if e.dataset == "mnist" else _fashion_example()
    res = svc.reconstruct(SHIPPED, [name], x, k=100)
    m = res.models[0]
    if e.kind == "vae":
        assert m.numbers["iwae"] >= m.numbers["elbo"]
        assert -m.numbers["elbo"] < 784 * math.log(2)      # better than coin flips per pixel
        assert svc.sample_grid(SHIPPED, name, 16, "q_agg").images.shape == (16, 28, 28)
        img, geo = lv.plane_image(SHIPPED, name)
        assert img.size[0] == geo.view.canvas
        ld = svc.latent_data(SHIPPED, name)
        assert ld.source.startswith("assets/"), "ship assets: python scripts/make_assets.py"
        assert np.isfinite(ld.mu).all() and len(ld.mu) == len(ld.labels)
        assert lv.vae_stats(SHIPPED, name).kl_per_dim is not None
    else:
        assert m.numbers["bits_learned"] < m.numbers["bits_uniform"]   # the prior learned something
        grid = cg.sample_code_grid(SHIPPED, name, "learned", 1.0, 0)
        assert cg.decode_code_grid(SHIPPED, name, grid).image.shape == (28, 28)
        assert svc.code_data(SHIPPED, name).source.startswith("assets/")


def _fashion_example() -> np.ndarray:
    from latentlab.data import load_split

    return load_split("fashion", train=False)[0][0, 0].numpy()


def test_registry_lists_checkpoints_trained_in_the_app(tmp_path):
    from latentlab.checkpoint import save_checkpoint
    from models.vae import VAE, VAEConfig

    shipped, user = tmp_path / "checkpoints", tmp_path / "user"
    cfg = VAEConfig(latent_dim=2, channels=4, hidden=8)
    save_checkpoint(shipped / "mnist-a", VAE(cfg), "vae", cfg)
    registry = svc.ModelRegistry(shipped, assets=None, extra_roots=[user])
    assert [e.name for e in registry.entries("mnist")] == ["mnist-a"]
    save_checkpoint(user / "my-run", VAE(cfg), "vae", cfg)       # what the Train tab writes
    assert registry.refresh() == ["my-run"]
    assert [e.name for e in registry.entries("mnist")] == ["mnist-a", "my-run"]
