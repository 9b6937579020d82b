"""The shipped checkpoints keep the promises the README makes about them: each metrics.json
records the training command with its wall time (one hour of CPU training at most per model), models trained under the validation protocol carry their validation figures,
and every shipped file stays under the 10 MB a Space takes without LFS."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in (REPO / "checkpoints").iterdir() if (p / "metrics.json").is_file())
HOUR_S = 3600.0


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _flag(command: str, name: str) -> str | None:
    words = shlex.split(command)
    return words[words.index(name) + 1] if name in words else None


def test_there_are_shipped_checkpoints():
    assert len(SHIPPED) >= 10


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_made_by_a_recorded_command_within_the_hour(folder: Path):
    m = _metrics(folder)
    assert m["command"].startswith("python -m latentlab.train ")
    assert {"device", "date"} <= m.keys()
    # train_wall_time_s counts both stages of a VQ-VAE (auto-encoder + code prior)
    assert 0 < m["train_wall_time_s"] <= HOUR_S, f"{folder.name}: {m['train_wall_time_s']} s"


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_validation_figures_beside_the_protocols_commands(folder: Path):
    m = _metrics(folder)
    if int(_flag(m["command"], "--val-size") or 0) > 0:
        assert m["val_size"] == int(_flag(m["command"], "--val-size"))
        chosen = m["val_chosen_epoch"]
        assert any(r["epoch"] == chosen for r in m["val_history"]) and m["val_rule"]
    if "prior_command" in m and int(_flag(m["prior_command"], "--val-size") or 0) > 0:
        epochs = [r["epoch"] for r in m["prior_val_history"]]
        assert m["prior_chosen_epoch"] in epochs and m["prior_val_rule"]
        assert m["prior_val_nll_bits_per_code"] == min(r["val_bits_per_code"]
                                                      for r in m["prior_val_history"])


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_a_refit_on_all_training_images_names_the_run_that_chose_it(folder: Path):
    """--val-size 0 is the protocol's last step: the chosen run's figures come along."""
    m = _metrics(folder)
    stages = [("command", "selected_on_validation", "val_history", "chosen_epoch"),
              ("prior_command", "prior_selected_on_validation", "val_history", "chosen_epoch")]
    for command, field, history, chosen in stages:
        if command in m and _flag(m[command], "--val-size") == "0":
            record = m[field]
            assert record["rule"] and "--val-size 10000" in record[command.removeprefix("prior_")]
            assert any(r["epoch"] == record[chosen] for r in record[history])


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_files_fit_a_space_without_lfs(folder: Path):
    for f in folder.iterdir():
        assert f.stat().st_size < 10 * 2**20, f
