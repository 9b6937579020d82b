"""The Train tab: it builds without starting anything, and its handlers drive a real job."""

import dataclasses
import inspect
import threading
import time

import gradio as gr
import pytest

from latentlab import train_tab
from latentlab.checkpoint import load_checkpoint
from latentlab.jobs import CPU_PRESET, JobStatus, TrainingManager

# dataset, model, latent, beta, K, prior epochs, epochs, images, lr, batch, bf16, name
TINY_VALUES = ["mnist", "vae", 2, 1.0, 128, 10, 1, 256, 2e-3, 128, False, "from the tab"]
API_NAMES = {"train_start", "train_stop", "train_poll", "train_preset", "train_model",
             "train_estimate", "train_custom"}


class FakeRegistry:
    def __init__(self):
        self.refreshed = 0

    def refresh(self):
        self.refreshed += 1


@pytest.fixture
def manager(tmp_path):
    m = TrainingManager(root=tmp_path / "user", report_every_s=0.05, shipped_dir=None,
                        downloads=tmp_path / "zips")
    yield m
    if m.status().running:
        m.stop(m._job.token)
        m.wait(60)


def prop(update, name):
    """A component update is an object or, outside a Blocks context, a dict."""
    return update[name] if isinstance(update, dict) else getattr(update, name)


def poll_until_done(manager, token, timeout=120.0):
    """Poll like the timer does; returns the last value drawn for each output."""
    seen, shown = {}, {}
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        running = manager.status().running
        *outputs, seen = train_tab.poll_job(manager, token, seen)
        shown.update({i: x for i, x in enumerate(outputs) if not isinstance(x, type(gr.skip()))})
        if not running:
            return [shown.get(i) for i in range(len(outputs))], seen
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


@pytest.fixture
def tiny_models(monkeypatch):
    """The tab's own settings, with tiny networks so the test stays quick."""
    make_spec = train_tab.make_spec
    monkeypatch.setattr(train_tab, "make_spec", lambda *values: dataclasses.replace(
        make_spec(*values), model_options={"channels": 8, "hidden": 32}))


def test_tab_builds_without_starting_anything(manager):
    before = set(threading.enumerate())  # other tests' threads may still be winding down
    registry = FakeRegistry()
    with gr.Blocks(analytics_enabled=False) as demo, gr.Tab("Train"):
        train_tab.build_train_tab(registry, manager=manager)
    fns = list(demo.fns.values())
    assert {f.api_name for f in fns} == API_NAMES
    for f in fns:  # every callback is typed
        assert inspect.signature(f.fn).return_annotation is not inspect.Signature.empty
    assert not set(threading.enumerate()) - before and manager.status().job_id == 0
    assert registry.refreshed == 0 and manager.on_saved is not None


def test_a_tiny_job_through_the_tab_handlers(manager, tmp_path, tiny_models):
    registry = FakeRegistry()
    with gr.Blocks(analytics_enabled=False), gr.Tab("Train"):
        train_tab.build_train_tab(registry, manager=manager)
    token, message = train_tab.start_job(manager, "", TINY_VALUES)
    assert message.startswith("Started") and token

    # another visitor: refused with the running job's progress, sees it, cannot stop it
    other, refusal = train_tab.start_job(manager, "", [*TINY_VALUES[:1], "flow", *TINY_VALUES[2:]])
    assert other == "" and "one job at a time" in refusal
    status_md, *_, stop_button, _ = train_tab.poll_job(manager, "", {})
    assert "Someone else started this job" in status_md and prop(stop_button, "interactive") is False
    assert "only the person" in train_tab.stop_job(manager, "").lower()

    (status_md, progress, fig, grid, download, _), seen = poll_until_done(manager, token)
    assert len(fig.data) == 3 and grid.ndim == 3  # loss terms and the last preview
    assert "You started this job" in status_md and "Saved as 'from-the-tab'" in status_md
    assert "100%" in progress
    assert registry.refreshed == 1  # new checkpoint shows up in every picker
    zip_file = prop(download, "value")
    zip_file = zip_file["path"] if isinstance(zip_file, dict) else zip_file
    assert prop(download, "visible") and zip_file.endswith("from-the-tab.zip")
    _, info = load_checkpoint(tmp_path / "user" / "from-the-tab")
    assert info.kind == "vae" and info.config.latent_dim == 2 and "test_elbo" in info.metrics
    # nothing changed since: the next poll redraws neither the curves nor the picture
    _, _, fig2, grid2, download2, _, _ = train_tab.poll_job(manager, token, seen)
    assert all(isinstance(x, type(gr.skip())) for x in (fig2, grid2, download2))


@pytest.mark.parametrize("index, value, message", [
    (2, 0, "latent dimension"),
    (6, 1.5, "epochs"),
    (8, None, "learning rate"),
    (7, -5, "training images"),
])
def test_bad_settings_give_a_message_not_a_crash(manager, index, value, message):
    values = list(TINY_VALUES)
    values[index] = value
    token, text = train_tab.start_job(manager, "old-token", values)
    assert token == "old-token" and text.startswith("Cannot start") and message in text
    assert manager.status().job_id == 0


def test_presets_models_and_notes():
    assert train_tab.preset_values(CPU_PRESET) == (1, 5000, 128, 2)
    assert all(isinstance(x, type(gr.skip())) for x in train_tab.preset_values(train_tab.CUSTOM))
    codes, prior_epochs, beta, latent = train_tab.model_options("vqvae")
    assert prop(codes, "visible") and prop(prior_epochs, "visible") and beta == 0.25
    assert "Code size" in prop(latent, "label")
    assert not prop(train_tab.model_options("flow")[0], "visible")
    assert "CPU" in train_tab.device_note(TrainingManager(root="unused"), None)


def test_progress_line_and_figure():
    curve = ({"step": 10, "epoch": 0.2, "loss": 200.0, "rec_nll": 190.0, "kl": 10.0},
             {"step": 20, "epoch": 0.4, "loss": 180.0, "rec_nll": 168.0, "kl": 12.0})
    s = JobStatus(job_id=1, phase="training", model="vae", step=50, total_steps=100, epochs=2,
                  eta_s=30.0, eta_note="measured", elapsed_s=30.0, curve=curve, summary="VAE")
    html = train_tab.progress_html(s)
    assert "50%" in html and "about 30 s left (measured)" in html and "epoch 1 of 2" in html
    fig = train_tab.loss_figure(s)
    assert [list(t.y) for t in fig.data] == [[190.0, 168.0], [10.0, 12.0], [200.0, 180.0]]
    assert train_tab.loss_figure(JobStatus(job_id=1, model="vae")) is None
