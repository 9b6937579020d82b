"""Interpolate tab: paths in z, z* and z_e, their strips, the GIF, impossible combinations."""

import numpy as np
import pytest
import torch
from PIL import Image

from latentlab.errors import InputError
from latentlab.preprocess import upscale
from latentlab.views import code_grid as cg
from latentlab.views import interpolate as iv
from latentlab.views import reconstruct as rv


def test_path_points():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 1.0])
    t = torch.linspace(0, 1, 5)
    lin = iv.path_points(a, b, t, "linear")
    sph = iv.path_points(a, b, t, "spherical")
    for p in (lin, sph):
        assert torch.allclose(p[0], a) and torch.allclose(p[-1], b, atol=1e-6)
    assert torch.allclose(sph.norm(dim=1), (1 - t) * 3 + t * 1, atol=1e-5)  # norms blend linearly
    assert lin[2].norm() < sph[2].norm()


@pytest.mark.parametrize("name, space", [("mnist-vae-z2", "z"), ("mnist-flow-z4", "z"),
                                         ("mnist-flow-z2", "base"), ("mnist-vqvae", "z_e")])
@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolate(reg, x3, x7, name, space, method):
    res = iv.interpolate(reg, name, x3, x7, steps=7, method=method, space=space)
    assert res.images.shape == (7, 28, 28) and res.t.shape == res.log_prior.shape == (7,)
    assert np.isfinite(res.log_prior).all()
    if space == "z_e":
        assert res.codes.shape == (7, 7, 7) and res.changed[0] == 0
        assert res.changed.sum() >= (res.codes[0] != res.codes[-1]).sum()
        assert np.array_equal(res.codes[0], cg.code_grid_from_image(reg, name, x3))
    else:
        rec = rv.reconstruct(reg, [name], x3).models[0].image
        assert np.allclose(res.images[0], rec, atol=1e-5)          # the path starts at mu_A
    strip = iv.interpolation_strip(res)
    assert strip.shape[1] > strip.shape[0] and strip.dtype == np.uint8


def test_interpolate_rejects_impossible_combinations(reg, x3, x7):
    for name, space, msg in [("mnist-vae-z2", "base", "flow-prior"), ("mnist-vqvae", "z", "z_e"),
                             ("mnist-vae-z2", "z_e", "VQ-VAE")]:
        with pytest.raises(InputError, match=msg):
            iv.interpolate(reg, name, x3, x7, space=space)
    with pytest.raises(InputError, match="steps"):
        iv.interpolate(reg, "mnist-vae-z2", x3, x7, steps=40)


def test_gif(reg, x3, x7):
    res = iv.interpolate(reg, "mnist-vae-z2", x3, x7, steps=5)
    path = iv.write_gif([res])
    with Image.open(path) as gif:  # identical frames get merged, their durations add up
        assert gif.format == "GIF" and gif.size == (168, 168)
        total = 0
        for i in range(gif.n_frames):
            gif.seek(i)
            total += gif.info["duration"]
    assert total == 8 * 120                                                # there and back
    assert iv.write_gif([res]) == path                   # named by its content, written once
    other = iv.interpolate(reg, "mnist-vae-z2", x7, x3, steps=5)
    assert iv.write_gif([other]) != path


def test_run_interpolates_every_space_that_applies(reg, x3, x7):
    out = iv.run(reg, upscale(x3), upscale(x7), ["mnist-vae-z2", "mnist-flow-z2", "mnist-vqvae"],
                 8, "spherical", True, "threshold")
    labels = [t["name"] for t in out.density["data"]]
    assert labels == ["mnist-vae-z2 · z · spherical", "mnist-flow-z2 · z · spherical",
                      "mnist-flow-z2 · base · spherical", "mnist-vqvae · z_e · spherical"]
    # log p_lambda(codes) has its own axis: on the VAEs' axis it flattened their lines
    assert [t["yaxis"] for t in out.density["data"]] == ["y", "y", "y", "y2"]
    assert out.strip.shape[0] > 4 * 28 and "base" in out.note
    assert out.gif == out.gif_file and out.gif.endswith(".gif")
    with Image.open(out.gif) as gif:
        assert gif.size == (4 * 168, 168)                                  # paths side by side
    no_base = iv.run(reg, upscale(x3), upscale(x7), ["mnist-flow-z2"], 4, "linear", False)
    assert "base" not in no_base.note


def test_serve_is_run_with_a_png_strip_and_repeats_hit_the_cache(reg, x3, x7):
    from latentlab import render

    a, b, names = upscale(x3), upscale(x7), ["mnist-vae-z2", "mnist-vqvae"]
    direct = iv.run(reg, a, b, names, 6)
    served = iv.serve(reg, a, b, names, 6)
    assert np.array_equal(np.asarray(Image.open(served.strip)), render.to_uint8(direct.strip)
                          if direct.strip.dtype != np.uint8 else direct.strip)
    assert served.gif == direct.gif and served.note == direct.note       # GIF: same content
    assert iv.serve(reg, a.copy(), b, names, 6) is served
    assert iv.serve(reg, b, a, names, 6) is not served
