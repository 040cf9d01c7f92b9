"""Benchmark of the toy 2D section: the notebook's configurations over several seeds, in one run.

    python bench/bench_toy.py                 # baseline, the stalled pair (saturating / non-saturating), remedy
    python bench/bench_toy.py --candidates    # also the remedies that were measured and not chosen
    python bench/bench_toy.py --seeds 10

The remedy is measured twice on the same runs: its training alone (G's own samples), and with its final samples
drawn through D (``toy.with_rejection``), which is the notebook's remedy. Prints, for each method, mean ± std over
the seeds of the modes captured, the high-quality share and the reverse KL (the VEEGAN / PacGAN protocol) and the
wall time of a run (training, plus rejection sampling where used), next to PacGAN4's published numbers; the share
of samples that rejection sampling kept; the norm of G's gradient in the stalled pair; and the remedy's gain over
the baseline in standard deviations. Asserts nothing.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gan_pytorch as gp  # noqa: E402
from gan_utils import env, toy  # noqa: E402

CANDIDATES = {  # measured, not chosen (see the README)
    "R1 penalty (gamma 1) + lr decay": replace(toy.BASELINE, r1=1.0, lr_decay=0.5),
    "remedy's training + EMA of G (0.999)": replace(toy.REMEDY, ema=0.999),
}
TRAINED, REMEDY = "remedy's training alone", "remedy: its training + rejection through D"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per method (default 5)")
    parser.add_argument("--candidates", action="store_true", help="also run the remedies not chosen")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")

    print(f"{date.today()}, {platform.processor() or platform.machine()}, {env.available_cores()} cores; each run on "
          f"one thread; {args.seeds} seeds per method", flush=True)
    start = time.perf_counter()
    dataset = gp.Toy2dGridGaussiansDataset()
    stall = {f"D ahead, {k}": v for k, v in toy.STALL.items()}
    methods = {"baseline": toy.BASELINE, **stall, TRAINED: toy.REMEDY, **(CANDIDATES if args.candidates else {})}
    results = toy.compare(methods, range(args.seeds), dataset)
    results[REMEDY] = [toy.with_rejection(run, dataset) for run in results[TRAINED]]
    if args.candidates:
        results["baseline + rejection through D"] = [toy.with_rejection(run, dataset) for run in results["baseline"]]
    for name, runs in results.items():
        if any(run.acceptance < 1 for run in runs):
            print(f"{name}: kept {', '.join(f'{100 * run.acceptance:.0f} %' for run in runs)} of G's samples")
    first = {k: results[k] for k in ("baseline", TRAINED, REMEDY)}
    shown = first | {k: v for k, v in results.items() if k not in stall}
    print("\n" + toy.format_table(shown))
    print("\n" + toy.format_table({k: results[k] for k in stall}, reference=False, gradient=True))
    print("\n" + toy.gain_text(results["baseline"], results[REMEDY]))
    print(f"total wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
