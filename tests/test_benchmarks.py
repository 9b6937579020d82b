"""The benchmark scripts stay runnable: one tiny step of every timed training configuration,
and one call of every timed app view on tiny checkpoints."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_train


@pytest.mark.parametrize("name", list(bench_train.model_specs()))
def test_bench_train_times_every_model(name):
    kind, config = bench_train.model_specs()[name]
    rate = bench_train.time_steps(kind, config, steps=1, batch_size=4, device=torch.device("cpu"))
    assert rate > 0


def test_bench_app_times_every_view_on_tiny_checkpoints(capsys):
    import bench_app

    rows = bench_app.main(["--tiny", "--repeats", "1", "--no-launch"])
    actions = {r[0] for r in rows}
    assert {"reconstruct, all metrics (k=100)", "tab: reconstruct side by side + table + figure",
            "tab: 16-step interpolation + strip + chart + GIF", "tab: decode edited grid + coloured map",
            "latent space tab, first view"} <= actions
    assert all(wall > 0 and cpu >= 0 for _, _, (wall, cpu), _ in rows)
    assert "TINY RANDOM" in capsys.readouterr().out


def test_each_code_prior_row_times_the_settings_its_name_says():
    specs = bench_train.model_specs()
    settings = {name: bench_train.prior_settings(cfg) for name, (kind, cfg) in specs.items()
                if kind == "code_prior"}
    assert settings["code prior 128x6"] == (128, 6, True, False)
    assert settings["code prior 128x6 unfused"] == (128, 6, False, False)
    assert settings["code prior 128x6 bf16"] == (128, 6, True, True)
