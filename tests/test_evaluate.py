"""The evaluate CLI end to end on tiny checkpoints trained on a small real subset, and each
model kind's evaluation on tiny untrained models."""

import json
import math

import pytest
import torch

from latentlab import data
from latentlab.evaluate import (
    NOT_GAUSSIAN,
    EvalConfig,
    evaluate_main,
    evaluate_model,
    parse_args,
    prior_samples,
    tighter_nll,
)
from latentlab.train import train_main
from models.vae import VAE, VAEConfig
from models.vqvae import VQVAE, VQVAEConfig

TINY = ["--dataset", "mnist", "--channels", "4", "--subset", "256", "--epochs", "1",
        "--batch-size", "128", "--no-progress"]
QUICK = ["--limit", "64", "--k", "8", "--samples", "64", "--no-progress"]
FAST = EvalConfig(k=4, limit=32, samples=16, elbo_samples=2, progress=False)


def fake_quality(images: torch.Tensor, dataset: str) -> dict:
    """Stands in for the classifier: checks the images and reports how many it saw."""
    assert images.dim() == 4 and images.shape[1:] == (1, 28, 28), images.shape
    assert 0 <= images.min() and images.max() <= 1 and dataset == "mnist"
    return {"n_samples": len(images), "confident_share": 0.5}


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
    assert m["val_size"] > 0 and m["test_scored"] is True  # the selection run's false gives way
    for key in ("test_elbo", "test_rec_nll", "test_kl", "test_nll_iwae", "elbo_surgery",
                "active_units", "active_unit_variances", "kl_per_dim", "sample_quality"):
        assert m[key] == new[key], key
    assert m["eval_command"] == "python -m latentlab.evaluate " + " ".join(
        [str(out), *QUICK, "--classifier", str(classifier_dir)])
    assert m["eval_limit"] == 64 and m["eval_n_test"] == 64 and m["iwae_k"] == 8
    assert m["eval_binarization_seed"] == data.TEST_BINARIZATION_SEED
    # rounded to 0.1 s, so a 64-image run of a tiny model may read 0.0
    assert m["eval_wall_time_s"] >= 0 and "cpu" in m["eval_device"] and m["eval_date"]
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
    evaluate_main([str(classifier_dir), "--subset", "64", "--no-progress"])
    m = read_metrics(classifier_dir)
    assert 0 <= m["test_accuracy"] <= 1 and m["test_nll"] > 0
    assert m["eval_limit"] == m["eval_n_test"] == 64


def test_subset_is_an_alias_of_limit_and_the_binarization_seed_is_an_option():
    _, cfg, _ = parse_args(["ck", "--subset", "5", "--binarization-seed", "9"])
    assert cfg.limit == 5 and cfg.binarization_seed == 9
    _, cfg, _ = parse_args(["ck", "--limit", "7"])
    assert cfg.limit == 7 and cfg.binarization_seed == data.TEST_BINARIZATION_SEED


def test_nll_only_keeps_a_larger_k_beside_the_reported_figures(tmp_path):
    out = tmp_path / "mnist-flow"
    train_main(["--model", "vae", "--prior", "realnvp", "--latent-dim", "2", "--hidden", "16",
                "--flow-layers", "2", "--flow-hidden", "8", "--out", str(out), *TINY])
    evaluate_main([str(out), "--limit", "64", "--k", "4", "--samples", "0", "--no-progress"])
    before = read_metrics(out)
    # no judge is loaded for the bound alone: a missing classifier does not matter
    args = [str(out), "--nll-only", "--limit", "64", "--k", "64", "--no-progress",
            "--classifier", str(tmp_path / "no-classifier")]
    new = evaluate_main(args)
    after = read_metrics(out)
    tight = after["test_nll_iwae_k64"]
    assert new == {"test_nll_iwae_k64": tight}
    assert {k: after[k] for k in before} == before               # the k=4 figures stay
    assert (tight["k"], tight["images"], tight["binarization_seed"]) == (64, 64, 1234)
    assert tight["command"] == "python -m latentlab.evaluate " + " ".join(args)
    # L_k tightens with k: the k=64 bound lies below the k=4 one on the same images
    assert tight["nats"] < before["test_nll_iwae"] and 0 < tight["sem"] < tight["nats"]


def test_tighter_nll_is_the_reported_bound_for_the_same_k_and_needs_a_density():
    model = tiny_vae("gaussian", "realnvp")
    m = evaluate_model(model, "vae", "mnist", FAST)
    assert tighter_nll(model, "mnist", FAST)["nats"] == m["test_nll_iwae"]  # same random stream
    with pytest.raises(ValueError, match="posterior density"):
        tighter_nll(tiny_vae("deterministic", "normal"), "mnist", FAST)


# ----------------------------------------------------------------------------- per posterior

def tiny_vae(posterior: str, prior: str) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(latent_dim=3, categories=4, channels=4, hidden=16, posterior=posterior,
                         prior=prior)).eval()


def test_binarization_seed_changes_the_bits_and_is_recorded():
    model = tiny_vae("gaussian", "normal")
    cfg = {"k": 2, "limit": 16, "samples": 0, "elbo_samples": 1, "progress": False}
    a = evaluate_model(model, "vae", "mnist", EvalConfig(**cfg))
    b = evaluate_model(model, "vae", "mnist", EvalConfig(**cfg, binarization_seed=99))
    assert a["eval_binarization_seed"] == data.TEST_BINARIZATION_SEED
    assert b["eval_binarization_seed"] == 99 and a["test_rec_nll"] != b["test_rec_nll"]


def test_autoencoder_gets_reconstruction_code_statistics_and_samples():
    model = tiny_vae("deterministic", "normal")
    m = evaluate_model(model, "vae", "mnist", FAST, quality_fn=fake_quality)
    assert m["test_rec_nll"] > 0 and m["latent_dim"] == 3
    assert len(m["code_mean"]) == len(m["code_std"]) == 3 and min(m["code_std"]) >= 0
    mean, std = torch.tensor(m["code_mean"]), torch.tensor(m["code_std"])
    kl = 0.5 * (mean.pow(2) + std.pow(2) - 1 - 2 * std.log()).sum().item()
    assert m["code_gaussian_kl"] == pytest.approx(kl, rel=1e-2, abs=1e-2)
    assert m["sample_quality"] == {"n_samples": 16, "confident_share": 0.5}
    for key in ("test_elbo", "test_nll_iwae", "elbo_surgery", "active_units"):
        assert key not in m, key
    assert m["surgery"] == NOT_GAUSSIAN and m["elbo"].startswith("n/a")


def test_gumbel_softmax_vae_gets_elbo_exact_kl_iwae_and_samples():
    model = tiny_vae("categorical", "uniform")
    m = evaluate_model(model, "vae", "mnist", FAST, quality_fn=fake_quality)
    assert m["test_elbo"] == pytest.approx(-(m["test_rec_nll"] + m["test_kl"]), abs=2e-3)
    assert 0 <= m["test_kl"] <= 3 * math.log(4) + 1e-3  # KL to a uniform <= N log K
    assert m["test_nll_iwae"] <= -m["test_elbo"] + 1e-2 and m["iwae_k"] == 4
    assert (m["latent_dim"], m["categories"]) == (3, 4)
    assert m["sample_quality"]["n_samples"] == 16 and m["surgery"] == NOT_GAUSSIAN
    assert "elbo_surgery" not in m and "active_units" not in m and "kl_per_dim" not in m


# ----------------------------------------------------------------------------- VQ-VAE

def test_vqvae_evaluation_reports_all_metrics_on_a_subset():
    x = data.load_split("mnist", train=False)[0][:64]
    model = VQVAE(VQVAEConfig(num_codes=16, code_dim=8, channels=4, prior_dim=16,
                              prior_layers=1, prior_heads=2))
    model.train()(x)  # k-means initialisation and one EMA step
    seen = []

    def quality(images: torch.Tensor, dataset: str) -> dict:
        seen.append(len(images))
        return fake_quality(images, dataset)

    cfg = EvalConfig(limit=40, samples=7, progress=False)
    m = evaluate_model(model, "vqvae", "mnist", cfg, quality_fn=quality)
    assert m["eval_n_test"] == 40 and not model.training
    assert m["test_psnr_db"] == pytest.approx(10 * math.log10(1 / m["test_mse"]), abs=0.01)
    assert 0 < m["codebook_usage"] <= 1 and 1 <= m["codebook_perplexity"] <= 16
    assert m["dead_codes"] == round(16 * (1 - m["codebook_usage"]))
    assert m["uniform_prior_nll_bits_per_code"] == pytest.approx(4.0)
    assert math.isfinite(m["prior_test_nll_bits_per_code"])
    assert m["learned_prior_confident_share"] == 0.5 and m["uniform_prior_confident_share"] == 0.5
    assert set(m["learned_prior_temperature_sweep"]) == {"0.7", "0.8", "0.9"}
    assert m["test_images_n_samples"] == m["reconstruction_n_samples"] == 40
    # learned, uniform, the three sweep temperatures, then the test subset and its reconstructions
    assert seen == [7] * 5 + [40] * 2


def test_two_level_vqvae_evaluation_reports_each_level():
    from models.vqvae2 import VQVAE2, Codes, VQVAE2Config

    x = data.load_split("mnist", train=False)[0][:64]
    model = VQVAE2(VQVAE2Config(num_codes=16, top_codes=4, code_dim=8, channels=4, prior_dim=16,
                                prior_layers=1, prior_heads=2))
    model.train()(x)
    m = evaluate_model(model, "vqvae2", "mnist", EvalConfig(limit=40, samples=5, progress=False),
                       quality_fn=fake_quality)
    codes = model.encode_to_indices(x[:40])
    for level, k, grids in (("top", 4, codes.top), ("bottom", 16, codes.bottom)):
        used = len(grids.unique())
        assert m[f"{level}_codebook_usage"] == round(used / k, 4)
        assert m[f"{level}_dead_codes"] == k - used
        assert m[f"uniform_prior_nll_bits_per_code_{level}"] == math.log2(k)
    lp = model.prior("learned").log_prob_per_level(Codes(codes.top, codes.bottom))
    top_bits = -lp.top.mean().item() / 4 / math.log(2)
    bottom_bits = -lp.bottom.mean().item() / 49 / math.log(2)
    assert m["prior_test_nll_bits_per_code_top"] == pytest.approx(top_bits, abs=1e-3)
    assert m["prior_test_nll_bits_per_code_bottom"] == pytest.approx(bottom_bits, abs=1e-3)
    assert m["prior_test_nll_bits_per_code"] == pytest.approx(
        (4 * top_bits + 49 * bottom_bits) / 53, abs=1e-3)
    assert m["uniform_prior_nll_bits_per_image"] == 4 * 2 + 49 * 4
    assert m["learned_prior_confident_share"] == 0.5 and m["eval_n_test"] == 40
    assert "same_top_class_agreement" not in m                # no judge of classes given


def test_same_top_agreement_counts_the_groups_majority_class():
    from latentlab.vq_eval import _agreement, same_top_agreement
    from models.vqvae2 import VQVAE2, VQVAE2Config

    labels = torch.tensor([[1, 1, 2, 1], [3, 0, 3, 3], [5, 6, 7, 8]])
    assert _agreement(labels) == (3 + 3 + 1) / 12
    torch.manual_seed(0)
    model = VQVAE2(VQVAE2Config(num_codes=8, top_codes=4, code_dim=4, channels=4, prior_dim=16,
                                prior_layers=1, prior_heads=2)).eval()
    # a judge that reads only the top code of the first cell: fixed tops agree fully
    seen = []

    def by_top(images: torch.Tensor) -> torch.Tensor:
        seen.append(len(images))
        return torch.arange(len(images)) // 4 % 2 if len(seen) == 1 else torch.arange(len(images)) % 3

    m = same_top_agreement(model, by_top, groups=6, per_group=4, batch_size=5)
    assert m["same_top_class_agreement"] == 1.0 and seen == [24, 24]
    assert m["independent_class_agreement"] == round(_agreement((torch.arange(24) % 3).view(6, 4)), 4)


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
