"""Sample tab: seeded samples from each prior (and q_agg), labels, impossible combinations."""

import numpy as np
import pytest

from latentlab.errors import InputError
from latentlab.inputs import MAX_MODELS, TEMPERATURE
from latentlab.views import sample as sv


@pytest.mark.parametrize("name, source", [("mnist-vae-z2", "prior"), ("mnist-flow-z4", "prior"),
                                          ("mnist-flow-z2", "q_agg"), ("mnist-vqvae", "learned"),
                                          ("mnist-vqvae", "uniform")])
def test_sample_grid(reg, name, source):
    res = sv.sample_grid(reg, name, 9, source, temperature=0.8, seed=3, labels=True)
    assert res.images.shape == (9, 28, 28) and 0 <= res.images.min() and res.images.max() <= 1
    assert len(res.labels) == 9 and ((res.confidence > 0) & (res.confidence <= 1)).all()
    again = sv.sample_grid(reg, name, 9, source, temperature=0.8, seed=3)
    other = sv.sample_grid(reg, name, 9, source, temperature=0.8, seed=4)
    assert np.array_equal(res.images, again.images) and again.labels is None
    if source != "uniform" or name != "mnist-vqvae":
        assert not np.array_equal(res.images, other.images)
    grid = sv.sample_image(res)
    assert grid.ndim == 3 and grid.shape[2] == 3 and grid.dtype == np.uint8


def test_q_agg_temperature_scales_the_spread(reg):
    lo, hi = TEMPERATURE
    cold = sv.sample_grid(reg, "mnist-vae-z4", 16, "q_agg", temperature=lo, seed=1).images
    warm = sv.sample_grid(reg, "mnist-vae-z4", 16, "q_agg", temperature=hi, seed=1).images
    assert not np.allclose(cold, warm)


def test_sample_rejects_impossible_combinations(reg):
    for name, source in [("mnist-vae-z2", "uniform"), ("mnist-vqvae", "q_agg")]:
        with pytest.raises(InputError, match="sample from"):
            sv.sample_grid(reg, name, 4, source)
    with pytest.raises(InputError, match="temperature"):
        sv.sample_grid(reg, "mnist-vae-z2", 4, "prior", temperature=0)
    with pytest.raises(InputError, match="number of samples"):
        sv.sample_grid(reg, "mnist-vae-z2", 1000)


def test_run_maps_the_ui_source_per_kind_and_skips_what_does_not_apply(reg):
    out = sv.run(reg, ["mnist-vae-z4", "mnist-flow-z4", "mnist-vqvae"], "prior", 16, 1.0, True, 0)
    assert [c for _, c in out.gallery] == ["mnist-vae-z4 · prior · T=1", "mnist-flow-z4 · prior · T=1",
                                           "mnist-vqvae · learned · T=1"]
    skipped = sv.run(reg, ["mnist-flow-z2", "mnist-vqvae"], "q_agg", 16, 1.0, False, 0)
    assert len(skipped.gallery) == 1 and "does not apply" in skipped.note
    with pytest.raises(InputError, match="does not apply"):
        sv.run(reg, ["mnist-vqvae"], "q_agg", 16, 1.0, False, 0)
    with pytest.raises(InputError, match="at least one"):
        sv.run(reg, [], "prior")
    assert sv.source_for("vae", "prior") == "prior" and sv.source_for("vqvae", "q_agg") is None


def test_messages_use_the_widgets_limits(reg):
    """The slider's range is what a bad temperature is told; the pickers' maximum of models."""
    lo, hi = TEMPERATURE
    with pytest.raises(InputError, match=f"between {lo:g} and {hi:g}, got nan"):
        sv.run(reg, ["mnist-vae-z2"], "prior", 16, float("nan"))
    with pytest.raises(InputError, match=f"at most {MAX_MODELS} models"):
        sv.run(reg, ["mnist-vae-z2"] * (MAX_MODELS + 1), "prior", 16)
    with pytest.raises(InputError, match="seed must be a whole number, got 2.5"):
        sv.run(reg, ["mnist-vae-z2"], "prior", 16, 1.0, False, 2.5)


def test_a_classifier_is_told_it_cannot_sample(reg):
    with pytest.raises(InputError, match="mnist-classifier is a classifier: it labels images and "
                                         "cannot draw samples"):
        sv.run(reg, ["mnist-classifier"], "prior", 16)


def test_serve_is_run_with_png_files_and_repeats_hit_the_cache(reg):
    from PIL import Image

    names = ["mnist-vae-z4", "mnist-vqvae"]
    direct = sv.run(reg, names, "prior", 16, 1.0, False, 3)
    served = sv.serve(reg, names, "prior", 16, 1.0, False, 3)
    assert [c for _, c in served.gallery] == [c for _, c in direct.gallery]
    for (arr, _), (path, _) in zip(direct.gallery, served.gallery):
        assert np.array_equal(np.asarray(Image.open(path)), arr)
    assert sv.serve(reg, list(names), "prior", 16, 1.0, False, 3) is served
    assert sv.serve(reg, names, "prior", 16, 1.0, False, 4) is not served
