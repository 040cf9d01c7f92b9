"""The toy 2D part: GANs on 25 Gaussians, where mode collapse can be seen and counted.

- ``networks``: the MLPs, PacGAN's packing, maxout units, D's decision surface;
- ``training``: configurations (``ToyConfig`` and the notebook's), the loop around your ``GANTrainer.train_step``;
- ``metrics``: modes covered, high-quality share and reverse KL (the VEEGAN / PacGAN protocol), mean ± std tables;
- ``plots``: the figures.

Typical use (the notebook's cells)::

    from gan_utils import toy
    runs = toy.compare({"baseline": toy.BASELINE, "remedy": toy.REMEDY}, seeds=range(5))
    toy.plot_toy_snapshots(runs["baseline"][0], "images/toy_baseline.png")
    print(toy.format_table(runs))
"""

from gan_utils.toy.metrics import METRICS, N_EVAL, PACGAN4, format_table, mode_metrics, summarize
from gan_utils.toy.networks import (
           LIMIT,
           Maxout,
           Pack,
           decision_surface,
           pack_size,
           surface_grid,
           toy_discriminator,
           toy_generator,
)
from gan_utils.toy.plots import metrics_text, plot_comparison, plot_loss_comparison, plot_toy_snapshots
from gan_utils.toy.training import LOSSES, Snapshot, ToyConfig, ToyRun, build_trainer, compare, run_seeds, train_toy_gan

__all__ = ["LIMIT", "LOSSES", "METRICS", "N_EVAL", "PACGAN4", "Maxout", "Pack", "Snapshot", "ToyConfig", "ToyRun",
           "build_trainer", "compare", "decision_surface", "format_table", "metrics_text", "mode_metrics",
           "pack_size", "plot_comparison", "plot_loss_comparison", "plot_toy_snapshots", "run_seeds",
           "summarize", "surface_grid", "toy_discriminator", "toy_generator", "train_toy_gan"]
