"""Record, in a refit's metrics.json, the validation run that chose its settings.

The validation protocol's last step (Goodfellow, Bengio and Courville, Deep Learning, 7.8):
once the settings and the number of optimizer steps have been chosen on the held-out
images, train again on all 60,000 training images for as many steps (rounded up to whole
epochs) and score that model on test, once. The refit has seen the validation images, so
its own validation figures would mean nothing: the chosen run's are copied beside it.

    python scripts/record_selection.py model SELECTION_DIR REFIT_DIR   # the whole model
    python scripts/record_selection.py prior SELECTION_DIR REFIT_DIR   # a VQ-VAE's code prior
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from latentlab.checkpoint import update_metrics

RULE = ("settings and optimizer steps chosen on validation (the last 10,000 training images) "
        "by the selection run; refit on all 60,000 training images for as many steps, rounded "
        "up to whole epochs; the test set scored once, on the refit")
# the selection run's keys per stage -> their names in the record (the same for both stages)
KEYS = {"model": {"command": "command", "train_wall_time_s": "train_wall_time_s",
                  "val_split": "val_split", "val_rule": "val_rule",
                  "val_chosen_epoch": "chosen_epoch", "val": "val_figures",
                  "val_history": "val_history", "val_nll_iwae": "val_nll_iwae"},
        "prior": {"prior_command": "command", "prior_train_wall_time_s": "train_wall_time_s",
                  "prior_val_rule": "val_rule", "prior_chosen_epoch": "chosen_epoch",
                  "prior_val_nll_bits_per_code": "val_figures",
                  "prior_val_history": "val_history"}}
REQUIRED = ("command", "chosen_epoch", "val_history")
FIELD = {"model": "selected_on_validation", "prior": "prior_selected_on_validation"}


def selection_record(stage: str, selection: dict) -> dict:
    """The selection run's figures that the refit's settings rest on.

    >>> selection_record("prior", {"prior_command": "c", "prior_chosen_epoch": 10})
    {'rule': 'settings and optimizer steps chosen ...', 'command': 'c', 'chosen_epoch': 10}
    """
    record = {"rule": RULE}
    record.update((name, selection[key]) for key, name in KEYS[stage].items() if key in selection)
    return record


def record(stage: str, selection_dir: Path, refit_dir: Path) -> dict:
    """Add the selection run's record to the refit's metrics.json; returns the new content.
    ``selection_dir`` may also be an earlier refit: its record is carried over, so the shipped
    model can be refit again after the validation run's folder is gone."""
    selection = json.loads((selection_dir / "metrics.json").read_text())
    if FIELD[stage] in selection:
        return update_metrics(refit_dir, {FIELD[stage]: selection[FIELD[stage]]})
    missing = [k for k, name in KEYS[stage].items() if name in REQUIRED and k not in selection]
    if missing:
        raise ValueError(f"{selection_dir} was not chosen on validation: it has no {missing}")
    return update_metrics(refit_dir, {FIELD[stage]: selection_record(stage, selection)})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=sorted(KEYS))
    p.add_argument("selection", type=Path, help="the run whose settings were chosen on validation")
    p.add_argument("refit", type=Path, help="the refit on all training images (rewritten)")
    args = p.parse_args(argv)
    record(args.stage, args.selection, args.refit)
    print(f"{args.refit}/metrics.json: {FIELD[args.stage]} from {args.selection}")


if __name__ == "__main__":
    main()
