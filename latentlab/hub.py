"""Optional: share a checkpoint folder through the Hugging Face Hub, safetensors only.

Only the three files of the checkpoint format travel (``model.safetensors``, ``config.json``,
``metrics.json``), never a pickle, and a folder is loaded once to check it before an
upload and after a download. The token comes from the argument or the settings
(``HF_TOKEN``, read by ``latentlab.settings``).
Nothing in the app needs this module. Both calls talk to the Hub, so their example is
shown, not run (the tests have no network, and a push writes to a real account):

    push_checkpoint("checkpoints/user/my-vae", "me/latent-lab-my-vae")
    pull_checkpoint("me/latent-lab-my-vae", "checkpoints/user")
    # -> PosixPath('checkpoints/user/latent-lab-my-vae')
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from latentlab import settings
from latentlab.checkpoint import CONFIG, METRICS, WEIGHTS, load_checkpoint
from latentlab.errors import InputError
from latentlab.jobs.files import unique_folder

FILES = (WEIGHTS, CONFIG, METRICS)
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


# ----------------------------------------------------------------------------- helpers

def check_repo_id(repo_id: str) -> str:
    """'owner/name' with the Hub's characters only (no '..', no extra slashes).

    >>> check_repo_id("me/latent-lab_vae.z2")
    'me/latent-lab_vae.z2'
    """
    if not isinstance(repo_id, str) or not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise InputError(f"a Hub repository is written 'owner/name', got {repo_id!r}")
    return repo_id


def _token(token: str | None) -> str | None:
    """The caller's token, else the deployment's (None: anonymous, public repositories only)."""
    return token or settings.current().hf_token or None


# ----------------------------------------------------------------------------- public API

def push_checkpoint(folder: str | os.PathLike, repo_id: str, token: str | None = None,
                    private: bool = True) -> str:
    """Upload a checkpoint folder's three files to a model repository; returns the commit URL."""
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    folder = Path(folder)
    load_checkpoint(folder)  # a CheckpointError here says what is wrong, before any upload
    api = HfApi(token=_token(token))
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                               allow_patterns=list(FILES),
                               commit_message=f"Latent Lab checkpoint {folder.name}")
    return str(getattr(commit, "commit_url", commit))


def pull_checkpoint(repo_id: str, dest_root: str | os.PathLike, name: str | None = None,
                    revision: str | None = None, token: str | None = None) -> Path:
    """Download a checkpoint into ``dest_root/name`` (a new folder; checked before it appears)."""
    from huggingface_hub import snapshot_download

    check_repo_id(repo_id)
    root = Path(dest_root)
    root.mkdir(parents=True, exist_ok=True)
    dest = unique_folder(root, name or repo_id.split("/")[1], shipped=None)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=dest.name + ".tmp-"))
    try:
        snapshot_download(repo_id, repo_type="model", revision=revision, token=_token(token),
                          allow_patterns=list(FILES), local_dir=str(tmp))
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
        load_checkpoint(tmp)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
