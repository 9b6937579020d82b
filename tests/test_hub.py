"""Hub sharing: argument checks only; any attempt to reach the network fails the test."""

import huggingface_hub
import pytest

from latentlab import hub
from latentlab.checkpoint import CheckpointError, save_checkpoint
from models.vae import VAE, VAEConfig


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(huggingface_hub, "HfApi", no_network)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)


@pytest.mark.parametrize("repo_id", ["no-slash", "a/b/c", "../x", "me/..", "me/", "/name",
                                     "me/with space", "", None])
def test_bad_repository_names_are_refused(repo_id, tmp_path):
    with pytest.raises(ValueError, match="owner/name"):
        hub.push_checkpoint(tmp_path, repo_id)
    with pytest.raises(ValueError, match="owner/name"):
        hub.pull_checkpoint(repo_id, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_broken_folder_is_refused_before_any_upload(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        hub.push_checkpoint(tmp_path / "missing", "me/model")
    folder = save_checkpoint(tmp_path / "ck", VAE(VAEConfig(latent_dim=2, channels=4, hidden=8)),
                             "vae", VAEConfig(latent_dim=2, channels=4, hidden=8))
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="safetensors"):
        hub.push_checkpoint(folder, "me/model")


def test_only_the_checkpoint_files_travel():
    assert set(hub.FILES) == {"model.safetensors", "config.json", "metrics.json"}
    assert hub.check_repo_id("someone/latent-lab_vae.z2") == "someone/latent-lab_vae.z2"
