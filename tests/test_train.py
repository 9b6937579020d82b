"""The training engine and CLI, end to end on a tiny subset of the real data."""

import pytest
import torch

from latentlab.checkpoint import load_checkpoint
from latentlab.train import TrainConfig, Trainer, train_main
from models.vae import VAE, VAEConfig

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
    assert m["test_elbo"] < 0 and m["train_wall_time_s"] > 0


def test_classifier_cli(tmp_path):
    out = tmp_path / "clf"
    train_main(["--dataset", "fashion", "--model", "classifier", "--epochs", "1", "--features", "8",
                "--out", str(out), *[a for a in TINY if a not in ("--hidden", "16")]])
    _, info = load_checkpoint(out)
    assert 0.0 <= info.metrics["test_accuracy"] <= 1.0


def test_trainer_learns_and_resumes_exactly():
    cfg = TrainConfig(epochs=2, subset=256, batch_size=64, lr=1e-3)
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


def test_stop_callback_ends_the_epoch_early():
    t = Trainer(VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)), TrainConfig(epochs=1, subset=512, batch_size=64))
    logs = t.run_epoch(should_stop=lambda: True)
    assert logs["stopped"] is True and logs["epoch"] == 1


def test_bad_training_config_fails_early():
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
