"""Latent space tab: the 2-D map, clicks decoded, density grid, statistics, UMAP, the sides."""

from pathlib import Path

import numpy as np
import pytest

from latentlab import plots, render
from latentlab.errors import InputError
from latentlab.registry import ModelRegistry
from latentlab.views import latent as lt
from latentlab.views import latent_map as lm
from latentlab.views import latent_stats as ls
from models.vae import VAE, VAEConfig

REPO = Path(__file__).resolve().parents[2]
VAES = ["mnist-vae-z2", "mnist-flow-z2", "mnist-vae-z4", "mnist-flow-z4"]


@pytest.mark.parametrize("name", VAES)
def test_latent_plane_click_and_decode(reg, name):
    img, geo = lm.plane_image(reg, name, "auto", n_prior=50, seed=0)
    assert img.size[0] == geo.view.canvas and img.size[1] > geo.view.canvas   # + legend
    assert geo.projection == ("z" if name.endswith("z2") else "pca")
    assert (geo.density is not None) == name.endswith("z2")
    view = geo.view
    span = view.xmax - view.xmin
    x, y = view.xmin + 0.6 * span, view.ymin + 0.3 * (view.ymax - view.ymin)
    u, v = lm.click_to_map(reg, name, "auto", *view.to_pixel(x, y))
    assert abs(u - x) < span / 100 and abs(v - y) < span / 100
    assert lm.click_to_map(reg, name, "auto", 1, 1) is None            # in the margin
    point = lm.decode_point(reg, name, "auto", u, v, n_prior=50)
    assert point.image.shape == (28, 28) and point.z.shape == (int(name[-1]),)
    assert point.plane.size == img.size and "log p(z)" in point.note
    if name.endswith("z2"):
        assert np.allclose(point.z, [u, v])
    with pytest.raises(InputError, match="PCA or UMAP"):
        lm.plane_image(reg, "mnist-vae-z4", "z")


def test_plane_renders_are_bounded_per_model(reg):
    for seed in range(10):
        lm.plane_image(reg, "mnist-vae-z2", "auto", n_prior=10, seed=seed)
    assert len(reg.get("mnist-vae-z2").cache["plane-img-z"]) == 8


def test_density_grid_is_a_density():
    prior = VAE(VAEConfig(latent_dim=2)).prior
    g = lm.density_grid(prior, 6.0, 60)
    cell = (12 / 59) ** 2
    assert abs(np.exp(g).sum() * cell - 1) < 0.02                        # integrates to ~1
    levels = render.hpd_levels(g)
    assert levels[0] > levels[1] > levels[2]


def test_latent_stats_from_metrics_json_and_live(reg):
    evaluated = ls.vae_stats(reg, "mnist-vae-z4")                      # evaluate wrote it
    assert evaluated.source.startswith("metrics.json")
    assert evaluated.kl_per_dim.shape == (4,) and "active units" in [r[0] for r in evaluated.rows]
    live = ls.vae_stats(reg, "mnist-flow-z4")
    assert live.source.startswith("estimated live") and live.kl_per_dim.shape == (4,)
    rows = {r[0]: r[1] for r in live.rows}
    total = float(rows["average KL(q(z|x) ‖ p(z))"])
    parts = float(rows["mutual information I_q[x, z]"]) + float(rows["marginal KL(q_agg ‖ p(z))"])
    assert abs(total - parts) < 0.02                                     # ELBO surgery adds up
    fig, none = ls.latent_figures(reg, "mnist-flow-z4", live)
    assert fig["data"][0]["type"] == "bar" and none is None
    assert len(fig["data"][0]["y"]) == 4


def test_vq_latent_stats_and_figures(reg):
    st = ls.vq_stats(reg, "mnist-vqvae")
    rows = {r[0]: r[1] for r in st.rows}
    used = int(rows["codes used"].split()[0])
    assert used + int(rows["dead codes"]) == 16
    usage, scatter = ls.latent_figures(reg, "mnist-vqvae", st)
    assert usage["data"][0]["type"] == "bar" and len(usage["data"][0]["x"]) == 16
    assert {t["name"] for t in scatter["data"]} >= {"z_e (encoder)", "codebook e_k"}
    plots.to_json(scatter)                                              # serialisable as is


def test_vq_latent_stats_show_the_sample_quality_of_both_priors():
    shipped = ModelRegistry(REPO / "checkpoints", assets=None)
    m = shipped.entry("mnist-vqvae").metrics
    rows = {r[0]: r[1] for r in ls.vq_stats(shipped, "mnist-vqvae").rows}
    learned = rows["learned-prior samples judged confidently"]
    assert learned == f"{100 * m['learned_prior_confident_share']:.1f} %"
    assert float(learned[:-2]) > float(rows["uniform-prior samples judged confidently"][:-2])


class FakeUmap:
    """fit_transform / transform like umap.UMAP, in microseconds."""

    def fit_transform(self, x):
        return x[:, :2] * 2

    def transform(self, x):
        return x[:, :2] * 2


def test_umap_with_a_stand_in_reducer(reg):
    with pytest.raises(InputError, match="UMAP"):
        lm.plane_geometry(reg, "mnist-vae-z4", "umap")
    seen = []
    msg = lm.compute_umap(reg, "mnist-vae-z4", n_points=300, n_prior=20, reducer=FakeUmap(),
                          progress=lambda f, m: seen.append(f))
    assert "300" in msg and seen[-1] == 1.0
    img, geo = lm.plane_image(reg, "mnist-vae-z4", "umap", n_prior=20)
    assert geo.projection == "umap" and len(geo.coords) == 300 and img.size[0] == geo.view.canvas
    point = lm.decode_point(reg, "mnist-vae-z4", "umap", *geo.coords[5])
    assert "nearest" in point.note
    with pytest.raises(InputError, match="2-D"):
        lm.compute_umap(reg, "mnist-vae-z2", reducer=FakeUmap())


# ----------------------------------------------------------------------------- the tab's sides

def test_run_draws_a_vae_a_vq_vae_or_nothing(reg):
    vae = lt.run(reg, "mnist-vae-z2", "auto", 100, 0)
    assert vae.plane is not None and vae.second_figure is None and vae.decoded is None
    assert len(vae.stats) >= 3 and vae.figure is not None and "latent plane itself" in vae.note
    vq = lt.run(reg, "mnist-vqvae", "auto", 100, 0)
    assert vq.plane is None and vq.second_figure is not None and vq.note.startswith("Numbers")
    empty = lt.run(reg, lt.NONE)
    assert empty.plane is None and empty.figure is None and list(empty.stats.columns) == \
        lt.STATS_COLUMNS and len(empty.stats) == 0


def test_click_and_decode(reg):
    _, geo = lm.plane_image(reg, "mnist-flow-z2", "auto", 100, 0)
    u, v = lt.click(reg, "mnist-flow-z2", "auto", *geo.view.to_pixel(0.5, -1.0))
    assert abs(u - 0.5) < 0.1 and abs(v + 1.0) < 0.1
    assert lt.click(reg, "mnist-vqvae", "auto", 100, 100) is None
    assert lt.click(reg, lt.NONE, "auto", 100, 100) is None
    out = lt.decode(reg, "mnist-flow-z2", "auto", 0.5, -1.0, 100, 0)
    assert "z = (0.50, -1.00)" in out.note and out.image.shape == (168, 168)
    assert out.plane.size[0] > 300
    with pytest.raises(InputError, match="coordinates"):
        lt.decode(reg, "mnist-vae-z2", "auto", None, 1.0)


def test_recompute_umap_only_for_vaes_above_two_dims(reg, monkeypatch):
    with pytest.raises(InputError, match="more than 2 latent dims"):
        lt.recompute_umap(reg, "mnist-vae-z2", lt.NONE)
    with pytest.raises(InputError, match="more than 2 latent dims"):
        lt.recompute_umap(reg, "mnist-vqvae", None)
    import sys
    import types

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=lambda **kw: FakeUmap()))
    msg = lt.recompute_umap(reg, "mnist-flow-z4", "mnist-vae-z2")
    assert "computed" in msg and "Choose the UMAP map" in msg


def test_recompute_umap_says_what_runs_before_each_fit(reg, monkeypatch):
    """The ~40 s fit once ran with nothing on screen: the first message comes before it."""
    fits = []

    def fake_fit(registry, name, progress=None):
        fits.append(name)
        return f"UMAP of {name} computed"

    monkeypatch.setattr(lt.lm, "compute_umap", fake_fit)
    steps = lt.recompute_umap_steps(reg, "mnist-flow-z4", "mnist-vae-z4")
    first = next(steps)
    assert fits == [] and "Fitting UMAP for **mnist-flow-z4** (1 of 2)" in first and "40 s" in first
    second = next(steps)
    assert fits == ["mnist-flow-z4"] and "(2 of 2)" in second
    last = next(steps)
    assert fits == ["mnist-flow-z4", "mnist-vae-z4"] and "Choose the UMAP map" in last
    assert list(steps) == []
