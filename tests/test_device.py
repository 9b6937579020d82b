"""Device choice and its one-line description (shared by training and evaluation)."""

import pytest
import torch

from latentlab import device as dev


def test_auto_picks_cuda_only_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("name", ["cpu", "cuda:1", "meta"])
def test_explicit_names_are_taken_as_they_are(name):
    assert dev.pick_device(name) == torch.device(name)


def test_cpu_description_names_cores_and_threads():
    text = dev.device_description(torch.device("cpu"))
    assert text.startswith("cpu (") and f"torch threads {torch.get_num_threads()}" in text


def test_train_keeps_the_old_import_path():
    from latentlab import train

    assert train.pick_device is dev.pick_device
    assert train.device_description is dev.device_description
