"""VQ-VAE: config checks, shapes of every verb, decode/encode consistency, gradient flow,
checkpoint round trip, code-prior fitting, evaluation helpers and a tiny CLI run."""

import math

import pytest
import torch

from latentlab import data
from latentlab.checkpoint import load_checkpoint, save_checkpoint
from latentlab.vq_eval import evaluate_vqvae, prior_nll_bits_per_code
from models import MODEL_KINDS
from models.code_prior import TransformerCodePrior, UniformCodePrior
from models.vqvae import VQVAE, VQVAEConfig, fit_code_prior

TINY = {"num_codes": 16, "code_dim": 8, "channels": 4, "prior_dim": 16, "prior_layers": 1,
        "prior_heads": 2, "prior_epochs": 1}
TINY_FLAGS = ["--num-codes", "16", "--code-dim", "8", "--channels", "4", "--prior-dim", "16",
              "--prior-layers", "1", "--prior-heads", "2"]


def tiny(**kw) -> VQVAE:
    return VQVAE(VQVAEConfig(**(TINY | kw)))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return data.load_split("mnist", train=False)[0][:64]


# ----------------------------------------------------------------------------- config

def test_registered_for_checkpoints():
    assert MODEL_KINDS["vqvae"] == (VQVAEConfig, VQVAE)


@pytest.mark.parametrize("bad, match", [
    ({"grid_size": 8}, "grid_size"), ({"prior_dim": 10, "prior_heads": 4}, "divisible"),
    ({"num_codes": 1}, "num_codes"), ({"ema_decay": 1.0}, "ema_decay"), ({"beta": -1.0}, "beta"),
])
def test_impossible_configs_fail_early(bad, match):
    with pytest.raises(ValueError, match=match):
        VQVAEConfig(**bad)


def test_config_has_only_primitive_fields():
    import dataclasses

    for f in dataclasses.fields(VQVAEConfig):
        assert type(f.default) in (int, float, str, bool), f.name


# ----------------------------------------------------------------------------- verbs

def test_shapes_of_all_verbs(images):
    model = tiny().eval()
    x = images[:5]
    assert model.encode(x).shape == (5, 8, 7, 7)
    idx = model.encode_to_indices(x)
    assert idx.shape == (5, 7, 7) and idx.dtype == torch.long
    assert model.indices_to_codes(idx).shape == (5, 8, 7, 7)
    assert model.codebook.shape == (16, 8)
    img = model.decode_indices(idx)
    assert img.shape == (5, 1, 28, 28) and 0 <= img.min() and img.max() <= 1
    assert model.decode(model.encode(x)).shape == (5, 1, 28, 28)
    for prior in ("learned", "uniform"):
        s = model.sample(3, prior=prior, generator=torch.Generator().manual_seed(0))
        assert s.shape == (3, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    assert isinstance(model.prior("learned"), TransformerCodePrior)
    assert isinstance(model.prior("uniform"), UniformCodePrior)
    with pytest.raises(ValueError, match="prior"):
        model.prior("gaussian")
    with pytest.raises(ValueError, match="shape"):
        model.encode(torch.rand(2, 28, 28))


def test_forward_output_scalars_and_tensors(images):
    out = tiny().train()(images[:8])
    for name in ("loss", "recon", "codebook", "commitment", "perplexity"):
        assert getattr(out, name).dim() == 0, name
    assert out.x_hat.shape == (8, 1, 28, 28) and out.indices.shape == (8, 7, 7)
    assert out.z_e.shape == (8, 8, 7, 7)
    assert 1.0 <= out.perplexity <= 16.0


@pytest.mark.parametrize("ema", [True, False])
def test_loss_is_recon_plus_codebook_plus_beta_commitment(images, ema):
    model = tiny(ema=ema, beta=0.25).eval()
    x = images[:8]
    out = model(x)
    expected = out.recon + 0.25 * out.commitment + (0.0 if ema else out.codebook)
    torch.testing.assert_close(out.loss, expected)
    mean = model.decode_mean(model.indices_to_codes(out.indices))             # (8, 1, 28, 28)
    torch.testing.assert_close(out.recon, (mean - x).pow(2).mean())
    torch.testing.assert_close(out.x_hat, mean.clamp(0, 1))
    assert (out.x_hat - x).pow(2).mean() <= out.recon + 1e-6  # clamping to [0, 1] only helps


def test_decode_indices_of_encoded_indices_equals_the_forward_reconstruction(images):
    model = tiny()
    model.train()(images)  # k-means initialisation and one EMA step
    model.eval()
    out = model(images[:16])
    idx = model.encode_to_indices(images[:16])
    assert torch.equal(idx, out.indices)
    torch.testing.assert_close(model.decode_indices(idx), out.x_hat, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("ema", [True, False])
def test_gradients_reach_every_trainable_parameter(images, ema):
    model = tiny(ema=ema).train()
    model(images[:16]).loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("code_prior."):  # fitted afterwards, by after_training
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert ("quantizer.embedding" in dict(model.named_parameters())) == (not ema)


def test_eval_forward_changes_no_state(images):
    model = tiny(restart_after=1).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(images[:8])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- checkpoint

def test_checkpoint_round_trip_gives_identical_indices_and_images(images, tmp_path):
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(3):
        loss = model.train()(images).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    save_checkpoint(tmp_path / "vq", model, "vqvae", model.config, {"note": 1})
    loaded, info = load_checkpoint(tmp_path / "vq")
    assert info.kind == "vqvae" and info.config == model.config
    assert not loaded.training and bool(loaded.quantizer.initialized)
    idx = model.encode_to_indices(images)
    assert torch.equal(loaded.encode_to_indices(images), idx)
    assert torch.equal(loaded.decode_indices(idx), model.decode_indices(idx))
    grid = idx[:4]
    assert torch.equal(loaded.code_prior.log_prob(grid), model.code_prior.log_prob(grid))


# ----------------------------------------------------------------------------- prior fitting

def test_fit_code_prior_learns_structured_grids():
    torch.manual_seed(0)
    grids = torch.randint(16, (512, 1, 1)).expand(512, 7, 7).contiguous()  # constant grids
    cfg = VQVAEConfig(**(TINY | {"prior_epochs": 10, "prior_batch_size": 64, "prior_lr": 1e-2}))
    prior = TransformerCodePrior(16, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads)
    before = prior_nll_bits_per_code(prior, grids)
    bits = fit_code_prior(prior, grids, cfg, seed=0)
    after = prior_nll_bits_per_code(prior, grids)
    assert math.isfinite(bits) and after < before and after < 0.5 * math.log2(16)
    assert not prior.training


def test_evaluate_vqvae_reports_all_metrics(images):
    model = tiny()
    model.train()(images)
    seen = []

    def fake_quality(imgs: torch.Tensor, dataset: str) -> dict:
        seen.append((imgs.shape, dataset, float(imgs.min()), float(imgs.max())))
        return {"confident_share": 0.5}

    m = evaluate_vqvae(model, "mnist", n_samples=7, batch_size=4000, sample_quality_fn=fake_quality,
                       temperatures=(0.5,))
    assert m["test_psnr_db"] == pytest.approx(10 * math.log10(1 / m["test_mse"]), abs=0.01)
    assert 0 < m["codebook_usage"] <= 1 and 1 <= m["codebook_perplexity"] <= 16
    assert m["dead_codes"] == round(16 * (1 - m["codebook_usage"]))
    assert m["uniform_prior_nll_bits_per_code"] == pytest.approx(4.0)
    assert math.isfinite(m["prior_test_nll_bits_per_code"])
    assert m["learned_prior_confident_share"] == 0.5 and m["uniform_prior_confident_share"] == 0.5
    assert m["learned_prior_temperature_sweep"] == {"0.5": {"confident_share": 0.5}}
    assert m["test_images_confident_share"] == m["reconstruction_confident_share"] == 0.5
    # learned, uniform, the T = 0.5 sweep, then the test set and its reconstructions
    assert [s[:2] for s in seen] == [((7, 1, 28, 28), "mnist")] * 3 + [((10000, 1, 28, 28), "mnist")] * 2
    assert all(0 <= lo and hi <= 1 for _, _, lo, hi in seen)


# ----------------------------------------------------------------------------- end to end

def test_cli_trains_fits_prior_and_saves_a_loadable_checkpoint(tmp_path):
    from latentlab.train import train_main

    out = tmp_path / "mnist-vqvae-tiny"
    train_main(["--model", "vqvae", "--dataset", "mnist", "--epochs", "1", "--subset", "256",
                "--batch-size", "64", "--prior-epochs", "1", "--no-progress", "--out", str(out),
                *TINY_FLAGS])
    model, info = load_checkpoint(out)
    assert info.kind == "vqvae" and info.config.num_codes == 16 and info.config.prior_epochs == 1
    for key in ("prior_train_nll_bits_per_code", "prior_train_wall_time_s", "test_mse",
                "test_psnr_db", "codebook_usage", "prior_test_nll_bits_per_code"):
        assert key in info.metrics, key
    assert info.metrics["prior_train_grids"] == 256
    assert 0 < info.metrics["prior_train_nll_bits_per_code"] < 2 * math.log2(16)
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)


def test_fit_prior_cli_replaces_only_the_prior(tmp_path):
    from latentlab.fit_prior import fit_prior_main

    out = tmp_path / "mnist-vqvae-tiny"
    model = tiny().eval()
    save_checkpoint(out, model, "vqvae", model.config,
                    {"command": "train", "train_wall_time_s": 100.0,
                     "prior_train_wall_time_s": 40.0, "learned_prior_confident_share": 0.5})
    metrics = fit_prior_main([str(out), "--prior-dim", "8", "--prior-layers", "2",
                              "--prior-epochs", "1", "--subset", "128", "--no-progress"])
    new, info = load_checkpoint(out)
    assert (info.config.prior_dim, info.config.prior_layers, info.config.prior_heads) == (8, 2, 2)
    assert info.config.num_codes == 16
    for name, value in model.state_dict().items():  # the auto-encoder is copied bit for bit
        if not name.startswith("code_prior."):
            assert torch.equal(value, new.state_dict()[name]), name
    images = data.load_split("mnist", train=False)[0][:8]
    assert torch.equal(model.encode_to_indices(images), new.encode_to_indices(images))
    assert metrics == info.metrics and metrics["command"] == "train"
    assert metrics["prior_command"].startswith("python -m latentlab.fit_prior ")
    assert "learned_prior_confident_share" not in metrics  # it described the old prior
    assert metrics["autoencoder_train_wall_time_s"] == 60.0
    assert metrics["train_wall_time_s"] == pytest.approx(60.0 + metrics["prior_train_wall_time_s"])
    assert metrics["prior_train_grids"] == 128 and "prior_test_nll_bits_per_code" in metrics


def test_fit_prior_refuses_other_settings_and_kinds(tmp_path):
    from latentlab.checkpoint import CheckpointError
    from latentlab.fit_prior import refit_prior
    from models.vae import VAE, VAEConfig

    model = tiny()
    save_checkpoint(tmp_path / "vq", model, "vqvae", model.config)
    with pytest.raises(ValueError, match="only prior settings"):
        refit_prior(tmp_path / "vq", {"num_codes": 8})
    with pytest.raises(ValueError, match="divisible"):
        refit_prior(tmp_path / "vq", {"prior_dim": 15})
    vae = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16))
    save_checkpoint(tmp_path / "vae", vae, "vae", vae.config)
    with pytest.raises(CheckpointError, match="not a VQ-VAE"):
        refit_prior(tmp_path / "vae", {"prior_dim": 8})
