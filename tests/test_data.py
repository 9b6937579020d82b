"""Data sets as tensors: names, the data root from the settings, binarization and splits."""

import pytest
import torch

from latentlab import data, settings


def test_dataset_names_are_normalised_and_unknown_ones_refused():
    assert data.check_dataset("Fashion_MNIST") == "fashion"
    assert data.check_dataset("mnist") == "mnist"
    with pytest.raises(ValueError, match="unknown dataset"):
        data.check_dataset("cifar")


def test_data_root_follows_the_settings(tmp_path):
    try:
        settings.configure(data_dir=tmp_path)
        assert data.data_root() == tmp_path
        settings.configure(data_dir=None, cache_dir=tmp_path / "cache")
        assert data.data_root() == tmp_path / "cache" / "datasets"
    finally:
        settings.reset()


def test_read_only_root_is_mirrored_into_the_cache(tmp_path, monkeypatch):
    raw = tmp_path / "ro" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"123")
    monkeypatch.setattr(data.os, "access", lambda path, mode: False)  # read-only even for root
    try:
        settings.configure(cache_dir=tmp_path / "cache")
        root = data._writable_root(tmp_path / "ro", "MNIST")
        assert root == tmp_path / "cache" / "datasets"
        assert (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").read_bytes() == b"123"
    finally:
        settings.reset()


def test_splits_have_the_documented_shapes():
    x, y = data.load_split("mnist", train=False)
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    (xt, _), (xv, yv) = data.train_val_split("mnist", 1000)
    assert len(xt) == 59000 and len(xv) == len(yv) == 1000
    full, _ = data.load_split("mnist", train=True)
    assert torch.equal(xv, full[-1000:])  # the last images are held out
    with pytest.raises(ValueError, match="val_size"):
        data.train_val_split("mnist", 60000)


def test_binarize_depends_only_on_the_generator():
    x = torch.rand(4, 1, 28, 28)
    a = data.binarize(x, torch.Generator().manual_seed(0))
    b = data.binarize(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, data.binarize(x, torch.Generator().manual_seed(1)))


def test_binarized_test_set_is_fixed_per_seed():
    default = data.binarized_test_set("mnist")
    assert torch.equal(default, data.binarized_test_set("mnist", data.TEST_BINARIZATION_SEED))
    other = data.binarized_test_set("mnist", 7)
    assert other.shape == default.shape and not torch.equal(other, default)
    grey, _ = data.load_split("mnist", train=False)
    assert (other - grey).abs().mean() < 0.5  # still the same images, other bits


def test_dead_helpers_are_gone():
    assert not hasattr(data, "batches") and not hasattr(data, "CACHE_DIR")


def test_the_shared_copy_is_available():
    assert data.available("mnist") and data.available("fashion")


@pytest.fixture
def empty_machine(tmp_path):
    """No data anywhere the README names: an empty $LATENT_LAB_DATA and an empty cache."""
    settings.configure(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    yield tmp_path
    settings.reset()


def test_missing_data_is_one_sentence_on_what_to_do(empty_machine):
    from latentlab.errors import DataMissingError

    assert not data.available("mnist")
    message = data.missing_message("mnist")
    assert message.startswith("MNIST is not on this server: run `python -m latentlab.data download")
    assert "LATENT_LAB_DATA" in message and "MNIST/raw" in message and message.count(". ") == 0
    with pytest.raises(DataMissingError) as err:
        data.load_split("mnist", train=True)  # never torchvision's download error
    assert str(err.value) == message and "http" not in message


@pytest.mark.parametrize("packed", [True, False])
def test_the_cache_counts_too_packed_or_not(empty_machine, packed):
    raw = empty_machine / "cache" / "datasets" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for i, name in enumerate(data.IDX_FILES):
        if i < 3:
            (raw / (name + (".gz" if packed else ""))).write_bytes(b"x")
    assert not data.available("fashion")  # three of four files are not the data set
    (raw / data.IDX_FILES[3]).write_bytes(b"x")
    assert data.available("fashion") and data.find_root("fashion") == empty_machine / "cache" / "datasets"


def test_the_download_command_parses_without_the_network(tmp_path):
    args = data.parse_args(["download"])
    assert (args.command, args.dataset, args.root) == ("download", "all", None)
    args = data.parse_args(["download", "--dataset", "fashion", "--root", str(tmp_path)])
    assert (args.dataset, args.root) == ("fashion", tmp_path)
    with pytest.raises(SystemExit):
        data.parse_args(["download", "--dataset", "cifar"])
    with pytest.raises(SystemExit):
        data.parse_args([])


def test_download_asks_torchvision_for_both_splits_into_the_cache(empty_machine, monkeypatch):
    from torchvision import datasets

    calls = []
    monkeypatch.setattr(datasets, "MNIST", lambda root, train, download: calls.append(
        (root, train, download)))
    assert data.main(["download", "--dataset", "mnist"]) == [empty_machine / "cache" / "datasets"]
    assert calls == [(str(empty_machine / "cache" / "datasets"), t, True) for t in (True, False)]
