"""Tests of the toy 2D part: metrics on constructed samples, data, packing, and the shape of a tiny run."""

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import gan_pytorch as gp
from gan_utils import env, toy
from gan_utils.toy import metrics, networks, training


@pytest.fixture(scope="module")
def dataset() -> gp.Toy2dGridGaussiansDataset:
    return gp.Toy2dGridGaussiansDataset(n_samples=5000)


def test_dataset_shape_modes_and_reproducibility(dataset):
    assert dataset.points.shape == (5000, 2) and dataset.points.dtype == torch.float32
    assert dataset.modes.shape == (25, 2)
    assert set(dataset.modes.flatten().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    again = gp.Toy2dGridGaussiansDataset(n_samples=5000)
    assert torch.equal(dataset.points, again.points)
    assert not torch.equal(dataset.points, gp.Toy2dGridGaussiansDataset(n_samples=5000, seed=1).points)
    # every point is near its own mode: the real data scores (almost) perfectly
    assert (dataset.points - dataset.modes[dataset.labels]).norm(dim=1).max() < 0.5


def test_metrics_all_modes_perfect(dataset):
    samples = dataset.modes.repeat(100, 1)  # 100 exact copies of every mode
    m = toy.mode_metrics(samples, dataset)
    assert m["modes"] == 25 and m["high_quality"] == 1.0
    assert m["reverse_kl"] == pytest.approx(0.0, abs=1e-9)


def test_metrics_on_real_data_are_near_perfect(dataset):
    m = toy.mode_metrics(dataset.points[:2500], dataset)
    assert m["modes"] == 25
    assert m["high_quality"] > 0.98  # 3 std in 2D keeps 98.9 % of a Gaussian
    assert m["reverse_kl"] < 0.02


def test_metrics_one_mode(dataset):
    samples = torch.tensor([[2.0, -4.0]]) + 0.01 * torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    m = toy.mode_metrics(samples, dataset)
    assert m["modes"] == 1 and m["high_quality"] == 1.0
    assert m["reverse_kl"] == pytest.approx(math.log(25))


def test_metrics_far_from_modes(dataset):
    samples = torch.tensor([[1.0, 1.0], [-3.0, 3.0], [10.0, 10.0]]).repeat(10, 1)  # midway between modes, or out
    m = toy.mode_metrics(samples, dataset)
    assert m["modes"] == 0 and m["high_quality"] == 0.0 and math.isnan(m["reverse_kl"])


def test_metrics_threshold_is_three_std_and_counts_only_high_quality(dataset):
    # half the samples 0.1 (2 std) from mode (0, 0), half 0.2 (4 std) from mode (4, 4); numpy input works too
    samples = np.array([[0.1, 0.0]] * 50 + [[4.0, 3.8]] * 50, dtype=np.float32)
    m = toy.mode_metrics(samples, dataset)
    assert m["modes"] == 1 and m["high_quality"] == 0.5
    assert m["reverse_kl"] == pytest.approx(math.log(25))  # the far half is not in the histogram
    # two modes hit 3:1 -> KL = sum p log(25 p)
    samples = np.array([[0.0, 0.0]] * 75 + [[2.0, 2.0]] * 25, dtype=np.float32)
    expected = 0.75 * math.log(25 * 0.75) + 0.25 * math.log(25 * 0.25)
    assert toy.mode_metrics(samples, dataset)["reverse_kl"] == pytest.approx(expected)


@pytest.mark.parametrize("bad", [np.zeros((0, 2)), np.zeros((5, 3)), np.zeros(4), np.full((2, 2), np.nan)])
def test_metrics_reject_bad_samples(dataset, bad):
    with pytest.raises(ValueError, match="samples"):
        toy.mode_metrics(bad, dataset)


def test_packing_shapes():
    x = torch.arange(24.0).reshape(12, 2)
    packed = networks.Pack(4)(x)
    assert packed.shape == (3, 8)
    assert torch.equal(packed[1], x[4:8].flatten())  # consecutive samples go into one pack
    D = networks.toy_discriminator(hidden=16, layers=2, pack=4)
    assert networks.pack_size(D) == 4 and D(x).shape == (3, 1)
    assert networks.pack_size(networks.toy_discriminator(hidden=16)) == 1
    with pytest.raises(ValueError, match="divisible by 4"):
        D(x[:10])
    with pytest.raises(ValueError, match="divisible"):
        toy.ToyConfig(batch_size=100, pack=3)


def test_networks_shapes():
    G = networks.toy_generator(noise_dim=5, hidden=8, layers=2)
    assert G(torch.zeros(7, 5)).shape == (7, 2)
    D = networks.toy_discriminator(hidden=8, layers=2, maxout=3)
    assert D(torch.zeros(7, 2)).shape == (7, 1)
    assert networks.Maxout(2, 4, 3)(torch.randn(5, 2)).shape == (5, 4)
    assert networks.decision_surface(networks.toy_discriminator(hidden=8, pack=2), n=11).shape == (11, 11)


def test_maxout_is_the_max_of_its_pieces_and_its_gradient_goes_to_the_winner():
    unit = networks.Maxout(2, 4, 3)
    x = torch.randn(5, 2)
    pieces = unit.linear(x).reshape(5, 4, 3)
    torch.testing.assert_close(unit(x), pieces.max(-1).values)
    unit(x).sum().backward()
    winners = torch.nn.functional.one_hot(pieces.argmax(-1), 3).reshape(5, 12).float()
    torch.testing.assert_close(unit.linear.bias.grad, winners.sum(0))  # d/d bias: 1 per sample where a piece wins


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="loss must be one of"):
        toy.ToyConfig(loss="wasserstein")
    with pytest.raises(ValueError, match="iters"):
        toy.ToyConfig(iters=0)
    with pytest.raises(ValueError, match="optimizer"):
        toy.ToyConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr_decay"):
        toy.ToyConfig(lr_decay=1.5)
    with pytest.raises(ValueError, match="norm"):
        networks.toy_generator(norm="group")


def test_smoke_config_keeps_snapshots_head_start_r1_and_noise_phases_inside_the_run(monkeypatch):
    monkeypatch.setenv("GAN_SMOKE", "1")
    tiny = toy.ToyConfig(iters=3000, snapshots=(100, 500, 1500), d_head_start=600, r1=0.3, r1_steps=1500,
                         d_noise=0.2, d_noise_steps=1500).for_this_run()
    assert tiny.iters == env.SMOKE_ITERATIONS and tiny.d_head_start == 600 * env.SMOKE_ITERATIONS // 3000
    assert tiny.r1_steps == tiny.d_noise_steps == env.SMOKE_ITERATIONS // 2
    assert all(0 < s < tiny.iters for s in tiny.snapshots) and len(tiny.snapshots) >= 2
    monkeypatch.setenv("GAN_SMOKE", "0")
    config = toy.ToyConfig(iters=3000)
    assert config.for_this_run() is config


def test_optimizers_head_start_and_decay(dataset, monkeypatch):
    """G's learning rate is 0 during D's head start; both decay linearly to 0 over the last share of the run."""
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    calls = []
    real = gp.get_optimizer
    monkeypatch.setattr(gp, "get_optimizer", lambda m: calls.append(m) or real(m))
    config = toy.ToyConfig(iters=10, d_head_start=4, lr_decay=0.5, g_hidden=8, d_hidden=8, log_every=1)
    run = toy.train_toy_gan(config, dataset=dataset)
    assert len(calls) == 2  # your get_optimizer, once per network
    G_before = training.build_trainer(config).G
    moved = [not torch.equal(a, b) for a, b in zip(G_before.parameters(), run.trainer.G.parameters())]
    assert any(moved)
    assert [training._lr_factor(config, k) for k in (1, 5, 6, 8, 10)] == [1.0, 1.0, 1.0, 0.6, 0.2]
    sgd = training.build_trainer(toy.ToyConfig(optimizer="sgd", lr=0.01, d_lr=0.002))
    assert isinstance(sgd.G_solver, torch.optim.SGD) and isinstance(sgd.D_solver, torch.optim.Adam)
    assert sgd.D_solver.param_groups[0]["lr"] == 0.002


def test_adam_is_fused_unless_the_config_says_otherwise():
    def fused(trainer: gp.GANTrainer) -> list[bool]:
        return [bool(s.param_groups[0].get("fused")) for s in (trainer.D_solver, trainer.G_solver)]

    assert fused(training.build_trainer(toy.ToyConfig())) == [True, True]
    assert fused(training.build_trainer(toy.ToyConfig(fast=False))) == [False, False]
    sgd = training.build_trainer(toy.ToyConfig(optimizer="sgd", lr=0.01))
    assert fused(sgd) == [True, False] and isinstance(sgd.G_solver, torch.optim.SGD)


def test_generator_can_start_off_the_data():
    trainer = training.build_trainer(toy.ToyConfig(g_start=6.0))
    with torch.no_grad():
        assert (trainer.G.eval()(gp.sample_noise(100, 2)).mean(0) - 6.0).abs().max() < 1.0


def test_r1_penalty_adds_the_gradient_norm_on_real_data(monkeypatch):
    D = torch.nn.Linear(2, 1)
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[3.0, 4.0]]))
    penalty = training.R1Penalty(D, gp.discriminator_loss, gamma=0.5)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    out_real, out_fake = penalty.D(real), penalty.D(fake)
    # ||grad_x D(x)||^2 = 3^2 + 4^2 = 25 for every x; the penalty is gamma / 2 * 25
    expected = gp.discriminator_loss(out_real, out_fake) + 0.25 * 25
    torch.testing.assert_close(penalty.loss(out_real, out_fake), expected)


def test_r1_penalty_stops_after_its_steps(monkeypatch):
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    D = torch.nn.Linear(2, 1)
    penalty = training.R1Penalty(D, gp.discriminator_loss, gamma=0.5, steps=2)
    losses = []
    for _ in range(3):
        out_real, out_fake = penalty.D(torch.randn(8, 2)), penalty.D(torch.randn(8, 2))
        extra = penalty.loss(out_real, out_fake) - gp.discriminator_loss(out_real, out_fake)
        losses.append(float(extra.detach()))
    assert [extra > 0 for extra in losses] == [True, True, False] and losses[2] == 0.0
    assert not penalty.D.tracking and not penalty.D.inputs  # no input gradients once the penalty is over
    config = toy.ToyConfig(iters=6, r1=0.3, r1_steps=4, g_hidden=8, d_hidden=8, d_maxout=2)
    penalty = training.build_trainer(config).discriminator_loss.__self__
    assert (penalty.gamma, penalty.steps) == (0.3, 4)
    run = toy.train_toy_gan(config)  # every step through your train_step, the penalty in the first 4
    assert run.trainer.discriminator_loss.__self__.calls == 6 and np.isfinite(run.history["d_loss"]).all()
    with pytest.raises(ValueError, match="r1_steps"):
        toy.ToyConfig(r1=0.3, r1_steps=-1)


def test_lazy_r1_penalty_comes_every_kth_update_k_times_as_strong(monkeypatch):
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    D = torch.nn.Linear(2, 1)
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[3.0, 4.0]]))
    penalty = training.R1Penalty(D, gp.discriminator_loss, gamma=0.5, steps=7, every=3)
    extras, tracked = [], []
    for _ in range(9):
        tracked.append(penalty.D.tracking)
        out_real, out_fake = penalty.D(torch.randn(8, 2)), penalty.D(torch.randn(8, 2))
        extras.append(float((penalty.loss(out_real, out_fake) - gp.discriminator_loss(out_real, out_fake)).detach()))
    # updates 0, 3 and 6 (of the first 7) add 3 * 0.5 / 2 * ||(3, 4)||^2 = 18.75; the others add nothing
    assert extras == pytest.approx([18.75, 0, 0, 18.75, 0, 0, 18.75, 0, 0], abs=1e-5)
    assert tracked == [True, False, False, True, False, False, True, False, False]  # inputs tracked only when needed
    config = toy.ToyConfig(iters=6, r1=0.3, r1_steps=4, r1_every=2, g_hidden=8, d_hidden=8, d_maxout=2)
    penalty = training.build_trainer(config).discriminator_loss.__self__
    assert (penalty.gamma, penalty.steps, penalty.every) == (0.3, 4, 2)
    assert toy.REMEDY.r1_every == 4
    with pytest.raises(ValueError, match="r1_every"):
        toy.ToyConfig(r1=0.3, r1_every=0)


def test_instance_noise_blurs_d_inputs_while_training_and_fades_to_nothing(dataset, monkeypatch):
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    noisy = training.InstanceNoise(torch.nn.Identity(), std=0.5)
    x = torch.zeros(20_000, 2)
    assert 0.48 < float(noisy(x).std()) < 0.52  # training: Gaussian noise of std 0.5 on every input
    with torch.no_grad():
        assert torch.equal(noisy(x), x)  # plots and sampling: D sees the points themselves
    noisy.std = 0.0
    assert torch.equal(noisy(x), x)
    config = toy.ToyConfig(iters=8, d_noise=0.2, d_noise_steps=4, r1=0.3, g_hidden=8, d_hidden=8)
    assert [training._noise_std(config, k) for k in (1, 3, 5, 8)] == pytest.approx([0.2, 0.1, 0.0, 0.0])
    assert training._noise_std(dataclasses.replace(config, d_noise_steps=None), 5) == pytest.approx(0.1)
    trainer = training.build_trainer(config)
    assert isinstance(trainer.D.net, training.InstanceNoise)  # inside R1's wrapper: the penalty's gradient is D's
    run = toy.train_toy_gan(config, dataset=dataset)
    [module] = [m for m in run.trainer.D.modules() if isinstance(m, training.InstanceNoise)]
    assert module.std == 0.0 and np.isfinite(run.history["d_loss"]).all()
    assert np.isfinite(networks.decision_surface(run.trainer.D, n=5)).all()
    with pytest.raises(ValueError, match="d_noise"):
        toy.ToyConfig(d_noise=-0.1)
    with pytest.raises(ValueError, match="d_noise_steps"):
        toy.ToyConfig(d_noise=0.1, d_noise_steps=0)


def test_tiny_training_run_structure(dataset, monkeypatch):
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    config = toy.ToyConfig(iters=12, snapshots=(4, 8), log_every=5, g_hidden=16, d_hidden=16, d_maxout=2, pack=2)
    threads = torch.get_num_threads()
    run = toy.train_toy_gan(config, seed=3, dataset=dataset)
    assert torch.get_num_threads() == threads
    assert [s.iteration for s in run.snapshots] == [4, 8, 12]
    for snap in run.snapshots:
        assert snap.samples.shape == (metrics.N_EVAL, 2) and np.isfinite(snap.samples).all()
        assert snap.surface.ndim == 2 and ((snap.surface >= 0) & (snap.surface <= 1)).all()
    assert run.history["iteration"] == [5, 10, 12]
    assert set(run.history) == {"iteration", "d_loss", "g_loss", "d_real", "d_fake", "g_grad"}
    assert all(len(v) == 3 for v in run.history.values())
    assert set(run.metrics) == set(metrics.METRICS) and run.seconds > 0
    assert isinstance(run.trainer, gp.GANTrainer)
    # the same seed reproduces the run exactly
    again = toy.train_toy_gan(config, seed=3, dataset=dataset)
    np.testing.assert_array_equal(run.snapshots[-1].samples, again.snapshots[-1].samples)


def test_snapshots_do_not_change_the_run(dataset, monkeypatch):
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    config = toy.ToyConfig(iters=12, g_hidden=16, d_hidden=16)
    plain = toy.train_toy_gan(config, seed=3, dataset=dataset)
    watched = toy.train_toy_gan(dataclasses.replace(config, snapshots=(3, 7)), seed=3, dataset=dataset)
    np.testing.assert_array_equal(plain.snapshots[-1].samples, watched.snapshots[-1].samples)
    assert plain.history["g_loss"] == watched.history["g_loss"]


def test_saturating_run_uses_the_saturating_loss(dataset, monkeypatch):
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    run = toy.train_toy_gan(toy.ToyConfig(loss="saturating", iters=3, log_every=1, g_hidden=8, d_hidden=8),
                            dataset=dataset)
    assert all(g <= 0 for g in run.history["g_loss"])  # log(1 - D) is never positive


def test_smoke_mode_caps_iterations(dataset, monkeypatch):
    monkeypatch.setenv("GAN_SMOKE", "1")
    run = toy.train_toy_gan(toy.ToyConfig(iters=5000, snapshots=(1000, 2500), g_hidden=8, d_hidden=8),
                            dataset=dataset)
    assert run.snapshots[-1].iteration == env.SMOKE_ITERATIONS and len(run.snapshots) == 3


def test_gain_text_bounds_the_gain_by_the_baselines_spread(dataset, monkeypatch):
    monkeypatch.setenv("GAN_SMOKE", "1")
    run = toy.train_toy_gan(toy.ToyConfig(g_hidden=8, d_hidden=8), dataset=dataset)

    def runs(*metric_rows):
        return [dataclasses.replace(run, metrics=dict(zip(metrics.METRICS, row))) for row in metric_rows]

    # baseline: modes 21 ± 1, high quality 0.3 ± 0.1, reverse KL 0.6 ± 0.1; a perfect remedy reaches every bound
    baseline = runs((20, 0.2, 0.5), (22, 0.4, 0.7))
    perfect = toy.gain_text(baseline, runs((25, 1.0, 0.0), (25, 1.0, 0.0)))
    assert "modes +4.00 modes (4.0 standard deviations; at most 4.0 for any remedy)" in perfect
    assert "high quality +70.00 points (7.0 standard deviations; at most 7.0 for any remedy)" in perfect
    assert "reverse kl -0.60 (6.0 standard deviations; at most 6.0 for any remedy)" in perfect
    # a remedy that spreads more than the baseline is measured in its own spread; the bound stays the baseline's
    spread = toy.gain_text(baseline, runs((23, 0.6, 0.1), (25, 1.0, 0.3)))
    assert "modes +3.00 modes (3.0 standard deviations; at most 4.0 for any remedy)" in spread
    assert "high quality +50.00 points (2.5 standard deviations; at most 7.0 for any remedy)" in spread
    # a baseline without spread bounds nothing
    flat = toy.gain_text(runs((21, 0.3, 0.6), (21, 0.3, 0.6)), runs((24, 0.8, 0.1), (25, 1.0, 0.0)))
    assert "at most" not in flat and flat.count("standard deviations") == 3


def test_table_and_plots(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_SMOKE", "1")
    small = dict(g_hidden=8, d_hidden=8, snapshots=(5, 10))
    sat = toy.train_toy_gan(toy.ToyConfig(loss="saturating", **small), dataset=dataset)
    results = toy.compare({"a": toy.ToyConfig(**small), "b": toy.ToyConfig(d_maxout=2, **small)}, seeds=[0, 1],
                          dataset=dataset, verbose=False)
    table = toy.format_table(results)
    assert table.count("\n") == 4 and "| a | 2 |" in table and "PacGAN4" in table and " ± " in table
    assert "gradient norm" in toy.format_table(results, reference=False, gradient=True)
    summary = toy.summarize(results["a"])
    assert summary["modes"][0] == np.mean([r.metrics["modes"] for r in results["a"]])
    assert "standard deviations" in toy.gain_text(results["a"], results["b"])
    single = toy.gain_text(results["a"][:1], results["b"][:1])
    assert "inf" not in single and single.count("one run: no spread across seeds") == 3
    for name, fig in [("snap.png", toy.plot_toy_snapshots(sat, tmp_path / "snap.png", dataset=dataset)),
                      ("seeds.png", toy.plot_final_samples(results["a"], tmp_path / "seeds.png", "a", dataset)),
                      ("loss.png", toy.plot_loss_comparison(sat, results["a"][0], tmp_path / "loss.png")),
                      ("cmp.png", toy.plot_comparison(results, tmp_path / "cmp.png"))]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.png", "loss.png", "seeds.png", "snap.png"]


class _TwoPoints(torch.nn.Module):
    """A 'generator' that puts half its mass on A = (2, 2) and half on B = (-2, -2), by the sign of z[:, 0]."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.where(z[:, :1] > 0, torch.tensor([2.0, 2.0]), torch.tensor([-2.0, -2.0]))


class _PrefersA(torch.nn.Module):
    """A 'discriminator' whose logit is log 3 at A and 0 elsewhere: the data has 3 times G's density at A."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :1] > 0).float() * math.log(3.0)


def test_rejection_sampling_reweights_by_exp_of_the_logit():
    G = _TwoPoints().train()
    samples, acceptance = training.rejection_sample(G, _PrefersA(), n=4000, noise_dim=2, seed=1, pool=8000)
    assert samples.shape == (4000, 2) and G.training
    # A is always kept, B with probability exp(0 - log 3) = 1/3: A's share 1 / (1 + 1/3) = 0.75, 2/3 kept
    assert abs((samples[:, 0] > 0).mean() - 0.75) < 0.03
    assert abs(acceptance - 2 / 3) < 0.03
    again, _ = training.rejection_sample(G, _PrefersA(), n=4000, noise_dim=2, seed=1, pool=8000)
    np.testing.assert_array_equal(samples, again)


def test_rejection_sampling_says_when_d_rejects_nearly_everything():
    class OneGoodPerCall(torch.nn.Module):
        """Logit 0 for the first point of each call, -100 (kept with probability e^-100) for every other."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.full((len(x), 1), -100.0)
            logits[0] = 0.0
            return logits

    with pytest.raises(ValueError, match="kept only 5 of 5000 samples"):
        training.rejection_sample(_TwoPoints(), OneGoodPerCall(), n=500, noise_dim=2, pool=1000, max_draws=5000)


def test_with_rejection_redraws_only_the_final_samples(dataset, monkeypatch):
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    config = toy.ToyConfig(iters=20, snapshots=(10,), g_hidden=16, d_hidden=16, d_maxout=2, pack=2)
    run = toy.train_toy_gan(config, seed=0, dataset=dataset)
    redrawn = toy.with_rejection(run, dataset)
    assert run.acceptance == 1.0 and 0.0 < redrawn.acceptance <= 1.0
    assert redrawn.snapshots[0] is run.snapshots[0] and redrawn.trainer is run.trainer
    assert redrawn.snapshots[-1].samples.shape == (metrics.N_EVAL, 2)
    assert not np.array_equal(redrawn.snapshots[-1].samples, run.snapshots[-1].samples)
    assert redrawn.metrics == toy.mode_metrics(redrawn.snapshots[-1].samples, dataset)


def test_the_toy_benchmark_leaves_out_a_run_whose_rejection_sampling_fails(monkeypatch, capsys):
    from bench import bench_toy

    runs = [SimpleNamespace(seed=seed) for seed in (3, 4, 5)]

    def with_rejection(run, dataset):
        if run.seed == 4:
            raise ValueError("rejection sampling kept only 3 of 1000000 samples")
        return run

    monkeypatch.setattr(bench_toy.toy, "with_rejection", with_rejection)
    assert bench_toy.through_d("candidate", runs, None) == [runs[0], runs[2]]
    assert "candidate, seed 4: left out of its row through D: rejection sampling kept only 3" in capsys.readouterr().out


def test_runs_trained_side_by_side_are_the_runs_trained_here(dataset, monkeypatch, capsys):
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    small = dict(iters=30, snapshots=(10,), g_hidden=8, d_hidden=8, log_every=5)
    methods = {"plain": toy.ToyConfig(**small), "R1": toy.ToyConfig(d_maxout=2, r1=0.3, r1_steps=15, **small)}
    here = toy.compare(methods, seeds=[0, 1], dataset=dataset, workers=1)
    printed_here = capsys.readouterr().out
    pooled = toy.compare(methods, seeds=[0, 1], dataset=dataset, workers=2)
    printed_pooled = capsys.readouterr().out
    interleaved = toy.compare(methods, seeds=[0, 1], dataset=dataset, workers=2, interleave=True)
    printed_interleaved = capsys.readouterr().out
    for name in methods:
        for a, b in [*zip(here[name], pooled[name], strict=True), *zip(here[name], interleaved[name], strict=True)]:
            np.testing.assert_equal((a.seed, a.history, a.metrics), (b.seed, b.history, b.metrics))  # nan == nan
            for snap_a, snap_b in zip(a.snapshots, b.snapshots, strict=True):
                np.testing.assert_array_equal(snap_a.samples, snap_b.samples)
                np.testing.assert_array_equal(snap_a.surface, snap_b.surface)
            # the trainer comes back whole: its networks go on sampling, as with_rejection does
            np.testing.assert_array_equal(toy.with_rejection(a, dataset).snapshots[-1].samples,
                                          toy.with_rejection(b, dataset).snapshots[-1].samples)
    strip_seconds = [line.rsplit("(", 1)[0] for line in printed_here.splitlines()]
    assert strip_seconds == [line.rsplit("(", 1)[0] for line in printed_pooled.splitlines()]
    assert strip_seconds[0] == "plain:" and len(strip_seconds) == 6
    assert [line.split(":")[0] for line in printed_interleaved.splitlines()] == [
        "  plain, seed 0", "  R1, seed 0", "  plain, seed 1", "  R1, seed 1"]


def test_runs_go_side_by_side_only_in_a_jupyter_kernel_outside_smoke_mode(monkeypatch):
    monkeypatch.delenv("GAN_SMOKE", raising=False)
    monkeypatch.setattr(env, "available_cores", lambda: 2)
    assert training.default_workers(5) == 1  # pytest is a script: a new process would re-run its top level
    monkeypatch.setattr(training, "_in_jupyter_kernel", lambda: True)
    assert (training.default_workers(5), training.default_workers(1)) == (2, 1)
    monkeypatch.setenv("GAN_SMOKE", "1")
    assert training.default_workers(5) == 1


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_the_workers_end_when_the_process_that_started_them_is_killed(tmp_path):
    # two short runs, then two that would last for hours: once both short runs are reported, both workers have
    # started and gone on to a long one (or to wait for it), which is when a killed parent used to leave them behind
    script = tmp_path / "start.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(gp.__file__).parent)!r})\n"
        "from gan_utils import toy\n"
        "if __name__ == '__main__':\n"
        "    methods = {'short': toy.ToyConfig(iters=10), 'long': toy.ToyConfig(iters=10**8)}\n"
        "    toy.compare(methods, seeds=[0, 1], workers=2)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, env={k: v for k, v in os.environ.items() if k != "GAN_SMOKE"})
    try:
        lines = [parent.stdout.readline() for _ in range(3)]  # "short:", then one line per short run
        assert lines[0] == "short:\n" and all(line.startswith("  seed ") for line in lines[1:]), lines
        children = _children(parent.pid)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    assert len(children) >= 2  # the workers (and multiprocessing's resource tracker)
    deadline = time.monotonic() + 30
    while (alive := [pid for pid in children if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not alive, "workers outlived the process that started them"


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first, then the parent's pid); None once the
    process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has ended; only its exit status is left


def _children(pid: int) -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and (fields := _stat_fields(entry.name)) and int(fields[1]) == pid]


def test_a_jupyter_kernel_trains_the_seeds_side_by_side(monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("GAN_SMOKE", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(Path(gp.__file__).parent))  # the kernel inherits this environment
    code = ("from gan_utils import env, toy\n"
            "from gan_utils.toy import training\n"
            "print('workers', training.default_workers(5), 'of', env.available_cores())\n"
            "runs = toy.run_seeds(toy.ToyConfig(iters=20, g_hidden=8, d_hidden=8), seeds=[0, 1, 2])\n"
            "print([run.seed for run in runs])")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    cores = env.available_cores()
    assert f"workers {min(5, cores)} of {cores}\n" in out and out.count("  seed ") == 3 and "[0, 1, 2]" in out
