"""The toy 2D part: GANs on 25 Gaussians, where mode collapse can be seen and counted.

- ``networks``: the MLPs, PacGAN's packing, maxout units, D's decision surface;
- ``training``: configurations (``ToyConfig``, and the notebook's ``BASELINE``, ``STALL`` and ``REMEDY``), the loop
  around your ``GANTrainer.train_step``, and sampling through D (``with_rejection``);
- ``metrics``: modes covered, high-quality share and reverse KL (the VEEGAN / PacGAN protocol), mean ± std tables;
- ``plots``: the figures.

Typical use (the notebook's cells)::

    from gan_utils import toy
    runs = toy.compare({"baseline": toy.BASELINE, "remedy": toy.REMEDY}, seeds=range(5))
    toy.plot_toy_snapshots(runs["baseline"][0], "images/toy_baseline.png")
    print(toy.format_table(runs))
"""

from gan_utils.toy.metrics import format_table, gain_text, mode_metrics, summarize
from gan_utils.toy.plots import plot_comparison, plot_final_samples, plot_loss_comparison, plot_toy_snapshots
from gan_utils.toy.training import (
    BASELINE,
    REMEDY,
    STALL,
    ToyConfig,
    ToyRun,
    compare,
    rejection_sample,
    run_seeds,
    train_toy_gan,
    with_rejection,
)

__all__ = ["BASELINE", "REMEDY", "STALL", "ToyConfig", "ToyRun", "compare", "format_table", "gain_text",
           "mode_metrics", "plot_comparison", "plot_final_samples", "plot_loss_comparison", "plot_toy_snapshots",
           "rejection_sample", "run_seeds", "summarize", "train_toy_gan", "with_rejection"]
