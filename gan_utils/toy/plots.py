"""The toy part's figures: samples over D's decision surface, the two generator losses, the comparison of methods."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

import gan_pytorch as gp
from gan_utils.plots import save_figure
from gan_utils.toy.metrics import METRICS, PACGAN4, mode_metrics
from gan_utils.toy.networks import surface_grid
from gan_utils.toy.training import Snapshot, ToyRun


def metrics_text(metrics: Mapping[str, float]) -> str:
    """One line: '23 modes, 48 % HQ, KL 0.40'."""
    return (f"{metrics['modes']:.0f} modes, {100 * metrics['high_quality']:.0f} % HQ, "
            f"KL {metrics['reverse_kl']:.2f}")


def _draw_snapshot(ax: plt.Axes, snap: Snapshot, real: np.ndarray, view: float, title: str):
    """One panel: D's surface, the real points (black) and the snapshot's samples (orange) on [-view, view]^2."""
    X, Y = surface_grid(snap.surface.shape[0], view)
    filled = ax.contourf(X, Y, snap.surface, levels=np.linspace(0, 1, 11), cmap="coolwarm", alpha=0.8)
    ax.scatter(real[:, 0], real[:, 1], s=2, c="black", label="real")
    ax.scatter(snap.samples[:, 0], snap.samples[:, 1], s=2, c="orange", alpha=0.5, label="generated")
    ax.set(xlim=(-view, view), ylim=(-view, view), aspect="equal", xticks=[-4, 0, 4], yticks=[-4, 0, 4])
    ax.set_title(title, fontsize=9)
    return filled


def plot_toy_snapshots(run: ToyRun, path: str | os.PathLike | None = None, title: str | None = None,
                       dataset: gp.Toy2dGridGaussiansDataset | None = None, n_real: int = 1000) -> plt.Figure:
    """One panel per snapshot of ``run``: real points (black) and generated points (orange) over D's decision
    surface sigmoid(D(x)) (blue: D says fake, red: D says real). Saved to ``path`` if given."""
    dataset = dataset if dataset is not None else gp.Toy2dGridGaussiansDataset()
    real = dataset.points[:n_real].numpy()
    fig, axes = plt.subplots(1, len(run.snapshots), figsize=(3.2 * len(run.snapshots), 3.5), squeeze=False)
    for ax, snap in zip(axes[0], run.snapshots):
        title_of_panel = f"iteration {snap.iteration}\n{metrics_text(mode_metrics(snap.samples, dataset))}"
        filled = _draw_snapshot(ax, snap, real, run.config.view, title_of_panel)
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=4)
    fig.colorbar(filled, ax=axes[0].tolist(), shrink=0.8, label="D(x)")
    fig.suptitle(title or f"{run.config.loss} loss, seed {run.seed}", y=1.02)
    save_figure(fig, path)
    return fig


def plot_final_samples(runs: Sequence[ToyRun], path: str | os.PathLike | None = None, title: str = "",
                       dataset: gp.Toy2dGridGaussiansDataset | None = None, n_real: int = 1000) -> plt.Figure:
    """One panel per run (seed): its final samples (orange) over the real points (black) and D's final surface,
    titled with the run's metrics: a collapse shows as empty modes, seed after seed."""
    dataset = dataset if dataset is not None else gp.Toy2dGridGaussiansDataset()
    real = dataset.points[:n_real].numpy()
    fig, axes = plt.subplots(1, len(runs), figsize=(3.0 * len(runs), 3.3), squeeze=False)
    for ax, run in zip(axes[0], runs):
        _draw_snapshot(ax, run.snapshots[-1], real, run.config.view, f"seed {run.seed}\n{metrics_text(run.metrics)}")
    if title:
        fig.suptitle(title, y=1.03)
    save_figure(fig, path)
    return fig


def plot_loss_comparison(saturating: ToyRun, nonsaturating: ToyRun,
                         path: str | os.PathLike | None = None) -> plt.Figure:
    """Why the saturating loss stalls, in four panels.

    1-2. Both generator losses, and the size of their gradient with respect to D's logit, as functions of
         D(G(z)): d/ds log(1 - sigmoid(s)) = -D, which vanishes as D(G(z)) -> 0 (fakes confidently rejected),
         while d/ds [-log sigmoid(s)] = -(1 - D), which is largest there.
    3-4. Measured in the two runs: mean D(G(z)) and the norm of G's gradient during training (the dotted line
         marks the end of D's head start, if any).
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
        if saturating.config.d_head_start:
            ax.axvline(saturating.config.d_head_start, color="gray", ls=":", lw=1)
        ax.legend(fontsize=8)
    fig.tight_layout()
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
    save_figure(fig, path)
    return fig
