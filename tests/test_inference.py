"""inference.py: writes the grids it says it wrote, and refuses bad checkpoints in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import inference
import train
from cli import checkpoint as ckpt_io
from gan_utils.data import MNISTDataError, load_mnist

ROOT = Path(__file__).resolve().parent.parent


def grid_size(n: int, nrow: int) -> tuple[int, int]:
    """(width, height) of torchvision's grid of n 28x28 images, padding 2."""
    rows = -(-n // nrow)
    return nrow * 30 + 2, rows * 30 + 2


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        load_mnist(download=False)
    except MNISTDataError:
        pytest.skip("MNIST files not found; set GAN_DATA_DIR")
    out = tmp_path_factory.mktemp("dcgan")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # dcgan: BatchNorm makes eval-mode sampling matter.
    assert train.main(["--model", "dcgan", "--subset", "64", "--batch_size", "32", "--n_epochs", "1",
                       "--out_dir", str(out)]) == 0
    torch.set_num_threads(threads)
    return out / "checkpoints" / "last.pt"


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        code = inference.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_writes_the_sample_grid_it_reports(ckpt_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(["--checkpoint", str(ckpt_path), "--n", "10", "--out", str(tmp_path / "s.png")], capsys)
    assert code == 0
    written = Path(re.search(r"wrote 10 samples to (\S+)", out).group(1))
    assert written == tmp_path / "s.png"
    with Image.open(written) as image:
        assert image.format == "PNG" and image.size == grid_size(10, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["s.png"]


def test_seed_fixes_the_samples(ckpt_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert run(["--checkpoint", str(ckpt_path), "--seed", seed, "--out", str(tmp_path / f"{name}.png")],
                   capsys)[0] == 0
    pixels = {n: torch.from_numpy(np.array(Image.open(tmp_path / f"{n}.png"))) for n in "abc"}
    assert torch.equal(pixels["a"], pixels["b"])
    assert not torch.equal(pixels["a"], pixels["c"])


def test_sampling_leaves_the_generator_in_eval_mode_and_matches_sample(ckpt_path: Path) -> None:
    G, config = inference.load_generator(ckpt_path, "dcgan", torch.device("cpu"))
    assert not G.training
    z = torch.rand(5, config["latent_dim"]) * 2 - 1
    assert torch.equal(inference.sample(G, z), inference.sample(G, z))  # eval BatchNorm: no batch dependence
    assert torch.allclose(inference.sample(G, z)[:2], inference.sample(G, z[:2]), atol=1e-6)


def test_interpolation_grid(ckpt_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(["--checkpoint", str(ckpt_path), "--n", "4", "--out", str(tmp_path / "s.png"),
                        "--interpolate", "3", "--steps", "6"], capsys)
    assert code == 0 and "3x6 interpolation grid" in out
    with Image.open(tmp_path / "s_interp.png") as image:
        assert image.size == grid_size(18, 6)
    z = inference.interpolation_noise(3, 6, 96, seed=0)
    assert z.shape == (18, 96)
    ends = z.reshape(3, 6, 96)
    midpoints = (ends[:, 0] + ends[:, -1]) / 2
    assert torch.allclose(ends[:, 1:-1].mean(dim=1), midpoints, atol=1e-6)  # straight lines


@pytest.mark.parametrize("problem", ["missing", "truncated", "garbage", "wrong_model", "not_ours", "bad_weights"])
def test_bad_checkpoints_give_one_clear_line(problem: str, ckpt_path: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    path, extra = tmp_path / "c.pt", []
    raw = ckpt_path.read_bytes()
    if problem == "truncated":
        path.write_bytes(raw[: len(raw) - 100])
    elif problem == "garbage":
        path.write_bytes(b"not a checkpoint at all\n" * 10)
    elif problem == "wrong_model":
        path, extra = ckpt_path, ["--model", "vanilla"]
    elif problem == "not_ours":
        torch.save({"generator": torch.nn.Linear(2, 2)}, path)
    elif problem == "bad_weights":
        ckpt = ckpt_io.load(ckpt_path)
        ckpt_io.save({**ckpt, "config": {**ckpt["config"], "latent_dim": 50}}, path)
    expected = {"missing": "no checkpoint at", "truncated": "is corrupt or truncated",
                "garbage": "is corrupt", "wrong_model": "was made for model 'dcgan', not 'vanilla'",
                "not_ours": "is not a GAN checkpoint of this project",
                "bad_weights": "its generator does not fit this model"}[problem]
    code, out, err = run(["--checkpoint", str(path), *extra, "--out", str(tmp_path / "s.png")], capsys)
    assert code == 2 and expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "--n: must be a positive integer"),
    (["--steps", "1"], "--steps: must be at least 2"),
    (["--interpolate", "-1"], "--interpolate: must be >= 0"),
    (["--device", "cuda:x"], "is not a device name"),
])
def test_bad_flags(argv: list[str], message: str, ckpt_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["--checkpoint", str(ckpt_path), *argv], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_missing_checkpoint_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "inference.py"), "--checkpoint", str(tmp_path / "x.pt")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"inference.py: error: no checkpoint at {tmp_path / 'x.pt'} " \
                                  "(train one with train.py, or pass --checkpoint PATH)"


def test_an_unwritable_out_is_refused_in_one_line(ckpt_path: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run(["--checkpoint", str(ckpt_path), "--out", str(blocker / "s.png")], capsys)
    assert code == 2 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1


def test_samples_come_from_the_moving_average_when_the_run_kept_one(ckpt_path: Path) -> None:
    ckpt = ckpt_io.load(ckpt_path)
    assert ckpt["G_ema"] is not None
    G, _ = inference.load_generator(ckpt_path, None, torch.device("cpu"))
    for name, value in G.state_dict().items():
        assert torch.equal(value, ckpt["G_ema"]["module"][name])
