"""bench_mnist: a --variant is read exactly; a bad flag, a bad environment variable or missing data is refused with
one message naming it; the summary scores G without its EMA beside the recipe, and gives the time bar's ratio of
mean seconds with each seed's own ratio beside it (on stand-in trainings)."""

from __future__ import annotations

import re
import runpy
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import gan_utils.data
from bench import bench_mnist
from bench.bench_mnist import parse_variant
from gan_utils.data import MNISTDataError
from gan_utils.training import Recipe


def test_a_variant_reads_each_field_in_its_own_type() -> None:
    assert parse_variant("iterations=2300") == {"iterations": 2300}
    assert parse_variant("iterations=2000, g_lr=2e-3,ema_decay=none,bf16=false,d_lr=3e-3,beta2=0.99") == {
        "iterations": 2000, "g_lr": 0.002, "ema_decay": None, "bf16": False, "d_lr": 0.003, "beta2": 0.99}


@pytest.mark.parametrize("text, named", [
    ("iteration=2300", "'iteration=2300' is not FIELD=VALUE"),
    ("iterations", "'iterations' is not FIELD=VALUE"),
    ("iterations=2.5", "iterations: expected a positive integer, got '2.5'"),
    ("bf16=maybe", "bf16: expected true or false, got 'maybe'"),
    ("iterations=0", "iterations: must be a positive integer, got 0"),
    ("g_lr=-1e-3", "g_lr: must be a positive number, got -1e-3"),
    ("ema_decay=1", "ema_decay: must be a number in (0, 1), got 1"),
    ("ema_decay=0", "ema_decay: must be a number in (0, 1), got 0"),
    ("beta2=1", "beta2: must be a number in (0, 1), got 1"),
])
def test_a_bad_variant_is_refused_with_what_is_wrong(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"--variant '{text}': {named}")):
        parse_variant(text)


@pytest.mark.parametrize("flags, environment, named", [
    (["--seeds", "0"], {}, "argument --seeds: must be a positive integer, got 0"),
    (["--threads", "0"], {}, "argument --threads: must be a positive integer, got 0"),
    ([], {"GAN_THREADS": "two"}, "GAN_THREADS must be a positive whole number of threads, got 'two'"),
    ([], {"GAN_BF16": "yes"}, "GAN_BF16 must be 0 (train in float32) or 1 (bfloat16 where supported), got 'yes'"),
])
def test_bad_input_is_a_usage_error_before_any_work(flags: list[str], environment: dict[str, str], named: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.argv", ["bench_mnist.py", *flags])
    monkeypatch.setattr(bench_mnist, "load_mnist", lambda: pytest.fail("the data was loaded before the check"))
    old_threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as exit_info:
        bench_mnist.main()
    torch.set_num_threads(old_threads)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_missing_data_is_one_message_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: object, **kwargs: object) -> None:
        raise MNISTDataError("Put the four standard MNIST files in /nowhere/MNIST/raw")

    monkeypatch.setattr(gan_utils.data, "load_mnist", missing)
    monkeypatch.setattr("sys.argv", ["bench_mnist.py", "--models", "vanilla", "--seeds", "1"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(Path(bench_mnist.__file__)), run_name="__main__")
    assert exit_info.value.code == "bench_mnist.py: Put the four standard MNIST files in /nowhere/MNIST/raw"


def run_main(monkeypatch: pytest.MonkeyPatch, train_model: Callable[..., SimpleNamespace],
             evaluate_generator: Callable[[torch.nn.Module], dict[str, float]], flags: list[str]) -> None:
    """bench_mnist.main with these flags, its trainings and scores replaced by the given stand-ins."""
    monkeypatch.setattr(bench_mnist, "load_mnist", lambda: (None, None))
    monkeypatch.setattr(bench_mnist, "train_model", train_model)
    monkeypatch.setattr(bench_mnist.ev, "evaluate_generator", evaluate_generator)
    monkeypatch.setattr(bench_mnist.ev, "real_data_floor", lambda: {"fd": 2.0})
    monkeypatch.setattr(bench_mnist.ev, "classifier_accuracy", lambda: 0.99)
    monkeypatch.setattr("sys.argv", ["bench_mnist.py", *flags])
    old_threads = torch.get_num_threads()
    bench_mnist.main()
    torch.set_num_threads(old_threads)


def test_without_ema_scores_the_same_trainings_g_beside_its_average(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture) -> None:
    averaged, bare = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)

    def train_model(model: str, images: object, recipe: Recipe, seed: int, progress: bool) -> SimpleNamespace:
        ema = SimpleNamespace(module=averaged) if recipe.ema_decay else None
        return SimpleNamespace(recipe=recipe, ema=ema, G=averaged if ema else bare,
                               trainer=SimpleNamespace(G=bare), history=SimpleNamespace(seconds=10.0 + seed))

    def evaluate_generator(G: torch.nn.Module) -> dict[str, float]:
        return {"fd": 100.0 if G is averaged else 200.0, "classes_5pct": 10, "min_class_share": 0.06}

    run_main(monkeypatch, train_model, evaluate_generator, ["--models", "vanilla", "--seeds", "2", "--without_ema"])
    out = capsys.readouterr().out
    # the baseline keeps no average, so only the recipe gets a second score, from the same training
    assert out.count("recipe, G itself (no EMA)") == 3 and "CS231n, G itself" not in out
    assert re.search(r"seed 1 vanilla recipe, G itself \(no EMA\) +the same training, G without its EMA: FD  200\.00",
                     out)
    assert re.search(r"vanilla  recipe, G itself \(no EMA\) +2 +200\.0 ± 0\.0 +10/10 +10\.5", out)
    assert "recipe, G itself (no EMA) FD" not in out  # held to no bars: it is not a setting that could be chosen


def test_the_time_bar_shows_each_seeds_ratio_beside_the_ratio_of_means(monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture) -> None:
    seconds = {("CS231n", 0): 100.0, ("recipe", 0): 40.0, ("CS231n", 1): 200.0, ("recipe", 1): 120.0}

    def train_model(model: str, images: object, recipe: Recipe, seed: int, progress: bool) -> SimpleNamespace:
        setting = "recipe" if recipe.ema_decay else "CS231n"
        return SimpleNamespace(recipe=recipe, ema=None, G=torch.nn.Linear(1, 1),
                               history=SimpleNamespace(seconds=seconds[setting, seed]))

    run_main(monkeypatch, train_model, lambda G: {"fd": 100.0, "classes_5pct": 10, "min_class_share": 0.06},
             ["--models", "vanilla", "--seeds", "2"])
    # 80 s against 150 s on average: 0.533, missed; seed by seed 0.4 and 0.6
    assert "time 0.533 of the baseline's (seed by seed 0.500 ± 0.100; bar 0.500): MISSED" in capsys.readouterr().out
