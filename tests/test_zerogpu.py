"""ZeroGPU: off Spaces the wrapped functions are the plain ones; chunk sizes from the settings."""

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from latentlab import settings, zerogpu
from latentlab.jobs import JobSpec, runner


@pytest.fixture
def configure():
    yield settings.configure
    settings.reset()


def test_spaces_gpu_is_a_no_op_off_spaces(configure):
    import spaces  # noqa: F401  (installed; its decorator must not change anything here)

    assert zerogpu.SPACES_AVAILABLE and not runner.on_zerogpu()
    assert runner.train_chunk_on_gpu is runner.train_chunk
    assert runner.finish_on_gpu is runner.finish_job
    assert zerogpu.chunk_seconds() == 0.0  # one chunk per job off ZeroGPU
    configure(zero_gpu=True, zerogpu_seconds=60)
    assert runner.on_zerogpu() and runner.server_device() == "ZeroGPU (a GPU lent per call)"
    assert zerogpu.chunk_seconds() == 60 - zerogpu.SETUP_MARGIN_S
    configure(zerogpu_seconds=15)
    assert zerogpu.chunk_seconds() == 10  # never less than ten seconds of training


def test_durations_asked_for():
    spec = JobSpec(latent_dim=2, subset=256)
    assert zerogpu.chunk_duration(spec, {"epoch_time_s": 100.0}, budget_s=40) == 120
    assert zerogpu.chunk_duration(spec, None, budget_s=40) == 60
    assert zerogpu.finish_duration(spec, {"epoch_time_s": 5.0}) == 40  # no code prior to fit
    vq = JobSpec(model="vqvae", prior_epochs=3, subset=256)
    assert zerogpu.finish_duration(vq, {"epoch_time_s": 5.0}) == 40 + 3 * 5
    assert zerogpu.finish_duration(vq, {"epoch_time_s": 500.0}) == zerogpu.MAX_CALL_S


def test_identity_decorator_when_spaces_cannot_be_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` fail
    spec = importlib.util.spec_from_file_location("zerogpu_without_spaces", zerogpu.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SPACES_AVAILABLE is False
    assert module.GPU(duration=module.chunk_duration)(runner.train_chunk) is runner.train_chunk

    def f(x):
        return x

    assert module.GPU(f) is f and module.GPU(duration=10)(f) is f


def test_the_job_thread_carries_the_visitors_request():
    from gradio.context import LocalContext

    seen = []
    request = object()
    zerogpu.keep_request(request)(lambda: seen.append(LocalContext.request.get()))
    zerogpu.keep_request(None)(lambda: seen.append("ran"))
    assert seen == [request, "ran"]


def test_zerogpu_imports_nothing_of_the_jobs():
    """The jobs wrap their functions with zerogpu.GPU; an import back would be a cycle."""
    tree = ast.parse(Path(zerogpu.__file__).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                 for a in n.names]
    assert "latentlab.settings" in imported
    assert not [name for name in imported if name.startswith("latentlab.jobs")]
