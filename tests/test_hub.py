"""Hub sharing: argument checks only; any attempt to reach the network fails the test."""

import huggingface_hub
import pytest

from latentlab import hub, settings
from latentlab.checkpoint import CheckpointError, save_checkpoint
from latentlab.errors import InputError
from models.vae import VAE, VAEConfig

TINY = VAEConfig(latent_dim=2, channels=4, hidden=8)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(huggingface_hub, "HfApi", no_network)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)


@pytest.fixture
def configure():
    yield settings.configure
    settings.reset()


@pytest.mark.parametrize("repo_id", ["no-slash", "a/b/c", "../x", "me/..", "me/", "/name",
                                     "me/with space", "", None])
def test_bad_repository_names_are_refused(repo_id, tmp_path):
    with pytest.raises(InputError, match="owner/name"):
        hub.push_checkpoint(tmp_path, repo_id)
    with pytest.raises(ValueError, match="owner/name"):
        hub.pull_checkpoint(repo_id, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_broken_folder_is_refused_before_any_upload(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        hub.push_checkpoint(tmp_path / "missing", "me/model")
    folder = save_checkpoint(tmp_path / "ck", VAE(TINY), "vae", TINY)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="safetensors"):
        hub.push_checkpoint(folder, "me/model")


def test_only_the_checkpoint_files_travel():
    assert set(hub.FILES) == {"model.safetensors", "config.json", "metrics.json"}
    assert hub.check_repo_id("someone/latent-lab_vae.z2") == "someone/latent-lab_vae.z2"


@pytest.mark.parametrize("argument, configured, used", [
    (None, "hf_from_settings", "hf_from_settings"),
    ("hf_mine", "hf_from_settings", "hf_mine"),
    (None, None, None),
])
def test_the_token_comes_from_the_argument_or_the_settings(monkeypatch, configure, tmp_path,
                                                           argument, configured, used):
    configure(hf_token=configured)
    tokens = []

    def recording_api(token=None):
        tokens.append(token)
        raise ConnectionAbortedError("stopped before the network")

    monkeypatch.setattr(huggingface_hub, "HfApi", recording_api)
    folder = save_checkpoint(tmp_path / "ck", VAE(TINY), "vae", TINY)
    with pytest.raises(ConnectionAbortedError):
        hub.push_checkpoint(folder, "me/model", token=argument)
    assert tokens == [used]
