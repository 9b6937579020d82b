"""Charts: the interpolation density keeps the code prior on its own axis."""

import numpy as np

from latentlab import plots


def test_code_prior_and_vae_densities_get_two_axes():
    t = np.linspace(0, 1, 5)
    fig = plots.path_density(t, [("vae · z", -20 + t, False), ("vq · z_e", -200 - 50 * t, True)])
    axes = [tr["yaxis"] for tr in fig["data"]]
    assert axes == ["y", "y2"]
    lay = fig["layout"]
    assert "p(z)" in lay["yaxis"]["title"]["text"] and "p_λ" in lay["yaxis2"]["title"]["text"]
    assert lay["yaxis2"]["overlaying"] == "y" and lay["yaxis2"]["side"] == "right"


def test_one_kind_of_model_keeps_one_axis():
    t = np.linspace(0, 1, 3)
    vae = plots.path_density(t, [("a", -t, False), ("b", -2 * t, False)])
    vq = plots.path_density(t, [("q", -100 * t, True)])
    assert "yaxis2" not in vae["layout"] and "yaxis2" not in vq["layout"]
    assert "p_λ" in vq["layout"]["yaxis"]["title"]["text"]
    assert all(tr["yaxis"] == "y" for tr in vae["data"] + vq["data"])


def test_posterior_bars_fit_a_phone():
    """On a 390 px phone the one-line title was cut and 16 labels z1..z16 overlapped."""
    mu, std = np.zeros(16), np.ones(16)
    fig = plots.posterior_bars([("a", mu, std), ("b", mu, std)])
    title = fig["layout"]["title"]["text"]
    assert all(len(line) <= 40 for line in title.split("<br>"))
    assert fig["data"][0]["x"] == list(range(1, 17))     # numeric: plotly thins the ticks
