"""The benchmarks refuse bad input as a usage error naming it, before any work and without changing torch's threads: a
count that cannot work (a batch, a number of steps, submissions, jobs, a timeout), or an environment variable that
bench_notebook's kernel would inherit."""

from __future__ import annotations

import importlib

import pytest
import torch


@pytest.mark.parametrize("script, flags, environment, named", [
    ("bench_trainer", ["--batch", "0"], {}, "argument --batch: must be a positive integer, got 0"),
    ("bench_trainer", ["--steps", "-5"], {}, "argument --steps: must be a positive integer, got -5"),
    ("bench_trainer", ["--repeats", "0"], {}, "argument --repeats: must be a positive integer, got 0"),
    ("bench_trainer", ["--warmup", "-1"], {}, "argument --warmup: must be a whole number >= 0, got -1"),
    ("bench_trainer", ["--quality_seeds", "two"], {},
     "argument --quality_seeds: expected a whole number >= 0, got 'two'"),
    ("bench_grading", ["--n", "0"], {}, "argument --n: must be a positive integer, got 0"),
    ("bench_grading", ["--jobs", "0"], {}, "argument --jobs: must be a positive integer, got 0"),
    ("bench_notebook", ["--timeout", "0"], {}, "argument --timeout: must be a positive integer, got 0"),
    ("bench_notebook", [], {"GAN_THREADS": "two"}, "GAN_THREADS must be a positive whole number of threads, got 'two'"),
    ("bench_notebook", [], {"GAN_BF16": "yes"},
     "GAN_BF16 must be 0 (train in float32) or 1 (bfloat16 where supported), got 'yes'"),
])
def test_bad_input_is_a_usage_error_before_any_work(script: str, flags: list[str], environment: dict[str, str],
                                                    named: str, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    module = importlib.import_module(f"bench.{script}")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.argv", [f"{script}.py", *flags])
    monkeypatch.setattr(module.tempfile, "TemporaryDirectory", lambda: pytest.fail("work began"))
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 2 and named in capsys.readouterr().err
    assert torch.get_num_threads() == threads  # checking the input changes nothing
