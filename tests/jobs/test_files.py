"""Checkpoint folders: safe names, never overwriting, no stale temporaries, zips."""

import zipfile

from latentlab.jobs import (
    JobSpec,
    default_name,
    remove_stale_temporaries,
    sanitize_name,
    unique_folder,
    zip_checkpoint,
)


def test_names_are_sanitized_and_never_overwrite(tmp_path):
    assert sanitize_name("../../etc/passwd") == "etc-passwd"
    assert sanitize_name("  ..  ") == "" and sanitize_name("Zürich β=2") == "Zurich-2"
    assert len(sanitize_name("a" * 100)) == 64
    root, shipped = tmp_path / "user", tmp_path / "shipped"
    (root / "a").mkdir(parents=True)
    (shipped / "mnist-vae-z2").mkdir(parents=True)
    assert unique_folder(root, "a", shipped).name == "a-2"
    assert unique_folder(root, "mnist-vae-z2", shipped).name == "mnist-vae-z2-2"
    assert unique_folder(root, "mnist-vae-z2", None).name == "mnist-vae-z2"  # no shipped check
    assert unique_folder(root, "/", shipped).name == "model"
    assert unique_folder(root, "../x", shipped).parent == root.resolve()


def test_default_names_say_what_was_trained():
    assert default_name(JobSpec(model="flow", latent_dim=2)).startswith("mnist-flow-z2-")
    assert default_name(JobSpec(dataset="fashion", model="vqvae", num_codes=64)).startswith(
        "fashion-vqvae-k64-")
    assert sanitize_name(default_name(JobSpec())) == default_name(JobSpec())


def test_only_temporaries_are_removed(tmp_path):
    for name in ("kept", "kept.tmp-x/inner", "other.tmp-1"):
        (tmp_path / name).mkdir(parents=True)
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    remove_stale_temporaries(tmp_path / "missing")  # no folder yet: nothing to do


def test_a_zip_holds_the_folder_files_under_its_name(tmp_path):
    folder = tmp_path / "my-model"
    (folder / "sub").mkdir(parents=True)  # only files travel
    for f in ("config.json", "metrics.json"):
        (folder / f).write_text("{}")
    path = zip_checkpoint(folder, tmp_path / "zips")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["my-model/config.json", "my-model/metrics.json"]
    assert [p.name for p in (tmp_path / "zips").iterdir()] == ["my-model.zip"]  # no temporary left
