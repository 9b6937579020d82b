"""The benchmark scripts stay runnable: one tiny step of every timed training configuration."""

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
