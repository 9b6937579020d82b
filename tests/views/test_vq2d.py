"""2-D vector quantizer panel: monotone k-means, dead codes from a bad start, exact Voronoi cells,
and the VQ-VAE codebook in its PCA plane."""

import numpy as np
import pytest

from latentlab.errors import InputError
from latentlab.views import vq2d as vq


@pytest.mark.parametrize("init", list(vq.INITS))
@pytest.mark.parametrize("k", [2, 5, 8, 32])
def test_kmeans_distortion_never_increases(init, k):
    out = vq.vq2d_panel(k, init, seed=1)
    assert len(out.distortions) == vq.ITERS + 1
    assert np.all(np.diff(out.distortions) <= 1e-12)


@pytest.mark.parametrize("k", [8, 16])
def test_bad_start_leaves_dead_codes_that_never_move(k):
    points = vq.mixture_points(0)
    start = vq.init_codes(points, k, "bad: one corner", 0)
    codes, _, assign = vq.kmeans(points, start)
    dead = np.bincount(assign, minlength=k) == 0
    assert dead.sum() >= 1
    np.testing.assert_array_equal(codes[dead], start[dead])
    assert vq.vq2d_panel(k, "bad: one corner", 0).dead == dead.sum()


@pytest.mark.parametrize("init", ["k-means++", "random points"])
@pytest.mark.parametrize("k", [4, 8, 16])
def test_good_starts_leave_no_dead_code(init, k):
    assert vq.vq2d_panel(k, init, seed=0).dead == 0


def test_one_iteration_moves_codes_to_their_cell_means():
    points = vq.mixture_points(3)
    start = vq.init_codes(points, 6, "random points", 3)
    codes, history, _ = vq.kmeans(points, start, iters=1)
    assign = np.argmin(((points[:, None] - start[None]) ** 2).sum(-1), 1)
    for j in range(6):
        np.testing.assert_allclose(codes[j], points[assign == j].mean(0))
    assert history[0] == pytest.approx(np.mean(((points - start[assign]) ** 2).sum(1)))


def test_voronoi_colouring_matches_brute_force_nearest_code():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(7, 2))
    xs, ys = np.linspace(-3, 3, 23), np.linspace(-2, 2.5, 17)
    labels = vq.voronoi_labels(codes, xs, ys)
    assert labels.shape == (17, 23)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            assert labels[i, j] == np.argmin(np.linalg.norm(codes - [x, y], axis=1))


def test_panel_figure_cells_are_the_final_codes_voronoi():
    out = vq.vq2d_panel(6, "k-means++", seed=2)
    cells, live = out.figure.data[0], out.figure.data[2]
    codes = np.stack([live.x, live.y], 1)
    labels = vq.voronoi_labels(codes, np.array(cells.x), np.array(cells.y))
    # the drawn coordinates are rounded to 4 decimals: a pixel on a cell boundary may flip
    assert np.mean(np.array(cells.z) != labels) < 0.002
    assert len(out.figure.to_json()) < 80_000


def test_codebook_panel_counts_usage_in_full_dimension_and_projects_with_pca():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(5, 2)))[0]                  # (5, 2) orthonormal plane
    z = rng.normal(size=(400, 2)) * [3.0, 1.0] @ basis.T + 0.5        # data in a 2-D plane of R^5
    codebook = rng.normal(size=(10, 2)) @ basis.T + 0.5
    codebook[9] += 50.0                                               # far away: unused
    out = vq.codebook_panel(codebook, z)
    brute = np.argmin(((z[:, None] - codebook[None]) ** 2).sum(-1), 1)
    np.testing.assert_array_equal(out.usage, np.bincount(brute, minlength=10))
    assert out.usage[9] == 0 and "1 dead" in out.summary
    mean, v, share = vq.pca_plane(z)
    assert share == pytest.approx(1.0) and np.allclose(v.T @ v, np.eye(2))
    d_full = np.linalg.norm(z[:50, None] - z[None, :50], axis=-1)     # the plane keeps distances
    p = (z[:50] - mean) @ v
    np.testing.assert_allclose(np.linalg.norm(p[:, None] - p[None], axis=-1), d_full, atol=1e-9)


@pytest.mark.parametrize("args", [(1, "k-means++", 0), (33, "k-means++", 0), (8, "corner", 0),
                                  (8, "k-means++", -3), (8.5, "k-means++", 0)])
def test_bad_inputs_raise_input_error(args):
    with pytest.raises(InputError):
        vq.vq2d_panel(*args)


@pytest.mark.parametrize("codebook, z", [(np.zeros(5), np.zeros((4, 5))), (np.zeros((4, 3)), np.zeros((9, 2))),
                                         (np.full((4, 3), np.nan), np.zeros((9, 3)))])
def test_bad_codebook_inputs_raise_input_error(codebook, z):
    with pytest.raises(InputError):
        vq.codebook_panel(codebook, z)
