"""MNIST from the four standard IDX files, held in memory, with an offline path.

The data directory is, in order: the ``data_dir`` argument, the ``GAN_DATA_DIR`` environment variable,
``data/`` in the project folder (the folder that holds ``gan_utils/``). Inside it the files may sit in
``MNIST/raw/`` (torchvision's layout), ``raw/`` or the directory itself, gzipped or not.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

DATA_DIR_ENV = "GAN_DATA_DIR"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_MAGIC = {3: 2051, 1: 2049}  # images have 3 dimensions, labels 1


class MNISTDataError(RuntimeError):
    """MNIST files are missing, truncated or not what they claim to be."""

    def _render_traceback_(self) -> list[str]:
        """In Jupyter, show the message alone: it says what to do, a stack trace would only hide it."""
        return [f"MNISTDataError: {self}"]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: the argument, else $GAN_DATA_DIR, else ``data/`` in the project folder."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def find_file(root: Path, name: str) -> Path | None:
    """The file ``name`` (or ``name.gz``) in ``root/MNIST/raw``, ``root/raw`` or ``root``; None if absent."""
    for folder in (root / "MNIST" / "raw", root / "raw", root):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _missing_message(root: Path, names: list[str], reason: str) -> str:
    wanted = "\n".join(f"  {n}.gz (or {n})" for n in names)
    return (
        f"MNIST files not found in {root}:\n{wanted}\n"
        f"{reason}\n"
        f"Put the four standard MNIST files in {root / 'MNIST' / 'raw'}, or point the data directory "
        f"elsewhere with data_dir=... or the environment variable {DATA_DIR_ENV}."
    )


def _try_download(root: Path) -> str:
    """Ask torchvision to fetch MNIST into ``root``; return why it failed, or '' on success.

    A failed download leaves no empty folders behind (torchvision creates ``MNIST/raw`` before it connects).
    """
    created = [d for d in (root, root / "MNIST", root / "MNIST" / "raw") if not d.exists()]
    try:
        from torchvision.datasets import MNIST

        for train in (True, False):
            MNIST(root=str(root), train=train, download=True)
    except Exception as exc:  # no network, no torchvision, a mirror down: all end in the same advice
        for folder in reversed(created):
            with contextlib.suppress(OSError):  # only empty folders can go
                folder.rmdir()
        first_line = (str(exc).splitlines() or [""])[0]
        return f"Downloading with torchvision failed too ({type(exc).__name__}: {first_line})."
    return ""


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a uint8 array, checking its header and size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise MNISTDataError(f"{path}: cannot be read as {'gzip' if opener is gzip.open else 'a file'} ({exc}); "
                             "the file is corrupt or truncated, replace it.") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MNISTDataError(f"{path}: only {len(raw)} bytes, too short for an IDX header; replace the file.")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise MNISTDataError(f"{path}: magic number {magic}, expected {_IDX_MAGIC[ndim]}; "
                             "this is not an MNIST IDX file of the right kind.")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise MNISTDataError(f"{path}: {len(raw)} bytes, expected {expected} for shape {tuple(dims)}; "
                             "the file is truncated or corrupt, replace it.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@lru_cache(maxsize=4)
def _load(root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    names = list(FILES[train])
    paths = [find_file(root, n) for n in names]
    if None in paths and download:
        failure = _try_download(root)
        paths = [find_file(root, n) for n in names]
        if None in paths:
            raise MNISTDataError(_missing_message(root, names, failure))
    if None in paths:
        raise MNISTDataError(_missing_message(root, names, "Download was not attempted (download=False)."))
    images = read_idx(paths[0], 3)
    labels = read_idx(paths[1], 1)
    if len(images) != len(labels):
        raise MNISTDataError(f"{paths[0]} holds {len(images)} images but {paths[1]} holds {len(labels)} labels.")
    pixels = torch.from_numpy(images.copy()).float().div_(127.5).sub_(1.0).unsqueeze(1)
    return pixels, torch.from_numpy(labels.astype(np.int64))


def load_mnist(data_dir: str | os.PathLike | None = None, train: bool = True,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load MNIST into memory once.

    Returns:
        images: float32 tensor of shape (N, 1, 28, 28), values in [-1, 1] (N = 60000 train, 10000 test).
        labels: int64 tensor of shape (N,), digits 0-9.

    Raises:
        MNISTDataError: files missing (after trying torchvision's download when ``download``), or corrupt.
    """
    root = resolve_data_dir(data_dir).resolve()
    return _load(root, bool(train), bool(download))


class Batches:
    """Shuffled minibatches of an in-memory tensor, epoch after epoch, without end (the last partial batch of
    each epoch is dropped).

    ``state_dict()`` holds the exact position (the epoch, the batch within it, and the shuffle generator's state
    at the epoch's start), so a run resumed with ``load_state_dict`` sees the same batches as one never stopped.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int = 0) -> None:
        if not 0 < batch_size <= len(images):
            raise ValueError(f"batch_size must be in 1..{len(images)} (the number of images), got {batch_size}")
        self.images, self.batch_size = images, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = self.index = 0
        self._new_order()

    @property
    def per_epoch(self) -> int:
        """Batches in one epoch."""
        return len(self.images) // self.batch_size

    def _new_order(self) -> None:
        self._epoch_start = self.generator.get_state()
        self._order = torch.randperm(len(self.images), generator=self.generator)

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> torch.Tensor:
        if self.index == self.per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
            self._new_order()
        start = self.index * self.batch_size
        self.index += 1
        return self.images[self._order[start:start + self.batch_size].to(self.images.device)]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "epoch_start": self._epoch_start}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["epoch_start"])
        self._new_order()
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
