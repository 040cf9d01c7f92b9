"""The reference files (``gan-checks.npz``, and the grader's hidden one): how they are laid out, read and written.

A file holds, for each part, arrays named ``PART.in.NAME`` (inputs), ``PART.ref.NAME`` (expected outputs) and
``PART.mistake.K.NAME`` (the outputs of classic mistake K, described by ``PART.mistake.K.label``). In memory a
file is ``{part: case}``, a case being ``{"in.x": ..., "ref.y": ..., "mistake.0.y": ...}``.

Architectures are checked with parameters drawn from a seed (``fixed_parameters``), not stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

CHECKS_FILE = Path(__file__).resolve().parent.parent / "gan-checks.npz"

Arrays = dict[str, np.ndarray]
Cases = dict[str, Arrays]


def flatten(cases: Mapping[str, Mapping[str, np.ndarray]]) -> Arrays:
    """``{part: {key: array}}`` -> ``{"part.key": array}``, the names stored in the file."""
    return {f"{part}.{key}": value for part, case in cases.items() for key, value in case.items()}


def unflatten(arrays: Mapping[str, np.ndarray]) -> Cases:
    """The inverse of ``flatten``."""
    cases: Cases = {}
    for name, value in arrays.items():
        part, _, key = name.partition(".")
        cases.setdefault(part, {})[key] = value
    return cases


def load_cases(path: str | os.PathLike | None = None) -> Cases:
    """Read a reference file (default ``gan-checks.npz``); pickled objects are refused. Read once per process
    (again if the file changes)."""
    path = Path(path).resolve() if path is not None else CHECKS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with the assignment; restore it from the release.")
    stat = path.stat()
    return {part: dict(case) for part, case in _read(path, stat.st_mtime_ns, stat.st_size).items()}


@lru_cache(maxsize=4)
def _read(path: Path, mtime_ns: int, size: int) -> Cases:
    with np.load(path, allow_pickle=False) as data:
        return unflatten({key: data[key] for key in data.files})


def inputs_of(case: Arrays) -> Arrays:
    """Only the inputs of a case, without their ``in.`` prefix: all that a student's process may see."""
    return {k[3:]: v for k, v in case.items() if k.startswith("in.")}


def mistakes_of(case: Arrays) -> list[tuple[str, Arrays]]:
    """The case's known mistakes as (label, outputs) pairs."""
    found: dict[str, tuple[str, Arrays]] = {}
    for key, value in case.items():
        if key.startswith("mistake."):
            _, k, name = key.split(".", 2)
            label, arrays = found.get(k, ("", {}))
            if name == "label":
                label = str(value)
            else:
                arrays = {**arrays, name: value}
            found[k] = (label, arrays)
    return list(found.values())


def pad_shapes(shapes: list[tuple[int, ...]]) -> np.ndarray:
    """Parameter shapes as one int array, rows padded with 0 (no parameter has a zero dimension)."""
    out = np.zeros((len(shapes), 4), dtype=np.int64)
    for i, shape in enumerate(shapes):
        out[i, :len(shape)] = shape
    return out


def shape_text(row: np.ndarray) -> str:
    """One padded row of ``pad_shapes`` as "(a, b)"."""
    return "(" + ", ".join(str(int(d)) for d in row if d > 0) + ")"


def fixed_parameters(shapes: np.ndarray, scales: np.ndarray, offsets: np.ndarray, seed: int) -> list[np.ndarray]:
    """Parameter values drawn from a seed: offset + scale * U(-1, 1), one float64 array per (padded) shape row.

    ``RandomState`` is used because numpy guarantees its stream never changes.
    """
    rng = np.random.RandomState(int(seed))
    values = []
    for shape, scale, offset in zip(shapes, scales, offsets):
        dims = tuple(int(d) for d in shape if d > 0)
        values.append(offset + scale * rng.uniform(-1.0, 1.0, size=dims))
    return values
