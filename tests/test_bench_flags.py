"""The benchmarks refuse a count that cannot work (a batch, a number of steps, submissions, jobs, a timeout) as a
usage error naming the flag, before any work."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("script, flags, named", [
    ("bench_trainer", ["--batch", "0"], "argument --batch: must be a positive integer, got 0"),
    ("bench_trainer", ["--steps", "-5"], "argument --steps: must be a positive integer, got -5"),
    ("bench_trainer", ["--repeats", "0"], "argument --repeats: must be a positive integer, got 0"),
    ("bench_trainer", ["--warmup", "-1"], "argument --warmup: must be a whole number >= 0, got -1"),
    ("bench_trainer", ["--quality_seeds", "two"], "argument --quality_seeds: expected a whole number >= 0, got 'two'"),
    ("bench_grading", ["--n", "0"], "argument --n: must be a positive integer, got 0"),
    ("bench_grading", ["--jobs", "0"], "argument --jobs: must be a positive integer, got 0"),
    ("bench_notebook", ["--timeout", "0"], "argument --timeout: must be a positive integer, got 0"),
])
def test_a_count_that_cannot_work_is_a_usage_error(script: str, flags: list[str], named: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    module = importlib.import_module(f"bench.{script}")
    monkeypatch.setattr("sys.argv", [f"{script}.py", *flags])
    monkeypatch.setattr(module.tempfile, "TemporaryDirectory", lambda: pytest.fail("work began"))
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 2 and named in capsys.readouterr().err
