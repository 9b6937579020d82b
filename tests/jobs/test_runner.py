"""The device side: chunks resume exactly, respect their limits, and finishing records the
validation protocol like ``latentlab.train.fit``."""

import pytest
import torch

from latentlab.jobs import StepMeter, finish_job, train_chunk
from latentlab.jobs.runner import ChunkLimits, to_cpu


def final_state(events: list) -> dict:
    kind, state = events[-1]
    assert kind == "state"
    return state


@pytest.mark.parametrize("model", ["flow", "vqvae"])
def test_chunk_states_resume_exactly(tiny_spec, model):
    """Epoch by epoch through CPU state equals both epochs at once (codebook, RNGs, Adam)."""
    spec = tiny_spec(model, epochs=2, val_size=500)
    one_go = final_state(list(train_chunk(spec, None)))
    state = final_state(list(train_chunk(spec, None, max_epochs=1)))
    assert state["trainer"]["epoch"] == 1
    chunked = final_state(list(train_chunk(spec, state, max_epochs=1)))
    for name, tensor in one_go["trainer"]["model"].items():
        assert torch.equal(tensor, chunked["trainer"]["model"][name]), name
    assert one_go["trainer"]["history"] == chunked["trainer"]["history"]  # val_* terms included


def test_a_chunk_always_trains_one_epoch_then_respects_its_time_budget(tiny_spec):
    events = list(train_chunk(tiny_spec(epochs=3), None, budget_s=1e-6, report_every_s=3600))
    kinds = [k for k, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "state" and kinds.count("epoch") == 1
    # with a long report interval the host hears about the losses once per epoch, not per step
    assert kinds.count("progress") == 1
    state = final_state(events)
    assert state["trainer"]["epoch"] == 1 and state["completed"] == 1 and not state["stopped"]


def test_each_epoch_reports_its_validation_terms(tiny_spec):
    events = list(train_chunk(tiny_spec(val_size=500), None))
    (logs,) = [p["logs"] for k, p in events if k == "epoch"]
    assert {"val_loss", "val_rec_nll", "val_kl"} <= set(logs)
    no_val = list(train_chunk(tiny_spec(val_size=0), None))
    assert not any(k.startswith("val_") for k, p in no_val if k == "epoch" for k in p["logs"])


def test_a_stop_file_ends_the_chunk_after_the_current_step(tiny_spec, tmp_path):
    stop = tmp_path / "stop"
    stop.touch()
    state = final_state(list(train_chunk(tiny_spec(epochs=3), None, stop_file=str(stop))))
    assert state["stopped"] and state["completed"] == 0


def test_chunk_limits():
    assert ChunkLimits(max_epochs=2).another_epoch_fits([1.0], 1.0)
    assert not ChunkLimits(max_epochs=2).another_epoch_fits([1.0, 1.0], 2.0)
    assert ChunkLimits(budget_s=10).another_epoch_fits([], 0.0)      # the first always runs
    assert ChunkLimits(budget_s=10).another_epoch_fits([4.0], 4.0)   # 4 + 1.2 * 4 <= 10
    assert not ChunkLimits(budget_s=10).another_epoch_fits([5.0], 5.0)
    assert not ChunkLimits(stop_file="").stop_requested()


def test_finishing_records_the_validation_summary(tiny_spec):
    spec = tiny_spec(epochs=2, val_size=500)
    state = final_state(list(train_chunk(spec, None)))
    metrics = finish_job(spec, state)["metrics"]
    assert metrics["val_size"] == 500 and metrics["val_chosen_epoch"] == 2
    assert metrics["val_rule"] == "last epoch (fixed budget)"
    assert [v["epoch"] for v in metrics["val_history"]] == [1, 2]
    assert metrics["val"] == metrics["val_history"][-1] and "test_elbo" in metrics
    assert finish_job(tiny_spec(val_size=0), final_state(
        list(train_chunk(tiny_spec(val_size=0), None))))["metrics"]["val_size"] == 0


def test_keep_best_survives_chunks_and_picks_the_lowest_validation_loss(tiny_spec):
    spec = tiny_spec(epochs=3, val_size=500, keep_best=True, lr=0.05)  # a large step: noisy curve
    state = None
    for _ in range(3):  # one epoch per chunk, as on ZeroGPU
        state = final_state(list(train_chunk(spec, state, max_epochs=1)))
        assert state["best"] is not None and all(t.device.type == "cpu" for t in state["best"][2].values())
    result = finish_job(spec, state)
    history = state["trainer"]["history"]
    best = min(history, key=lambda h: h["val_loss"])["epoch"]
    assert result["metrics"]["val_chosen_epoch"] == best
    assert result["metrics"]["val_rule"] == "lowest val_loss"
    for name, tensor in state["best"][2].items():  # the saved weights are that epoch's
        assert torch.equal(result["weights"][name], tensor), name


def test_step_meter_syncs_once_per_report():
    meter = StepMeter(every_s=3600)
    for v in (1.0, 2.0, 6.0):
        meter.add({"loss": torch.tensor(v), "kl": torch.tensor(2 * v)})
    assert not meter.due()
    assert meter.take() == {"loss": 3.0, "kl": 6.0}
    assert meter.n == 0 and not StepMeter(every_s=0).due()  # nothing to report yet


def test_to_cpu_keeps_the_structure():
    state = {"a": [torch.ones(2, requires_grad=True)], "b": (1, torch.zeros(1)), "c": None}
    out = to_cpu(state)
    assert isinstance(out["b"], tuple) and out["c"] is None and not out["a"][0].requires_grad


def test_a_stop_file_ends_the_code_prior_fit_and_keeps_the_prior_as_far_as_it_got(tiny_spec, tmp_path):
    spec = tiny_spec("vqvae", val_size=500, prior_epochs=5)
    state = final_state(list(train_chunk(spec, None)))
    stop = tmp_path / "stop"
    stop.touch()
    result = finish_job(spec, {**state, "stop_file": str(stop)})
    m = result["metrics"]
    assert m["prior_stopped_early"] is True and m["prior_steps"] == 1 < m["prior_total_steps"]
    assert all(torch.isfinite(v).all() for v in result["weights"].values() if v.is_floating_point())
    assert "test_mse" in m  # evaluated and handed back like any finished job


def test_a_chunk_whose_loss_is_not_finite_stops_the_job(tiny_spec, monkeypatch):
    from latentlab.train import Trainer, TrainingDiverged

    run_epoch = Trainer.run_epoch
    monkeypatch.setattr(Trainer, "run_epoch",
                        lambda self, **kw: {**run_epoch(self, **kw), "loss": float("nan")})
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        list(train_chunk(tiny_spec(epochs=3), None))
