"""MNIST loading: offline from the data directory, clear errors when files are missing or broken."""

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from gan_utils import data
from gan_utils.data import MNISTDataError, iterate_minibatches, load_mnist, resolve_data_dir

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


def test_minibatches_slice_the_tensor():
    images = torch.arange(10.0).reshape(10, 1)
    batches = list(iterate_minibatches(images, 4, shuffle=False))
    assert [b.squeeze(1).tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    seeded = torch.Generator().manual_seed(0)
    kept = list(iterate_minibatches(images, 4, shuffle=True, drop_last=False, generator=seeded))
    assert sorted(torch.cat(kept).squeeze(1).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="batch_size must be positive"):
        next(iterate_minibatches(images, 0))
