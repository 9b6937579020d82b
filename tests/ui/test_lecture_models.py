"""The model lecture panels build inside a Blocks, expose their API names and answer through them."""

import gradio as gr
import numpy as np
import pytest

from latentlab.checkpoint import save_checkpoint
from latentlab.registry import ModelRegistry
from latentlab.ui import lecture_models as lm
from models.vae import VAE, VAEConfig

API_NAMES = {"elbo_gap", "traversal", "beta_sweep", "autoencoder", "surgery_priors"}
TINY = {"channels": 2, "hidden": 8}


def build(registry):
    with gr.Blocks() as demo:
        lm.build_model_panels(registry)
    return {fn.api_name: fn.fn for fn in demo.fns.values() if fn.api_name}


@pytest.fixture(scope="module")
def api(reg):
    return build(reg)


@pytest.fixture(scope="module")
def lecture_reg(tmp_path_factory):
    """A plain autoencoder, a VAE of the same size and three fake beta-sweep checkpoints."""
    folder = tmp_path_factory.mktemp("lecture")
    ae = VAEConfig(latent_dim=2, posterior="deterministic", **TINY)
    save_checkpoint(folder / "mnist-ae-z2", VAE(ae).eval(), "vae", ae, {})
    vae = VAEConfig(latent_dim=2, **TINY)
    save_checkpoint(folder / "mnist-vae-z2", VAE(vae).eval(), "vae", vae, {})
    for beta, kl, rec in ((4.0, 8.0, 95.0), (0.5, 40.0, 50.0), (1.0, 25.0, 64.0)):
        cfg = VAEConfig(latent_dim=2, beta=beta, **TINY)
        save_checkpoint(folder / f"mnist-vae-z16-beta{beta:g}", VAE(cfg).eval(), "vae", cfg,
                        {"test_kl": kl, "test_rec_nll": rec, "active_units": 2})
    return ModelRegistry(folder, assets=None)


def test_every_panel_action_has_its_api_name(api):
    assert API_NAMES <= set(api)


def test_elbo_gap_answers(api):
    shown, fig, summary, table = api["elbo_gap"]("mnist-vae-z2", 6, 20, 2, 0)
    assert shown.shape == (84, 84) and set(np.unique(shown)) <= {0, 255}
    assert fig.layout.xaxis.type == "log" and "KL(q(z|x)" in summary
    assert [row[0] for row in table] == [1, 2, 5, 10, 20]


def test_traversal_uses_metrics_or_computes_them(api, reg):
    _, image, table = api["traversal"]("mnist-vae-z4", 3, 5, 3.0)            # metrics.json has them
    kl = reg.entry("mnist-vae-z4").metrics["kl_per_dim"]
    assert image.dtype == np.uint8 and [row[0] for row in table] == list(np.argsort(kl)[::-1])
    _, image, table = api["traversal"]("mnist-flow-z2", 3, 5, 3.0)           # computed, cached
    assert len(table) == 2
    assert any(key[1] == "dimension_stats" for key in reg.get("mnist-flow-z2").cache)


def test_surgery_answers_and_caches_per_model(api, reg):
    fig, normal, flowed, agg, table = api["surgery_priors"]("mnist-vae-z2", "mnist-flow-z2", 4, 0)
    assert [t.type for t in fig.data] == ["heatmap"] * 3
    assert normal.shape == flowed.shape == agg.shape
    assert table[3][0] == "= ELBO"
    for name in ("mnist-vae-z2", "mnist-flow-z2"):
        assert (lm.CACHE, "surgery", lm.N_TEST) in reg.get(name).cache


def test_sweep_without_checkpoints_says_so(api):
    fig, table = api["beta_sweep"](None)
    assert table == [] and "scripts/train_lecture.sh" in fig.layout.annotations[0].text


def test_sweep_and_autoencoder_with_lecture_checkpoints(lecture_reg):
    api = build(lecture_reg)
    fig, table = api["beta_sweep"]("mnist-vae-z16-beta1")
    assert [row[1] for row in table] == [0.5, 1.0, 4.0]
    assert fig.data[1].x[0] == 25.0
    fig, summary, ae_img, vae_img, table = api["autoencoder"]("mnist-ae-z2", "mnist-vae-z2", 9, 0)
    assert ae_img.shape == vae_img.shape and len(table) == 2 and "KL" in summary


@pytest.mark.parametrize("name, args", [
    ("elbo_gap", ("mnist-vae-z2", 99, 20, 2, 0)), ("elbo_gap", ("mnist-vae-z2", 6, 1, 2, 0)),
    ("elbo_gap", ("mnist-vqvae", 6, 20, 2, 0)), ("traversal", ("nope", 6, 5, 3.0)),
    ("traversal", (None, 6, 5, 3.0)), ("autoencoder", (None, "mnist-vae-z2", 4, 0)),
    ("autoencoder", ("mnist-vae-z2", "mnist-vae-z2", 4, 0)),
    ("surgery_priors", ("mnist-flow-z2", "mnist-flow-z2", 4, 0)),
    ("surgery_priors", ("mnist-vae-z2", "mnist-flow-z2", 0, 0))])
def test_user_errors_become_gr_errors(api, name, args):
    with pytest.raises(gr.Error):
        api[name](*args)
