"""Training toy GANs on the 25 Gaussians: configurations, the loop around your ``GANTrainer.train_step``, runs
over several seeds."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

import gan_pytorch as gp
from gan_utils import env
from gan_utils.models import EMA, fuse_adam, sample, set_lr
from gan_utils.toy.metrics import N_EVAL, mode_metrics
from gan_utils.toy.networks import LIMIT, decision_surface, point_logits, toy_discriminator, toy_generator


def _nonsaturating(logits: torch.Tensor) -> torch.Tensor:
    return gp.generator_loss(logits)


def _saturating(logits: torch.Tensor) -> torch.Tensor:
    return gp.generator_loss_saturating(logits)


# Looked up at call time, so the student's (possibly reloaded) functions are the ones used; module functions rather
# than lambdas, so that a trainer can be pickled back from a worker process (``run_seeds``).
LOSSES = {"nonsaturating": _nonsaturating, "saturating": _saturating}


@dataclass(frozen=True)
class ToyConfig:
    """One toy GAN run. ``loss``: "nonsaturating" (-log D(G(z))) or "saturating" (log(1 - D(G(z)))).

    D's optimizer is your ``get_optimizer`` with its learning rate set to ``d_lr`` (default ``lr``); G's is the same
    with ``lr`` (``optimizer="adam"``), or plain stochastic gradient descent (``optimizer="sgd"``), whose steps are
    proportional to the gradient, so that a vanishing gradient shows. ``d_head_start``: steps during which only D
    learns (G's learning rate is 0), so that D pulls ahead. ``lr_decay``: the share of the run, at its end, over which
    both learning rates fall linearly to 0. ``ema``: decay of the moving average of G's weights that samples are
    drawn from. ``r1``: weight of the R1 penalty on D (``R1Penalty``), applied in D's first ``r1_steps`` updates
    (None: all of them); with ``r1_every`` = k > 1, on every k-th of them only, k times as strong. ``d_noise``:
    standard deviation of the Gaussian noise added to D's inputs while it trains (``InstanceNoise``), falling
    linearly to 0 over the first ``d_noise_steps`` steps (None: the whole run).
    ``g_start``: G's samples start around (g_start, g_start) instead of the origin (its output bias is shifted).
    ``fast``: Adam switched to its fused implementation, as the MNIST recipes use it: one kernel instead of several
    per tensor, the same update up to rounding, in less time.
    """

    loss: str = "nonsaturating"
    iters: int = 3000
    batch_size: int = 100  # real (and fake) samples per step; batch_size / pack packed inputs
    optimizer: str = "adam"
    lr: float = gp.LEARNING_RATE
    d_lr: float | None = None
    noise_dim: int = 2
    g_hidden: int = 64
    g_layers: int = 3
    g_norm: str = "batch"
    d_hidden: int = 64
    d_layers: int = 3
    d_maxout: int = 0
    pack: int = 1
    d_head_start: int = 0
    lr_decay: float = 0.0
    ema: float | None = None
    r1: float = 0.0
    r1_steps: int | None = None
    r1_every: int = 1
    d_noise: float = 0.0
    d_noise_steps: int | None = None
    g_start: float = 0.0
    view: float = LIMIT  # the plane [-view, view]^2 on which D's surface is recorded and the plots are drawn
    snapshots: tuple[int, ...] = ()  # iterations, besides the last, at which to keep samples and D's surface
    log_every: int = 10
    fast: bool = True

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if min(self.iters, self.batch_size, self.pack, self.log_every) < 1:
            raise ValueError(f"iters, batch_size, pack and log_every must be positive, got {self.iters}, "
                             f"{self.batch_size}, {self.pack}, {self.log_every}")
        if self.batch_size % self.pack:
            raise ValueError(f"batch_size {self.batch_size} must be divisible by pack {self.pack}")
        if not 0.0 <= self.lr_decay <= 1.0 or not 0 <= self.d_head_start < self.iters:
            raise ValueError(f"lr_decay must be in [0, 1] and d_head_start in [0, iters), got {self.lr_decay}, "
                             f"{self.d_head_start}")
        if self.r1 < 0 or (self.r1_steps is not None and self.r1_steps < 0) or self.r1_every < 1:
            raise ValueError(f"r1 and r1_steps must not be negative and r1_every must be positive, got {self.r1}, "
                             f"{self.r1_steps} and {self.r1_every}")
        if self.d_noise < 0 or (self.d_noise_steps is not None and self.d_noise_steps < 1):
            raise ValueError(f"d_noise must not be negative and d_noise_steps must be positive, got {self.d_noise} "
                             f"and {self.d_noise_steps}")

    def for_this_run(self) -> ToyConfig:
        """The config as it will run now: in smoke mode, cut to a few iterations (snapshots, the head start and
        the R1 and noise phases scaled alike)."""
        iters = env.iterations(self.iters)
        if iters == self.iters:
            return self

        def scale(k: int) -> int:
            return k * iters // self.iters

        snaps = tuple(sorted({max(1, scale(s)) for s in self.snapshots if s < self.iters} - {iters}))
        r1_steps = None if self.r1_steps is None else scale(self.r1_steps)
        noise_steps = None if self.d_noise_steps is None else max(1, scale(self.d_noise_steps))
        return replace(self, iters=iters, snapshots=snaps, d_head_start=scale(self.d_head_start), r1_steps=r1_steps,
                       d_noise_steps=noise_steps, log_every=1)


@dataclass
class Snapshot:
    """A run at one iteration: generated samples and D's probability on ``surface_grid()``."""

    iteration: int
    samples: np.ndarray  # (N_EVAL, 2)
    surface: np.ndarray  # (n, n): sigmoid(D(x)) on the grid


@dataclass
class ToyRun:
    """What ``train_toy_gan`` returns.

    - snapshots: Snapshot list in iteration order; the last is at ``config.iters``.
    - history: lists with one entry every ``config.log_every`` steps: "iteration", "d_loss", "g_loss",
      "d_real", "d_fake" (mean D(x) and D(G(z)) as probabilities, from StepStats) and "g_grad" (the norm of
      the generator's parameter gradient in that step).
    - metrics: ``mode_metrics`` of the last snapshot's samples.
    - seconds, cpu_seconds: wall and CPU time of the training loop.
    - trainer: the GANTrainer holding the trained D and G; generator: the network samples come from (G, or the
      EMA of its weights).
    - acceptance: the share of G's samples kept (below 1 only after ``with_rejection``).
    """

    config: ToyConfig
    seed: int
    snapshots: list[Snapshot]
    history: dict[str, list[float]]
    metrics: dict[str, float]
    seconds: float
    cpu_seconds: float
    trainer: gp.GANTrainer = field(repr=False)
    generator: nn.Module = field(repr=False)
    acceptance: float = 1.0

    @property
    def mean_g_grad(self) -> float:
        """The norm of G's gradient, averaged over the logged steps after D's head start."""
        values = [g for it, g in zip(self.history["iteration"], self.history["g_grad"])
                  if it > self.config.d_head_start]
        return float(np.mean(values)) if values else float("nan")


class R1Penalty:
    """Mescheder et al.'s R1 regulariser around your discriminator loss: gamma / 2 * E_x ||grad_x D(x)||^2 on real
    data, added to L_D. It keeps D flat on the data, which lets the game settle instead of circling.

    ``D`` wraps the discriminator so that its inputs remember which output they made; ``loss`` is your
    ``discriminator_loss`` plus the penalty on the real batch's outputs. Your train_step is unchanged. With ``steps``,
    only the first ``steps`` calls of ``loss`` (one per discriminator update) add the penalty; after them ``D`` stops
    tracking its inputs and ``loss`` is your loss alone. With ``every`` = k > 1 the penalty is lazy (Karras et al.,
    2020): only every k-th of those calls adds it, weighted k times, the same push on average for 1/k of the second
    differentiation it costs; ``D`` tracks its inputs only for those updates.
    """

    def __init__(self, D: nn.Module, loss: gp.LossFn, gamma: float, steps: int | None = None, every: int = 1) -> None:
        self.D, self._loss, self.gamma, self.steps, self.every = _Remembering(D), loss, gamma, steps, every
        self.calls = 0
        self.D.tracking = self.active

    @property
    def active(self) -> bool:
        """Whether the next discriminator update adds the penalty."""
        return (self.steps is None or self.calls < self.steps) and self.calls % self.every == 0

    def loss(self, out_real: torch.Tensor, out_fake: torch.Tensor) -> torch.Tensor:
        x = self.D.inputs.pop(id(out_real), None)
        self.D.inputs.clear()
        self.calls += 1
        self.D.tracking = self.active  # for the next update's outputs
        base = self._loss(out_real, out_fake)
        if x is None:
            return base
        (grad,) = torch.autograd.grad(out_real.sum(), x, create_graph=True)
        return base + self.every * self.gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()


class InstanceNoise(nn.Module):
    """D with Gaussian noise of standard deviation ``std`` added to its inputs, real and fake alike, whenever
    gradients are on (training; D's plots and sampling run without them). Blurring both distributions makes them
    overlap, so D cannot separate them perfectly and its gradient still points G toward modes that G has not reached
    (Sønderby et al., 2017; Arjovsky and Bottou, 2017). The training loop lowers ``std`` step by step.
    """

    def __init__(self, net: nn.Module, std: float) -> None:
        super().__init__()
        self.net, self.std = net, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.std > 0 and torch.is_grad_enabled():
            x = x + self.std * torch.randn_like(x)
        return self.net(x)


class _Remembering(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.inputs, self.tracking = net, {}, True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.tracking:
            return self.net(x)
        if not x.requires_grad:  # data (or detached fakes): track it, to differentiate D's output with respect to it
            x = x.detach().requires_grad_(True)
        out = self.net(x)
        self.inputs[id(out)] = x
        return out

    def __getstate__(self) -> dict:
        # the last update's inputs are of no use elsewhere, and part of an autograd graph, which cannot be pickled
        return {**super().__getstate__(), "inputs": {}}


def build_trainer(config: ToyConfig, seed: int = 0) -> gp.GANTrainer:
    """The networks of ``config`` and their optimizers, in your GANTrainer with your losses."""
    torch.manual_seed(seed)
    D = toy_discriminator(config.d_hidden, config.d_layers, config.d_maxout, config.pack)
    G = toy_generator(config.noise_dim, config.g_hidden, config.g_layers, config.g_norm)
    with torch.no_grad():
        G[-1].bias += config.g_start
    if config.d_noise:
        D = InstanceNoise(D, config.d_noise)
    solvers = []
    for net, lr, sgd in ((D, config.d_lr or config.lr, False), (G, config.lr, config.optimizer == "sgd")):
        if sgd:
            solvers.append(torch.optim.SGD(net.parameters(), lr=lr))
        else:
            solver = gp.get_optimizer(net)
            set_lr(solver, lr)
            solvers.append(fuse_adam(solver) if config.fast else solver)
    d_loss = gp.discriminator_loss
    if config.r1:
        penalty = R1Penalty(D, d_loss, config.r1, config.r1_steps, config.r1_every)
        D, d_loss = penalty.D, penalty.loss
    return gp.GANTrainer(D, G, *solvers, d_loss, LOSSES[config.loss], noise_dim=config.noise_dim)


def _grad_norm(module: nn.Module) -> float:
    grads = [p.grad.flatten() for p in module.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm()) if grads else 0.0


def _noise_std(config: ToyConfig, step: int) -> float:
    """The standard deviation of the noise on D's inputs at ``step`` (1-based): falling linearly to 0."""
    steps = config.d_noise_steps or config.iters
    return config.d_noise * max(0.0, 1.0 - (step - 1) / steps)


def _lr_factor(config: ToyConfig, step: int) -> float:
    """How much of its learning rate each network uses at ``step`` (1-based): the linear decay at the end."""
    if config.lr_decay == 0.0:
        return 1.0
    start = config.iters * (1.0 - config.lr_decay)
    return min(1.0, max(0.0, (config.iters - step + 1) / (config.iters - start)))


def train_toy_gan(config: ToyConfig, seed: int = 0, dataset: gp.Toy2dGridGaussiansDataset | None = None,
                  progress: bool = False) -> ToyRun:
    """Train one toy GAN: ``config.iters`` calls of ``GANTrainer.train_step`` on random batches of
    ``dataset.points`` (default: ``Toy2dGridGaussiansDataset()``).

    ``seed`` fixes the weights, the noise and the batches. In smoke mode the run is cut short. PyTorch runs on one
    thread meanwhile (restored after): for networks this small, extra threads cost more in synchronisation than
    they save.
    """
    config = config.for_this_run()
    dataset = dataset if dataset is not None else gp.Toy2dGridGaussiansDataset()
    points = dataset.points
    trainer = build_trainer(config, seed)
    noisy = [m for m in trainer.D.modules() if isinstance(m, InstanceNoise)]
    ema = EMA(trainer.G, config.ema) if config.ema else None
    generator = ema.module if ema is not None else trainer.G
    base_lrs = [[g["lr"] for g in s.param_groups] for s in (trainer.D_solver, trainer.G_solver)]
    batches = torch.Generator().manual_seed(seed)
    keep = set(config.snapshots) | {config.iters}
    history: dict[str, list[float]] = {k: [] for k in ("iteration", *gp.StepStats._fields, "g_grad")}
    snapshots = []
    steps: Iterable[int] = range(1, config.iters + 1)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=f"{config.loss} seed {seed}", leave=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        for it in steps:
            factor = _lr_factor(config, it)
            for solver, lrs, frozen in ((trainer.D_solver, base_lrs[0], False),
                                        (trainer.G_solver, base_lrs[1], it <= config.d_head_start)):
                for group, lr in zip(solver.param_groups, lrs):
                    group["lr"] = 0.0 if frozen else lr * factor
            for module in noisy:
                module.std = _noise_std(config, it)
            stats = trainer.train_step(points[torch.randint(len(points), (config.batch_size,), generator=batches)])
            if ema is not None:
                ema.update(trainer.G)
            if it % config.log_every == 0 or it == config.iters:
                history["iteration"].append(it)
                for name, value in stats._asdict().items():
                    history[name].append(float(value))
                history["g_grad"].append(_grad_norm(trainer.G))
            if it in keep:
                # sample_noise(seed=...) reseeds torch's generator: forked, so that the training's noise (and so the
                # run) does not depend on when snapshots are taken
                with torch.random.fork_rng(devices=[]):
                    noise = gp.sample_noise(N_EVAL, config.noise_dim, seed=seed)
                snapshots.append(Snapshot(it, sample(generator, noise).numpy(),
                                          decision_surface(trainer.D, limit=config.view)))
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        torch.set_num_threads(threads)
    metrics = mode_metrics(snapshots[-1].samples, dataset)
    return ToyRun(config, seed, snapshots, history, metrics, seconds, cpu_seconds, trainer, generator)


@torch.no_grad()
def rejection_sample(G: nn.Module, D: nn.Module, n: int, noise_dim: int, seed: int = 0,
                     pool: int = 10 * N_EVAL, max_draws: int = 1_000_000) -> tuple[np.ndarray, float]:
    """Discriminator rejection sampling (Azadi et al., 2019): n of G's samples, each kept with probability
    exp(D(x) - M), where D(x) is D's logit and M the largest logit among the first ``pool`` samples (later ones
    above it are always kept).

    Why it works: the best discriminator for a fixed G has logit D(x) = log p_data(x) / p_G(x), so keeping x with
    probability proportional to exp(D(x)) turns G's distribution into the data's, wherever G puts some mass. It
    removes what D knows to be fake (samples between modes) and thins out modes that G over-fills; it cannot
    bring back a mode that G never visits. Noise comes from ``sample_noise`` with seeds ``seed``, ``seed + 1``, ...

    Returns (samples (n, 2) as numpy, the share of the drawn samples that was kept). Raises ValueError if fewer
    than n are kept among ``max_draws``.
    """
    kept: list[torch.Tensor] = []
    drawn = accepted = 0
    top = None
    while accepted < n:
        if drawn >= max_draws:
            raise ValueError(f"rejection sampling kept only {accepted} of {drawn} samples (wanted {n}): D "
                             f"rejects nearly everything G makes")
        x = sample(G, gp.sample_noise(pool, noise_dim, seed=seed + drawn // pool), batch_size=pool)
        logits = point_logits(D, x).float()
        top = logits.max() if top is None else top
        keep = torch.rand(pool) < torch.exp(logits - top)
        kept.append(x[keep])
        drawn, accepted = drawn + pool, accepted + int(keep.sum())
    return torch.cat(kept)[:n].numpy(), accepted / drawn


def with_rejection(run: ToyRun, dataset: gp.Toy2dGridGaussiansDataset | None = None) -> ToyRun:
    """``run`` with its final samples redrawn by ``rejection_sample`` from its trained G and D (no training): the
    last snapshot's samples, ``metrics`` and ``acceptance`` change, and the sampling time is added to ``seconds``;
    the rest is shared with ``run``."""
    dataset = dataset if dataset is not None else gp.Toy2dGridGaussiansDataset()
    start, cpu_start = time.perf_counter(), time.process_time()
    samples, acceptance = rejection_sample(run.generator, run.trainer.D, N_EVAL, run.config.noise_dim, run.seed)
    last = replace(run.snapshots[-1], samples=samples)
    return replace(run, snapshots=[*run.snapshots[:-1], last], metrics=mode_metrics(samples, dataset),
                   acceptance=acceptance, seconds=run.seconds + time.perf_counter() - start,
                   cpu_seconds=run.cpu_seconds + time.process_time() - cpu_start)


def _worker_setup() -> None:
    """In a worker: leave Ctrl-C (a kernel interrupt reaches the whole process group) to the parent, which ends the
    pool; and exit when the parent ends, however it ends (a Jupyter kernel that is restarted or killed never shuts
    its pool down, and a pool's workers otherwise wait for work forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()


def _train_job(job: tuple[ToyConfig, int, gp.Toy2dGridGaussiansDataset]) -> ToyRun:
    return train_toy_gan(*job)


def _in_jupyter_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython.get_ipython(), "kernel", None) is not None


def default_workers(runs: int) -> int:
    """Processes to train ``runs`` toy runs in. In a Jupyter kernel, one per available core, at most one per run. One
    (this process) in smoke mode, where starting a process (which imports torch) costs more than the short runs it
    would share, and in a script: a new process starts by re-running the script's unguarded top level, so a script
    asks for workers itself, under ``if __name__ == "__main__":``."""
    if env.is_smoke() or not _in_jupyter_kernel():
        return 1
    return max(1, min(runs, env.available_cores()))


def _train_all(jobs: Sequence[tuple[ToyConfig, int]], dataset: gp.Toy2dGridGaussiansDataset,
               workers: int | None) -> Iterator[ToyRun]:
    """``train_toy_gan`` of each (config, seed), in order. A run uses one core (``train_toy_gan``), so with
    ``workers`` > 1 the runs are trained side by side in that many fresh processes; each run is seeded by its own
    seed alone, so it is the same run either way (on the same machine and build). The processes start from
    ``gan_pytorch.py`` as it is on disk, and they end with this call, or with this process."""
    workers = default_workers(len(jobs)) if workers is None else workers
    if workers <= 1 or len(jobs) <= 1:
        for config, seed in jobs:
            yield train_toy_gan(config, seed, dataset)
        return
    context = multiprocessing.get_context("spawn")  # fork would copy the parent's torch thread pools and locks
    with context.Pool(min(workers, len(jobs)), initializer=_worker_setup) as pool:  # on leaving: terminate()
        yield from pool.imap(_train_job, [(config, seed, dataset) for config, seed in jobs])


def run_seeds(config: ToyConfig, seeds: Iterable[int] = range(5),
              dataset: gp.Toy2dGridGaussiansDataset | None = None, verbose: bool = True,
              workers: int | None = None) -> list[ToyRun]:
    """Train ``config`` once per seed; print one line per run when ``verbose``. ``workers``: processes to train
    in, side by side (default ``default_workers``; 1: one after the other, in this process)."""
    return _train_methods({"": config}, seeds, dataset, verbose, workers, headers=False)[""]


def compare(methods: Mapping[str, ToyConfig], seeds: Iterable[int] = range(5),
            dataset: gp.Toy2dGridGaussiansDataset | None = None, verbose: bool = True,
            workers: int | None = None, interleave: bool = False) -> dict[str, list[ToyRun]]:
    """``run_seeds`` for each named config, on the same seeds and data: {name: runs}, ready for ``format_table``.
    All the runs share the ``workers`` processes. ``interleave``: train seed by seed, each method in turn (so that
    a drift in the machine's speed hits every method alike), naming the method on each printed line; the runs are
    the same either way."""
    return _train_methods(methods, seeds, dataset, verbose, workers, headers=not interleave, interleave=interleave)


def _train_methods(methods: Mapping[str, ToyConfig], seeds: Iterable[int],
                   dataset: gp.Toy2dGridGaussiansDataset | None, verbose: bool, workers: int | None,
                   headers: bool, interleave: bool = False) -> dict[str, list[ToyRun]]:
    seeds = list(seeds)
    dataset = dataset if dataset is not None else gp.Toy2dGridGaussiansDataset()
    if interleave:
        jobs = [(name, config, seed) for seed in seeds for name, config in methods.items()]
    else:
        jobs = [(name, config, seed) for name, config in methods.items() for seed in seeds]
    results: dict[str, list[ToyRun]] = {name: [] for name in methods}
    # closing: the workers end here, also when something below fails
    with contextlib.closing(_train_all([(config, seed) for _, config, seed in jobs], dataset, workers)) as runs:
        for (name, _, seed), run in zip(jobs, runs):
            if verbose and headers and not results[name]:
                print(f"{name}:", flush=True)
            results[name].append(run)
            if verbose:
                m = run.metrics
                print(f"  {f'{name}, ' if interleave else ''}seed {seed}: {m['modes']:.0f} modes, "
                      f"{100 * m['high_quality']:.1f} % high quality, reverse KL {m['reverse_kl']:.3f}  "
                      f"({run.seconds:.1f} s)", flush=True)
    return results


# The notebook's configurations (measured by bench/bench_toy.py; the README and bench/HISTORY.md have the
# figures).
SNAPSHOTS = (100, 500, 1500)
# A plain GAN: the defaults above (batch 100, Adam at 1e-3, LeakyReLU discriminator, 3000 steps).
BASELINE = ToyConfig(snapshots=SNAPSHOTS)
# The discriminator ahead: G starts off the grid, D learns alone for 500 steps, then G follows with plain SGD.
_STALLED = ToyConfig(optimizer="sgd", lr=0.01, d_head_start=500, iters=1500, g_start=7.0, view=8.5,
                     snapshots=(250, 500, 1000))
STALL = {"saturating": replace(_STALLED, loss="saturating"), "non-saturating": _STALLED}
# The remedy's training: a maxout discriminator (each hidden unit the max of 4 linear pieces, as in PacGAN's own D),
# the R1 penalty (gamma 0.3) on D in the first 2500 of 5000 steps, lazily (on every 4th update, 4 times as strong),
# and both learning rates falling linearly to 0 over the second half. The notebook then draws the final samples
# through D (with_rejection): the two together are the remedy (bench/bench_toy.py measures both).
REMEDY = ToyConfig(d_maxout=4, r1=0.3, r1_steps=2500, r1_every=4, lr_decay=0.5, iters=5000,
                   snapshots=(500, 1500, 2500, 3750))
