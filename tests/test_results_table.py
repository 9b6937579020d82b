"""scripts/results_table.py: a row of the VAE table says how the model was trained and marks
the validation figure of a refit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "results_table.py"
spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
results_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_table)

METRICS = {"test_nll_iwae": 82.1234, "iwae_k": 1000, "test_elbo": -84.5, "test_kl": 22.0,
           "train_config": {"epochs": 51}, "train_wall_time_s": 1800.0,
           "selected_on_validation": {"val_figures": {"val_elbo": -86.4}}}


def test_a_model_trained_on_the_iwae_bound_is_labelled_and_its_refit_marked():
    row = results_table.vae_row("flow", METRICS, {"iwae_k": 3})
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:4] == ["`flow` (trained on L_3)", "82.12 (k=1000)", "86.40" + results_table.REFIT_MARK,
                         "84.50"]
    assert cells[-2:] == ["51", "30"]


def test_a_polyak_averaged_model_says_so():
    averaged = METRICS | {"train_config": {"epochs": 64, "polyak_decay": 0.999}}
    assert results_table.vae_row("flow", averaged, {"iwae_k": 3}).startswith(
        "| `flow` (trained on L_3, weights averaged) | 82.12 (k=1000) ")
    assert results_table.vae_row("vae", averaged, {}).startswith("| `vae` (weights averaged) |")


def test_an_elbo_trained_model_keeps_its_plain_name():
    for cfg in (None, {"iwae_k": 1}, {}):
        assert results_table.vae_row("vae", {}, cfg).startswith("| `vae` | - ")


def test_a_bound_with_a_larger_k_stands_beside_the_reported_one():
    tight = {"nats": 81.8765, "k": 5000, "images": 10000}
    m = METRICS | {"eval_n_test": 10000, "test_nll_iwae_k5000": tight,
                   "test_nll_iwae_k200": tight | {"k": 200, "nats": 82.5, "images": 500}}
    cell = results_table.vae_row("flow", m).split("|")[2].strip()
    assert cell == "82.12 (k=1000); 82.50 (k=200) (partial); 81.88 (k=5000)"
    same_k = METRICS | {"test_nll_iwae_k1000": tight | {"k": 1000}}
    assert results_table.vae_row("flow", same_k).split("|")[2].strip() == "82.12 (k=1000)"
