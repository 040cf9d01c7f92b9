"""Benchmark of the toy 2D section: the notebook's configurations over several seeds, in one run.

    python bench/bench_toy.py                 # baseline, the stalled pair (saturating / non-saturating), remedy
    python bench/bench_toy.py --candidates    # also the remedies measured and not chosen, and the remedy's training
                                              # on the default (not fused) Adam and with R1 on every update
    python bench/bench_toy.py --seeds 10
    python bench/bench_toy.py --first_seed 10 --seeds 10   # seeds 10-19, beyond those the notebook or the README use
    python bench/bench_toy.py --workers 2     # two runs side by side, as the notebook trains them on 2 cores

The methods take turns, seed by seed, so that their times compare fairly on a machine whose speed drifts. The remedy
is measured twice on the same runs: its training alone (G's own samples), and with its final samples drawn through D
(``toy.with_rejection``), which is the notebook's remedy. Prints, for each method, mean ± std over the seeds of the
modes captured, the high-quality share and the reverse KL (the VEEGAN / PacGAN protocol) and the wall time of a run
(training, plus rejection sampling where used), next to PacGAN4's published numbers; the share of samples that
rejection sampling kept; the norm of G's gradient in the stalled pair; and the remedy's gain over the baseline in
standard deviations, beside the most that any remedy could gain against the baseline's spread. With more than 5
seeds from seed 0 it also splits the baseline, the remedy and the candidates drawn through D into the notebook's
seeds 0-4 (on which the remedy's settings were chosen) and the held-out rest. A run whose rejection sampling fails
(D rejects nearly every sample) is reported and left out of its row. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gan_pytorch as gp  # noqa: E402
from bench import machine  # noqa: E402
from gan_utils import toy  # noqa: E402

NO_R1 = "remedy's training without R1"
NOISE = "remedy's training with instance noise, batch 200, 4200 steps"
UNFUSED = "remedy's training, Adam not fused"
EAGER_R1 = "remedy's training, R1 on every update"
CANDIDATES = {  # measured, not chosen (see bench/HISTORY.md)
    NO_R1: replace(toy.REMEDY, r1=0.0, r1_steps=None),
    # R1 as Mescheder et al. apply it, where the remedy's is lazy: the time and quality lazy R1 trades
    EAGER_R1: replace(toy.REMEDY, r1_every=1),
    # the same training on PyTorch's default Adam for CPU tensors (a few kernels per tensor): the time fused Adam saves
    UNFUSED: replace(toy.REMEDY, fast=False),
    # noise of std 0.2 on D's inputs falling to 0 over the first half, R1 over the same half
    NOISE: replace(toy.REMEDY, batch_size=200, iters=4200, r1_steps=2100, d_noise=0.2, d_noise_steps=2100),
    "R1 penalty (gamma 1) + lr decay": replace(toy.BASELINE, r1=1.0, lr_decay=0.5),
}
CANDIDATES_THROUGH_D = (NO_R1, EAGER_R1, NOISE)  # candidates also measured with rejection through D, as is the baseline
TRAINED, REMEDY = "remedy's training alone", "remedy: its training + rejection through D"
NOTEBOOK_SEEDS = 5  # the notebook runs seeds 0-4; the remedy's settings were chosen on them


def through_d_label(name: str) -> str:
    """The row name of ``name``'s runs with their final samples drawn through D."""
    return f"{name} + rejection through D"


def through_d(name: str, runs: list[toy.ToyRun], dataset: gp.Toy2dGridGaussiansDataset) -> list[toy.ToyRun]:
    """``toy.with_rejection`` of each run; a run whose D rejects nearly every sample is reported and left out (its
    row then counts fewer runs)."""
    kept = []
    for run in runs:
        try:
            kept.append(toy.with_rejection(run, dataset))
        except ValueError as error:
            print(f"{name}, seed {run.seed}: left out of its row through D: {error}", flush=True)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per method (default 5)")
    parser.add_argument("--first_seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--candidates", action="store_true", help="also run the remedies not chosen")
    parser.add_argument("--workers", type=int, default=1,
                        help="runs trained side by side, each in its own process (default 1: a run's seconds are "
                             "those of a run alone on the machine, as the toy's 30 s bar means; the notebook uses "
                             "one per core)")
    args = parser.parse_args()
    if args.seeds < 1 or args.first_seed < 0 or args.workers < 1:
        parser.error(f"--seeds and --workers must be at least 1 and --first_seed at least 0, got {args.seeds}, "
                     f"{args.workers} and {args.first_seed}")
    seeds = range(args.first_seed, args.first_seed + args.seeds)

    from_seed = f", from seed {args.first_seed}" if args.first_seed else ""
    print(f"{machine.header()}; each run on one thread, {args.workers} side by side; {args.seeds} seeds per "
          f"method{from_seed}", flush=True)
    start = time.perf_counter()
    dataset = gp.Toy2dGridGaussiansDataset()
    stall = {f"D ahead, {k}": v for k, v in toy.STALL.items()}
    methods = {"baseline": toy.BASELINE, **stall, TRAINED: toy.REMEDY, **(CANDIDATES if args.candidates else {})}
    # seed by seed, each method in turn (a drift in the machine's speed hits every method alike), in one pool
    results = toy.compare(methods, seeds, dataset, workers=args.workers, interleave=True)
    results[REMEDY] = through_d(REMEDY, results[TRAINED], dataset)
    if args.candidates:
        for name in ("baseline", *CANDIDATES_THROUGH_D):
            results[through_d_label(name)] = through_d(name, results[name], dataset)
    for name, runs in results.items():
        if any(run.acceptance < 1 for run in runs):
            print(f"{name}: kept {', '.join(f'{100 * run.acceptance:.0f} %' for run in runs)} of G's samples")
    first = {k: results[k] for k in ("baseline", TRAINED, REMEDY)}
    shown = first | {k: v for k, v in results.items() if k not in stall}
    print("\n" + toy.format_table(shown))
    print("\n" + toy.format_table({k: results[k] for k in stall}, reference=False, gradient=True))
    print("\n" + toy.gain_text(results["baseline"], results[REMEDY]))
    if args.first_seed == 0 and args.seeds > NOTEBOOK_SEEDS:
        print(f"\nthe same runs, split: seeds 0-{NOTEBOOK_SEEDS - 1} (the notebook's, on which the remedy was chosen) "
              f"and the held-out seeds {NOTEBOOK_SEEDS}-{args.seeds - 1}")
        parts = {f"0-{NOTEBOOK_SEEDS - 1}": True, f"{NOTEBOOK_SEEDS}-{args.seeds - 1} (held out)": False}
        candidates = CANDIDATES_THROUGH_D if args.candidates else ()
        split = ("baseline", REMEDY, *map(through_d_label, candidates))
        halves = {f"{name}, seeds {label}": [run for run in results[name] if (run.seed < NOTEBOOK_SEEDS) == first_part]
                  for name in split for label, first_part in parts.items()}
        print(toy.format_table(halves, reference=False))
    print(f"total wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
