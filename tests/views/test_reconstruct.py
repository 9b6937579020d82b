"""Reconstruct tab: ELBO terms and IWAE bound per model, the table, the posterior figure."""

import json
import math

import numpy as np
import pytest

from latentlab import plots
from latentlab.errors import InputError
from latentlab.preprocess import upscale
from latentlab.views import reconstruct as rv

VAES = ["mnist-vae-z2", "mnist-flow-z2", "mnist-vae-z4", "mnist-flow-z4"]


@pytest.mark.parametrize("mode", ["threshold", "random", "none"])
def test_reconstruct_numbers_are_consistent(reg, x3, mode):
    names = VAES[1:] + ["mnist-vqvae"]                   # the UI shows at most 4 side by side
    res = rv.reconstruct(reg, names, x3, k=50, seed=1, binarize_mode=mode)
    assert [m.name for m in res.models] == names
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
    a = rv.reconstruct(reg, ["mnist-flow-z2"], x3, k=20, seed=5).models[0].numbers
    b = rv.reconstruct(reg, ["mnist-flow-z2"], x3, k=20, seed=5).models[0].numbers
    assert a == b
    one = rv.reconstruct(reg, ["mnist-vae-z2"], x3, k=1).models[0].numbers
    assert math.isclose(one["iwae"], one["elbo"], abs_tol=1e-6)
    res = rv.reconstruct(reg, ["mnist-vae-z2", "nope", "mnist-classifier"], x3)
    assert len(res.models) == 1 and len(res.warnings) == 2
    for kwargs, msg in [({"k": 0}, "between"), ({"k": 2.5}, "whole number"),
                        ({"seed": -1}, "between"), ({"binarize_mode": "x"}, "binarize")]:
        with pytest.raises(InputError, match=msg):
            rv.reconstruct(reg, ["mnist-vae-z2"], x3, **kwargs)
    with pytest.raises(InputError, match="at least one"):
        rv.reconstruct(reg, [], x3)
    with pytest.raises(InputError, match="28x28"):
        rv.reconstruct(reg, ["mnist-vae-z2"], np.zeros((5, 5)))
    with pytest.raises(InputError, match="none of the chosen models"):
        rv.reconstruct(reg, ["nope"], x3)


def test_metrics_table_and_posterior_figures(reg, x3):
    res = rv.reconstruct(reg, ["mnist-vae-z2", "mnist-flow-z2", "mnist-vqvae"], x3, k=10)
    headers, rows = rv.metrics_table(res)
    assert headers == ["quantity", "mnist-vae-z2", "mnist-flow-z2", "mnist-vqvae", "meaning"]
    assert all(len(r) == len(headers) for r in rows) and any("L_10" in r[0] for r in rows)
    fig2d = rv.posterior_figure(reg, res)
    assert any(t["type"] == "scattergl" for t in fig2d["data"])     # q_agg dots + ellipses
    assert json.loads(plots.to_json(fig2d))["layout"]["height"] > 0
    res4 = rv.reconstruct(reg, ["mnist-vae-z4", "mnist-flow-z4"], x3, k=10)
    assert [t["type"] for t in rv.posterior_figure(reg, res4)["data"]] == ["bar", "bar"]
    assert rv.posterior_figure(reg, rv.reconstruct(reg, ["mnist-vqvae"], x3)) is None


def test_run_gives_the_tabs_outputs_in_order(reg, x3):
    out = rv.run(reg, upscale(x3), ["mnist-vae-z2", "mnist-vqvae", "nope"], 20, 0, "threshold")
    assert [c for _, c in out.gallery] == ["VAE input (binary)", "mnist-vae-z2", "mnist-vqvae"]
    assert out.gallery[0][0].shape == (168, 168)
    assert list(out.table.columns) == ["quantity", "mnist-vae-z2", "mnist-vqvae", "meaning"]
    assert out.posterior is not None and out.code_map.shape[0] > 7 * rv.CELL
    assert out.can_open_grid and out.vq_state["model"] == "mnist-vqvae"
    assert np.array_equal(out.vq_state["grid"], rv.reconstruct(reg, ["mnist-vqvae"], x3)
                          .models[0].codes)
    assert "no checkpoint named 'nope'" in out.note
    vae_only = rv.run(reg, upscale(x3), ["mnist-vae-z2"])
    assert vae_only.code_map is None and not vae_only.can_open_grid and vae_only.vq_state is None


def test_serve_is_run_with_png_files_and_repeats_hit_the_cache(reg, x3):
    from PIL import Image

    from latentlab import render

    image, names = upscale(x3), ["mnist-vae-z2", "mnist-vqvae"]
    direct = rv.run(reg, image, names, 20, 1)
    served = rv.serve(reg, image, names, 20, 1)
    assert [c for _, c in served.gallery] == [c for _, c in direct.gallery]
    for (arr, _), (path, _) in zip(direct.gallery, served.gallery):
        assert np.array_equal(np.asarray(Image.open(path)), render.to_uint8(arr)
                              if arr.dtype != np.uint8 else arr)
    assert np.array_equal(np.asarray(Image.open(served.code_map)), direct.code_map)
    assert served.table.equals(direct.table) and served.vq_state == direct.vq_state
    assert rv.serve(reg, image.copy(), list(names), 20, 1) is served       # same pixels
    assert rv.serve(reg, image, names, 20, 2) is not served                # another seed
