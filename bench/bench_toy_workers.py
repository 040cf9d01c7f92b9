"""Wall time of the notebook's toy runs trained one after the other (``workers=1``) and side by side (one process
per core, as the notebook does), in one run.

    python bench/bench_toy_workers.py [--seeds 5]

The notebook's three toy cells (the baseline, the stalled pair, the remedy's training; each over ``--seeds`` seeds)
run both ways, cell by cell, one way right after the other. Prints each cell's wall time both ways and the speed-up
(and its mean ± std over the cells), and checks that both ways train the same runs (the same metrics and histories).
Asserts nothing else.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gan_pytorch as gp  # noqa: E402
from bench import machine  # noqa: E402
from gan_utils import env, toy  # noqa: E402

CELLS = {"baseline": {"baseline": toy.BASELINE}, "stalled pair": toy.STALL, "remedy's training": {"": toy.REMEDY}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per configuration (default 5, the notebook's)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    side_by_side = min(args.seeds, env.available_cores())
    if side_by_side < 2:
        raise SystemExit(f"{env.available_cores()} core(s) for {args.seeds} seed(s): nothing runs side by side")
    print(f"{machine.header()}; {args.seeds} seeds; side by side: {side_by_side} processes", flush=True)
    dataset = gp.Toy2dGridGaussiansDataset()
    totals = {1: 0.0, side_by_side: 0.0}
    speedups = []
    print(f"{'cell':20} {'runs':>5} {'one after another (s)':>22} {'side by side (s)':>17} {'speed-up':>9}")
    for cell, methods in CELLS.items():
        seconds, results = {}, {}
        for workers in totals:
            start = time.perf_counter()
            results[workers] = toy.compare(methods, range(args.seeds), dataset, verbose=False, workers=workers)
            seconds[workers] = time.perf_counter() - start
            totals[workers] += seconds[workers]
        for name in methods:
            for a, b in zip(*(results[w][name] for w in totals), strict=True):
                np.testing.assert_equal((a.history, a.metrics), (b.history, b.metrics),
                                        err_msg=f"{cell}, seed {a.seed}: the two ways trained different runs")
        one, many = seconds.values()
        speedups.append(one / many)
        print(f"{cell:20} {len(methods) * args.seeds:5d} {one:22.1f} {many:17.1f} {one / many:8.2f}x", flush=True)
    one, many = totals.values()
    print(f"{'all three':20} {'':5} {one:22.1f} {many:17.1f} {one / many:8.2f}x")
    print(f"speed-up per cell: {np.mean(speedups):.2f}x ± {np.std(speedups):.2f} (mean ± std over the cells)")
    print("both ways trained the same runs (metrics and histories equal)")


if __name__ == "__main__":
    main()
