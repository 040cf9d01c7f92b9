"""CS231n's MNIST settings against the notebook's default recipes: training time and sample quality, in one run.

    python bench/bench_mnist.py                      # all three models, baseline and recipe (~20 min on 2 cores)
    python bench/bench_mnist.py --models dcgan --only recipe

For each model the baseline (batch 128, Adam 1e-3 / (0.5, 0.999), 3900 iterations for the MLPs and 1950 for the
DCGAN, samples from G itself) and the recipe (gan_utils.training.RECIPES, samples from G's EMA copy) train
back to back, so both see the same machine load. Each is scored on 10 000 samples by gan_utils.evaluation.
Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gan_utils import evaluation as ev  # noqa: E402
from gan_utils.data import load_mnist  # noqa: E402
from gan_utils.training import CS231N, MODELS, RECIPES, Recipe, fit, make_gan, set_threads  # noqa: E402


def run(model: str, recipe: Recipe, images: torch.Tensor, seed: int) -> tuple[float, dict]:
    trainer, ema = make_gan(model, recipe, seed=seed)
    history = fit(trainer, images, recipe.iterations, recipe.batch_size, ema=ema, name=model, progress=False,
                  seed=seed)
    return history.seconds, ev.evaluate_generator(ema.module if ema is not None else trainer.G)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--only", choices=("baseline", "recipe"))
    parser.add_argument("--threads", type=int, default=None, help="default: one per available core")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    threads = set_threads(args.threads)
    images = load_mnist()[0]
    start = time.perf_counter()
    floor = ev.real_data_floor()
    print(f"torch {torch.__version__}, {threads} threads; classifier test accuracy {ev.classifier_accuracy():.4f}; "
          f"real-data floor (10k train vs test) FD {floor['fd']:.2f}, scored in {time.perf_counter() - start:.1f} s",
          flush=True)

    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    for model in args.models:
        for kind, recipes in (("baseline", CS231N), ("recipe", RECIPES)):
            if args.only not in (None, kind):
                continue
            r = recipes[model]
            name = f"{model} {kind}"
            seconds[name], results[name] = run(model, r, images, args.seed)
            res = results[name]
            print(f"{name:<18} batch {r.batch_size:>3} x {r.iterations:>4} it, EMA {r.ema_decay}, fast {r.fast}: "
                  f"{seconds[name]:6.1f} s, FD {res['fd']:.2f}, classes>=5% {res['classes_5pct']}, "
                  f"min share {res['min_class_share']:.3f}, conf {res['mean_confidence']:.3f}", flush=True)

    print()
    print(ev.evaluation_table({"real data (floor)": floor, **results}))
    print()
    for model in args.models:
        b, r = seconds.get(f"{model} baseline"), seconds.get(f"{model} recipe")
        if b and r:
            fd_b, fd_r = results[f"{model} baseline"]["fd"], results[f"{model} recipe"]["fd"]
            print(f"{model:<8} time recipe/baseline {r / b:.2f} ({r:.0f} s vs {b:.0f} s); "
                  f"FD recipe/baseline {fd_r / fd_b:.2f} ({fd_r:.2f} vs {fd_b:.2f})")


if __name__ == "__main__":
    main()
