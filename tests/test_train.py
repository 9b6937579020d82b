"""The training engine and CLI, end to end on a tiny subset of the real data."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from latentlab import settings, vq_eval
from latentlab.checkpoint import load_checkpoint
from latentlab.train import TrainConfig, Trainer, after_training, train_main
from models.vae import VAE, VAEConfig

REPO = Path(__file__).resolve().parents[1]
VQ_FLAGS = ["--num-codes", "16", "--code-dim", "8", "--channels", "4", "--prior-dim", "16",
            "--prior-layers", "1", "--prior-heads", "2"]

TINY = ["--channels", "4", "--hidden", "16", "--subset", "256", "--batch-size", "64", "--no-progress"]


@pytest.mark.parametrize("prior", ["normal", "realnvp"])
def test_train_cli_writes_a_loadable_checkpoint(tmp_path, prior):
    out = tmp_path / "ck"
    train_main(["--dataset", "mnist", "--model", "vae", "--prior", prior, "--latent-dim", "2",
                "--epochs", "2", "--kl-warmup-epochs", "1", "--flow-layers", "2", "--out", str(out), *TINY])
    _, info = load_checkpoint(out)
    assert info.config.prior == prior and info.config.latent_dim == 2
    m = info.metrics
    assert m["command"].startswith("python -m latentlab.train --dataset mnist")
    assert m["train_config"]["epochs"] == 2 and "cpu" in m["device"] and m["date"]
    assert m["train_wall_time_s"] > 0 and m["train_cpu_time_s"] > 0
    # a run with a validation split is a selection run: it must not look at the test set
    assert m["val_size"] > 0 and m["test_scored"] is False and "test_elbo" not in m
    assert m["train_steal_share"] is None or 0 <= m["train_steal_share"] <= 1


def test_classifier_cli(tmp_path):
    out = tmp_path / "clf"
    train_main(["--dataset", "fashion", "--model", "classifier", "--epochs", "1", "--features", "8",
                "--val-size", "0", "--out", str(out), *[a for a in TINY if a not in ("--hidden", "16")]])
    _, info = load_checkpoint(out)
    assert 0.0 <= info.metrics["test_accuracy"] <= 1.0 and info.metrics["test_scored"] is True


@pytest.mark.parametrize("polyak", [0.0, 0.9])
def test_trainer_learns_and_resumes_exactly(polyak):
    cfg = TrainConfig(epochs=2, subset=256, batch_size=64, lr=1e-3, polyak_decay=polyak)
    make = lambda: VAE(VAEConfig(latent_dim=2, channels=4, hidden=16))
    torch.manual_seed(0)
    straight = Trainer(make(), cfg)
    first = straight.run_epoch()
    second = straight.run_epoch()
    assert second["loss"] < first["loss"]  # it learns
    torch.manual_seed(0)
    a = Trainer(make(), cfg)
    a.run_epoch()
    state = a.state_dict()
    torch.manual_seed(1)  # a different process state must not matter when resuming
    b = Trainer(make(), cfg)
    b.load_state_dict(state)
    b.run_epoch()
    for (name, p), q in zip(straight.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert straight.weights().keys() == b.weights().keys()
    for (name, p), q in zip(straight.weights().items(), b.weights().values()):
        assert torch.allclose(p, q, atol=1e-6), name  # the average resumes too


def test_stop_callback_ends_the_epoch_early():
    t = Trainer(VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)), TrainConfig(epochs=1, subset=512, batch_size=64))
    logs = t.run_epoch(should_stop=lambda: True)
    assert logs["stopped"] is True and logs["epoch"] == 1


def test_bad_training_config_fails_early():
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)


def test_vqvae_cli_trains_fits_the_prior_and_saves_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "mnist-vqvae-tiny"
    train_main(["--model", "vqvae", "--dataset", "mnist", "--epochs", "1", "--subset", "256",
                "--batch-size", "64", "--prior-epochs", "1", "--no-progress", "--out", str(out),
                *VQ_FLAGS])
    model, info = load_checkpoint(out)
    assert info.kind == "vqvae" and info.config.num_codes == 16 and info.config.prior_epochs == 1
    for key in ("prior_train_nll_bits_per_code", "prior_train_wall_time_s"):
        assert key in info.metrics, key
    # a selection run (the default validation split): neither stage looked at the test set
    assert info.metrics["test_scored"] is False
    assert not [k for k in info.metrics
                if k.startswith(("test_", "prior_test_")) and k != "test_scored"]
    assert info.metrics["prior_train_grids"] == 256
    assert 0 < info.metrics["prior_train_nll_bits_per_code"] < 2 * math.log2(16)
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)


def test_after_training_fits_a_vqvae_prior_and_nothing_else():
    from models.vqvae import VQVAE, VQVAEConfig

    cfg = TrainConfig(model="vqvae", epochs=1, subset=64, batch_size=32, val_size=0)
    vq = VQVAE(VQVAEConfig(num_codes=8, code_dim=4, channels=4, prior_dim=16, prior_layers=1,
                           prior_heads=2, prior_epochs=1))
    before = {k: v.clone() for k, v in vq.code_prior.state_dict().items()}
    out = after_training(Trainer(vq, cfg))
    assert out["prior_train_grids"] == 64
    assert any(not torch.equal(v, before[k]) for k, v in vq.code_prior.state_dict().items())
    vae = Trainer(VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)),
                  TrainConfig(epochs=1, subset=64, val_size=0))
    assert after_training(vae) == {}


@pytest.mark.parametrize("posterior, prior", [("deterministic", "normal"),
                                              ("categorical", "uniform")])
def test_new_vae_variants_train_and_get_quick_metrics(tmp_path, posterior, prior):
    out = tmp_path / posterior
    train_main(["--model", "vae", "--posterior", posterior, "--prior", prior, "--latent-dim", "3",
                "--categories", "4", "--epochs", "1", "--val-size", "0", "--out", str(out), *TINY])
    _, info = load_checkpoint(out)
    key = "test_rec_nll" if posterior == "deterministic" else "test_elbo"
    assert info.config.posterior == posterior and info.metrics[key] != 0
    assert ("test_elbo" in info.metrics) == (posterior != "deterministic")


def test_data_root_flag_configures_the_settings_not_the_environment(tmp_path, monkeypatch):
    seen = {}

    def fake_fit(model, model_cfg, cfg, out, command, progress=True):
        seen["root"] = settings.current().data_root
        return Path(out)

    monkeypatch.setattr("latentlab.train.fit", fake_fit)
    before = dict(os.environ)
    try:
        train_main(["--model", "vae", "--data-root", str(tmp_path), "--out", str(tmp_path / "o"),
                    "--no-progress"])
    finally:
        settings.reset()
    assert seen["root"] == tmp_path and dict(os.environ) == before


def test_train_and_evaluate_do_not_import_each_other():
    code = ("import sys, latentlab.evaluate; assert 'latentlab.train' not in sys.modules; "
            "import latentlab.train")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.parametrize("changes", [{"lr": float("nan")}, {"lr": float("inf")}, {"lr": 0.0},
                                     {"kl_warmup_epochs": float("nan")}, {"min_lr_ratio": 2.0}])
def test_non_finite_training_numbers_fail_early(changes):
    with pytest.raises(ValueError, match="finite|min_lr_ratio"):
        TrainConfig(**changes)


@pytest.mark.parametrize("flags, message", [(["--lr", "inf"], "lr a finite number"),
                                            (["--latent-dim", "100000000"], "latent_dim must lie")])
def test_the_cli_refuses_bad_numbers_in_one_line(tmp_path, monkeypatch, flags, message):
    monkeypatch.setattr("latentlab.train.fit", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(SystemExit, match=message):
        train_main(["--model", "vae", "--out", str(tmp_path / "o"), *flags])


def test_a_model_whose_weights_become_nan_is_not_saved(tmp_path, monkeypatch):
    from latentlab.train import TrainingDiverged

    run_epoch = Trainer.run_epoch

    def diverging(self, *args, **kwargs):
        logs = run_epoch(self, *args, **kwargs)
        with torch.no_grad():
            next(self.model.parameters()).fill_(float("nan"))
        return logs

    monkeypatch.setattr(Trainer, "run_epoch", diverging)
    out = tmp_path / "ck"
    with pytest.raises(TrainingDiverged, match=r"Training diverged \(NaN weights\); lower the "
                                               r"learning rate"):
        train_main(["--model", "vae", "--latent-dim", "2", "--epochs", "1", "--val-size", "100",
                    "--out", str(out), *TINY])
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_two_level_vqvae_cli_trains_both_levels_and_fits_the_hierarchical_prior(tmp_path):
    out = tmp_path / "mnist-vqvae2-tiny"
    train_main(["--model", "vqvae2", "--top-codes", "4", "--epochs", "2", "--subset", "256",
                "--batch-size", "64", "--val-size", "128", "--keep-best", "true",
                "--prior-epochs", "1", "--no-progress", "--out", str(out), *VQ_FLAGS])
    model, info = load_checkpoint(out)
    m = info.metrics
    assert info.kind == "vqvae2" and info.config.top_codes == 4
    assert {"perplexity_top", "perplexity_bottom", "val_recon"} <= set(m["final_epoch"])
    assert m["val_chosen_epoch"] in (1, 2) and m["prior_train_grids"] == 256
    assert m["prior_val_grids"] == 128
    assert m["test_scored"] is False  # a selection run: latentlab.evaluate scores test later
    scored = vq_eval.reconstruction_metrics(model, "mnist", limit=256)
    for level, k in (("top", 4), ("bottom", 16)):
        assert 0 < scored[f"{level}_codebook_usage"] <= 1
        assert scored[f"uniform_prior_nll_bits_per_code_{level}"] == math.log2(k)
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)


def test_weight_decay_switches_to_adamw_and_rejects_bad_values():
    model = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16))
    t = Trainer(model, TrainConfig(epochs=1, subset=128, batch_size=64, val_size=100,
                                   weight_decay=0.03))
    assert isinstance(t.optimizer, torch.optim.AdamW)
    assert t.optimizer.param_groups[0]["weight_decay"] == 0.03
    plain = Trainer(model, TrainConfig(epochs=1, subset=128, batch_size=64, val_size=100))
    assert type(plain.optimizer) is torch.optim.Adam
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="weight_decay"):
            TrainConfig(weight_decay=bad)


def test_polyak_averaging_leaves_training_alone_and_saves_the_average():
    def run(decay: float) -> Trainer:
        torch.manual_seed(0)
        t = Trainer(VAE(VAEConfig(latent_dim=2, channels=4, hidden=16, prior="realnvp",
                                  flow_layers=2)),
                    TrainConfig(epochs=2, subset=256, batch_size=64, val_size=200,
                                polyak_decay=decay))
        t.history = [t.run_epoch() for _ in range(2)]
        return t

    plain, averaged = run(0.0), run(0.9)
    # the average is only read: the optimizer's path and its losses are the same
    assert [h["loss"] for h in plain.history] == [h["loss"] for h in averaged.history]
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, averaged.model.state_dict()[k]), k
    # validation scores the averaged weights, and those are the ones restored to be saved
    assert plain.history[-1]["val_loss"] != averaged.history[-1]["val_loss"]
    shadow = {k: v.clone() for k, v in averaged.average.shadow.items()}
    averaged.restore_best()
    for k, v in shadow.items():
        assert torch.equal(averaged.model.state_dict()[k], v), k
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="polyak_decay"):
            TrainConfig(polyak_decay=bad)
