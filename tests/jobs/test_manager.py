"""Training jobs: run, stop, refuse a second job, resume across ZeroGPU-style chunks, estimate."""

import time
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from latentlab.checkpoint import load_checkpoint
from latentlab.errors import BusyError, InputError, UserError
from latentlab.jobs import APP_KINDS, JobStatus, TrainingManager, finish_job, user_checkpoint_dir
from latentlab.jobs.runner import finish_on_gpu, train_chunk_on_gpu

TERMS = {"vae": {"rec_nll", "kl"}, "flow": {"rec_nll", "kl"}, "vqvae": {"recon", "commitment"}}


def wait_for(manager: TrainingManager, condition, timeout: float = 60.0) -> JobStatus:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = manager.status()
        if condition(s):
            return s
        time.sleep(0.01)
    raise AssertionError(f"condition not reached; last status {manager.status()}")


def folder_names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# ----------------------------------------------------------------------------- whole jobs

@pytest.mark.parametrize("model", ["vae", "flow", "vqvae"])
def test_job_runs_to_completion_and_its_checkpoint_loads(manager, saved, tmp_path, tiny_spec, model):
    spec = tiny_spec(model, name="../../my model", val_size=500)
    assert manager.estimate_seconds(spec) is None  # nothing measured on this server yet
    manager.start(spec)
    s = manager.wait(120)
    assert s.phase == "done", s.message
    path = Path(s.checkpoint)
    assert path.parent == tmp_path / "user" and path.name == "my-model"  # sanitized, inside
    _, info = load_checkpoint(path)
    assert info.kind == APP_KINDS[model][0]
    assert info.metrics["epochs_completed"] == 1 and info.metrics["stopped_early"] is False
    assert info.metrics["command"].startswith("python -m latentlab.train --dataset mnist")
    assert ("test_elbo" if model != "vqvae" else "test_mse") in info.metrics
    assert info.metrics["val_size"] == 500 and info.metrics["val_chosen_epoch"] == 1
    assert info.metrics["val"]["epoch"] == 1 and "val_loss" in info.metrics["val"]
    assert saved == [path]  # the registry's refresh hook ran
    with zipfile.ZipFile(s.zip_path) as zf:
        assert sorted(zf.namelist()) == [f"my-model/{f}" for f in
                                         ("config.json", "metrics.json", "model.safetensors")]
    assert s.step == s.total_steps == 8 and s.curve and TERMS[model] <= set(s.curve[-1])
    assert s.validation["epoch"] == 1 and "val_loss" in s.validation
    assert s.grid.dtype == "uint8" and s.grid.ndim == 3
    assert folder_names(tmp_path / "user") == ["my-model"]
    assert manager.estimate_seconds(spec) > 0  # the next job of this kind gets an estimate


def test_stop_before_the_first_epoch_saves_nothing(manager, saved, tmp_path, tiny_spec):
    token = manager.start(tiny_spec(epochs=3))
    assert "stop" in manager.stop(token).lower()
    s = manager.wait(60)
    assert s.phase == "stopped" and s.checkpoint is None and "nothing was saved" in s.message
    assert saved == [] and folder_names(tmp_path / "user") == []


def test_stop_after_an_epoch_saves_a_valid_checkpoint(manager, tmp_path, tiny_spec):
    token = manager.start(tiny_spec(epochs=100, val_size=500))
    s = wait_for(manager, lambda s: s.epochs_done >= 2 and s.eta_s is not None)
    assert s.eta_s > 0 and s.running
    assert "only the person" in manager.stop("not-the-owner").lower()
    assert manager.status().running
    manager.stop(token)
    s = manager.wait(60)
    assert s.phase == "stopped", s.message
    _, info = load_checkpoint(s.checkpoint)
    assert info.metrics["stopped_early"] is True and 2 <= info.metrics["epochs_completed"] < 100
    assert folder_names(tmp_path / "user") == [Path(s.checkpoint).name]  # no half-written folder


def test_a_second_job_is_refused_with_the_running_jobs_progress(manager, tiny_spec):
    token = manager.start(tiny_spec(epochs=100, val_size=500))
    wait_for(manager, lambda s: s.phase == "training")
    with pytest.raises(BusyError, match="one job at a time") as err:
        manager.start(tiny_spec(model="flow"))
    assert "epoch" in str(err.value) and "% done" in str(err.value)
    assert manager.status().model == "vae"  # the first job is untouched
    manager.stop(token)
    assert manager.wait(60).phase in ("stopped", "done")


def test_a_crash_is_reported_and_writes_nothing(tmp_path, tiny_spec):
    def broken_chunk(spec, state, **kw):
        yield "start", {"steps_per_epoch": 1, "device": "cpu"}
        raise RuntimeError("out of memory, say")

    m = TrainingManager(root=tmp_path / "user", chunk_fn=broken_chunk, finish_fn=finish_job,
                        downloads=tmp_path / "zips")
    m.start(tiny_spec())
    s = m.wait(60)
    assert s.phase == "failed" and "out of memory, say" in s.message
    assert folder_names(tmp_path / "user") == []
    m.start(tiny_spec(epochs=1))  # a failed job does not block the next one (no BusyError)
    assert m.wait(60).job_id == 2


# ----------------------------------------------------------------------------- ZeroGPU chunks

def test_two_chunks_give_the_same_weights_as_one_go(tmp_path, tiny_spec):
    calls = []

    def spy(spec, state, **kw):
        if state is not None:  # what crosses a ZeroGPU call boundary lives on the CPU
            assert all(t.device.type == "cpu" for t in state["trainer"]["model"].values())
        calls.append(kw["max_epochs"])
        yield from train_chunk_on_gpu(spec, state, **kw)

    weights = []
    for chunk_epochs in (0, 1):
        m = TrainingManager(root=tmp_path / str(chunk_epochs), chunk_fn=spy,
                            finish_fn=finish_on_gpu, chunk_epochs=chunk_epochs,
                            downloads=tmp_path / "zips")
        m.start(tiny_spec("vae", epochs=2, val_size=500))
        s = m.wait(120)
        assert s.phase == "done", s.message
        weights.append(load_file(Path(s.checkpoint) / "model.safetensors"))
    assert calls == [0, 1, 1]  # one chunk, then two
    one_go, chunked = weights
    for name, tensor in one_go.items():
        assert torch.equal(tensor, chunked[name]), name


# ----------------------------------------------------------------------------- settings

def test_user_folder_comes_from_the_settings(configure, tmp_path):
    configure(user_checkpoints=tmp_path / "mine")
    assert user_checkpoint_dir() == tmp_path / "mine"
    assert TrainingManager().root == tmp_path / "mine"
    configure(user_checkpoints=None, checkpoints=tmp_path / "shipped")
    assert user_checkpoint_dir() == tmp_path / "shipped" / "user"
    assert TrainingManager().shipped_dir == tmp_path / "shipped"


def test_cpu_cap_and_switch_off(manager, configure, tiny_spec):
    configure(cpu_max_image_epochs=100)
    with pytest.raises(InputError, match="capped at 100 image-epochs"):
        manager.start(tiny_spec())
    configure(training=False)
    with pytest.raises(UserError, match="switched off"):
        manager.start(tiny_spec())
    assert manager.status().job_id == 0


def test_a_job_too_short_for_two_progress_reports_still_gives_an_estimate(tmp_path, tiny_spec):
    m = TrainingManager(root=tmp_path / "user", report_every_s=3600.0,  # at most one report
                        downloads=tmp_path / "zips")
    spec = tiny_spec("vae", val_size=500)
    m.start(spec)
    assert m.wait(120).phase == "done"
    assert m.estimate_seconds(spec) > 0


def test_the_status_is_a_snapshot(manager, tiny_spec):
    idle = manager.status()
    assert idle.job_id == 0 and not idle.running and idle.device
    manager.start(tiny_spec(val_size=500))
    first = manager.status()
    s = manager.wait(120)
    assert first.job_id == s.job_id == 1 and first.phase != "done"  # the old snapshot kept its values
    with pytest.raises(AttributeError):
        s.phase = "idle"  # frozen: visitors cannot change the job


# ----------------------------------------------------------------------------- robustness

def test_stop_reaches_the_code_prior_fit_and_the_model_is_saved_with_its_prior_so_far(
        tmp_path, tiny_spec):
    holder = {}

    def finish_after_stop(spec, state):
        assert holder["m"].status().phase == "finishing"
        assert "code prior" in holder["m"].stop(holder["token"])
        return finish_job(spec, state)

    m = holder["m"] = TrainingManager(root=tmp_path / "user", finish_fn=finish_after_stop,
                                      shipped_dir=None, downloads=tmp_path / "zips")
    holder["token"] = m.start(tiny_spec("vqvae", val_size=500, prior_epochs=5))
    s = m.wait(120)
    assert s.phase == "stopped" and "Stopped during the code prior's fit and saved" in s.message
    assert "the code prior ran 1 of" in s.message
    _, info = load_checkpoint(s.checkpoint)
    assert info.metrics["prior_stopped_early"] is True and info.metrics["epochs_completed"] == 1


def test_a_vae_cannot_be_stopped_while_it_is_evaluated(tmp_path, tiny_spec):
    holder = {}

    def finish(spec, state):
        holder["answer"] = holder["m"].stop(holder["token"])
        return finish_job(spec, state)

    m = holder["m"] = TrainingManager(root=tmp_path / "user", finish_fn=finish, shipped_dir=None,
                                      downloads=tmp_path / "zips")
    holder["token"] = m.start(tiny_spec(val_size=500))
    assert m.wait(120).phase == "done" and "cannot be stopped now" in holder["answer"]


def test_a_diverged_job_saves_nothing_and_says_what_to_do(manager, saved, tmp_path, tiny_spec,
                                                         monkeypatch):
    from latentlab.jobs import runner

    def nan_after_training(trainer, **kw):
        with torch.no_grad():
            for p in trainer.model.parameters():
                p.fill_(float("nan"))
        return {}

    monkeypatch.setattr(runner, "after_training", nan_after_training)
    manager.start(tiny_spec(val_size=500))
    s = manager.wait(120)
    assert s.phase == "failed" and s.checkpoint is None
    assert s.message == ("Training diverged (NaN weights); lower the learning rate. "
                         "Nothing was saved.")
    assert saved == [] and folder_names(tmp_path / "user") == []


def test_missing_data_is_refused_before_the_job_starts(manager, configure, tmp_path, tiny_spec):
    from latentlab.errors import DataMissingError

    configure(data_dir=tmp_path / "nothing", cache_dir=tmp_path / "cache")
    with pytest.raises(DataMissingError, match="MNIST is not on this server: run `python -m "
                                               "latentlab.data download"):
        manager.start(tiny_spec())
    assert manager.status().job_id == 0


def _fake_trained(root: Path, name: str, age_s: float, size: int = 10) -> Path:
    import json
    import os

    folder = root / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"source": "Latent Lab Train tab"}))
    (folder / "model.safetensors").write_bytes(b"0" * size)
    stamp = time.time() - age_s
    os.utime(folder, (stamp, stamp))
    return folder


def test_the_oldest_trained_models_make_room_and_the_tab_says_so(manager, configure, tmp_path,
                                                                 tiny_spec):
    user = tmp_path / "user"
    _fake_trained(user, "oldest", 300)
    _fake_trained(user, "older", 200)
    (user / "copied-by-hand").mkdir()  # not trained here (no Train-tab metrics): never removed
    configure(max_user_models=2)
    manager.start(tiny_spec(name="fresh", val_size=500))
    s = manager.wait(120)
    assert s.phase == "done"
    assert "at most 2 trained models" in s.message and "the oldest ('oldest') was removed" in s.message
    assert folder_names(user) == ["copied-by-hand", "fresh", "older"]


def test_the_total_size_limit_removes_the_oldest_too(manager, configure, tmp_path, tiny_spec):
    user = tmp_path / "user"
    _fake_trained(user, "big", 300, size=3 * 2**20)
    _fake_trained(user, "small", 200)
    configure(max_user_bytes=2 * 2**20)
    manager.start(tiny_spec(name="fresh", val_size=500))
    s = manager.wait(120)
    assert s.phase == "done" and "('big') was removed" in s.message
    assert folder_names(user) == ["fresh", "small"]


def test_one_visitor_cannot_overwrite_or_poison_anothers_model(manager, tmp_path, tiny_spec):
    shipped = tmp_path / "shipped" / "mnist-vae-z2"
    shipped.mkdir(parents=True)
    manager.start(tiny_spec(name="mine", val_size=500))
    first = Path(manager.wait(120).checkpoint)
    before = {f.name: f.read_bytes() for f in first.iterdir()}
    paths = []
    for name in ("mine", "../user/mine", "mnist-vae-z2", "mine/../../evil"):
        manager.start(tiny_spec(name=name, val_size=500, seed=1))
        paths.append(Path(manager.wait(120).checkpoint))
    assert [p.name for p in paths] == ["mine-2", "user-mine", "mnist-vae-z2-2", "mine-evil"]
    assert all(p.parent == tmp_path / "user" for p in paths)  # inside the user folder, always
    assert {f.name: f.read_bytes() for f in first.iterdir()} == before  # untouched
    assert list(shipped.iterdir()) == []  # a shipped name is never taken
