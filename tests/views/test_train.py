"""The Train tab: its view functions drive a real job; the tab builds without starting anything."""

import dataclasses
import inspect
import threading
import time

import gradio as gr
import pytest

from latentlab import explain
from latentlab.checkpoint import load_checkpoint
from latentlab.jobs import JobStatus, TrainingManager
from latentlab.ui import train as ui
from latentlab.views import train as view

# dataset, model, latent, beta, K, prior epochs, epochs, images, lr, batch, bf16, name
TINY_VALUES = ["mnist", "vae", 2, 1.0, 128, 10, 1, 256, 2e-3, 128, False, "from the tab"]
API_NAMES = {"train_start", "train_stop", "train_poll", "train_preset", "train_model",
             "train_estimate", "train_custom", "train_note"}
SKIP = type(gr.skip())


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


def poll_until_done(manager, token, timeout=120.0) -> tuple[dict, dict]:
    """Poll like the timer does; returns the last value drawn for each picture, and seen."""
    seen, shown = {}, {}
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        running = manager.status().running
        p = view.poll_job(manager, token, seen)
        seen = p.seen
        shown.update(status=p.status, progress=p.progress, can_stop=p.can_stop)
        shown.update({k: getattr(p, {"download": "zip_path"}.get(k, k)) for k in p.changed})
        if not running:
            return shown, seen
        time.sleep(0.05)
    raise AssertionError("the job did not finish")


@pytest.fixture
def tiny_models(monkeypatch):
    """The tab's own settings, with tiny networks and a small validation split (quick)."""
    make_spec = view.make_spec
    monkeypatch.setattr(view, "make_spec", lambda *values: dataclasses.replace(
        make_spec(*values), model_options={"channels": 8, "hidden": 32}, val_size=500))


def test_tab_builds_without_starting_anything(manager):
    before = set(threading.enumerate())  # other tests' threads may still be winding down
    registry = FakeRegistry()
    with gr.Blocks(analytics_enabled=False) as demo, gr.Tab("Train"):
        ui.build_train(registry, manager=manager)
    fns = list(demo.fns.values())
    assert {f.api_name for f in fns} == API_NAMES
    for f in fns:  # every callback is typed
        assert inspect.signature(f.fn).return_annotation is not inspect.Signature.empty
    assert not set(threading.enumerate()) - before and manager.status().job_id == 0
    assert registry.refreshed == 0 and manager.on_saved is not None
    texts = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert explain.TRAIN.strip() in texts  # the tab explains itself


def test_a_tiny_job_through_the_tab_functions(manager, tmp_path, tiny_models):
    registry = FakeRegistry()
    with gr.Blocks(analytics_enabled=False), gr.Tab("Train"):
        ui.build_train(registry, manager=manager)
    token, message = view.start_job(manager, "", TINY_VALUES)
    assert message.startswith("Started") and token

    # another visitor: refused with the running job's progress, sees it, cannot stop it
    other, refusal = view.start_job(manager, "", [*TINY_VALUES[:1], "flow", *TINY_VALUES[2:]])
    assert other == "" and "one job at a time" in refusal
    p = view.poll_job(manager, "", {})
    assert "Someone else started this job" in p.status and p.can_stop is False
    assert "only the person" in view.stop_job(manager, "").lower()

    shown, seen = poll_until_done(manager, token)
    assert len(shown["curves"]["data"]) == 3 and shown["grid"].ndim == 3  # loss terms, last preview
    assert "You started this job" in shown["status"] and "Saved as 'from-the-tab'" in shown["status"]
    assert "Validation (epoch 1): val_loss = " in shown["status"] and "Test set: test_elbo" in shown["status"]
    assert "100%" in shown["progress"] and shown["can_stop"] is False
    assert registry.refreshed == 1  # new checkpoint shows up in every picker
    assert shown["download"].endswith("from-the-tab.zip")
    _, info = load_checkpoint(tmp_path / "user" / "from-the-tab")
    assert info.kind == "vae" and info.config.latent_dim == 2 and "test_elbo" in info.metrics
    # nothing changed since: the next poll redraws neither the curves nor the picture
    again = view.poll_job(manager, token, seen)
    assert again.changed == frozenset() and again.curves is None
    *_, curves, grid, download, _, _ = ui._poll_outputs(again)
    assert all(isinstance(x, SKIP) for x in (curves, grid, download))


@pytest.mark.parametrize("index, value, message", [
    (2, 0, "latent dimension"),
    (6, 1.5, "epochs"),
    (8, None, "learning rate"),
    (8, "fast", "learning rate"),
    (8, float("inf"), "learning rate"),
    (3, "strong", "beta"),
    (3, -1.0, "beta"),
    (7, -5, "training images"),
    (7, float("nan"), "training images"),
    (1, "gan", "unknown model kind"),
])
def test_bad_settings_give_a_message_not_a_crash(manager, index, value, message):
    values = list(TINY_VALUES)
    values[index] = value
    token, text = view.start_job(manager, "old-token", values)
    assert token == "old-token" and text.startswith("Cannot start") and message in text
    assert manager.status().job_id == 0
    assert message in view.settings_note(manager, values)  # the note says it before a click


def test_validation_settings_reach_the_job():
    spec = view.make_spec(*TINY_VALUES, 2000, True)
    assert (spec.val_size, spec.keep_best) == (2000, True)
    with pytest.raises(ValueError, match="keep_best"):  # nothing to choose the best epoch on
        view.make_spec(*TINY_VALUES, 0, True)


def test_presets_models_and_notes():
    assert view.preset_values(view.CPU_PRESET) == (1, 5000, 128, 2)
    assert view.preset_values(view.CUSTOM) is None  # the UI leaves the widgets as they are
    assert all(isinstance(x, SKIP) for x in ui_preset(view.CUSTOM))
    vq = view.model_options("vqvae")
    assert vq.vq and vq.beta == 0.25 and "Code size" in vq.latent_label
    assert not view.model_options("flow").vq
    assert "CPU" in view.device_note(TrainingManager(root="unused"), None)


def ui_preset(choice: str) -> tuple:
    """What the tab's preset event returns, taken from a built tab."""
    with gr.Blocks(analytics_enabled=False) as demo:
        ui.build_train(None, manager=TrainingManager(root="unused"))
    (fn,) = [f.fn for f in demo.fns.values() if f.api_name == "train_preset"]
    return fn(choice)


def test_progress_line_and_figure():
    curve = ({"step": 10, "epoch": 0.2, "loss": 200.0, "rec_nll": 190.0, "kl": 10.0},
             {"step": 20, "epoch": 0.4, "loss": 180.0, "rec_nll": 168.0, "kl": 12.0})
    s = JobStatus(job_id=1, phase="training", model="vae", step=50, total_steps=100, epochs=2,
                  eta_s=30.0, eta_note="measured", elapsed_s=30.0, curve=curve, summary="VAE")
    html = view.progress_html(s)
    assert "50%" in html and "about 30 s left (measured)" in html and "epoch 1 of 2" in html
    fig = view.loss_figure(s)
    assert [t["y"] for t in fig["data"]] == [[190.0, 168.0], [10.0, 12.0], [200.0, 180.0]]
    assert [t["x"] for t in fig["data"]] == [[0.2, 0.4]] * 3
    assert [a["text"] for a in fig["layout"]["annotations"]] == [t for _, t in view.TERMS["vae"]]
    assert view.loss_figure(JobStatus(job_id=1, model="vae")) is None


def test_status_text_shows_validation_while_training_and_the_chosen_epoch_at_the_end():
    running = JobStatus(job_id=1, phase="training", summary="VAE", device="cpu",
                        validation={"epoch": 2, "val_loss": 120.5, "val_kl": 9.25})
    text = view.status_markdown(running, owner=True)
    assert "You started this job" in text and "Validation (epoch 2): val_loss = 120.5, val_kl = 9.25" in text
    done = dataclasses.replace(running, phase="done", message="Done.", metrics={
        "val": {"epoch": 1, "val_loss": 119.0}, "test_elbo": -118.25})
    text = view.status_markdown(done, owner=False)
    assert "Validation (epoch 1): val_loss = 119" in text and "Test set: test_elbo = -118.25" in text
    assert view.status_markdown(JobStatus(), owner=False).startswith("No job yet")


class MeasuredManager(TrainingManager):
    """A manager whose earlier runs have been measured (a job of this kind took 90 s)."""

    def estimate_seconds(self, spec):
        return 90.0


def test_a_page_opened_after_a_run_shows_the_measured_time_and_no_stale_hints():
    """The note was drawn once when the server started ("No run has been measured here yet"
    forever); the VQ-VAE's code size said "2 lets you draw the latent plane"."""
    with gr.Blocks(analytics_enabled=False) as demo:
        ui.build_train(None, manager=MeasuredManager(root="unused"))
    (note,) = [f.fn for f in demo.fns.values() if f.api_name == "train_note"]  # on page load
    text = note()
    assert "about **1 min 30 s**" in text or "Measured on this server" in text
    assert "No run has been measured" not in text
    (fn,) = [f.fn for f in demo.fns.values() if f.api_name == "train_model"]
    latent = fn("vqvae")[-1]
    assert "Code size" in latent.label and "plane" not in latent.info
    assert "plane" in fn("vae")[-1].info


# ----------------------------------------------------------------------------- limits, data

@pytest.mark.parametrize("index, value, message", [
    (3, 1e300, "beta must be a number between 0 and 100"),
    (3, float("nan"), "beta"),
    (8, 1e300, "Learning rate must be a number between 1e-06 and 1"),
    (8, float("nan"), "learning rate"),
    (6, 10**6, "Epochs must be a whole number between 1 and 100"),
    (2, 10**8, "Latent dimension must be a whole number between 1 and 64"),
    (9, 10**7, "Batch size"),
])
def test_the_api_refuses_what_the_widgets_cannot_send(manager, index, value, message):
    values = list(TINY_VALUES)
    values[index] = value
    token, text = view.start_job(manager, "", values)
    assert token == "" and text.startswith("Cannot start") and message in text
    assert manager.status().job_id == 0  # nothing started, nothing saved


def test_the_widgets_take_their_limits_from_the_api_checks(manager):
    from latentlab.jobs.spec import BATCH_SIZES, RANGES

    with gr.Blocks(analytics_enabled=False) as demo:
        ui.build_train(None, manager=manager)
    by_label = {b.label: b for b in demo.blocks.values() if getattr(b, "label", None)}
    widgets = {"latent_dim": "Latent dimension of z", "num_codes": "K: number of codebook entries",
               "prior_epochs": "Code-prior epochs", "epochs": "Epochs", "beta": "beta",
               "lr": "Learning rate (Adam, cosine decay)",
               "subset": "Training images (0 = all that are not held out for validation)",
               "val_size": "Validation images (the last N training images, held out)"}
    for name, label in widgets.items():
        w = by_label[label]
        assert (w.minimum, w.maximum) == (RANGES[name].lo, RANGES[name].hi), name
    assert [c[1] for c in by_label["Batch size"].choices] == BATCH_SIZES


def test_missing_data_is_said_in_one_sentence_before_and_on_start(manager, tmp_path):
    from latentlab import settings

    try:
        settings.configure(data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache")
        note = view.settings_note(manager, TINY_VALUES)
        token, text = view.start_job(manager, "", TINY_VALUES)
    finally:
        settings.reset()
    sentence = "MNIST is not on this server: run `python -m latentlab.data download --dataset mnist`"
    assert sentence in note and "Cannot start: " + sentence in text and "http" not in text
    assert token == "" and manager.status().job_id == 0


def test_loss_panel_titles_fit_side_by_side_on_a_phone():
    """Three or four panels share a 390 px phone: each title is two short lines."""
    for terms in view.TERMS.values():
        for _, title in terms:
            assert all(len(line) <= 18 for line in title.split("<br>")), title
