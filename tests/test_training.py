"""The notebook's models, training loop, settings and plots, on tiny data (a few steps each)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import gan_pytorch as gp  # noqa: E402
from gan_utils import env, models, plots, training  # noqa: E402
from gan_utils.data import Batches  # noqa: E402


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(48, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("model", list(models.MODELS))
@pytest.mark.parametrize("bf16", [False, True])
def test_fit_records_every_step_and_saves_grids(model: str, bf16: bool, images: torch.Tensor, tmp_path) -> None:
    trainer = models.make_trainer(model, bf16=bf16)
    ema = models.EMA(trainer.G, 0.99)
    history = training.fit(trainer, Batches(images, 16), 3, fixed_noise=gp.sample_noise(4, gp.NOISE_DIM, seed=0),
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


def test_make_trainer_uses_the_students_parts(monkeypatch) -> None:
    calls = []
    real = gp.get_optimizer
    monkeypatch.setattr(gp, "get_optimizer", lambda m: calls.append(m) or real(m))
    trainer = models.make_trainer("lsgan")
    assert len(calls) == 2 and calls == [trainer.D, trainer.G]
    assert trainer.discriminator_loss is gp.ls_discriminator_loss and not trainer.logits
    group = trainer.G_solver.param_groups[0]
    assert (group["lr"], group["betas"], group["fused"]) == (gp.LEARNING_RATE, gp.BETAS, True)
    dcgan = models.make_trainer("dcgan", bf16=True)
    assert isinstance(dcgan.G, models.BFloat16) and dcgan.logits
    conv = next(m for m in models.unwrap(dcgan.D).modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="unknown model"):
        models.make_trainer("wgan")


def test_fused_adam_makes_the_same_update_as_the_students_adam() -> None:
    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3).double(), torch.nn.Linear(5, 3).double()
    b.load_state_dict(a.state_dict())
    plain, fused = gp.get_optimizer(a), models.fuse_adam(gp.get_optimizer(b))
    for _ in range(3):
        for net, opt in ((a, plain), (b, fused)):
            opt.zero_grad()
            net(torch.ones(2, 5, dtype=torch.float64)).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_bfloat16_wrapper_returns_float32_close_to_float32() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    x = torch.randn(4, 8)
    out = models.BFloat16(net)(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, net(x), atol=0.05, rtol=0.05)
    assert models.unwrap(models.BFloat16(net)) is net and models.unwrap(net) is net


def _autocast_reference(net: torch.nn.Module, *inputs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Outputs and gradients of ``net`` run under plain autocast, one call per input, one backward for all."""
    net.zero_grad()
    outs = []
    for x in inputs:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs.append(net(x).float())
    sum(o.sum() for o in outs).backward()
    return [o.detach() for o in outs], [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("model", ["vanilla", "dcgan"])
def test_bfloat16_weight_copies_give_autocasts_results_and_follow_every_update(model: str) -> None:
    """The wrapper keeps its bfloat16 weights between calls; through fused Adam steps (which write the weights in
    place) its outputs and gradients stay bit for bit those of autocast casting afresh, and the copies are made once
    per update, not once per call."""
    trainer = models.make_trainer(model, bf16=True, seed=3)
    D, solver = trainer.D, trainer.D_solver
    shape = (16, 1, 28, 28) if model == "dcgan" else (16, 784)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        real, fake = (torch.rand(shape, generator=gen) * 2 - 1 for _ in range(2))
        expected_outs, expected_grads = _autocast_reference(models.unwrap(D), real, fake)
        solver.zero_grad()
        outs = [D(real), D(fake)]  # train_step's discriminator update: two calls, one backward
        copies = {name: id(copy) for name, (_, copy) in D._copies.items()}
        sum(o.sum() for o in outs).backward()
        for out, expected in zip(outs, expected_outs):
            assert torch.equal(out.detach(), expected)
        for p, expected in zip(models.unwrap(D).parameters(), expected_grads):
            assert torch.equal(p.grad, expected)
        D(real)
        assert {name: id(copy) for name, (_, copy) in D._copies.items()} == copies  # cast once, reused
        solver.step()


def test_bfloat16_keeps_the_channels_last_layout_of_a_one_channel_convolution() -> None:
    conv = torch.nn.Conv2d(1, 4, 3).to(memory_format=torch.channels_last)
    x = torch.rand(2, 1, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = conv(x)
    out = models.BFloat16(conv)(x)
    assert out.stride() == expected.stride() and torch.equal(out, expected.float())


def test_fit_trains_and_ema_lags_behind(images: torch.Tensor) -> None:
    trainer = models.make_trainer("vanilla")
    ema = models.EMA(trainer.G, 0.9)
    before = [p.detach().clone() for p in trainer.G.parameters()]
    training.fit(trainer, Batches(images, 16), 4, ema=ema, progress=False)
    after = list(trainer.G.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(after, before))
    averaged = list(ema.module.parameters())
    # The average sits strictly between where G started and where it is now (not equal to either).
    assert all(not torch.equal(m, a) and not torch.equal(m, b) for m, a, b in zip(averaged, after, before))
    with pytest.raises(ValueError, match="decay"):
        models.EMA(trainer.G, 1.5)


def test_ema_decay_is_its_warm_up_until_the_warm_up_reaches_it() -> None:
    net = nn.Linear(1, 1, bias=False)
    for decay, warm_up_ends in ((0.5, 8), (0.999, 8990)):
        with torch.no_grad():
            net.weight.fill_(0.0)
        ema, expected = models.EMA(net, decay), 0.0
        for n in range(1, 40):
            with torch.no_grad():
                net.weight.fill_(float(n))
            ema.update(net)
            d = decay if n >= warm_up_ends else (1 + n) / (10 + n)
            expected = d * expected + (1 - d) * n
            assert ema.module.weight.item() == pytest.approx(expected, rel=1e-6)


def test_fit_resumes_from_its_history_exactly(images: torch.Tensor) -> None:
    def run(stop: int | None) -> training.History:
        torch.manual_seed(1)
        trainer, batches = models.make_trainer("vanilla", seed=1), Batches(images, 16, seed=3)
        history = training.fit(trainer, batches, 5, progress=False, on_step=lambda k: k == stop)
        return history if stop is None else training.fit(trainer, batches, 5, history=history, progress=False)

    np.testing.assert_array_equal(run(None).table(), run(2).table())


def test_train_model_follows_the_recipe_and_smoke_mode(images: torch.Tensor, tmp_path, monkeypatch) -> None:
    recipe = training.Recipe(batch_size=8, iterations=30, ema_decay=0.9, sample_every=10)
    monkeypatch.setenv("GAN_SMOKE", "1")
    run = training.train_model("vanilla", images, recipe, image_dir=tmp_path, progress=False)
    assert len(run.history) == env.SMOKE_ITERATIONS and run.recipe.iterations == env.SMOKE_ITERATIONS
    assert run.G is run.ema.module and not run.G.training
    rates = [g["lr"] for solver in (run.trainer.D_solver, run.trainer.G_solver) for g in solver.param_groups]
    assert rates == [gp.LEARNING_RATE] * 2
    faster_g = training.train_model("vanilla", images, training.Recipe(batch_size=8, iterations=1, g_lr=3e-3),
                                    image_dir=tmp_path, progress=False)
    assert faster_g.trainer.G_solver.param_groups[0]["lr"] == 3e-3
    assert faster_g.trainer.D_solver.param_groups[0]["lr"] == gp.LEARNING_RATE
    faster_d = training.train_model("vanilla", images, training.Recipe(batch_size=8, iterations=1, d_lr=2e-3),
                                    image_dir=tmp_path, progress=False)
    assert faster_d.trainer.D_solver.param_groups[0]["lr"] == 2e-3
    assert faster_d.trainer.G_solver.param_groups[0]["lr"] == gp.LEARNING_RATE
    beta2 = training.train_model("vanilla", images, training.Recipe(batch_size=8, iterations=1, beta2=0.99),
                                 image_dir=tmp_path, progress=False)
    groups = [g for solver in (beta2.trainer.D_solver, beta2.trainer.G_solver) for g in solver.param_groups]
    assert [(g["lr"], g["betas"]) for g in groups] == [(gp.LEARNING_RATE, (gp.BETAS[0], 0.99))] * 2
    assert beta2.recipe.betas == (gp.BETAS[0], 0.99) and recipe.betas == gp.BETAS
    monkeypatch.setenv("GAN_SMOKE", "0")
    assert recipe.for_this_run().iterations == 30


def test_gan_bf16_chooses_float32_or_bfloat16_where_bfloat16_is_supported(images: torch.Tensor, tmp_path,
                                                                          monkeypatch) -> None:
    monkeypatch.setenv("GAN_SMOKE", "1")
    monkeypatch.setattr(env, "supports_bfloat16", lambda device: True)
    recipe = training.Recipe(batch_size=8, iterations=2, bf16=True)
    for value, bf16 in (("", True), ("1", True), ("0", False)):
        monkeypatch.setenv("GAN_BF16", value)
        run = training.train_model("vanilla", images, recipe, image_dir=tmp_path, progress=False)
        assert isinstance(run.trainer.G, models.BFloat16) is bf16 and env.use_bfloat16("cpu") is bf16
        assert run.recipe.bf16 is bf16  # the recipe printed in the notebook says what ran
    monkeypatch.setenv("GAN_BF16", "1")
    monkeypatch.setattr(env, "supports_bfloat16", lambda device: False)
    assert not env.use_bfloat16("cpu")  # 1 asks for bfloat16 only where the machine has it
    monkeypatch.setenv("GAN_BF16", "yes")
    with pytest.raises(ValueError, match="GAN_BF16 must be 0 .* got 'yes'"):
        env.use_bfloat16("cpu")


def test_without_bfloat16_the_notebook_trains_the_float32_recipes(images: torch.Tensor, tmp_path,
                                                                   monkeypatch) -> None:
    monkeypatch.setattr(env, "supports_bfloat16", lambda device: True)
    for value, recipes in (("1", training.RECIPES), ("0", training.FLOAT32_RECIPES)):
        monkeypatch.setenv("GAN_BF16", value)
        assert all(training.recipe_for(model, "cpu") is recipes[model] for model in models.MODELS)
    monkeypatch.setattr(env, "supports_bfloat16", lambda device: False)
    monkeypatch.setenv("GAN_BF16", "1")
    assert training.recipe_for("dcgan", "cpu") is training.FLOAT32_RECIPES["dcgan"]
    # the float32 recipes: the DCGAN's is the bfloat16 one in float32 with fewer steps; the MLP GANs take smaller,
    # more numerous steps with Adam's beta2 at 0.99, and train on under half the samples CS231n's settings use
    float32 = training.FLOAT32_RECIPES
    assert not any(recipe.bf16 for recipe in float32.values())
    assert replace(float32["dcgan"], iterations=training.RECIPES["dcgan"].iterations, bf16=True) == training.RECIPES[
        "dcgan"] and float32["dcgan"].iterations < training.RECIPES["dcgan"].iterations
    for model in ("vanilla", "lsgan"):
        recipe, baseline = float32[model], training.CS231N[model]
        assert (recipe.batch_size, recipe.beta2, recipe.ema_decay) == (64, 0.99, training.RECIPES[model].ema_decay)
        assert recipe.batch_size * recipe.iterations < baseline.batch_size * baseline.iterations / 2
        assert recipe.learning_rates == (gp.LEARNING_RATE, gp.LEARNING_RATE)
    # train_model's default is that recipe, in full outside smoke mode
    monkeypatch.setitem(training.FLOAT32_RECIPES, "vanilla", training.Recipe(batch_size=8, iterations=3))
    monkeypatch.setenv("GAN_SMOKE", "0")
    run = training.train_model("vanilla", images, image_dir=tmp_path, progress=False)
    assert run.recipe.iterations == len(run.history) == 3


def test_env_switches(monkeypatch) -> None:
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    assert not env.is_smoke() and env.iterations(3000) == 3000
    monkeypatch.setenv("GAN_SMOKE", "1")
    assert env.is_smoke() and env.iterations(3000) == env.SMOKE_ITERATIONS and env.iterations(2) == 2
    assert env.pick_device().type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="not a device name"):
        env.pick_device("banana")
    old = torch.get_num_threads()
    try:
        assert env.set_threads(1) == 1
        monkeypatch.setenv("GAN_THREADS", "1")
        assert env.set_threads() == 1
        for bad in ("0", "-2", "two", "1.5", "²"):
            monkeypatch.setenv("GAN_THREADS", bad)
            with pytest.raises(ValueError, match=f"GAN_THREADS must be a positive whole number .* got '{bad}'"):
                env.set_threads()
    finally:
        torch.set_num_threads(old)
    assert env.image_path("x") == env.IMAGE_DIR / "x.png"


def test_sample_restores_training_mode() -> None:
    G = gp.build_dc_generator()
    G.train()
    out = models.sample(G, gp.sample_noise(3, gp.NOISE_DIM), batch_size=2)
    assert out.shape == (3, 784) and G.training


def test_plots_write_their_files(images: torch.Tensor, tmp_path) -> None:
    trainer = models.make_trainer("vanilla")
    history = training.fit(trainer, Batches(images, 16), 3, fixed_noise=gp.sample_noise(4, gp.NOISE_DIM),
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


def test_the_trainer_benchmarks_reference_step_runs_g_once_and_updates_both_networks(images: torch.Tensor) -> None:
    from bench.bench_trainer import g_once_step

    trainer = models.make_trainer("vanilla", bf16=True)
    nets = {"D": trainer.D, "G": trainer.G}
    calls = dict.fromkeys(nets, 0)
    for name, net in nets.items():
        net.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in nets.items()}
    stats = g_once_step(trainer, images[:8])
    assert calls == {"D": 3, "G": 1}  # the graded train_step runs G twice
    for name, net in nets.items():
        assert all(not torch.equal(old, new) for old, new in zip(before[name], net.parameters())), name
    assert isinstance(stats, gp.StepStats) and all(value.ndim == 0 for value in stats)


@pytest.mark.parametrize("model", ["vanilla", "dcgan"])
def test_the_trainer_benchmarks_product_speedup_gives_a_ratio_per_repeat(model: str) -> None:
    from bench.bench_trainer import product_speedup

    ratios = product_speedup(model, batch=4, repeats=2, calls=1)
    assert ratios.shape == (2,) and np.all(np.isfinite(ratios)) and np.all(ratios > 0)


@pytest.mark.parametrize("bf16", [False, True])
def test_the_trainer_benchmarks_step_parts_split_a_profiled_step(bf16: bool, images: torch.Tensor) -> None:
    from bench.bench_trainer import PARTS, project_loop, step_parts

    parts = step_parts(project_loop("vanilla", images, batch=8, bf16=bf16), steps=3)
    assert set(parts) == {"step", *PARTS}
    assert parts["matrix products"] > 0 and parts["optimizer"] > 0 and parts["step"] > 0
    assert parts["casts and copies"] > 0 if bf16 else parts["casts and copies"] >= 0  # bfloat16 casts weights, grads
    assert all(0 <= parts[name] < parts["step"] for name in PARTS)  # no part counted twice
