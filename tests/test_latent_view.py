"""Latent space tab model layer: the 2-D map, clicks decoded, density grid, statistics, UMAP."""

from pathlib import Path

import numpy as np
import pytest

from latentlab import latent_view as lv
from latentlab import render
from latentlab import service as svc
from models.vae import VAE, VAEConfig

REPO = Path(__file__).resolve().parents[1]
VAES = ["mnist-vae-z2", "mnist-flow-z2", "mnist-vae-z4", "mnist-flow-z4"]


# ----------------------------------------------------------------------------- latent space

@pytest.mark.parametrize("name", VAES)
def test_latent_plane_click_and_decode(reg, name):
    img, geo = lv.plane_image(reg, name, "auto", n_prior=50, seed=0)
    assert img.size[0] == geo.view.canvas and img.size[1] > geo.view.canvas   # + legend
    assert geo.projection == ("z" if name.endswith("z2") else "pca")
    assert (geo.density is not None) == name.endswith("z2")
    view = geo.view
    span = view.xmax - view.xmin
    x, y = view.xmin + 0.6 * span, view.ymin + 0.3 * (view.ymax - view.ymin)
    u, v = lv.click_to_map(reg, name, "auto", *view.to_pixel(x, y))
    assert abs(u - x) < span / 100 and abs(v - y) < span / 100
    assert lv.click_to_map(reg, name, "auto", 1, 1) is None            # in the margin
    point = lv.decode_point(reg, name, "auto", u, v, n_prior=50)
    assert point.image.shape == (28, 28) and point.z.shape == (int(name[-1]),)
    assert point.plane.size == img.size and "log p(z)" in point.note
    if name.endswith("z2"):
        assert np.allclose(point.z, [u, v])
    with pytest.raises(svc.ServiceError, match="PCA or UMAP"):
        lv.plane_image(reg, "mnist-vae-z4", "z")


def test_plane_renders_are_bounded_per_model(reg):
    for seed in range(10):
        lv.plane_image(reg, "mnist-vae-z2", "auto", n_prior=10, seed=seed)
    assert len(reg.get("mnist-vae-z2").cache["plane-img-z"]) == 8


def test_density_grid_is_a_density():
    prior = VAE(VAEConfig(latent_dim=2)).prior
    g = lv.density_grid(prior, 6.0, 60)
    cell = (12 / 59) ** 2
    assert abs(np.exp(g).sum() * cell - 1) < 0.02                        # integrates to ~1
    levels = render.hpd_levels(g)
    assert levels[0] > levels[1] > levels[2]


def test_latent_stats_from_metrics_json_and_live(reg):
    evaluated = lv.vae_stats(reg, "mnist-vae-z4")                      # evaluate wrote it
    assert evaluated.source.startswith("metrics.json")
    assert evaluated.kl_per_dim.shape == (4,) and "active units" in [r[0] for r in evaluated.rows]
    live = lv.vae_stats(reg, "mnist-flow-z4")
    assert live.source.startswith("estimated live") and live.kl_per_dim.shape == (4,)
    rows = {r[0]: r[1] for r in live.rows}
    total = float(rows["average KL(q(z|x) ‖ p(z))"])
    parts = float(rows["mutual information I_q[x, z]"]) + float(rows["marginal KL(q_agg ‖ p(z))"])
    assert abs(total - parts) < 0.02                                     # ELBO surgery adds up
    fig, none = lv.latent_figures(reg, "mnist-flow-z4", live)
    assert fig["data"][0]["type"] == "bar" and none is None
    assert len(fig["data"][0]["y"]) == 4


def test_vq_latent_stats_and_figures(reg):
    st = lv.vq_stats(reg, "mnist-vqvae")
    rows = {r[0]: r[1] for r in st.rows}
    used = int(rows["codes used"].split()[0])
    assert used + int(rows["dead codes"]) == 16
    usage, scatter = lv.latent_figures(reg, "mnist-vqvae", st)
    assert usage["data"][0]["type"] == "bar" and len(usage["data"][0]["x"]) == 16
    assert {t["name"] for t in scatter["data"]} >= {"z_e (encoder)", "codebook e_k"}
    render.to_json(scatter)                                             # serialisable as is


def test_vq_latent_stats_show_the_sample_quality_of_both_priors():
    reg = svc.ModelRegistry(REPO / "checkpoints", assets=None)
    m = reg.entry("mnist-vqvae").metrics
    rows = {r[0]: r[1] for r in lv.vq_stats(reg, "mnist-vqvae").rows}
    learned = rows["learned-prior samples judged confidently"]
    assert learned == f"{100 * m['learned_prior_confident_share']:.1f} %"
    assert float(learned[:-2]) > float(rows["uniform-prior samples judged confidently"][:-2])


def test_umap_with_a_stand_in_reducer(reg):
    class Fake:  # fit_transform / transform like umap.UMAP, in microseconds
        def fit_transform(self, x):
            return x[:, :2] * 2

        def transform(self, x):
            return x[:, :2] * 2

    with pytest.raises(svc.ServiceError, match="UMAP"):
        lv.plane_geometry(reg, "mnist-vae-z4", "umap")
    seen = []
    msg = lv.compute_umap(reg, "mnist-vae-z4", n_points=300, n_prior=20, reducer=Fake(),
                           progress=lambda f, m: seen.append(f))
    assert "300" in msg and seen[-1] == 1.0
    img, geo = lv.plane_image(reg, "mnist-vae-z4", "umap", n_prior=20)
    assert geo.projection == "umap" and len(geo.coords) == 300 and img.size[0] == geo.view.canvas
    point = lv.decode_point(reg, "mnist-vae-z4", "umap", *geo.coords[5])
    assert "nearest" in point.note
    with pytest.raises(svc.ServiceError, match="2-D"):
        lv.compute_umap(reg, "mnist-vae-z2", reducer=Fake())
