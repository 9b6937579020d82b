"""The evaluate CLI end to end on tiny checkpoints trained on a small real subset."""

import json
import sys
import types

import pytest
import torch

from latentlab.evaluate import EvalConfig, evaluate_main, evaluate_model, prior_samples
from latentlab.train import train_main
from models.vae import VAE, VAEConfig

TINY = ["--dataset", "mnist", "--channels", "4", "--subset", "256", "--epochs", "1",
        "--batch-size", "128", "--no-progress"]
QUICK = ["--limit", "64", "--k", "8", "--samples", "64", "--no-progress"]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "mnist-classifier"
    train_main(["--model", "classifier", "--features", "16", "--out", str(out), *TINY])
    return out


def read_metrics(folder) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.parametrize("prior", ["normal", "realnvp"])
def test_evaluate_cli_writes_vae_metrics(tmp_path, classifier_dir, prior):
    out = tmp_path / f"mnist-{prior}"
    train_main(["--model", "vae", "--prior", prior, "--latent-dim", "2", "--hidden", "16",
                "--flow-layers", "2", "--flow-hidden", "8", "--out", str(out), *TINY])
    new = evaluate_main([str(out), *QUICK, "--classifier", str(classifier_dir)])
    m = read_metrics(out)
    assert m["command"].startswith("python -m latentlab.train")      # training's keys survive
    for key in ("test_elbo", "test_rec_nll", "test_kl", "test_nll_iwae", "elbo_surgery",
                "active_units", "active_unit_variances", "kl_per_dim", "sample_quality"):
        assert m[key] == new[key], key
    assert m["eval_command"] == "python -m latentlab.evaluate " + " ".join(
        [str(out), *QUICK, "--classifier", str(classifier_dir)])
    assert m["eval_limit"] == 64 and m["eval_n_test"] == 64 and m["iwae_k"] == 8
    assert m["eval_wall_time_s"] > 0 and "cpu" in m["eval_device"] and m["eval_date"]
    # bounds hold: NLL <= -ELBO, and the surgery parts add up
    assert m["test_nll_iwae"] <= -m["test_elbo"] + 1e-2
    s = m["elbo_surgery"]
    assert s["reconstruction"] - s["mutual_information"] - s["marginal_kl"] == pytest.approx(
        m["test_elbo"], abs=5e-3)
    assert len(m["kl_per_dim"]) == len(m["active_unit_variances"]) == m["latent_dim"] == 2
    q = m["sample_quality"]
    assert q["n_samples"] == 64 and sum(q["class_histogram"]) == 64
    assert 0 <= q["confident_share"] <= 1 and 0 <= q["class_entropy_bits"] <= q["max_entropy_bits"]
    assert m["kl_per_dim_reference"].startswith("prior" if prior == "normal" else "N(0, 1)")


def test_evaluate_cli_on_a_classifier(classifier_dir):
    evaluate_main([str(classifier_dir), "--limit", "64", "--no-progress"])
    m = read_metrics(classifier_dir)
    assert 0 <= m["test_accuracy"] <= 1 and m["test_nll"] > 0 and m["eval_limit"] == 64


def test_vqvae_is_handed_to_vq_eval(monkeypatch):
    calls = {}

    def fake_evaluate_vqvae(model, dataset, n_samples, sample_quality_fn, limit=None):
        calls.update(dataset=dataset, n_samples=n_samples, fn=sample_quality_fn, limit=limit)
        return {"test_mse": 0.01}

    monkeypatch.setitem(sys.modules, "latentlab.vq_eval",
                        types.SimpleNamespace(evaluate_vqvae=fake_evaluate_vqvae))
    judge = object()
    got = evaluate_model(torch.nn.Linear(1, 1), "vqvae", "mnist", EvalConfig(samples=32, limit=10),
                         quality_fn=judge)
    assert got == {"test_mse": 0.01}
    assert calls == {"dataset": "mnist", "n_samples": 32, "fn": judge, "limit": 10}


def test_vq_eval_without_a_limit_scores_and_records_the_full_test_set(monkeypatch):
    def fake_evaluate_vqvae(model, dataset, n_samples=10, sample_quality_fn=None, seed=0):
        return {"seed": seed}

    monkeypatch.setitem(sys.modules, "latentlab.vq_eval",
                        types.SimpleNamespace(evaluate_vqvae=fake_evaluate_vqvae))
    with pytest.warns(UserWarning, match="no limit"):
        got = evaluate_model(torch.nn.Linear(1, 1), "vqvae", "mnist", EvalConfig(limit=10, seed=7))
    assert got == {"seed": 7, "eval_limit": None, "eval_n_test": 10000}


def test_unknown_kind_and_bad_options_fail_early(tmp_path):
    with pytest.raises(ValueError, match="no evaluation"):
        evaluate_model(torch.nn.Linear(1, 1), "gan", "mnist", EvalConfig())
    with pytest.raises(ValueError):
        EvalConfig(k=0)
    with pytest.raises(SystemExit):
        evaluate_main([str(tmp_path / "missing"), "--no-progress"])
    with pytest.raises(SystemExit):
        evaluate_main([str(tmp_path), "--limit", "-1"])


def test_missing_classifier_fails_before_the_long_part(tmp_path):
    out = tmp_path / "vae"
    train_main(["--model", "vae", "--latent-dim", "2", "--hidden", "16", "--out", str(out), *TINY])
    with pytest.raises(FileNotFoundError, match="classifier"):
        evaluate_main([str(out), *QUICK, "--classifier", str(tmp_path / "no-classifier")])
    assert "eval_command" not in read_metrics(out)


def test_prior_samples_are_batched_and_in_range():
    model = VAE(VAEConfig(latent_dim=2, channels=4, hidden=16)).eval()
    x = prior_samples(model, 10, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (10, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
