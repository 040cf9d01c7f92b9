"""MNIST loading: offline from the data directory, clear errors when files are missing or broken."""

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from gan_utils import data
from gan_utils.data import Batches, MNISTDataError, load_mnist, resolve_data_dir

TEST_FILES = data.FILES[False]


def shared_raw() -> Path:
    raw = resolve_data_dir() / "MNIST" / "raw"
    if not (raw / f"{TEST_FILES[0]}.gz").is_file():
        if os.environ.get("CI"):  # CI always has the data: a skip there would hide a broken path
            pytest.fail(f"MNIST not found in {raw}; CI must set GAN_DATA_DIR")
        pytest.skip(f"MNIST not found in {raw}; set GAN_DATA_DIR")
    return raw


@pytest.fixture(autouse=True)
def fresh_cache():
    data._load.cache_clear()
    yield
    data._load.cache_clear()


@pytest.fixture
def no_download(monkeypatch):
    """torchvision's download, failing the way it does without a network."""
    import torchvision.datasets

    class Offline:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: <urlopen error [Errno -3]>")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)


def test_loads_the_test_set_from_the_data_directory(no_download):
    shared_raw()
    images, labels = load_mnist(train=False)
    assert images.shape == (10000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (10000,) and labels.dtype == torch.int64
    assert images.min() == -1 and images.max() == 1
    assert set(labels.unique().tolist()) == set(range(10))


def test_loaded_once_and_kept_in_memory():
    shared_raw()
    first = load_mnist(train=False)
    assert load_mnist(train=False)[0] is first[0]


def test_reads_uncompressed_files_in_a_flat_folder(tmp_path):
    raw = shared_raw()
    for name in TEST_FILES:
        with gzip.open(raw / f"{name}.gz", "rb") as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    images, labels = load_mnist(tmp_path, train=False, download=False)
    assert len(images) == len(labels) == 10000


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert resolve_data_dir() == tmp_path
    assert resolve_data_dir("elsewhere") == Path("elsewhere")


def test_missing_files_say_which_and_where(tmp_path, no_download):
    with pytest.raises(MNISTDataError) as info:
        load_mnist(tmp_path, train=False)
    message = str(info.value)
    for name in TEST_FILES:
        assert name in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "Downloading with torchvision failed" in message
    assert data.DATA_DIR_ENV in message


def test_missing_files_without_download(tmp_path):
    with pytest.raises(MNISTDataError, match="download=False"):
        load_mnist(tmp_path, train=False, download=False)


def copy_test_files(tmp_path: Path) -> Path:
    raw = shared_raw()
    target = tmp_path / "MNIST" / "raw"
    target.mkdir(parents=True)
    for name in TEST_FILES:
        shutil.copy(raw / f"{name}.gz", target)
    return target


def test_truncated_gzip_names_the_file(tmp_path):
    target = copy_test_files(tmp_path)
    broken = target / f"{TEST_FILES[0]}.gz"
    broken.write_bytes(broken.read_bytes()[:5000])
    with pytest.raises(MNISTDataError, match=f"{TEST_FILES[0]}.gz.*(corrupt|truncated)"):
        load_mnist(tmp_path, train=False, download=False)


def test_not_gzip_names_the_file(tmp_path):
    target = copy_test_files(tmp_path)
    (target / f"{TEST_FILES[1]}.gz").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(MNISTDataError, match=f"{TEST_FILES[1]}.gz"):
        load_mnist(tmp_path, train=False, download=False)


def test_truncated_idx_payload(tmp_path):
    target = copy_test_files(tmp_path)
    name = target / f"{TEST_FILES[0]}.gz"
    with gzip.open(name, "rb") as f:
        payload = f.read()
    with gzip.open(name, "wb") as f:
        f.write(payload[:-784])
    with pytest.raises(MNISTDataError, match=r"bytes, expected 7840016"):
        load_mnist(tmp_path, train=False, download=False)


def test_wrong_kind_of_file(tmp_path):
    target = copy_test_files(tmp_path)
    shutil.copy(target / f"{TEST_FILES[1]}.gz", target / f"{TEST_FILES[0]}.gz")  # labels where images belong
    with pytest.raises(MNISTDataError, match="magic number 2049, expected 2051"):
        load_mnist(tmp_path, train=False, download=False)


def test_batches_cover_each_epoch_once_and_resume_exactly():
    images = torch.arange(10.0).reshape(10, 1)
    batches = Batches(images, 4, seed=0)
    assert batches.per_epoch == 2
    first_epoch = torch.cat([next(batches), next(batches)]).squeeze(1).tolist()
    assert len(set(first_epoch)) == 8 and set(first_epoch) <= set(range(10))  # no repeats, the rest dropped
    next(batches)  # into the second epoch
    state = batches.state_dict()
    again = Batches(images, 4, seed=123)
    again.load_state_dict(state)
    for _ in range(5):
        assert torch.equal(next(batches), next(again))
    with pytest.raises(ValueError, match="batch_size must be in 1..10"):
        Batches(images, 0)
    with pytest.raises(ValueError, match="batch_size must be in 1..10"):
        Batches(images, 11)


def test_a_failed_download_leaves_no_empty_folders(tmp_path, monkeypatch):
    import torchvision.datasets

    def no_network(root, train, download):
        (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does, before it connects
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", no_network)
    root = tmp_path / "data"
    with pytest.raises(MNISTDataError, match="Downloading with torchvision failed too"):
        load_mnist(root, train=False)
    assert not root.exists()
