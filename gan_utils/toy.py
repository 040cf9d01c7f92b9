"""The toy 2D part: a GAN on 25 Gaussians, saturating vs non-saturating loss, mode collapse and a measured remedy.

Everything trains through ``gan_pytorch.GANTrainer``, so the student's ``train_step`` and losses drive these
runs too. Metrics follow the VEEGAN / PacGAN protocol on ``Toy2dGridGaussiansDataset`` (see ``mode_metrics``).
With the environment variable ``GAN_SMOKE=1`` every run is cut to a few iterations; figures are still drawn.

Typical use (the notebook's cells)::

    sat = train_toy_gan(SATURATING)
    nonsat = train_toy_gan(BASELINE)
    plot_toy_snapshots(sat, "images/toy_saturating.png")
    plot_loss_comparison(sat, nonsat, "images/toy_losses.png")
    results = compare({"baseline": BASELINE, "remedy": REMEDY}, seeds=range(5))
    print(format_table(results))
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import gan_pytorch as gp
from gan_utils.env import is_smoke
from gan_utils.files import atomic_path

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
PACGAN4 = {"modes": 24.8, "high_quality": 0.936, "reverse_kl": 0.04}  # PacGAN paper, Table 1 (2D grid)
METRICS = ("modes", "high_quality", "reverse_kl")
N_EVAL = 2500  # generated samples per evaluation, as in VEEGAN / PacGAN
LIMIT = 6.0  # plots show [-LIMIT, LIMIT]^2
SMOKE_ITERS = 20


# ---------------------------------------------------------------------------------------------- networks


def toy_generator(noise_dim: int = 2, hidden: int = 64, layers: int = 3, batch_norm: bool = True) -> nn.Module:
    """An MLP from noise (N, noise_dim) to points (N, 2): ``layers`` hidden Linear-[BatchNorm]-ReLU blocks and a
    linear output (no tanh: the modes sit at +-4)."""
    if min(noise_dim, hidden, layers) <= 0:
        raise ValueError(f"noise_dim, hidden and layers must be positive, got {noise_dim}, {hidden}, {layers}")
    blocks: list[nn.Module] = []
    width = noise_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), *([nn.BatchNorm1d(hidden)] if batch_norm else []), nn.ReLU()]
        width = hidden
    blocks.append(nn.Linear(width, 2))
    return nn.Sequential(*blocks)


class Pack(nn.Module):
    """PacGAN's packing: concatenate groups of ``m`` consecutive samples, (N, d) -> (N / m, m * d)."""

    def __init__(self, m: int) -> None:
        super().__init__()
        if m < 1:
            raise ValueError(f"pack size must be at least 1, got {m}")
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.m:
            raise ValueError(f"a batch of {x.shape[0]} samples cannot be packed in groups of {self.m}; "
                             f"use a batch size divisible by {self.m}")
        return x.reshape(x.shape[0] // self.m, -1)

    def extra_repr(self) -> str:
        return f"m={self.m}"


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al. 2013): a linear map to ``out_features * pieces``, then the max of each
    group of ``pieces``. Each unit is a convex piecewise-linear function with ``pieces`` facets."""

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(-1, (-1, self.pieces)).amax(-1)


def toy_discriminator(hidden: int = 64, layers: int = 3, maxout: int = 0, pack: int = 1) -> nn.Module:
    """An MLP scoring points (N, 2); returns logits (N / pack, 1).

    Hidden layers are Linear + LeakyReLU(0.2), or, with ``maxout`` = k > 0, maxout units of k pieces (PacGAN's
    discriminator units). With ``pack`` = m > 1 it is a PacGAN discriminator that judges m samples at once (all
    real or all fake), so a generator that repeats itself is easier to catch; N must be divisible by m.
    """
    if min(hidden, layers) <= 0 or maxout < 0:
        raise ValueError(f"hidden and layers must be positive and maxout >= 0, got {hidden}, {layers}, {maxout}")
    blocks: list[nn.Module] = [Pack(pack)] if pack > 1 else []
    width = 2 * pack
    for _ in range(layers):
        blocks += [Maxout(width, hidden, maxout)] if maxout else [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    blocks.append(nn.Linear(width, 1))
    return nn.Sequential(*blocks)


def pack_size(D: nn.Module) -> int:
    """How many samples ``D`` packs into one input (1 for an ordinary discriminator)."""
    return next((m.m for m in D.modules() if isinstance(m, Pack)), 1)


# ---------------------------------------------------------------------------------------------- training

LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    # looked up at call time, so the student's (possibly re-imported) functions are the ones used
    "nonsaturating": lambda logits: gp.generator_loss(logits),
    "saturating": lambda logits: gp.generator_loss_saturating(logits),
}


@dataclass(frozen=True)
class ToyConfig:
    """One toy GAN run. ``loss``: "nonsaturating" (-log D(G(z))) or "saturating" (log(1 - D(G(z))))."""

    loss: str = "nonsaturating"
    iters: int = 3000
    batch_size: int = 100  # real (and fake) samples per step; batch_size / pack packed inputs
    lr: float = 1e-3  # Adam, both networks
    betas: tuple[float, float] = (0.5, 0.999)
    noise_dim: int = 2
    g_hidden: int = 64
    g_layers: int = 3
    g_batch_norm: bool = True
    d_hidden: int = 64
    d_layers: int = 3
    d_maxout: int = 0
    pack: int = 1
    snapshots: tuple[int, ...] = ()  # iterations, besides the last, at which to keep samples and D's surface
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        if self.iters < 1 or self.batch_size < 1 or self.pack < 1 or self.log_every < 1:
            raise ValueError(f"iters, batch_size, pack and log_every must be positive, got {self.iters}, "
                             f"{self.batch_size}, {self.pack}, {self.log_every}")
        if self.batch_size % self.pack:
            raise ValueError(f"batch_size {self.batch_size} must be divisible by pack {self.pack}")

    def tiny(self) -> ToyConfig:
        """The same run cut to ``SMOKE_ITERS`` iterations, its snapshots spread proportionally."""
        iters = min(self.iters, SMOKE_ITERS)
        snaps = tuple(sorted({max(1, s * iters // self.iters) for s in self.snapshots if s < self.iters} - {iters}))
        return replace(self, iters=iters, snapshots=snaps, log_every=1)


# The notebook's configurations. The remedy differs from the baseline only in D's units: maxout units (PacGAN's
# choice) let D draw the 25 narrow peaks of the data sooner than LeakyReLU units of the same width, so G gets a
# sharper signal. Measured and not kept at this 3000-step budget: packing (PacGAN2/4: high quality fell to ~2 %),
# EMA of G, learning-rate decay, a faster D, larger batches, wider noise, wider or deeper G, G without batch
# norm. ``python bench/bench_toy.py --candidates`` reruns the packing ones.
SNAPSHOTS = (100, 500, 1500)
BASELINE = ToyConfig(snapshots=SNAPSHOTS)
SATURATING = replace(BASELINE, loss="saturating")
REMEDY = replace(BASELINE, d_maxout=4)


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
    - seconds, cpu_seconds: wall and CPU time of the training loop (CPU time is the steadier of the two on a
      busy machine).
    - trainer: the GANTrainer holding the trained D and G.
    """

    config: ToyConfig
    seed: int
    snapshots: list[Snapshot]
    history: dict[str, list[float]]
    metrics: dict[str, float]
    seconds: float
    cpu_seconds: float
    trainer: gp.GANTrainer = field(repr=False)


def surface_grid(n: int = 121) -> tuple[np.ndarray, np.ndarray]:
    """The (n, n) meshgrid X, Y over [-LIMIT, LIMIT]^2 on which decision surfaces are evaluated."""
    axis = np.linspace(-LIMIT, LIMIT, n, dtype=np.float32)
    return np.meshgrid(axis, axis)


@torch.no_grad()
def decision_surface(D: nn.Module, n: int = 121) -> np.ndarray:
    """sigmoid(D(x)) on ``surface_grid(n)``, shape (n, n). A packed D scores a pack of m copies of x."""
    X, Y = surface_grid(n)
    points = torch.from_numpy(np.stack([X.ravel(), Y.ravel()], 1)).repeat_interleave(pack_size(D), dim=0)
    return torch.sigmoid(D(points)).reshape(n, n).numpy()


@torch.no_grad()
def generate(G: nn.Module, n: int = N_EVAL, noise_dim: int = 2, seed: int = 0) -> np.ndarray:
    """``n`` points from G in eval mode (batch norm uses its running statistics), as an (n, 2) array."""
    was_training = G.training
    G.eval()
    try:
        return G(gp.sample_noise(n, noise_dim, seed=seed)).numpy()
    finally:
        G.train(was_training)


def build_trainer(config: ToyConfig, seed: int = 0) -> gp.GANTrainer:
    """Networks and Adam optimizers for ``config``, wrapped in the student's GANTrainer."""
    torch.manual_seed(seed)
    D = toy_discriminator(config.d_hidden, config.d_layers, config.d_maxout, config.pack)
    G = toy_generator(config.noise_dim, config.g_hidden, config.g_layers, config.g_batch_norm)
    D_solver = torch.optim.Adam(D.parameters(), lr=config.lr, betas=config.betas)
    G_solver = torch.optim.Adam(G.parameters(), lr=config.lr, betas=config.betas)
    return gp.GANTrainer(D, G, D_solver, G_solver, gp.discriminator_loss, LOSSES[config.loss],
                         noise_dim=config.noise_dim)


def _grad_norm(module: nn.Module) -> float:
    grads = [p.grad.flatten() for p in module.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm()) if grads else 0.0


def train_toy_gan(config: ToyConfig = BASELINE, seed: int = 0,
                  dataset: gp.Toy2dGridGaussiansDataset | None = None, progress: bool = False) -> ToyRun:
    """Train one toy GAN: ``config.iters`` calls of ``GANTrainer.train_step`` on random batches of
    ``dataset.points`` (default: ``Toy2dGridGaussiansDataset()``).

    ``seed`` fixes the weights, the noise and the batches. Under ``GAN_SMOKE=1`` the run is ``config.tiny()``.
    PyTorch runs on one thread meanwhile (restored after): for networks this small, extra threads cost more
    in synchronisation than they save, and are slowed down badly by any other process on the machine.
    """
    if is_smoke():
        config = config.tiny()
    dataset = dataset if dataset is not None else gp.Toy2dGridGaussiansDataset()
    points = dataset.points
    trainer = build_trainer(config, seed)
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
            real = points[torch.randint(len(points), (config.batch_size,), generator=batches)]
            stats = trainer.train_step(real)
            if it % config.log_every == 0 or it == config.iters:
                history["iteration"].append(it)
                for name, value in stats._asdict().items():
                    history[name].append(float(value))
                history["g_grad"].append(_grad_norm(trainer.G))
            if it in keep:
                snapshots.append(Snapshot(it, generate(trainer.G, noise_dim=config.noise_dim, seed=seed),
                                          decision_surface(trainer.D)))
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        torch.set_num_threads(threads)
    metrics = mode_metrics(snapshots[-1].samples, dataset)
    return ToyRun(config, seed, snapshots, history, metrics, seconds, cpu_seconds, trainer)


# ---------------------------------------------------------------------------------------------- metrics


def mode_metrics(samples: np.ndarray | torch.Tensor, dataset: gp.Toy2dGridGaussiansDataset,
                 threshold: float = 3.0) -> dict[str, float]:
    """Mode-collapse metrics of the VEEGAN / PacGAN 2D-grid protocol, as in PacGAN's released code.

    Each sample is assigned to its nearest mode, and is *high quality* if it lies within ``threshold``
    standard deviations (3 * 0.05 = 0.15) of that mode's mean.

    - modes: the number of modes with at least one high-quality sample assigned (of 25).
    - high_quality: the fraction of all samples that are high quality, in [0, 1].
    - reverse_kl: KL(p || u) = sum_k p_k log(p_k K), with p the histogram of the high-quality samples over the
      K modes (normalised) and u the true, uniform mode distribution. Empty bins add 0 (0 log 0 = 0), so all
      modes equally hit gives 0 and one mode only gives log 25 = 3.22. NaN if no sample is high quality.
    """
    x = torch.as_tensor(np.asarray(samples), dtype=torch.float32)
    if x.ndim != 2 or x.shape[1] != 2 or len(x) == 0:
        raise ValueError(f"samples must have shape (N, 2) with N > 0, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("samples contain NaN or inf: the generator diverged")
    modes = dataset.modes.float()
    nearest_dist, nearest = torch.cdist(x, modes).min(dim=1)
    good = nearest_dist < threshold * dataset.std
    counts = torch.bincount(nearest[good], minlength=len(modes)).double()
    if counts.sum() == 0:
        kl = math.nan
    else:
        p = counts[counts > 0] / counts.sum()
        kl = float((p * torch.log(p * len(modes))).sum())
    return {"modes": float((counts > 0).sum()), "high_quality": float(good.double().mean()), "reverse_kl": kl}


def run_seeds(config: ToyConfig, seeds: Iterable[int] = range(5),
              dataset: gp.Toy2dGridGaussiansDataset | None = None, verbose: bool = True) -> list[ToyRun]:
    """Train ``config`` once per seed; print one line per run when ``verbose``."""
    dataset = dataset if dataset is not None else gp.Toy2dGridGaussiansDataset()
    runs = []
    for seed in seeds:
        run = train_toy_gan(config, seed, dataset)
        runs.append(run)
        if verbose:
            m = run.metrics
            print(f"  seed {seed}: {m['modes']:.0f} modes, {100 * m['high_quality']:.1f} % high quality, "
                  f"reverse KL {m['reverse_kl']:.3f}  ({run.seconds:.1f} s wall, {run.cpu_seconds:.1f} s CPU)",
                  flush=True)
    return runs


def compare(methods: Mapping[str, ToyConfig], seeds: Iterable[int] = range(5),
            dataset: gp.Toy2dGridGaussiansDataset | None = None, verbose: bool = True) -> dict[str, list[ToyRun]]:
    """``run_seeds`` for each named config, on the same seeds and data: {name: runs}, ready for ``format_table``."""
    seeds = list(seeds)
    dataset = dataset if dataset is not None else gp.Toy2dGridGaussiansDataset()
    results = {}
    for name, config in methods.items():
        if verbose:
            print(f"{name}:", flush=True)
        results[name] = run_seeds(config, seeds, dataset, verbose)
    return results


def summarize(runs: Sequence[ToyRun]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation (over runs, ddof=0) of each metric, of "seconds" and of "cpu_seconds"."""
    if not runs:
        raise ValueError("no runs to summarize")
    out = {}
    for key in (*METRICS, "seconds", "cpu_seconds"):
        values = np.array([r.metrics[key] if key in METRICS else getattr(r, key) for r in runs], dtype=float)
        out[key] = (float(values.mean()), float(values.std()))
    return out


def format_table(results: Mapping[str, Sequence[ToyRun]], reference: bool = True) -> str:
    """A markdown table with one row per method: mean ± std of each metric over its runs; PacGAN4's row last."""
    lines = ["| method | runs | modes (of 25) | high quality (%) | reverse KL | s / run (wall, CPU) |",
             "|---|---|---|---|---|---|"]
    for name, runs in results.items():
        s = summarize(runs)
        lines.append(f"| {name} | {len(runs)} | {s['modes'][0]:.1f} ± {s['modes'][1]:.1f} "
                     f"| {100 * s['high_quality'][0]:.1f} ± {100 * s['high_quality'][1]:.1f} "
                     f"| {s['reverse_kl'][0]:.3f} ± {s['reverse_kl'][1]:.3f} "
                     f"| {s['seconds'][0]:.1f}, {s['cpu_seconds'][0]:.1f} |")
    if reference:
        lines.append(f"| PacGAN4 (paper; 400 epochs, GPU) | 10 | {PACGAN4['modes']} "
                     f"| {100 * PACGAN4['high_quality']:.1f} | {PACGAN4['reverse_kl']:.2f} | - |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- plots


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` as PNG atomically (temporary file, then rename), creating the folder; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


def metrics_text(metrics: Mapping[str, float]) -> str:
    """One line: '23 modes, 48 % HQ, KL 0.40'."""
    return (f"{metrics['modes']:.0f} modes, {100 * metrics['high_quality']:.0f} % HQ, "
            f"KL {metrics['reverse_kl']:.2f}")


def plot_toy_snapshots(run: ToyRun, path: str | os.PathLike | None = None, title: str | None = None,
                       dataset: gp.Toy2dGridGaussiansDataset | None = None, n_real: int = 1000) -> plt.Figure:
    """One panel per snapshot of ``run``: real points (black) and generated points (orange) over D's decision
    surface sigmoid(D(x)) (blue: D says fake, red: D says real). Saved to ``path`` if given."""
    dataset = dataset if dataset is not None else gp.Toy2dGridGaussiansDataset()
    real = dataset.points[:n_real].numpy()
    X, Y = surface_grid(run.snapshots[0].surface.shape[0])
    fig, axes = plt.subplots(1, len(run.snapshots), figsize=(3.2 * len(run.snapshots), 3.5), squeeze=False)
    for ax, snap in zip(axes[0], run.snapshots):
        filled = ax.contourf(X, Y, snap.surface, levels=np.linspace(0, 1, 11), cmap="coolwarm", alpha=0.8)
        ax.scatter(real[:, 0], real[:, 1], s=2, c="black", label="real")
        ax.scatter(snap.samples[:, 0], snap.samples[:, 1], s=2, c="orange", alpha=0.5, label="generated")
        ax.set(xlim=(-LIMIT, LIMIT), ylim=(-LIMIT, LIMIT), aspect="equal", xticks=[-4, 0, 4], yticks=[-4, 0, 4])
        metrics = mode_metrics(snap.samples, dataset)
        ax.set_title(f"iteration {snap.iteration}\n{metrics_text(metrics)}", fontsize=9)
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=4)
    fig.colorbar(filled, ax=axes[0].tolist(), shrink=0.8, label="D(x)")
    fig.suptitle(title or f"{run.config.loss} loss, seed {run.seed}", y=1.02)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_loss_comparison(saturating: ToyRun, nonsaturating: ToyRun,
                         path: str | os.PathLike | None = None) -> plt.Figure:
    """Why the saturating loss stalls, in four panels.

    1-2. Both generator losses, and the size of their gradient with respect to D's logit, as functions of
         D(G(z)): d/ds log(1 - sigmoid(s)) = -D, which vanishes as D(G(z)) -> 0 (fakes confidently rejected),
         while d/ds [-log sigmoid(s)] = -(1 - D), which is largest there.
    3-4. Measured in the two runs: mean D(G(z)) and the norm of G's gradient during training.
    """
    d = np.linspace(1e-3, 1 - 1e-3, 400)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    ax = axes[0]
    ax.plot(d, np.log(1 - d), label="saturating: log(1 - D)")
    ax.plot(d, -np.log(d), label="non-saturating: -log D")
    ax.set(xlabel="D(G(z))", ylabel="generator loss", title="generator losses")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(d, d, label="saturating: |dL/ds| = D")
    ax.plot(d, 1 - d, label="non-saturating: |dL/ds| = 1 - D")
    ax.set(xlabel="D(G(z))", ylabel="|gradient w.r.t. D's logit s|", title="their gradients")
    ax.legend(fontsize=8)
    for run, label in ((saturating, "saturating"), (nonsaturating, "non-saturating")):
        h = run.history
        axes[2].plot(h["iteration"], h["d_fake"], label=label, lw=0.8)
        axes[3].plot(h["iteration"], h["g_grad"], label=label, lw=0.8)
    axes[2].set(xlabel="iteration", ylabel="mean D(G(z))", title="D on fakes, during training", ylim=(0, 1))
    axes[3].set(xlabel="iteration", ylabel="||grad of L_G w.r.t. G's weights||", yscale="log",
                title="generator gradient, during training")
    for ax in axes[2:]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_comparison(results: Mapping[str, Sequence[ToyRun]], path: str | os.PathLike | None = None) -> plt.Figure:
    """Each method's per-seed metrics as dots with their mean as a bar, PacGAN4's numbers as dashed lines."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    names = list(results)
    scale = {"modes": 1, "high_quality": 100, "reverse_kl": 1}
    labels = {"modes": "modes captured (of 25)", "high_quality": "high-quality samples (%)",
              "reverse_kl": "reverse KL (lower is better)"}
    for ax, key in zip(axes, METRICS):
        for i, name in enumerate(names):
            values = np.array([r.metrics[key] for r in results[name]]) * scale[key]
            ax.bar(i, np.nanmean(values), color=f"C{i}", alpha=0.4)
            ax.scatter(np.full(len(values), i), values, color=f"C{i}", s=12, zorder=3)
        ax.axhline(PACGAN4[key] * scale[key], color="gray", ls="--", lw=1, label="PacGAN4 (paper)")
        ax.set_xticks(range(len(names)), names, rotation=15)
        ax.set_title(labels[key], fontsize=10)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
