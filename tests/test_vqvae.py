"""VQ-VAE model: config checks, shapes of every verb, the decoder contract it shares with the
VAE, decode/encode consistency, gradient flow and the checkpoint round trip. Fitting the code
prior is training: tests/test_fit_prior.py; evaluation: tests/test_evaluate.py."""

import dataclasses
from pathlib import Path

import pytest
import torch

from latentlab import data
from latentlab.checkpoint import load_checkpoint, save_checkpoint
from models import MODEL_KINDS
from models.code_prior import CodePrior, TransformerCodePrior, UniformCodePrior
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig

TINY = {"num_codes": 16, "code_dim": 8, "channels": 4, "prior_dim": 16, "prior_layers": 1,
        "prior_heads": 2, "prior_epochs": 1}
REPO = Path(__file__).resolve().parents[1]


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
    assert torch.equal(model.quantize(model.encode(x)), idx)
    z_e = model.encode(x).movedim(1, -1)                                     # (5, 7, 7, D)
    assert torch.equal(model.nearest_code(z_e), idx)
    for prior in ("learned", "uniform"):
        s = model.sample(3, prior=prior, generator=torch.Generator().manual_seed(0))
        assert s.shape == (3, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    assert isinstance(model.prior("learned"), TransformerCodePrior)
    assert isinstance(model.prior("uniform"), UniformCodePrior)
    assert all(isinstance(model.prior(k), CodePrior) for k in ("learned", "uniform"))
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
    mean = model.decode(model.indices_to_codes(out.indices))                 # (8, 1, 28, 28)
    torch.testing.assert_close(model.decode_mean(model.indices_to_codes(out.indices)), mean)
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
        if name.startswith("code_prior."):  # fitted afterwards, by latentlab.fit_prior
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert ("quantizer.embedding" in dict(model.named_parameters())) == (not ema)


def test_eval_forward_changes_no_state(images):
    model = tiny(restart_after=1).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(images[:8])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- decoder contract

KINDS = {  # every model that decodes images, tiny
    "vae": lambda: VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)),
    "autoencoder": lambda: VAE(VAEConfig(latent_dim=2, channels=4, hidden=16,
                                         posterior="deterministic")),
    "gumbel": lambda: VAE(VAEConfig(latent_dim=3, categories=4, channels=4, hidden=16,
                                    posterior="categorical", prior="uniform")),
    "vqvae": lambda: tiny(),
}


def _code(model, x: torch.Tensor) -> torch.Tensor:
    """The decoder's input for images x: z_e for the VQ-VAE, the posterior mean for a VAE."""
    return model.encode(x) if isinstance(model, VQVAE) else model.posterior(x).mean


@pytest.mark.parametrize("kind", list(KINDS))
def test_decode_is_raw_and_decode_probs_is_pixels_in_0_1(images, kind):
    model = KINDS[kind]().eval()
    with torch.no_grad():
        z = _code(model, images[:6]) * 5.0                 # far out: the raw output leaves [0, 1]
        raw, probs = model.decode(z), model.decode_probs(z)
    assert raw.shape == probs.shape == (6, 1, 28, 28)
    assert 0 <= probs.min() and probs.max() <= 1
    squash = torch.sigmoid if isinstance(model, VAE) else (lambda t: t.clamp(0, 1))
    torch.testing.assert_close(probs, squash(raw))


@pytest.mark.parametrize("kind", list(KINDS))
def test_sample_is_seeded_pixels_in_0_1(kind):
    model = KINDS[kind]().eval()
    a = model.sample(3, generator=torch.Generator().manual_seed(5))
    b = model.sample(3, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 1, 28, 28) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b)


def test_models_import_nothing_from_the_app_package():
    for path in (REPO / "models").glob("*.py"):
        assert "latentlab" not in path.read_text(), path.name


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


@pytest.mark.parametrize("name", ["mnist-vqvae", "fashion-vqvae"])
def test_shipped_checkpoints_load_and_decode(images, name):
    model, info = load_checkpoint(REPO / "checkpoints" / name)
    assert info.kind == "vqvae" and isinstance(model, VQVAE)
    idx = model.encode_to_indices(images[:8])
    x_hat = model.decode_indices(idx)
    assert (x_hat - images[:8]).pow(2).mean() < 0.02  # trained: close reconstructions
    lp = model.prior("learned").log_prob(idx)
    assert lp.shape == (8,) and (lp > model.prior("uniform").log_prob(idx)).all()
