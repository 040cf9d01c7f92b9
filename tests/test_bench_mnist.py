"""bench_mnist's --variant: a candidate recipe is read exactly, and a bad one is refused with a message naming it."""

from __future__ import annotations

import re

import pytest

from bench import bench_mnist
from bench.bench_mnist import parse_variant


def test_a_variant_reads_each_field_in_its_own_type() -> None:
    assert parse_variant("iterations=2300") == {"iterations": 2300}
    assert parse_variant("iterations=2000, g_lr=2e-3,ema_decay=none,bf16=false") == {
        "iterations": 2000, "g_lr": 0.002, "ema_decay": None, "bf16": False}


@pytest.mark.parametrize("text, named", [
    ("iteration=2300", "'iteration=2300' is not FIELD=VALUE"),
    ("iterations", "'iterations' is not FIELD=VALUE"),
    ("iterations=2.5", "iterations: expected a positive integer, got '2.5'"),
    ("bf16=maybe", "bf16: expected true or false, got 'maybe'"),
    ("iterations=0", "iterations: must be a positive integer, got 0"),
    ("g_lr=-1e-3", "g_lr: must be a positive number, got -1e-3"),
    ("ema_decay=1", "ema_decay: must be a number in (0, 1), got 1"),
    ("ema_decay=0", "ema_decay: must be a number in (0, 1), got 0"),
])
def test_a_bad_variant_is_refused_with_what_is_wrong(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"--variant '{text}': {named}")):
        parse_variant(text)


def test_no_seeds_is_a_usage_error_before_any_work(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("sys.argv", ["bench_mnist.py", "--seeds", "0"])
    with pytest.raises(SystemExit) as exit_info:
        bench_mnist.main()
    assert exit_info.value.code == 2
    assert "argument --seeds: must be a positive integer, got 0" in capsys.readouterr().err
