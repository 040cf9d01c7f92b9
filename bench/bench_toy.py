"""Benchmark of the toy 2D section: the notebook's exact configuration, its table and per-run wall times.

    python bench/bench_toy.py                 # saturating run + baseline and remedy over 5 seeds, figures
    python bench/bench_toy.py --candidates    # also the remedies that were measured and not chosen
    python bench/bench_toy.py --seeds 10

Prints mean ± std of modes captured, high-quality share and reverse KL (VEEGAN/PacGAN protocol) for each
method next to PacGAN4's published numbers, and the wall time of every run. Figures go to images/toy_*.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from gan_utils import toy  # noqa: E402

CANDIDATES = {  # PacGAN's packing on top of the maxout D, 100 packed inputs a step as in the paper
    "maxout D + pack 2 (PacGAN2)": replace(toy.REMEDY, pack=2, batch_size=200),
    "maxout D + pack 4 (PacGAN4)": replace(toy.REMEDY, pack=4, batch_size=400),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per method (default 5)")
    parser.add_argument("--candidates", action="store_true", help="also run the remedies not chosen")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")

    start = time.perf_counter()
    dataset = toy.gp.Toy2dGridGaussiansDataset()
    print("saturating, seed 0:", flush=True)
    sat = toy.train_toy_gan(toy.SATURATING, 0, dataset)
    print(f"  {toy.metrics_text(sat.metrics)}  ({sat.seconds:.1f} s wall, {sat.cpu_seconds:.1f} s CPU)")
    methods = {"baseline (non-saturating)": toy.BASELINE, "remedy: maxout D": toy.REMEDY}
    if args.candidates:
        methods.update(CANDIDATES)
    results = toy.compare(methods, range(args.seeds), dataset)
    nonsat = results["baseline (non-saturating)"][0]

    toy.plot_toy_snapshots(sat, toy.IMAGES_DIR / "toy_saturating.png", "saturating loss log(1 - D)", dataset)
    toy.plot_toy_snapshots(nonsat, toy.IMAGES_DIR / "toy_nonsaturating.png", "non-saturating loss -log D", dataset)
    toy.plot_toy_snapshots(results["remedy: maxout D"][0], toy.IMAGES_DIR / "toy_remedy.png",
                           "remedy: maxout discriminator", dataset)
    toy.plot_loss_comparison(sat, nonsat, toy.IMAGES_DIR / "toy_losses.png")
    toy.plot_comparison(results, toy.IMAGES_DIR / "toy_comparison.png")

    print()
    print(toy.format_table({"saturating (seed 0 only)": [sat], **results}))
    print()
    for name, runs in results.items():
        print(f"{name}: s/run wall " + " ".join(f"{r.seconds:.1f}" for r in runs)
              + ", CPU " + " ".join(f"{r.cpu_seconds:.1f}" for r in runs))
    print(f"total wall time {time.perf_counter() - start:.1f} s (the notebook runs the saturating run, "
          f"baseline and remedy: {sat.seconds + sum(r.seconds for n in list(results)[:2] for r in results[n]):.1f}"
          " s of training)")


if __name__ == "__main__":
    main()
