"""scripts/record_selection.py: a refit on all training images carries the validation figures
of the run that chose its settings, for the whole model and for a VQ-VAE's code prior."""

from __future__ import annotations

import doctest
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "record_selection.py"
spec = importlib.util.spec_from_file_location("record_selection", SCRIPT)
record_selection = importlib.util.module_from_spec(spec)
spec.loader.exec_module(record_selection)

SELECTION = {
    "model": {"command": "python -m latentlab.train --val-size 10000 --epochs 3",
              "train_wall_time_s": 12.5, "val_split": "the last 10000", "val_rule": "lowest",
              "val_chosen_epoch": 2, "val": {"val_elbo": -85.7, "epoch": 2},
              "val_history": [{"epoch": 1, "val_elbo": -90.0}, {"epoch": 2, "val_elbo": -85.7}]},
    "prior": {"prior_command": "python -m latentlab.fit_prior x --val-size 10000",
              "prior_train_wall_time_s": 7.0, "prior_val_rule": "lowest", "prior_chosen_epoch": 1,
              "prior_val_nll_bits_per_code": 2.45,
              "prior_val_history": [{"epoch": 1, "val_bits_per_code": 2.45}]},
}


def _folder(tmp_path: Path, name: str, metrics: dict) -> Path:
    (tmp_path / name).mkdir()
    (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    return tmp_path / name


@pytest.mark.parametrize("stage", ["model", "prior"])
def test_the_refit_keeps_its_own_figures_and_gains_the_chosen_runs(tmp_path: Path, stage: str):
    chosen = _folder(tmp_path, "chosen", SELECTION[stage])
    refit = _folder(tmp_path, "refit", {"command": "python -m latentlab.train --val-size 0",
                                        "test_elbo": -84.0})
    record_selection.main([stage, str(chosen), str(refit)])
    m = json.loads((refit / "metrics.json").read_text())
    record = m[record_selection.FIELD[stage]]
    assert m["test_elbo"] == -84.0 and m["command"].endswith("--val-size 0")
    assert "--val-size 10000" in record["command"] and "60,000" in record["rule"]
    assert record["chosen_epoch"] == record["val_history"][-1]["epoch"]
    assert record["train_wall_time_s"] == {"model": 12.5, "prior": 7.0}[stage]


@pytest.mark.parametrize("stage", ["model", "prior"])
def test_an_earlier_refit_passes_its_record_on(tmp_path: Path, stage: str):
    chosen = _folder(tmp_path, "chosen", SELECTION[stage])
    first = _folder(tmp_path, "first", {"command": "python -m latentlab.train --val-size 0"})
    record_selection.record(stage, chosen, first)
    again = _folder(tmp_path, "again", {"command": "python -m latentlab.train --val-size 0"})
    m = record_selection.record(stage, first, again)
    field = record_selection.FIELD[stage]
    assert m[field] == json.loads((first / "metrics.json").read_text())[field]
    assert "--val-size 10000" in m[field]["command"]


def test_a_run_not_chosen_on_validation_is_refused(tmp_path: Path):
    chosen = _folder(tmp_path, "chosen", {"command": "python -m latentlab.train --epochs 3"})
    refit = _folder(tmp_path, "refit", {"command": "x"})
    with pytest.raises(ValueError, match="not chosen on validation"):
        record_selection.record("model", chosen, refit)
    assert "selected_on_validation" not in json.loads((refit / "metrics.json").read_text())


def test_doctests():
    assert doctest.testmod(record_selection, optionflags=doctest.ELLIPSIS).failed == 0
