"""bench_notebook refuses a bad environment before it copies anything or starts a kernel."""

from __future__ import annotations

import pytest
import torch

from bench import bench_notebook


@pytest.mark.parametrize("name, value, named", [
    ("GAN_THREADS", "two", "GAN_THREADS must be a positive whole number of threads, got 'two'"),
    ("GAN_BF16", "yes", "GAN_BF16 must be 0 (train in float32) or 1 (bfloat16 where supported), got 'yes'"),
])
def test_a_bad_environment_is_a_usage_error_before_the_kernel_starts(name: str, value: str, named: str,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.argv", ["bench_notebook.py"])
    monkeypatch.setattr(bench_notebook.tempfile, "TemporaryDirectory", lambda: pytest.fail("work began"))
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as exit_info:
        bench_notebook.main()
    assert exit_info.value.code == 2 and named in capsys.readouterr().err
    assert torch.get_num_threads() == threads  # checking the environment changes nothing
