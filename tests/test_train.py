"""train.py and cli/checkpoint.py: short CPU runs, exact resume, clean stops and one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import gan_pytorch as gp
import train
from cli import checkpoint as ckpt_io
from gan_utils import env
from gan_utils.data import MNISTDataError, load_mnist
from gan_utils.models import MODELS
from gan_utils.training import FLOAT32_RECIPES, RECIPES, Recipe

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--subset", "128", "--batch_size", "32"]  # 4 steps per epoch


@pytest.fixture(autouse=True)
def _setup(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        load_mnist(download=False)
    except MNISTDataError:
        pytest.skip("MNIST files not found; set GAN_DATA_DIR")
    # One thread: two threads on a shared 2-core machine can be 10x slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(argv: list[str], capsys: pytest.CaptureFixture | None = None) -> tuple[int, str, str]:
    """train.main in this process: (exit status, stdout, stderr); argparse's SystemExit becomes a status."""
    try:
        code = train.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr() if capsys else ("", "")
    return code, out, err


def load(out_dir: Path) -> dict:
    return ckpt_io.load(out_dir / "checkpoints" / "last.pt")


def assert_same_state(a: dict, b: dict) -> None:
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for name in a[net]:
            assert torch.equal(a[net][name], b[net][name]), f"{net}.{name} differs"
    for opt in ("G_opt", "D_opt"):
        for i, state in a[opt]["state"].items():
            for key, value in state.items():
                assert torch.equal(value, b[opt]["state"][i][key]), f"{opt} state {i}.{key} differs"
    assert torch.equal(a["history"]["stats"], b["history"]["stats"])
    if a["G_ema"] is not None:
        for name, value in a["G_ema"]["module"].items():
            assert torch.equal(value, b["G_ema"]["module"][name]), f"G_ema.{name} differs"
    assert a["step"] == b["step"] and a["batches"]["epoch"] == b["batches"]["epoch"]


@pytest.mark.parametrize(("flags", "lr", "g_lr"), [
    ([], gp.LEARNING_RATE, RECIPES["dcgan"].g_lr),
    (["--lr", "5e-4"], 5e-4, 5e-4),
    (["--g_lr", "3e-3"], gp.LEARNING_RATE, 3e-3),
    (["--lr", "5e-4", "--g_lr", "3e-3"], 5e-4, 3e-3),
])
def test_g_learning_rate_comes_from_the_recipe_unless_a_flag_sets_a_rate(flags: list[str], lr: float,
                                                                          g_lr: float) -> None:
    config = train.resolve_config(train.parse_args(["--model", "dcgan", *flags]), None, bf16_here=False)
    assert (config["lr"], config["g_lr"]) == (lr, g_lr)


@pytest.mark.parametrize(("flags", "lr", "g_lr"), [
    ([], 2e-3, gp.LEARNING_RATE),
    (["--lr", "5e-4"], 5e-4, 5e-4),
    (["--g_lr", "3e-3"], 2e-3, 3e-3),
])
def test_d_learning_rate_comes_from_the_recipe_unless_lr_is_given(flags: list[str], lr: float, g_lr: float,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(train.RECIPES, "vanilla", replace(RECIPES["vanilla"], d_lr=2e-3, g_lr=None))
    config = train.resolve_config(train.parse_args(["--model", "vanilla", *flags]), None, bf16_here=True)
    assert (config["lr"], config["g_lr"]) == (lr, g_lr)


@pytest.mark.parametrize(("flags", "bf16_here", "recipe"), [
    ([], True, RECIPES["lsgan"]),
    ([], False, FLOAT32_RECIPES["lsgan"]),
    (["--no_bf16"], True, FLOAT32_RECIPES["lsgan"]),
])
def test_the_notebooks_recipe_for_the_machine_sets_batch_size_and_beta2(flags: list[str], bf16_here: bool,
                                                                        recipe: Recipe) -> None:
    config = train.resolve_config(train.parse_args(["--model", "lsgan", *flags]), None, bf16_here=bf16_here)
    assert (config["batch_size"], config["b2"], config["bf16"]) == (recipe.batch_size, recipe.betas[1], recipe.bf16)
    given = train.resolve_config(train.parse_args(["--model", "lsgan", "--batch_size", "32", "--b2", "0.9", *flags]),
                                 None, bf16_here=bf16_here)
    assert (given["batch_size"], given["b2"]) == (32, 0.9)


def test_a_checkpoint_from_before_g_lr_resumes_with_g_at_its_lr() -> None:
    saved = train.resolve_config(train.parse_args(["--model", "dcgan", "--lr", "5e-4"]), None, bf16_here=False)
    del saved["g_lr"]
    config = train.resolve_config(train.parse_args(["--model", "dcgan"]), saved, bf16_here=False)
    assert config["g_lr"] == 5e-4
    with pytest.raises(train.ConfigError, match="--g_lr 0.002 does not match the checkpoint"):
        train.resolve_config(train.parse_args(["--model", "dcgan", "--g_lr", "2e-3"]), saved, bf16_here=False)


@pytest.mark.parametrize("model", list(MODELS))
def test_each_model_trains_and_writes_its_outputs(model: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(["--model", model, *TINY, "--n_epochs", "1", "--sample_interval", "2",
                          "--out_dir", str(tmp_path)], capsys)
    assert code == 0, err
    ckpt = load(tmp_path)
    assert ckpt["model"] == model and ckpt["step"] == 4 and ckpt["batches"]["epoch"] == 0
    assert ckpt["config"]["latent_dim"] == gp.NOISE_DIM
    d_lr, g_lr = RECIPES[model].learning_rates
    assert ckpt["G_opt"]["param_groups"][0]["lr"] == ckpt["config"]["g_lr"] == g_lr
    assert ckpt["D_opt"]["param_groups"][0]["lr"] == ckpt["config"]["lr"] == d_lr
    assert ckpt["history"]["stats"].shape == (4, 4) and torch.isfinite(ckpt["history"]["stats"]).all()
    assert "1/1" in out and "D(G(z))" in out  # the per-epoch table
    for name in (f"images/{model}_iter00002.png", f"images/{model}_iter00004.png", "images/final.png", "loss.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"


@pytest.mark.parametrize("model, extra", [("vanilla", TINY), ("dcgan", ["--subset", "64", "--batch_size", "16"])])
def test_resume_equals_uninterrupted(model: str, extra: list[str], tmp_path: Path) -> None:
    # Both keep an EMA of G; dcgan also has BatchNorm running statistics. Both runs have 4 steps per epoch.
    base = ["--model", model, *extra, "--seed", "3", "--sample_interval", "3"]
    assert run([*base, "--n_epochs", "3", "--out_dir", str(tmp_path / "whole")])[0] == 0
    # Stopped mid-epoch (step 6 of 12, as Ctrl-C would), then resumed.
    assert run([*base, "--n_epochs", "3", "--out_dir", str(tmp_path / "mid"), "--stop_after_steps", "6"])[0] == 130
    assert load(tmp_path / "mid")["step"] == 6
    assert run(["--out_dir", str(tmp_path / "mid"), "--resume"])[0] == 0
    # Stopped at an epoch boundary, then resumed with more epochs.
    assert run([*base, "--n_epochs", "1", "--out_dir", str(tmp_path / "edge")])[0] == 0
    assert run(["--resume", str(tmp_path / "edge" / "checkpoints" / "last.pt"), "--n_epochs", "3"])[0] == 0
    whole = load(tmp_path / "whole")
    assert whole["step"] == 12
    assert_same_state(whole, load(tmp_path / "mid"))
    assert_same_state(whole, load(tmp_path / "edge"))


def test_a_different_seed_gives_different_weights(tmp_path: Path) -> None:
    for seed in ("0", "1"):
        assert run([*TINY, "--n_epochs", "1", "--seed", seed, "--out_dir", str(tmp_path / seed)])[0] == 0
    a, b = load(tmp_path / "0"), load(tmp_path / "1")
    assert not torch.equal(a["G"]["0.weight"], b["G"]["0.weight"])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    real_make = train.make_trainer

    def make_that_diverges(*args, **kwargs):
        trainer = real_make(*args, **kwargs)
        step = trainer.train_step
        calls = []

        def diverging_step(batch: torch.Tensor):
            calls.append(1)
            stats = step(batch)
            if len(calls) >= 6:  # in epoch 2 of 4-step epochs: weights and losses blow up
                with torch.no_grad():
                    for p in trainer.G.parameters():
                        p.fill_(float("nan"))
                return stats._replace(g_loss=torch.tensor(float("nan")))
            return stats

        trainer.train_step = diverging_step
        return trainer

    monkeypatch.setattr(train, "make_trainer", make_that_diverges)
    code, _, err = run([*TINY, "--n_epochs", "3", "--out_dir", str(tmp_path)], capsys)
    assert code == 1
    assert "non-finite loss at step 6" in err and "last good checkpoint is kept" in err and "Traceback" not in err
    ckpt = load(tmp_path)
    assert ckpt["step"] == 4
    assert all(torch.isfinite(p).all() for p in ckpt["G"].values())


def test_absurd_learning_rate_gives_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run([*TINY, "--n_epochs", "2", "--lr", "1e30", "--out_dir", str(tmp_path)], capsys)
    assert code == 1 and "non-finite" in err and "smaller --lr" in err


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlp")
    torch.set_num_threads(1)
    assert train.main([*TINY, "--n_epochs", "1", "--out_dir", str(out)]) == 0
    return out


@pytest.mark.parametrize("argv, message", [
    (["--batch_size", "0"], "--batch_size: must be a positive integer, got 0"),
    (["--n_epochs", "-2"], "--n_epochs: must be a positive integer, got -2"),
    (["--latent_dim", "x"], "--latent_dim: expected a positive integer, got 'x'"),
    (["--sample_interval", "0"], "--sample_interval: must be a positive integer"),
    (["--checkpoint_every", "0"], "--checkpoint_every: must be a positive integer"),
    (["--lr", "0"], "--lr: must be a positive number"),
    (["--lr", "nan"], "--lr: must be a positive number"),
    (["--b2", "1"], "--b2: must be a number in [0, 1)"),
    (["--model", "wgan"], "invalid choice: 'wgan'"),
    (["--img_size", "32"], "--img_size 32"),
    (["--channels", "3"], "--channels 3"),
    (["--ema", "1"], "--ema: must be a number in [0, 1)"),
    (["--device", "banana"], "--device 'banana' is not a device name"),
    (["--subset", "10", "--batch_size", "32"], "--batch_size 32 is larger than the 10 training images"),
])
def test_bad_flags_give_one_clear_line(argv: list[str], message: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    code, out, err = run([*argv, "--out_dir", str(tmp_path)], capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "checkpoints").exists()


def test_gan_bf16_0_makes_a_fresh_run_float32_and_an_unknown_value_is_one_clear_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(env, "supports_bfloat16", lambda device: True)
    monkeypatch.setenv("GAN_BF16", "0")
    assert run([*TINY, "--n_epochs", "1", "--out_dir", str(tmp_path / "f32")], capsys)[0] == 0
    assert load(tmp_path / "f32")["config"]["bf16"] is False
    monkeypatch.setenv("GAN_BF16", "off")
    code, _, err = run([*TINY, "--out_dir", str(tmp_path / "bad")], capsys)
    assert code == 2 and "GAN_BF16 must be 0 (train in float32) or 1" in err and "'off'" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("argv, message", [
    (["--latent_dim", "64"], "--latent_dim 64 does not match the checkpoint (latent_dim=96)"),
    (["--model", "dcgan"], "was made for model 'vanilla', not 'dcgan'"),
    (["--batch_size", "64"], "--batch_size 64 does not match the checkpoint"),
])
def test_resume_flags_that_contradict_the_checkpoint(argv: list[str], message: str, mlp_run: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["--resume", str(mlp_run / "checkpoints" / "last.pt"), *argv], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_resume_from_a_corrupt_or_missing_or_foreign_checkpoint(mlp_run: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    raw = (mlp_run / "checkpoints" / "last.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(raw[: len(raw) // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    for path, message in ((truncated, "is corrupt or truncated"), (tmp_path / "none.pt", "no checkpoint at"),
                          (foreign, "is not a GAN checkpoint of this project")):
        code, _, err = run(["--resume", str(path)], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_resume_when_already_done_does_nothing(mlp_run: Path, capsys: pytest.CaptureFixture) -> None:
    before = (mlp_run / "checkpoints" / "last.pt").read_bytes()
    code, out, _ = run(["--resume", str(mlp_run / "checkpoints" / "last.pt")], capsys)
    assert code == 0 and "nothing to do" in out
    assert (mlp_run / "checkpoints" / "last.pt").read_bytes() == before


def test_checkpoint_write_killed_midway_keeps_the_old_file(mlp_run: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    ckpt = ckpt_io.load(mlp_run / "checkpoints" / "last.pt")
    ckpt_io.save(ckpt, path)
    before = path.read_bytes()

    def dies_midway(obj, f) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # as if killed while writing

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        ckpt_io.save({**ckpt, "step": 99}, path)
    assert path.read_bytes() == before
    assert ckpt_io.load(path)["step"] == ckpt["step"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_checkpoint_load_rejects_what_is_not_ours(mlp_run: Path, tmp_path: Path) -> None:
    ckpt = ckpt_io.load(mlp_run / "checkpoints" / "last.pt")
    cases = {
        "other_format.pt": ({**ckpt, "format": "someone-else/3"}, "has format 'someone-else/3'"),
        "incomplete.pt": ({k: v for k, v in ckpt.items() if k != "G_opt"}, "incomplete: missing G_opt"),
        "plain_list.pt": ([1, 2, 3], "no format marker"),
        "pickled_code.pt": ({"format": ckpt_io.FORMAT, "x": Path("a")}, "holds objects other than tensors"),
    }
    for name, (obj, message) in cases.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(ckpt_io.CheckpointError, match=message.replace("(", r"\(")):
            ckpt_io.load(tmp_path / name)
    with pytest.raises(ckpt_io.CheckpointError, match="made for model 'vanilla', not 'lsgan'"):
        ckpt_io.load(mlp_run / "checkpoints" / "last.pt", model="lsgan")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_cli_bad_flag_prints_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--img_size", "64", "--out_dir", str(tmp_path)],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "--img_size 64" in proc.stderr


def test_ctrl_c_stops_cleanly_with_a_checkpoint(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "train.py"), "--subset", "256", "--batch_size", "64", "--n_epochs", "100000",
           "--sample_interval", "1000000", "--out_dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        for line in proc.stdout:  # the script prints this line once Ctrl-C is handled
            if line.startswith("training "):
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "SIGINT: stopped in epoch " in err and "continue with --resume" in err and "Traceback" not in err
    assert "stopped in epoch 0" not in err  # epochs count from 1, as in the table
    ckpt = load(tmp_path)
    assert ckpt["step"] >= 1 and ckpt["step"] == len(ckpt["history"]["stats"])


def test_a_fresh_run_never_replaces_a_checkpoint_unless_asked(mlp_run: Path, capsys: pytest.CaptureFixture) -> None:
    before = (mlp_run / "checkpoints" / "last.pt").read_bytes()
    code, _, err = run([*TINY, "--n_epochs", "1", "--out_dir", str(mlp_run)], capsys)
    assert code == 2 and "exists: pass --resume to continue it, or --overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert (mlp_run / "checkpoints" / "last.pt").read_bytes() == before


def test_overwrite_starts_again(tmp_path: Path) -> None:
    assert run([*TINY, "--n_epochs", "1", "--out_dir", str(tmp_path)])[0] == 0
    assert run([*TINY, "--n_epochs", "1", "--seed", "5", "--out_dir", str(tmp_path), "--overwrite"])[0] == 0
    assert load(tmp_path)["config"]["seed"] == 5


@pytest.mark.parametrize("resume", [False, True])
def test_an_unwritable_out_dir_is_refused_before_training(resume: bool, mlp_run: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = [*TINY, "--n_epochs", "3", "--out_dir", str(blocker / "run")]
    if resume:
        argv += ["--resume", str(mlp_run / "checkpoints" / "last.pt")]
        argv = [a for a in argv if a not in TINY]
    code, out, err = run(argv, capsys)
    assert code == 2 and "a-file is a file, not a folder" in err, err
    assert len(err.strip().splitlines()) == 1 and "training vanilla" not in out


def test_resume_keeps_the_sample_interval(tmp_path: Path) -> None:
    base = [*TINY, "--n_epochs", "2", "--sample_interval", "3", "--out_dir", str(tmp_path)]
    assert run([*base, "--stop_after_steps", "2"])[0] == 130
    assert run(["--out_dir", str(tmp_path), "--resume"])[0] == 0
    grids = sorted(p.name for p in (tmp_path / "images").glob("vanilla_iter*.png"))
    assert grids == [f"vanilla_iter{k:05d}.png" for k in (0, 3, 6, 8)]


def test_a_missing_resume_checkpoint_names_the_right_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["--out_dir", str(tmp_path), "--resume"], capsys)
    assert code == 2 and "no checkpoint at" in err and "--resume PATH" in err and "--checkpoint" not in err
