"""Figures for the notebook: sample grids, training curves, latent interpolations (shown, and saved to images/)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid, save_image

from gan_utils.files import atomic_path

if TYPE_CHECKING:
    from gan_utils.training import History


def save_figure(fig: Figure, path: str | Path | None) -> Path | None:
    """Save ``fig`` as PNG (atomically, creating the folder); nothing if ``path`` is None."""
    if path is None:
        return None
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Save (N, 784) or (N, 1, 28, 28) images in [-1, 1] as one PNG grid, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        save_image(images.detach().float().cpu().reshape(-1, 1, 28, 28), tmp, nrow=nrow, normalize=True,
                   value_range=(-1, 1), padding=2, format="png")
    return path


def grid_array(images: torch.Tensor, nrow: int = 8) -> np.ndarray:
    """(N, 784) or (N, 1, 28, 28) images in [-1, 1] -> one (H, W) array in [0, 1], tiles ``nrow`` per row."""
    images = images.detach().float().cpu().reshape(-1, 1, 28, 28)
    grid = make_grid(images, nrow=nrow, padding=2, normalize=True, value_range=(-1, 1), pad_value=1.0)
    return grid[0].numpy()


def show_grid(images: torch.Tensor, title: str = "", path: str | Path | None = None, nrow: int = 8) -> Figure:
    """Show images as one grid (and save it to ``path`` if given)."""
    array = grid_array(images, nrow)
    fig, ax = plt.subplots(figsize=(array.shape[1] / 40, array.shape[0] / 40 + 0.4))
    ax.imshow(array, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
    save_figure(fig, path)
    plt.show()
    return fig


def show_progress(paths: Sequence[str | Path], title: str = "", max_images: int = 6) -> Figure:
    """Show saved sample grids side by side (e.g. ``history.grids``), evenly picked if there are many."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no grid images to show (was fit() given fixed_noise?)")
    picks = sorted({round(i) for i in np.linspace(0, len(paths) - 1, min(max_images, len(paths)))})
    fig, axes = plt.subplots(1, len(picks), figsize=(2.6 * len(picks), 2.9), squeeze=False)
    for ax, i in zip(axes[0], picks):
        ax.imshow(plt.imread(paths[i]), cmap="gray")
        ax.set_title(paths[i].stem.rsplit("_iter", 1)[-1].lstrip("0") or "0", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{title} (iteration)" if title else "iteration")
    plt.show()
    return fig


def smooth(values: np.ndarray, window: int = 50) -> np.ndarray:
    """A running mean (shorter at the start) to read noisy per-iteration curves."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return values
    window = max(1, min(window, len(values)))
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    out = (cumsum[window:] - cumsum[:-window]) / window
    head = cumsum[1:window] / np.arange(1, window)
    return np.concatenate([head, out])


def plot_history(history: History, title: str = "", path: str | Path | None = None, window: int = 50,
                 show: bool = True) -> Figure:
    """Losses (left) and mean D(x), D(G(z)) (right) per iteration, raw and smoothed; saved to ``path`` if given."""
    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(11, 3.4))
    steps = np.arange(1, len(history) + 1)
    for ax, series in ((ax_loss, {"D loss": history.d_loss, "G loss": history.g_loss}),
                       (ax_d, {"D(x)": history.d_real, "D(G(z))": history.d_fake})):
        for (label, values), color in zip(series.items(), ("tab:blue", "tab:orange")):
            ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.6)
            ax.plot(steps, smooth(values, window), color=color, label=label)
        ax.set_xlabel("iteration")
        ax.legend()
        ax.grid(alpha=0.3)
    ax_loss.set_title("losses")
    ax_d.set_title("mean discriminator output")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    if show:
        plt.show()
    return fig


def show_interpolation(rows: torch.Tensor, title: str = "", path: str | Path | None = None) -> Figure:
    """Show interpolations as a grid: ``rows`` is (R, steps, 784), one row per pair of endpoints."""
    if rows.dim() != 3:
        raise ValueError(f"rows must have shape (R, steps, 784), got {tuple(rows.shape)}")
    return show_grid(rows.reshape(-1, rows.shape[-1]), title=title, path=path, nrow=rows.shape[1])

