"""Training jobs: run, stop, refuse a second job, resume across ZeroGPU-style chunks."""

import importlib.util
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from latentlab import jobs, zerogpu
from latentlab.checkpoint import load_checkpoint
from latentlab.jobs import JobBusyError, JobSpec, StepMeter, TrainingManager

TINY = {"vae": {"channels": 8, "hidden": 32},
        "flow": {"channels": 8, "hidden": 32, "flow_layers": 2, "flow_hidden": 16},
        "vqvae": {"channels": 4, "prior_dim": 16, "prior_layers": 1, "prior_heads": 2}}
TERMS = {"vae": {"rec_nll", "kl"}, "flow": {"rec_nll", "kl"}, "vqvae": {"recon", "commitment"}}


def tiny_spec(model: str = "vae", **kw) -> JobSpec:
    base = {"model": model, "latent_dim": 2, "subset": 256, "batch_size": 32, "epochs": 1,
            "model_options": TINY[model]}
    if model == "vqvae":
        base.update(latent_dim=4, num_codes=16, prior_epochs=1)
    return JobSpec(**{**base, **kw})


@pytest.fixture
def saved():
    return []


@pytest.fixture
def manager(tmp_path, saved):
    m = TrainingManager(root=tmp_path / "user", report_every_s=0.05, on_saved=saved.append,
                        shipped_dir=tmp_path / "shipped", downloads=tmp_path / "zips")
    yield m
    if m.status().running:  # never leave a thread training behind a failed assertion
        m.stop(m._job.token)
        m.wait(60)


def wait_for(manager: TrainingManager, condition, timeout: float = 60.0) -> jobs.JobStatus:
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
def test_job_runs_to_completion_and_its_checkpoint_loads(manager, saved, tmp_path, model):
    spec = tiny_spec(model, name="../../my model")
    assert manager.estimate_seconds(spec) is None  # nothing measured on this server yet
    manager.start(spec)
    s = manager.wait(120)
    assert s.phase == "done", s.message
    path = Path(s.checkpoint)
    assert path.parent == tmp_path / "user" and path.name == "my-model"  # sanitized, inside
    _, info = load_checkpoint(path)
    assert info.kind == jobs.APP_KINDS[model][0]
    assert info.metrics["epochs_completed"] == 1 and info.metrics["stopped_early"] is False
    assert info.metrics["command"].startswith("python -m latentlab.train --dataset mnist")
    assert ("test_elbo" if model != "vqvae" else "test_mse") in info.metrics
    assert saved == [path]  # the registry's refresh hook ran
    with zipfile.ZipFile(s.zip_path) as zf:
        assert sorted(zf.namelist()) == [f"my-model/{f}" for f in
                                         ("config.json", "metrics.json", "model.safetensors")]
    assert s.step == s.total_steps == 8 and s.curve and TERMS[model] <= set(s.curve[-1])
    assert s.grid.dtype == "uint8" and s.grid.ndim == 3
    assert folder_names(tmp_path / "user") == ["my-model"]
    assert manager.estimate_seconds(spec) > 0  # the next job of this kind gets an estimate


def test_stop_before_the_first_epoch_saves_nothing(manager, saved, tmp_path):
    token = manager.start(tiny_spec(epochs=3))
    assert "stop" in manager.stop(token).lower()
    s = manager.wait(60)
    assert s.phase == "stopped" and s.checkpoint is None and "nothing was saved" in s.message
    assert saved == [] and folder_names(tmp_path / "user") == []


def test_stop_after_an_epoch_saves_a_valid_checkpoint(manager, tmp_path):
    token = manager.start(tiny_spec(epochs=200))
    s = wait_for(manager, lambda s: s.epochs_done >= 2 and s.eta_s is not None)
    assert s.eta_s > 0 and s.running
    assert "only the person" in manager.stop("not-the-owner").lower()
    assert manager.status().running
    manager.stop(token)
    s = manager.wait(60)
    assert s.phase == "stopped", s.message
    _, info = load_checkpoint(s.checkpoint)
    assert info.metrics["stopped_early"] is True and 2 <= info.metrics["epochs_completed"] < 200
    assert folder_names(tmp_path / "user") == [Path(s.checkpoint).name]  # no half-written folder


def test_a_second_job_is_refused_with_the_running_jobs_progress(manager):
    token = manager.start(tiny_spec(epochs=200))
    wait_for(manager, lambda s: s.phase == "training")
    with pytest.raises(JobBusyError, match="one job at a time") as err:
        manager.start(tiny_spec(model="flow"))
    assert "epoch" in str(err.value) and "% done" in str(err.value)
    assert manager.status().model == "vae"  # the first job is untouched
    manager.stop(token)
    assert manager.wait(60).phase in ("stopped", "done")


def test_a_crash_is_reported_and_writes_nothing(tmp_path):
    def broken_chunk(spec, state, **kw):
        yield "start", {"steps_per_epoch": 1, "device": "cpu"}
        raise RuntimeError("out of memory, say")

    m = TrainingManager(root=tmp_path / "user", chunk_fn=broken_chunk, finish_fn=jobs.finish_job,
                        downloads=tmp_path / "zips")
    m.start(tiny_spec())
    s = m.wait(60)
    assert s.phase == "failed" and "out of memory, say" in s.message
    assert folder_names(tmp_path / "user") == []
    m.start(tiny_spec(epochs=1))  # a failed job does not block the next one
    m.wait(60)


# ----------------------------------------------------------------------------- ZeroGPU chunks

def test_two_chunks_give_the_same_weights_as_one_go(tmp_path):
    calls = []

    def spy(spec, state, **kw):
        if state is not None:  # what crosses a ZeroGPU call boundary lives on the CPU
            assert all(t.device.type == "cpu" for t in state["trainer"]["model"].values())
        calls.append(kw["max_epochs"])
        yield from zerogpu.train_chunk_on_gpu(spec, state, **kw)

    weights = []
    for chunk_epochs in (0, 1):
        m = TrainingManager(root=tmp_path / str(chunk_epochs), chunk_fn=spy,
                            finish_fn=zerogpu.finish_on_gpu, chunk_epochs=chunk_epochs,
                            downloads=tmp_path / "zips")
        m.start(tiny_spec("vae", epochs=2))
        s = m.wait(120)
        assert s.phase == "done", s.message
        weights.append(load_file(Path(s.checkpoint) / "model.safetensors"))
    assert calls == [0, 1, 1]  # one chunk, then two
    one_go, chunked = weights
    for name, tensor in one_go.items():
        assert torch.equal(tensor, chunked[name]), name


@pytest.mark.parametrize("model", ["flow", "vqvae"])
def test_chunk_states_resume_exactly(model):
    """Epoch by epoch through CPU state equals both epochs at once (codebook, RNGs, Adam)."""
    spec = tiny_spec(model, epochs=2)
    one_go = list(jobs.train_chunk(spec, None))[-1][1]
    state = list(jobs.train_chunk(spec, None, max_epochs=1))[-1][1]
    assert state["trainer"]["epoch"] == 1
    chunked = list(jobs.train_chunk(spec, state, max_epochs=1))[-1][1]
    for name, tensor in one_go["trainer"]["model"].items():
        assert torch.equal(tensor, chunked["trainer"]["model"][name]), name


def test_a_chunk_always_trains_one_epoch_then_respects_its_time_budget():
    events = list(jobs.train_chunk(tiny_spec(epochs=3), None, budget_s=1e-6, report_every_s=3600))
    kinds = [k for k, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "state" and kinds.count("epoch") == 1
    # with a long report interval the host hears about the losses once per epoch, not per step
    assert kinds.count("progress") == 1
    state = events[-1][1]
    assert state["trainer"]["epoch"] == 1 and state["completed"] == 1 and not state["stopped"]


def test_spaces_gpu_is_a_no_op_off_spaces(monkeypatch):
    import spaces  # noqa: F401  (installed; its decorator must not change anything here)

    assert zerogpu.SPACES_AVAILABLE and not jobs.on_zerogpu()
    assert zerogpu.train_chunk_on_gpu is jobs.train_chunk
    assert zerogpu.finish_on_gpu is jobs.finish_job
    assert zerogpu.chunk_seconds() == 0.0  # one chunk per job off ZeroGPU
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setenv(zerogpu.DURATION_ENV, "60")
    assert zerogpu.chunk_seconds() == 60 - zerogpu.SETUP_MARGIN_S
    assert zerogpu._chunk_duration(tiny_spec(), {"epoch_time_s": 100.0}, budget_s=40) == 120
    assert zerogpu._chunk_duration(tiny_spec(), None, budget_s=40) == 60


def test_identity_decorator_when_spaces_cannot_be_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` fail
    spec = importlib.util.spec_from_file_location("zerogpu_without_spaces", zerogpu.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SPACES_AVAILABLE is False
    assert module.train_chunk_on_gpu is jobs.train_chunk

    def f(x):
        return x

    assert module.GPU(f) is f and module.GPU(duration=10)(f) is f


# ----------------------------------------------------------------------------- small parts

def test_names_are_sanitized_and_never_overwrite(tmp_path):
    assert jobs.sanitize_name("../../etc/passwd") == "etc-passwd"
    assert jobs.sanitize_name("  ..  ") == "" and jobs.sanitize_name("Zürich β=2") == "Zurich-2"
    root, shipped = tmp_path / "user", tmp_path / "shipped"
    (root / "a").mkdir(parents=True)
    (shipped / "mnist-vae-z2").mkdir(parents=True)
    assert jobs.unique_folder(root, "a", shipped).name == "a-2"
    assert jobs.unique_folder(root, "mnist-vae-z2", shipped).name == "mnist-vae-z2-2"
    assert jobs.unique_folder(root, "/", shipped).name == "model"
    assert jobs.unique_folder(root, "../x", shipped).parent == root.resolve()


def test_user_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(jobs.USER_CKPT_ENV, str(tmp_path / "mine"))
    assert jobs.user_checkpoint_dir() == tmp_path / "mine"
    monkeypatch.delenv(jobs.USER_CKPT_ENV)
    assert jobs.user_checkpoint_dir() == jobs.SHIPPED_DIR / "user"


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "gan"}, "unknown model kind"),
    ({"dataset": "cifar"}, "unknown dataset"),
    ({"epochs": 0}, "epochs"),
    ({"latent_dim": 0}, "latent_dim"),
    ({"subset": -1}, "subset"),
    ({"model_options": {"wings": 2}}, "no fields"),
])
def test_impossible_jobs_fail_early(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JobSpec(**kwargs)


def test_cpu_cap_and_switch_off(manager, monkeypatch):
    monkeypatch.setenv(jobs.CPU_CAP_ENV, "100")
    with pytest.raises(ValueError, match="capped at 100 image-epochs"):
        manager.start(tiny_spec())
    monkeypatch.setenv(jobs.TRAINING_ENV, "off")
    with pytest.raises(ValueError, match="switched off"):
        manager.start(tiny_spec())
    assert manager.status().job_id == 0


def test_step_meter_syncs_once_per_report():
    meter = StepMeter(every_s=3600)
    for v in (1.0, 2.0, 6.0):
        meter.add({"loss": torch.tensor(v), "kl": torch.tensor(2 * v)})
    assert not meter.due()
    assert meter.take() == {"loss": 3.0, "kl": 6.0}
    assert meter.n == 0 and not StepMeter(every_s=0).due()  # nothing to report yet


def test_command_reproduces_the_job():
    cmd = tiny_spec("flow", beta=0.5).command("checkpoints/x")
    assert "--model vae" in cmd and "--prior realnvp" in cmd and "--beta 0.5" in cmd
    assert cmd.endswith("--out checkpoints/x") and "--subset 256" in cmd


def test_a_job_too_short_for_two_progress_reports_still_gives_an_estimate(tmp_path):
    m = TrainingManager(root=tmp_path / "user", report_every_s=3600.0,  # at most one report
                        downloads=tmp_path / "zips")
    spec = tiny_spec("vae")
    m.start(spec)
    assert m.wait(120).phase == "done"
    assert m.estimate_seconds(spec) > 0
