"""Regenerating the reference arrays from the solution reproduces the committed files."""

import numpy as np
import pytest

from gan_utils.parts import PARTS
from gan_utils.references import load_cases
from instructor import make_checks


@pytest.fixture(scope="module")
def solution():
    return make_checks.load_solution()


@pytest.mark.parametrize("path", [make_checks.PUBLIC_FILE, make_checks.HIDDEN_FILE], ids=["public", "hidden"])
def test_regeneration_reproduces_committed_arrays(solution, path):
    committed = load_cases(path)
    fresh = make_checks.build_cases(solution, make_checks.SEEDS[path])
    assert committed.keys() == fresh.keys()
    for part, case in fresh.items():
        assert committed[part].keys() == case.keys(), part
        for key, value in case.items():
            stored = committed[part][key]
            assert stored.dtype == value.dtype and stored.shape == value.shape, f"{part}.{key}"
            if key.startswith("in.") or value.dtype.kind not in "f":
                assert np.array_equal(stored, value), f"{part}.{key}"
            else:  # float64 results of float64 arithmetic: equal up to the last bits a CPU may round differently
                assert np.allclose(stored, value, rtol=1e-9, atol=1e-12, equal_nan=True), f"{part}.{key}"


DETERMINISTIC_INPUTS = {"in.param_scales", "in.param_offsets", "in.lr", "in.sizes"}  # layout and settings, not draws


def test_hidden_inputs_differ_from_public(solution):
    public, hidden = load_cases(make_checks.PUBLIC_FILE), load_cases(make_checks.HIDDEN_FILE)
    for part in (p.name for p in PARTS):
        floats = [k for k, v in public[part].items() if k.startswith("in.") and v.dtype.kind == "f"
                  and k not in DETERMINISTIC_INPUTS and not k.startswith("in.extreme_")]
        for key in floats:
            assert not np.array_equal(public[part][key], hidden[part][key]), f"{part}.{key}"


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "checks.npz"
    target.write_bytes(b"good")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(RuntimeError):
        make_checks.write_cases({"part": {"in.x": np.zeros(1)}}, target)
    assert target.read_bytes() == b"good"
    assert list(tmp_path.iterdir()) == [target]


def test_refuses_a_stubbed_module(tmp_path):
    path = tmp_path / "gan_pytorch.py"
    path.write_text("NOISE_DIM = 96\n")
    with pytest.raises(SystemExit, match="no solution regions"):
        make_checks.load_solution(path)
