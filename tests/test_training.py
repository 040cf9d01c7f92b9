"""The notebook's training loop, settings and plots, on tiny data (a few steps each)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import gan_pytorch as gp  # noqa: E402
from gan_utils import plots, training  # noqa: E402


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(48, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("model", training.MODELS)
def test_fit_records_every_step_and_saves_grids(model: str, images: torch.Tensor, tmp_path) -> None:
    trainer, ema = training.make_gan(model)
    history = training.fit(trainer, images, 3, 16, fixed_noise=gp.sample_noise(4, gp.NOISE_DIM, seed=0),
                           sample_every=2, image_dir=tmp_path, name=model, ema=ema, progress=False)
    assert len(history) == 3
    for values in (history.d_loss, history.g_loss, history.d_real, history.d_fake):
        assert values.shape == (3,) and values.dtype == np.float64 and np.isfinite(values).all()
    if model != "lsgan":  # probabilities; LSGAN reports raw scores
        assert ((history.d_real > 0) & (history.d_real < 1)).all()
    expected = [f"{model}_iter{k:05d}.png" for k in (0, 2, 3)]
    assert [p.name for p in history.grids] == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == expected  # and no temporary files
    assert history.seconds > 0


def test_fit_trains_and_ema_lags_behind(images: torch.Tensor, tmp_path) -> None:
    trainer, ema = training.make_gan("vanilla", training.Recipe(batch_size=16, iterations=4, ema_decay=0.9))
    before = [p.detach().clone() for p in trainer.G.parameters()]
    training.fit(trainer, images, 4, 16, ema=ema, progress=False)
    after = list(trainer.G.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(after, before))
    averaged = list(ema.module.parameters())
    # The average sits strictly between where G started and where it is now (not equal to either).
    assert all(not torch.equal(m, a) and not torch.equal(m, b) for m, a, b in zip(averaged, after, before))


def test_fit_is_reproducible_with_a_seed(images: torch.Tensor) -> None:
    runs = []
    for _ in range(2):
        trainer, _ = training.make_gan("vanilla", seed=1)
        runs.append(training.fit(trainer, images, 2, 16, progress=False, seed=3).d_loss)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_fit_with_no_iterations_only_saves_the_start(images: torch.Tensor, tmp_path) -> None:
    trainer, _ = training.make_gan("vanilla")
    history = training.fit(trainer, images, 0, 16, fixed_noise=gp.sample_noise(2, gp.NOISE_DIM),
                           image_dir=tmp_path, name="g", progress=False)
    assert len(history) == 0 and [p.name for p in history.grids] == ["g_iter00000.png"]


@pytest.mark.parametrize("kwargs, match", [
    ({"iterations": -1}, "iterations"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 49}, "batch_size"),
    ({"sample_every": 0}, "sample_every"),
])
def test_fit_rejects_bad_settings(kwargs: dict, match: str, images: torch.Tensor) -> None:
    trainer, _ = training.make_gan("vanilla")
    settings = {"iterations": 1, "batch_size": 16, **kwargs}
    with pytest.raises(ValueError, match=match):
        training.fit(trainer, images, settings.pop("iterations"), settings.pop("batch_size"), progress=False,
                     **settings)


def test_make_gan_wires_the_right_parts() -> None:
    trainer, ema = training.make_gan("lsgan", training.Recipe(batch_size=8, iterations=1, ema_decay=0.9))
    assert trainer.discriminator_loss is gp.ls_discriminator_loss and not trainer.logits
    assert ema is not None
    trainer, ema = training.make_gan("dcgan", training.CS231N["dcgan"])
    assert trainer.generator_loss is gp.generator_loss and trainer.logits and ema is None
    assert trainer.G_solver.param_groups[0]["lr"] == 1e-3 and trainer.G_solver.param_groups[0]["betas"] == (0.5, 0.999)
    with pytest.raises(ValueError, match="unknown model"):
        training.make_gan("wgan")
    with pytest.raises(ValueError, match="decay"):
        training.make_ema(trainer.G, 1.5)


def test_iteration_counts_follow_the_mode(monkeypatch) -> None:
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    assert training.iterations("vanilla") == training.RECIPES["vanilla"].iterations
    monkeypatch.setenv("GAN_SMOKE", "1")
    assert training.is_smoke() and training.scaled(3000) == training.SMOKE_ITERATIONS and training.scaled(2) == 2
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert training.is_autograding() and training.iterations("dcgan") == 0
    monkeypatch.setenv("GAN_SMOKE", "0")
    monkeypatch.delenv("NBGRADER_EXECUTION")
    assert not training.is_smoke() and training.scaled(3000) == 3000


def test_device_and_threads() -> None:
    assert training.pick_device().type in {"cpu", "cuda", "mps"}
    old = torch.get_num_threads()
    try:
        assert training.set_threads(1) == 1
    finally:
        torch.set_num_threads(old)


def test_sample_restores_training_mode() -> None:
    G = gp.build_dc_generator()
    G.train()
    out = training.sample(G, gp.sample_noise(3, gp.NOISE_DIM))
    assert out.shape == (3, 784) and G.training


def test_plots_write_their_files(images: torch.Tensor, tmp_path) -> None:
    trainer, _ = training.make_gan("vanilla")
    history = training.fit(trainer, images, 3, 16, fixed_noise=gp.sample_noise(4, gp.NOISE_DIM),
                           image_dir=tmp_path, name="p", sample_every=1, progress=False)
    plots.plot_history(history, "vanilla", tmp_path / "history.png")
    plots.show_grid(images[:8], "real", tmp_path / "grid.png")
    plots.show_progress(history.grids, "vanilla")
    rows = torch.stack([images[:5].reshape(5, 784), images[5:10].reshape(5, 784)])
    plots.show_interpolation(rows, "interp", tmp_path / "interp.png")
    for name in ("history.png", "grid.png", "interp.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert plots.grid_array(images[:8], nrow=4).shape == (2 * 30 + 2, 4 * 30 + 2)
    with pytest.raises(ValueError, match="steps"):
        plots.show_interpolation(images[:3].reshape(3, 784), "bad")
    with pytest.raises(ValueError, match="no grid"):
        plots.show_progress([])


def test_smooth_is_a_running_mean() -> None:
    np.testing.assert_allclose(plots.smooth(np.array([1.0, 3.0, 5.0, 7.0]), window=2), [1.0, 2.0, 4.0, 6.0])
    assert plots.smooth(np.array([]), 5).shape == (0,)
