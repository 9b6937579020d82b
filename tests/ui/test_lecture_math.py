"""The math lecture panels build inside a Blocks, expose their API names and answer through them."""

import gradio as gr
import numpy as np
import pytest

from latentlab.checkpoint import save_checkpoint
from latentlab.registry import ModelRegistry
from latentlab.ui.lecture_math import build_math_panels
from models.vae import VAE, VAEConfig

API_NAMES = {"gumbel", "gumbel_vae", "lloyd", "lloyd_step_nn", "lloyd_step_centroid", "lloyd_run",
             "vq2d", "vq2d_codebook", "reparam"}


def build(registry):
    with gr.Blocks() as demo:
        build_math_panels(registry)
    return {fn.api_name: fn.fn for fn in demo.fns.values() if fn.api_name}


@pytest.fixture(scope="module")
def api(reg):
    return build(reg)


def test_every_panel_action_has_its_api_name(api):
    assert API_NAMES <= set(api)


def test_gumbel_and_vq2d_answer(api):
    counts, _relaxed, _entropy, summary = api["gumbel"]("uniform K=3", 0.5, 200, 0)
    assert len(counts.data) == 2 and "K = 3" in summary
    _fig, summary = api["vq2d"](8, "bad: one corner", 0)
    assert "dead code" in summary


def test_lloyd_steps_carry_the_state_and_lower_the_distortion(api):
    _, _, state = api["lloyd"]("mixture", 5, 0, None, 0)
    for name in ("lloyd_step_centroid", "lloyd_step_nn", "lloyd_run"):
        _, summary, state = api[name]("mixture", state, None, 0)
    history = state[2]
    assert len(history) > 3 and history[-1] <= history[0]
    _, summary, state = api["lloyd"]("vq-vae", 4, 0, "mnist-vqvae", 1)   # a coordinate of z_e
    assert len(state[0]) == 4 and "VQ-VAE" in summary


def test_model_panels_answer_with_tiny_checkpoints(api):
    fig, summary = api["vq2d_codebook"]("mnist-vqvae")
    assert "K = 16" in summary
    shown, fig, images, summary = api["reparam"]("mnist-vae-z2", 0, 8, 0)
    assert shown.dtype == np.uint8 and images.dtype == np.uint8 and len(fig.layout.shapes) == 8


@pytest.mark.parametrize("name, args", [("gumbel", ("1, nan", 0.5, 200, 0)), ("gumbel_vae", (None, 0.5, 0)),
                                        ("reparam", ("mnist-vae-z4", 0, 8, 0)), ("vq2d", (40, "k-means++", 0)),
                                        ("lloyd_step_nn", ("gaussian", [], None, 0)),
                                        ("vq2d_codebook", ("mnist-vae-z2",))])
def test_user_errors_become_gr_errors(api, name, args):
    with pytest.raises(gr.Error):
        api[name](*args)


def test_gumbel_vae_extra_with_a_tiny_categorical_checkpoint(tmp_path):
    cfg = VAEConfig(latent_dim=4, categories=5, posterior="categorical", prior="uniform", channels=4, hidden=16)
    save_checkpoint(tmp_path / "mnist-gumbel-tiny", VAE(cfg).eval(), "vae", cfg, {})
    api = build(ModelRegistry(tmp_path, assets=None))
    image, note = api["gumbel_vae"]("mnist-gumbel-tiny", 0.5, 0)
    assert image.dtype == np.uint8 and "4 latents × 5 classes" in note


def test_sliders_have_the_ranges_the_views_check(reg):
    from latentlab.views import gumbel as gv
    from latentlab.views import lloyd as lv
    from latentlab.views import reparam as rp
    from latentlab.views import vq2d as vq

    with gr.Blocks() as demo:
        build_math_panels(reg)
    sliders = {b.label: (b.minimum, b.maximum) for b in demo.blocks.values() if isinstance(b, gr.Slider)}
    assert sliders["temperature τ"] == gv.TAU_RANGE
    assert sliders["N samples"] == gv.N_RANGE
    assert sliders["levels L"] == lv.LEVELS_RANGE
    assert sliders["codes K"] == vq.K_RANGE
    assert sliders["M samples ε"] == rp.M_RANGE
