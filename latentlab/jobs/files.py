"""Where a trained model's files go: safe names, fresh folders, no half-written leftovers, zips.

A visitor names the checkpoint; the name becomes one plain folder inside the user folder,
never a path that leaves it, and never the name of a shipped model or an existing one (so
no visitor can overwrite another's model). ``prune_trained`` keeps a public server from
filling up: beyond a number or total size of models trained in the app, the oldest go.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
import unicodedata
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from latentlab.errors import InputError

if TYPE_CHECKING:
    from latentlab.jobs.spec import JobSpec

TMP_MARK = ".tmp-"   # a folder or zip being written carries this in its name until renamed
TRAINED_SOURCE = "Latent Lab Train tab"  # metrics.json "source" of a model trained in the app


def sanitize_name(raw: str) -> str:
    """A safe folder name: ASCII letters, digits, '-' and '_' only, at most 64 characters.

    >>> sanitize_name("../../etc/passwd"), sanitize_name("My VAE (z=2)")
    ('etc-passwd', 'My-VAE-z-2')
    """
    text = unicodedata.normalize("NFKD", raw or "").encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")[:64].strip("-_")


def default_name(spec: JobSpec) -> str:
    """The data set, model, size and the time: what a checkpoint is called when left unnamed.

    >>> from latentlab.jobs.spec import JobSpec
    >>> default_name(JobSpec(model="vqvae", num_codes=16))
    'mnist-vqvae-k16-...'
    """
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    size = f"k{spec.num_codes}" if spec.model == "vqvae" else f"z{spec.latent_dim}"
    return f"{spec.dataset}-{spec.model}-{size}-{stamp}"


def unique_folder(root: Path, name: str, shipped: Path | None) -> Path:
    """``root/name``, with -2, -3, ... appended if it exists here or among ``shipped`` models.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> (root / "a").mkdir()
    >>> unique_folder(root, "a", None).name, unique_folder(root, "../x", None).name
    ('a-2', 'x')
    """
    base = sanitize_name(name) or "model"
    candidate, n = base, 1
    while (root / candidate).exists() or (shipped is not None and (shipped / candidate).exists()):
        n += 1
        candidate = f"{base}-{n}"
    path = (root / candidate).resolve()
    if path.parent != root.resolve():  # sanitize_name makes this impossible; keep it that way
        raise InputError(f"refusing to write outside {root}: {name!r}")
    return path


def remove_stale_temporaries(root: Path) -> None:
    """Delete ``*.tmp-*`` folders left by a process killed in the middle of a save.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> (root / "model.tmp-x1").mkdir(); (root / "model").mkdir()
    >>> remove_stale_temporaries(root); sorted(p.name for p in root.iterdir())
    ['model']
    """
    if root.is_dir():
        for p in root.glob(f"*{TMP_MARK}*"):
            shutil.rmtree(p, ignore_errors=True)


def zip_checkpoint(folder: str | os.PathLike, dest_dir: str | os.PathLike | None = None) -> Path:
    """Zip a checkpoint folder's files under its name (written to a temporary name, then renamed).

    >>> import tempfile; folder = Path(tempfile.mkdtemp()) / "my-vae"
    >>> folder.mkdir(); _ = (folder / "config.json").write_text("{}")
    >>> path = zip_checkpoint(folder, folder.parent / "zips")
    >>> path.name, zipfile.ZipFile(path).namelist()
    ('my-vae.zip', ['my-vae/config.json'])
    """
    folder = Path(folder)
    dest = Path(dest_dir) if dest_dir else Path(tempfile.gettempdir()) / "latentlab-downloads"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{folder.name}.zip"
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=target.name + TMP_MARK)
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            if f.is_file():
                zf.write(f, f"{folder.name}/{f.name}")
    os.replace(tmp, target)
    return target


def _trained_here(folder: Path) -> bool:
    """True for a checkpoint the Train tab wrote (its metrics.json says so); shipped or
    hand-copied models never are, so pruning never touches them."""
    try:
        return json.loads((folder / "metrics.json").read_text()).get("source") == TRAINED_SOURCE
    except (OSError, ValueError, AttributeError):
        return False


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def prune_trained(root: Path, keep: Path, max_models: int, max_bytes: int) -> list[str]:
    """Remove the oldest models trained in the app under ``root`` (never ``keep``, never one
    the app did not train) until at most ``max_models`` remain and they take at most
    ``max_bytes``; returns the removed names, oldest first.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> for i, name in enumerate(["a", "b", "c"]):
    ...     (root / name).mkdir(); _ = (root / name / "metrics.json").write_text(
    ...         json.dumps({"source": TRAINED_SOURCE})); os.utime(root / name, (i, i))
    >>> prune_trained(root, root / "c", max_models=2, max_bytes=10**6), sorted(os.listdir(root))
    (['a'], ['b', 'c'])
    """
    if not root.is_dir():
        return []
    models = sorted((p for p in root.iterdir() if p.is_dir() and TMP_MARK not in p.name
                     and _trained_here(p)), key=lambda p: (p.stat().st_mtime, p.name))
    sizes = {p: folder_bytes(p) for p in models}
    removed: list[str] = []
    for old in [p for p in models if p.resolve() != Path(keep).resolve()]:
        if len(models) <= max_models and sum(sizes[p] for p in models) <= max_bytes:
            break
        shutil.rmtree(old, ignore_errors=True)
        models.remove(old)
        removed.append(old.name)
    return removed
