"""The VQ-VAE's second stage: the code-prior fitting loop, ``fit_prior`` on a model, and the
refit command that replaces only the prior of a checkpoint."""

import math
import os

import pytest
import torch

from latentlab import data, settings
from latentlab.checkpoint import load_checkpoint, save_checkpoint
from latentlab.errors import CheckpointError, InputError
from latentlab.fit_prior import fit_code_prior, fit_prior, fit_prior_main, refit_prior
from latentlab.vq_eval import prior_nll_bits_per_code
from models.code_prior import TransformerCodePrior
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig

TINY = {"num_codes": 16, "code_dim": 8, "channels": 4, "prior_dim": 16, "prior_layers": 1,
        "prior_heads": 2, "prior_epochs": 1}


def tiny(**kw) -> VQVAE:
    return VQVAE(VQVAEConfig(**(TINY | kw)))


# ----------------------------------------------------------------------------- fitting loop

def test_fit_code_prior_learns_structured_grids():
    torch.manual_seed(0)
    grids = torch.randint(16, (512, 1, 1)).expand(512, 7, 7).contiguous()  # constant grids
    cfg = VQVAEConfig(**(TINY | {"prior_epochs": 10, "prior_batch_size": 64, "prior_lr": 1e-2}))
    prior = TransformerCodePrior(16, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads)
    before = prior_nll_bits_per_code(prior, grids)
    bits = fit_code_prior(prior, grids, cfg, seed=0)["train_bits"]
    after = prior_nll_bits_per_code(prior, grids)
    assert math.isfinite(bits) and after < before and after < 0.5 * math.log2(16)
    assert not prior.training and not any(p.requires_grad for p in prior.parameters())


def test_fit_code_prior_is_seeded():
    grids = torch.randint(16, (96, 7, 7), generator=torch.Generator().manual_seed(1))
    cfg = VQVAEConfig(**(TINY | {"prior_epochs": 2, "prior_batch_size": 32}))
    fitted = []
    for _ in range(2):
        torch.manual_seed(0)
        prior = TransformerCodePrior(16, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads)
        fitted.append((fit_code_prior(prior, grids, cfg, seed=3)["train_bits"], prior.state_dict()))
    assert fitted[0][0] == fitted[1][0]
    for name, value in fitted[0][1].items():
        assert torch.equal(value, fitted[1][1][name]), name


@pytest.mark.parametrize("validated", [True, False])
def test_a_polyak_fit_keeps_the_average_and_leaves_the_fit_alone(validated):
    grids = torch.randint(16, (96, 7, 7), generator=torch.Generator().manual_seed(1))
    val = grids[:32] if validated else None
    runs = {}
    for decay in (0.0, 0.9):
        cfg = VQVAEConfig(**(TINY | {"prior_epochs": 3, "prior_batch_size": 32,
                                     "prior_polyak_decay": decay}))
        torch.manual_seed(0)
        prior = TransformerCodePrior(16, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads)
        runs[decay] = (fit_code_prior(prior, grids, cfg, seed=3, val_grids=val), prior)
    (plain, p0), (averaged, p1) = runs[0.0], runs[0.9]
    assert plain["train_bits"] == averaged["train_bits"]  # the same optimizer path
    assert any(not torch.equal(v, p1.state_dict()[k]) for k, v in p0.state_dict().items())
    if validated:  # the averaged prior is what was validated: its NLL is the recorded one
        best = averaged["val_history"][averaged["best_epoch"] - 1]["val_bits_per_code"]
        assert prior_nll_bits_per_code(p1, grids[:32]) == pytest.approx(best, abs=1e-3)
        live = [h["val_live_bits_per_code"] for h in averaged["val_history"]]
        assert live == [h["val_bits_per_code"] for h in plain["val_history"]]  # the same path
        assert "val_live_bits_per_code" not in plain["val_history"][0]
    with pytest.raises(ValueError, match="prior_polyak_decay"):
        VQVAEConfig(prior_polyak_decay=1.0)


def test_prior_weight_decay_shrinks_the_fitted_weights():
    """The same fit with a strong decay ends with smaller prior weights; a bad value fails."""
    grids = torch.randint(16, (96, 7, 7), generator=torch.Generator().manual_seed(1))
    norms = []
    for wd in (0.0, 5.0):
        cfg = VQVAEConfig(**(TINY | {"prior_epochs": 3, "prior_batch_size": 32,
                                     "prior_weight_decay": wd}))
        torch.manual_seed(0)
        prior = TransformerCodePrior(16, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads)
        fit_code_prior(prior, grids, cfg, seed=3)
        norms.append(sum(p.norm() ** 2 for p in prior.parameters()).sqrt().item())
    assert norms[1] < 0.98 * norms[0]                 # (1 - lr * 5) ** 9 steps ~ 0.91 per weight
    with pytest.raises(ValueError, match="prior_weight_decay"):
        VQVAEConfig(**(TINY | {"prior_weight_decay": -0.1}))


def test_input_noise_holds_a_prior_back_from_memorising_its_grids(tmp_path):
    """The same fit on a few random grids (nothing to learn but the grids themselves), with
    and without context noise: the noisy prior memorises them less; the flag reaches the
    config, and the two-level model refuses it."""
    from latentlab.fit_prior import parse_args
    from models.vqvae2 import VQVAE2Config
    grids = torch.randint(16, (32, 7, 7), generator=torch.Generator().manual_seed(2))
    bits = []
    for noise in (0.0, 0.5):  # 100 steps of one batch each
        cfg = VQVAEConfig(**(TINY | {"prior_dim": 32, "prior_layers": 2, "prior_epochs": 100,
                                     "prior_batch_size": 32, "prior_lr": 1e-2,
                                     "prior_input_noise": noise}))
        torch.manual_seed(0)
        prior = TransformerCodePrior(16, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads,
                                     input_noise=noise)
        fit_code_prior(prior, grids, cfg, seed=0)
        bits.append(prior_nll_bits_per_code(prior, grids))
    assert bits[0] < 0.5 * bits[1], bits         # memorised (0.3 bits), against held back (3.3)
    assert parse_args([str(tmp_path), "--prior-input-noise", "0.1"]).prior_input_noise == 0.1
    assert tiny(prior_input_noise=0.1).code_prior.input_noise == 0.1
    with pytest.raises(ValueError, match="prior_input_noise"):
        VQVAEConfig(**(TINY | {"prior_input_noise": 1.0}))
    with pytest.raises(ValueError, match="one-level"):
        VQVAE2Config(prior_input_noise=0.1)


def test_a_bf16_fit_runs_its_matmuls_in_bf16_and_learns_as_the_fp32_fit_does(tmp_path):
    """``prior_bf16``: training steps compute in bf16, weights and validation stay fp32, and
    the fit ends where the fp32 one does; the flag parses as a yes/no."""
    from latentlab.fit_prior import parse_args
    from models.vqvae2 import VQVAE2Config
    grids = torch.randint(16, (128, 1, 1), generator=torch.Generator().manual_seed(4))
    grids = grids.expand(128, 7, 7).contiguous()                        # constant grids
    results = {}
    for bf16 in (False, True):
        cfg = VQVAEConfig(**(TINY | {"prior_epochs": 6, "prior_batch_size": 32, "prior_lr": 1e-2,
                                     "prior_bf16": bf16}))
        torch.manual_seed(0)
        prior = TransformerCodePrior(16, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads)
        seen = set()
        prior.head.register_forward_hook(
            lambda m, i, out, seen=seen: seen.add((m.training, out.dtype)))
        fit = fit_code_prior(prior, grids, cfg, seed=0, val_grids=grids[:32])
        results[bf16] = (fit, prior_nll_bits_per_code(prior, grids))
        assert {p.dtype for p in prior.parameters()} == {torch.float32}
        assert (True, torch.bfloat16 if bf16 else torch.float32) in seen  # training steps
        assert (False, torch.bfloat16) not in seen                        # validation: fp32
    (fit32, bits32), (fit16, bits16) = results[False], results[True]
    assert max(bits16, bits32) < 0.5 * math.log2(16) and abs(bits16 - bits32) < 0.1
    assert fit16["train_bits"] == pytest.approx(fit32["train_bits"], abs=0.1)
    assert fit16["train_bits"] != fit32["train_bits"]                    # not the fp32 path
    assert parse_args([str(tmp_path), "--prior-bf16", "yes"]).prior_bf16 is True
    assert parse_args([str(tmp_path), "--prior-bf16", "0"]).prior_bf16 is False
    assert parse_args([str(tmp_path)]).prior_bf16 is None                 # the checkpoint's own
    with pytest.raises(SystemExit):
        parse_args([str(tmp_path), "--prior-bf16", "maybe"])
    assert VQVAE2Config(prior_bf16=True).prior_bf16


def test_validation_chooses_the_epoch_with_the_lowest_validation_nll():
    """Train on one kind of grid, validate on another: later epochs fit the training grids
    better and the validation grids worse, so an early epoch must be kept."""
    torch.manual_seed(0)
    train = torch.randint(8, (256, 1, 1)).expand(256, 7, 7).contiguous()         # constant grids
    val = torch.randint(8, 16, (64, 7, 7), generator=torch.Generator().manual_seed(2))
    cfg = VQVAEConfig(**(TINY | {"prior_epochs": 6, "prior_batch_size": 64, "prior_lr": 1e-2}))
    prior = TransformerCodePrior(16, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads)
    out = fit_code_prior(prior, train, cfg, seed=0, val_grids=val)
    vals = [h["val_bits_per_code"] for h in out["val_history"]]
    assert len(vals) == 6 and out["best_epoch"] == 1 + vals.index(min(vals))
    kept = prior_nll_bits_per_code(prior, val)
    assert kept == pytest.approx(min(vals), abs=1e-3)        # the best epoch's weights are kept


def test_fit_prior_with_validation_images_records_the_choice():
    model = tiny()
    x = data.load_split("mnist", train=False)[0]
    out = fit_prior(model, x[:64], seed=0, x_val=x[64:96])
    assert out["prior_val_grids"] == 32 and 1 <= out["prior_chosen_epoch"] <= model.config.prior_epochs
    assert out["prior_val_nll_bits_per_code"] == min(
        h["val_bits_per_code"] for h in out["prior_val_history"])


def test_zero_prior_epochs_leave_the_prior_untouched():
    model = tiny(prior_epochs=0)
    before = {k: v.clone() for k, v in model.code_prior.state_dict().items()}
    out = fit_prior(model, data.load_split("mnist", train=False)[0][:32])
    assert out["prior_train_nll_bits_per_code"] is None and out["prior_train_grids"] == 32
    assert all(torch.equal(v, before[k]) for k, v in model.code_prior.state_dict().items())


def test_fit_prior_changes_only_the_prior_and_keeps_the_mode():
    model = tiny().train()
    x = data.load_split("mnist", train=False)[0][:64]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = fit_prior(model, x, seed=0)
    assert model.training  # encode_dataset restores the caller's mode
    assert out["prior_train_grids"] == 64 and out["prior_train_wall_time_s"] >= 0
    assert out["prior_train_cpu_time_s"] >= 0 and "prior_train_steal_share" in out
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("code_prior.") for k in changed)


# ----------------------------------------------------------------------------- refit command

def test_fit_prior_cli_replaces_only_the_prior(tmp_path):
    out = tmp_path / "mnist-vqvae-tiny"
    model = tiny().eval()
    save_checkpoint(out, model, "vqvae", model.config,
                    {"command": "train", "train_wall_time_s": 100.0, "test_mse": 0.0125,
                     "prior_train_wall_time_s": 40.0, "learned_prior_confident_share": 0.5,
                     "prior_test_nll_bits_per_code": 2.5})
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
    assert metrics["prior_train_grids"] == 128
    assert metrics["test_mse"] == 0.0125  # the unchanged auto-encoder's figure stays
    # the new prior is not scored on test here (only latentlab.evaluate does that)
    assert not any(k.startswith("prior_test_nll") for k in metrics)


def test_fit_prior_refuses_other_settings_and_kinds(tmp_path):
    model = tiny()
    save_checkpoint(tmp_path / "vq", model, "vqvae", model.config)
    with pytest.raises(InputError, match="only prior settings"):
        refit_prior(tmp_path / "vq", {"num_codes": 8})
    with pytest.raises(ValueError, match="divisible"):
        refit_prior(tmp_path / "vq", {"prior_dim": 15})
    vae = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16))
    save_checkpoint(tmp_path / "vae", vae, "vae", vae.config)
    with pytest.raises(CheckpointError, match="not a VQ-VAE"):
        refit_prior(tmp_path / "vae", {"prior_dim": 8})


def test_data_root_flag_goes_through_the_settings(tmp_path, monkeypatch):
    """--data-root configures the settings (no environment writes); a folder without the
    data then fails when the data is loaded, after the checkpoint was read."""
    model = tiny()
    save_checkpoint(tmp_path / "vq", model, "vqvae", model.config)
    def load_split(name: str, train: bool):  # stands in for torchvision finding nothing
        raise FileNotFoundError(str(settings.current().data_root))

    monkeypatch.setattr(data, "load_split", load_split)
    before = dict(os.environ)
    try:
        with pytest.raises(FileNotFoundError, match=str(tmp_path / "nodata")):
            fit_prior_main([str(tmp_path / "vq"), "--data-root", str(tmp_path / "nodata"),
                            "--no-progress"])
        assert settings.current().data_dir == tmp_path / "nodata"
    finally:
        settings.reset()
    assert dict(os.environ) == before


def test_a_stop_flag_ends_the_prior_fit_after_the_step_it_is_set_in():
    grids = torch.randint(16, (320, 7, 7), generator=torch.Generator().manual_seed(1))
    cfg = VQVAEConfig(**(TINY | {"prior_epochs": 3, "prior_batch_size": 32}))  # 30 steps
    prior = TransformerCodePrior(16, cfg.prior_dim, cfg.prior_layers, cfg.prior_heads)
    asked = []
    out = fit_code_prior(prior, grids, cfg, should_stop=lambda: asked.append(1) or len(asked) >= 4,
                         val_grids=grids[:64])
    assert out["stopped"] and out["steps"] == len(asked) == 4
    assert out["val_history"] == [] and math.isfinite(out["train_bits"])
    assert not prior.training and not any(p.requires_grad for p in prior.parameters())


def test_a_stopped_fit_keeps_the_best_whole_epoch_and_says_so():
    torch.manual_seed(0)
    model = tiny(prior_epochs=3, prior_batch_size=32)
    steps = []
    out = fit_prior(model, torch.rand(96, 1, 28, 28), x_val=torch.rand(32, 1, 28, 28),
                    should_stop=lambda: steps.append(1) or len(steps) >= 5)  # epoch 2, step 2
    assert out["prior_stopped_early"] is True
    assert (out["prior_steps"], out["prior_total_steps"]) == (5, 9)
    assert out["prior_chosen_epoch"] == 1 and len(out["prior_val_history"]) == 1


# ----------------------------------------------------------------------------- augmentation

@pytest.mark.parametrize("levels", [1, 2])
def test_a_shared_augmentation_encodes_only_the_moved_images(levels):
    from latentlab.augment import shift_images
    from latentlab.fit_prior import augmented_grids
    torch.manual_seed(0)
    model = (tiny() if levels == 1 else tiny2()).eval()
    x = torch.rand(64, 1, 28, 28)
    grids = model.encode_dataset(x)
    calls = []
    original = model.encode_dataset
    model.encode_dataset = lambda imgs, **kw: calls.append(len(imgs)) or original(imgs, **kw)
    out = augmented_grids(model, x, grids, 1, 0.25, torch.Generator().manual_seed(5))
    assert 0 < calls[0] < 32                            # about a quarter, less the zero moves
    full = original(shift_images(x, 1, torch.Generator().manual_seed(5), 0.25))
    assert all(torch.equal(a, b) for a, b in zip(
        (out,) if levels == 1 else out, (full,) if levels == 1 else full))


@pytest.mark.parametrize("levels", [1, 2])
def test_an_augment_share_needs_a_shift_and_lies_in_0_1(levels):
    from models.vqvae2 import VQVAE2Config
    build = (lambda **kw: VQVAEConfig(**(TINY | kw))) if levels == 1 else VQVAE2Config
    with pytest.raises(ValueError, match="needs prior_augment_shift"):
        build(prior_augment_share=0.5)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        build(prior_augment_shift=1, prior_augment_share=0.0)
    assert build(prior_augment_shift=1, prior_augment_share=0.5).prior_augment_share == 0.5


def test_augmented_fit_sees_fresh_grids_every_epoch():
    torch.manual_seed(0)
    model = tiny(prior_epochs=3, prior_batch_size=64, prior_augment_shift=1)
    x = torch.rand(128, 1, 28, 28)
    seen = []
    original = model.encode_dataset
    model.encode_dataset = lambda imgs, **kw: seen.append(imgs.clone()) or original(imgs, **kw)
    out = fit_prior(model, x, x_val=x[:32])
    # the plain grids and the validation grids, then one shifted set per epoch, each different
    assert len(seen) == 2 + 3
    assert torch.equal(seen[0], x) and not torch.equal(seen[2], x)
    assert not torch.equal(seen[2], seen[3]) and not torch.equal(seen[3], seen[4])
    assert out["prior_chosen_epoch"] in (1, 2, 3)


@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("shift", [-1, 5])
def test_a_shift_outside_0_4_is_refused_when_the_config_is_built(levels, shift):
    from models.vqvae2 import VQVAE2Config
    build = (lambda **kw: VQVAEConfig(**(TINY | kw))) if levels == 1 else VQVAE2Config
    with pytest.raises(ValueError, match=r"prior_augment_shift must lie in \[0, 4\]"):
        build(prior_augment_shift=shift)
    assert build(prior_augment_shift=4).prior_augment_shift == 4


def test_augmentation_can_stop_after_some_epochs():
    """prior_augment_epochs=1 of 3: one shifted set, then the centred grids for the last two."""
    torch.manual_seed(0)
    model = tiny(prior_epochs=3, prior_batch_size=64, prior_augment_shift=1,
                 prior_augment_epochs=1)
    x = torch.rand(128, 1, 28, 28)
    seen = []
    original = model.encode_dataset
    model.encode_dataset = lambda imgs, **kw: seen.append(imgs.clone()) or original(imgs, **kw)
    fit_prior(model, x, x_val=x[:32])
    assert len(seen) == 2 + 1 and not torch.equal(seen[2], x)


@pytest.mark.parametrize("levels", [1, 2])
def test_augment_epochs_need_a_shift_and_are_not_negative(levels):
    from models.vqvae2 import VQVAE2Config
    build = (lambda **kw: VQVAEConfig(**(TINY | kw))) if levels == 1 else VQVAE2Config
    with pytest.raises(ValueError, match="needs prior_augment_shift"):
        build(prior_augment_epochs=2)
    with pytest.raises(ValueError, match=">= 0"):
        build(prior_augment_shift=1, prior_augment_epochs=-1)
    assert build(prior_augment_shift=1, prior_augment_epochs=2).prior_augment_epochs == 2


@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("field, bad, good, bounds", [
    ("prior_augment_rotate", (-1.0, 46.0), 10.0, r"\[0, 45\]"),
    ("prior_augment_mirror", (-0.1, 1.5), 0.5, r"\[0, 1\]")])
def test_a_turn_or_a_mirror_alone_is_an_augmentation_within_its_bounds(levels, field, bad, good,
                                                                        bounds):
    from models.vqvae2 import VQVAE2Config
    build = (lambda **kw: VQVAEConfig(**(TINY | kw))) if levels == 1 else VQVAE2Config
    for value in (*bad, float("nan")):
        with pytest.raises(ValueError, match=f"{field} must lie in {bounds}"):
            build(**{field: value})
    cfg = build(**{field: good}, prior_augment_share=0.3, prior_augment_epochs=2)
    assert (cfg.prior_augment_shift, getattr(cfg, field)) == (0, good)


def test_a_fit_with_turns_sees_fresh_turned_grids_and_the_flag_reaches_the_config(tmp_path):
    from latentlab.fit_prior import parse_args
    torch.manual_seed(0)
    model = tiny(prior_epochs=2, prior_batch_size=64, prior_augment_rotate=10.0)
    x = torch.zeros(128, 1, 28, 28)
    x[:, :, 6:22, 12:16] = torch.rand(128, 1, 16, 4) + 0.1                 # upright strokes
    seen = []
    original = model.encode_dataset
    model.encode_dataset = lambda imgs, **kw: seen.append(imgs.clone()) or original(imgs, **kw)
    fit_prior(model, x, x_val=x[:32])
    assert len(seen) == 2 + 2 and not torch.equal(seen[2], x) and not torch.equal(seen[2], seen[3])
    assert parse_args([str(tmp_path), "--prior-augment-rotate", "12.5"]).prior_augment_rotate == 12.5


def test_a_fit_with_mirrors_needs_the_labels_and_sees_mirrored_grids(tmp_path):
    from latentlab.fit_prior import parse_args
    torch.manual_seed(0)
    model = tiny(prior_epochs=2, prior_batch_size=64, prior_augment_mirror=1.0)
    x = torch.zeros(128, 1, 28, 28)
    x[:, :, 10:18, 4:12] = torch.rand(128, 1, 8, 8) + 0.1            # left half only
    x[64:] = x[64:] + x[64:].flip(-1)                                         # class 1 symmetric
    y = torch.tensor([0] * 64 + [1] * 64)
    with pytest.raises(ValueError, match="needs the training labels"):
        fit_prior(model, x, x_val=x[:32])
    seen = []
    original = model.encode_dataset
    model.encode_dataset = lambda imgs, **kw: seen.append(imgs.clone()) or original(imgs, **kw)
    fit_prior(model, x, x_val=x[:32], y=y)
    # every image of class 1 is mirrored (chance 1), which leaves a symmetric one as it was,
    # and none of class 0 (its mean leans left)
    assert len(seen) == 2 + 2 and torch.equal(seen[2], x) and torch.equal(seen[3], x)
    x[64:, :, :, 14:] = 0                                                     # class 1 leans left,
    x[64:96] = x[64:96].flip(-1)                                # half of it right: a symmetric mean
    seen.clear()
    fit_prior(model, x, x_val=x[:32], y=y)
    assert torch.equal(seen[2][:64], x[:64]) and torch.equal(seen[2][64:], x[64:].flip(-1))
    assert parse_args([str(tmp_path), "--prior-augment-mirror", "0.5"]).prior_augment_mirror == 0.5


# ----------------------------------------------------------------------------- two levels

def tiny2() -> torch.nn.Module:
    from models.vqvae2 import VQVAE2, VQVAE2Config

    return VQVAE2(VQVAE2Config(num_codes=16, top_codes=4, code_dim=8, channels=4, prior_dim=16,
                               prior_layers=1, prior_heads=2, prior_epochs=2,
                               prior_dropout=0.0))


def test_fit_prior_fits_both_levels_of_a_two_level_model_on_validation():
    torch.manual_seed(0)
    model = tiny2()
    model.train()(torch.rand(32, 1, 28, 28))                             # k-means initialises
    x = data.load_split("mnist", train=True)[0][:256]
    before = model.code_prior.nll_per_code(model.encode_dataset(x)).item()
    out = fit_prior(model, x, x_val=data.load_split("mnist", train=True)[0][-64:])
    after = model.code_prior.nll_per_code(model.encode_dataset(x)).item()
    assert after < before and out["prior_train_grids"] == 256 and out["prior_val_grids"] == 64
    assert [h["epoch"] for h in out["prior_val_history"]] == [1, 2]
    assert out["prior_val_rule"] == "lowest validation NLL (the last 64 training images)"
    assert not any(p.requires_grad for p in model.code_prior.parameters())


def test_refit_keeps_a_two_level_auto_encoder_and_its_kind(tmp_path):
    model = tiny2().eval()
    save_checkpoint(tmp_path / "vq2", model, "vqvae2", model.config, {"train_wall_time_s": 10.0})
    metrics = refit_prior(tmp_path / "vq2", {"prior_epochs": 1}, subset=64, val_size=32)
    new, info = load_checkpoint(tmp_path / "vq2")
    assert info.kind == "vqvae2" and info.config.prior_epochs == 1
    for name, value in model.state_dict().items():
        if not name.startswith("code_prior."):
            assert torch.equal(value, new.state_dict()[name]), name
    assert not any(k.startswith("prior_test_nll") for k in metrics)  # scored by evaluate only
