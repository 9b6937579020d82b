"""The app's model layer, called as plain functions on tiny checkpoints (and shipped ones)."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from app_fixtures import digit, make_tiny_checkpoints

from latentlab import render
from latentlab import service as svc
from latentlab.checkpoint import save_checkpoint
from models.vae import VAE, VAEConfig

REPO = Path(__file__).resolve().parents[1]
VAES = ["mnist-vae-z2", "mnist-flow-z2", "mnist-vae-z4", "mnist-flow-z4"]


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
        assert np.array_equal(res.codes[0], svc.code_grid_from_image(reg, name, x3))
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


# ----------------------------------------------------------------------------- latent space

@pytest.mark.parametrize("name", VAES)
def test_latent_plane_click_and_decode(reg, name):
    img, geo = svc.plane_image(reg, name, "auto", n_prior=50, seed=0)
    assert img.size[0] == geo.view.canvas and img.size[1] > geo.view.canvas   # + legend
    assert geo.projection == ("z" if name.endswith("z2") else "pca")
    assert (geo.density is not None) == name.endswith("z2")
    view = geo.view
    span = view.xmax - view.xmin
    x, y = view.xmin + 0.6 * span, view.ymin + 0.3 * (view.ymax - view.ymin)
    u, v = svc.click_to_map(reg, name, "auto", *view.to_pixel(x, y))
    assert abs(u - x) < span / 100 and abs(v - y) < span / 100
    assert svc.click_to_map(reg, name, "auto", 1, 1) is None            # in the margin
    point = svc.decode_point(reg, name, "auto", u, v, n_prior=50)
    assert point.image.shape == (28, 28) and point.z.shape == (int(name[-1]),)
    assert point.plane.size == img.size and "log p(z)" in point.note
    if name.endswith("z2"):
        assert np.allclose(point.z, [u, v])
    with pytest.raises(svc.ServiceError, match="PCA or UMAP"):
        svc.plane_image(reg, "mnist-vae-z4", "z")


def test_plane_renders_are_bounded_per_model(reg):
    for seed in range(10):
        svc.plane_image(reg, "mnist-vae-z2", "auto", n_prior=10, seed=seed)
    assert len(reg.get("mnist-vae-z2").cache["plane-img-z"]) == 8


def test_density_grid_is_a_density():
    prior = VAE(VAEConfig(latent_dim=2)).prior
    g = svc.density_grid(prior, 6.0, 60)
    cell = (12 / 59) ** 2
    assert abs(np.exp(g).sum() * cell - 1) < 0.02                        # integrates to ~1
    levels = render.hpd_levels(g)
    assert levels[0] > levels[1] > levels[2]


def test_latent_stats_from_metrics_json_and_live(reg):
    evaluated = svc.vae_stats(reg, "mnist-vae-z4")                      # evaluate wrote it
    assert evaluated.source.startswith("metrics.json")
    assert evaluated.kl_per_dim.shape == (4,) and "active units" in [r[0] for r in evaluated.rows]
    live = svc.vae_stats(reg, "mnist-flow-z4")
    assert live.source.startswith("estimated live") and live.kl_per_dim.shape == (4,)
    rows = {r[0]: r[1] for r in live.rows}
    total = float(rows["average KL(q(z|x) ‖ p(z))"])
    parts = float(rows["mutual information I_q[x, z]"]) + float(rows["marginal KL(q_agg ‖ p(z))"])
    assert abs(total - parts) < 0.02                                     # ELBO surgery adds up
    fig, none = svc.latent_figures(reg, "mnist-flow-z4", live)
    assert fig["data"][0]["type"] == "bar" and none is None
    assert len(fig["data"][0]["y"]) == 4


def test_vq_latent_stats_and_figures(reg):
    st = svc.vq_stats(reg, "mnist-vqvae")
    rows = {r[0]: r[1] for r in st.rows}
    used = int(rows["codes used"].split()[0])
    assert used + int(rows["dead codes"]) == 16
    usage, scatter = svc.latent_figures(reg, "mnist-vqvae", st)
    assert usage["data"][0]["type"] == "bar" and len(usage["data"][0]["x"]) == 16
    assert {t["name"] for t in scatter["data"]} >= {"z_e (encoder)", "codebook e_k"}
    render.to_json(scatter)                                             # serialisable as is


def test_umap_with_a_stand_in_reducer(reg):
    class Fake:  # fit_transform / transform like umap.UMAP, in microseconds
        def fit_transform(self, x):
            return x[:, :2] * 2

        def transform(self, x):
            return x[:, :2] * 2

    with pytest.raises(svc.ServiceError, match="UMAP"):
        svc.plane_geometry(reg, "mnist-vae-z4", "umap")
    seen = []
    msg = svc.compute_umap(reg, "mnist-vae-z4", n_points=300, n_prior=20, reducer=Fake(),
                           progress=lambda f, m: seen.append(f))
    assert "300" in msg and seen[-1] == 1.0
    img, geo = svc.plane_image(reg, "mnist-vae-z4", "umap", n_prior=20)
    assert geo.projection == "umap" and len(geo.coords) == 300 and img.size[0] == geo.view.canvas
    point = svc.decode_point(reg, "mnist-vae-z4", "umap", *geo.coords[5])
    assert "nearest" in point.note
    with pytest.raises(svc.ServiceError, match="2-D"):
        svc.compute_umap(reg, "mnist-vae-z2", reducer=Fake())


# ----------------------------------------------------------------------------- code grid

def test_parse_code_grid_accepts_tables_and_explains_errors():
    ok = [[str(c) for c in range(7)] for _ in range(7)]
    assert svc.parse_code_grid(ok, 16).shape == (7, 7)
    assert svc.parse_code_grid({"headers": [], "data": np.ones((7, 7)).tolist()}, 16).sum() == 49
    assert svc.parse_code_grid("\n".join(["1 2 3 4 5 6 7"] * 7), 16)[0, 6] == 7
    cases = [(None, "no code grid"), ([[1] * 7] * 6, "7 rows"), ([[1] * 6] * 7, "7 columns"),
             ([[1] * 7] * 6 + [[1, 2, "x", 4, 5, 6, 7]], "row 6, col 2.*not a whole"),
             ([[1.5] * 7] * 7, "not a whole"), ([[16] * 7] * 7, r"outside \[0, 16\)"),
             ([[-1] * 7] * 7, "outside"), ("nonsense", "7 rows"), (5, "table"),
             ([[None] * 7] * 7, "not a whole")]
    for value, msg in cases:
        with pytest.raises(svc.ServiceError, match=msg):
            svc.parse_code_grid(value, 16)


def test_parse_cells_and_toggle():
    assert svc.parse_cells("").sum() == 0 and svc.parse_cells("all").all()
    mask = svc.parse_cells("0-1,*; 3,4")
    assert mask.sum() == 15 and mask[3, 4] and not mask[3, 3]
    assert svc.toggle_cell("3,4", 3, 4) == "" and svc.toggle_cell("", 2, 5) == "2,5"
    for bad in ("3", "9,1", "a,b", "1,2,3"):
        with pytest.raises(svc.ServiceError):
            svc.parse_cells(bad)


def test_code_grid_edit_paint_regenerate_sample(reg, x3):
    grid = svc.code_grid_from_image(reg, "mnist-vqvae", x3)
    res = svc.decode_code_grid(reg, "mnist-vqvae", grid.tolist())
    assert res.image.shape == (28, 28) and np.array_equal(res.grid, grid)
    assert math.isclose(res.bits_uniform, 49 * 4) and res.bits_learned > 0
    recon = svc.reconstruct(reg, ["mnist-vqvae"], x3).models[0].image
    assert np.allclose(res.image, recon, atol=1e-6)
    painted = svc.paint_cells(reg, "mnist-vqvae", grid, "0,*", 9)
    assert (painted[0] == 9).all() and np.array_equal(painted[1:], grid[1:])
    regen = svc.regenerate_cells(reg, "mnist-vqvae", painted, "2-3,2-3", temperature=1.0, seed=0)
    keep = ~svc.parse_cells("2-3,2-3")
    assert np.array_equal(regen[keep], painted[keep]) and regen.max() < 16
    for prior in ("learned", "uniform"):
        new = svc.sample_code_grid(reg, "mnist-vqvae", prior, 1.0, 7)
        assert new.shape == (7, 7) and 0 <= new.min() and new.max() < 16
        assert np.array_equal(new, svc.sample_code_grid(reg, "mnist-vqvae", prior, 1.0, 7))
    with pytest.raises(svc.ServiceError, match="no cells selected"):
        svc.paint_cells(reg, "mnist-vqvae", grid, "", 1)
    with pytest.raises(svc.ServiceError, match="code must lie"):
        svc.paint_cells(reg, "mnist-vqvae", grid, "1,1", 99)
    with pytest.raises(svc.ServiceError, match="needs a vqvae"):
        svc.decode_code_grid(reg, "mnist-vae-z2", grid)


def test_codebook_atlas(reg):
    img, counts = svc.codebook_atlas(reg, "mnist-vqvae")
    assert img.ndim == 3 and counts.shape == (16,) and counts.sum() == 49 * svc.LIVE_SUBSET
    assert render.atlas_cell(3, 3, 16) == 0 and render.atlas_cell(img.shape[1] - 5, 3, 16) == 15


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
        img, geo = svc.plane_image(SHIPPED, name)
        assert img.size[0] == geo.view.canvas
        ld = svc.latent_data(SHIPPED, name)
        assert ld.source.startswith("assets/"), "ship assets: python scripts/make_assets.py"
        assert np.isfinite(ld.mu).all() and len(ld.mu) == len(ld.labels)
        assert svc.vae_stats(SHIPPED, name).kl_per_dim is not None
    else:
        assert m.numbers["bits_learned"] < m.numbers["bits_uniform"]   # the prior learned something
        grid = svc.sample_code_grid(SHIPPED, name, "learned", 1.0, 0)
        assert svc.decode_code_grid(SHIPPED, name, grid).image.shape == (28, 28)
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
