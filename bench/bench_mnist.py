"""CS231n's MNIST settings against the notebook's recipes: training time and sample quality, in one run.

    python bench/bench_mnist.py                       # 3 seeds, all three models (about 50 min on 2 cores)
    python bench/bench_mnist.py --models dcgan --seeds 2
    python bench/bench_mnist.py --models dcgan --seeds 2 --first_seed 3    # seeds 3 and 4
    python bench/bench_mnist.py --models vanilla --variant iterations=2300 --variant iterations=2300,g_lr=2e-3
    python bench/bench_mnist.py --models vanilla lsgan --without_ema

For every seed, each model trains with CS231n's settings (gan_utils.training.CS231N: batch 128, Adam
1e-3 / (0.5, 0.999), 3900 iterations for the MLP GANs and 1950 for the DCGAN, float32, samples from G itself) and with
the notebook's recipe for this machine (gan_utils.training.recipe_for: RECIPES where the GANs train in bfloat16, else
FLOAT32_RECIPES), back to back, so both see the same machine load. Each generator is scored on 10 000 samples by
gan_utils.evaluation. Prints every run, then per model and setting the Frechet distance (mean ± std over seeds), the
class coverage and the seconds of training, and the bars: a lower mean distance than the baseline, every digit at
>= 5 % of the samples in every run, and at most 1/2 (MLP GANs) or 1/3 (DCGAN) of the baseline's time (beside it, each
run's time over its seed's baseline, mean ± std: their spread shows how much the machine's speed moved during the
run). Each --variant (fields of gan_utils.training.Recipe, comma-separated) also trains, after the recipe, as the
recipe with those fields changed, and is held to the same bars: a candidate measured beside the recipe and the
baseline in one run. With --without_ema, the G of every run that samples from an average of G's weights is also scored
without it (the same training): what the average adds. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import machine  # noqa: E402
from cli.args import open_unit_interval, positive_float, positive_int  # noqa: E402
from gan_utils import env  # noqa: E402
from gan_utils import evaluation as ev  # noqa: E402
from gan_utils.data import load_mnist  # noqa: E402
from gan_utils.models import MODELS, unwrap  # noqa: E402
from gan_utils.training import CS231N, recipe_for, train_model  # noqa: E402

TIME_BAR = {"vanilla": 1 / 2, "lsgan": 1 / 2, "dcgan": 1 / 3}


def _or_none(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse``, except that "none" reads as None (a Recipe field left unset)."""
    return lambda text: None if text.lower() == "none" else parse(text)


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "1", "false", "0"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1")


# How a --variant's values are read and checked, per Recipe field.
FIELD_TYPES: dict[str, Callable[[str], Any]] = {"batch_size": positive_int, "iterations": positive_int,
                                                "sample_every": positive_int, "d_lr": _or_none(positive_float),
                                                "g_lr": _or_none(positive_float),
                                                "beta2": _or_none(open_unit_interval),
                                                "ema_decay": _or_none(open_unit_interval), "bf16": _bool,
                                                "fast": _bool}


def quality(score: dict[str, Any]) -> str:
    """A generator's scores (``ev.evaluate_generator``) as printed on each run's line."""
    return (f"FD {score['fd']:7.2f}, classes>=5% {score['classes_5pct']}, min share "
            f"{score['min_class_share']:.3f}")


def parse_variant(text: str) -> dict[str, Any]:
    """'iterations=2300,g_lr=2e-3' -> {'iterations': 2300, 'g_lr': 0.002}; a clear ValueError for anything else."""
    changes: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in FIELD_TYPES:
            raise ValueError(f"--variant {text!r}: {item!r} is not FIELD=VALUE with FIELD one of "
                             f"{', '.join(FIELD_TYPES)}")
        try:
            changes[key] = FIELD_TYPES[key](value.strip())
        except argparse.ArgumentTypeError as error:
            raise ValueError(f"--variant {text!r}: {key}: {error}") from None
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds per model and setting (default 3)")
    parser.add_argument("--first_seed", type=int, default=0,
                        help="run seeds first_seed, first_seed + 1, ... (default 0), e.g. to check a recipe on seeds "
                             "that played no part in choosing it")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="default: $GAN_THREADS, else one per available core")
    parser.add_argument("--variant", action="append", default=[], metavar="FIELD=VALUE[,...]",
                        help="also train the recipe with these Recipe fields changed, e.g. iterations=2300 "
                             "(repeatable)")
    parser.add_argument("--without_ema", action="store_true",
                        help="also score the G of each run that samples from an EMA of G, without the EMA")
    args = parser.parse_args()
    try:  # bad input, in the flags or the environment, stops here, before any work
        variants = {f"recipe[{text}]": parse_variant(text) for text in args.variant}
        threads = env.set_threads(args.threads)
        bf16 = env.use_bfloat16("cpu")
    except ValueError as error:
        parser.error(str(error))

    images = load_mnist()[0]
    floor = ev.real_data_floor()
    print(f"{machine.header()}, {threads} threads, bfloat16 {'on' if bf16 else 'off'}; "
          f"classifier test accuracy {ev.classifier_accuracy():.4f}; real-data floor FD {floor['fd']:.2f}", flush=True)
    recipes = {model: recipe_for(model, "cpu") for model in MODELS}
    settings = {"CS231n": CS231N, "recipe": recipes,
                **{name: {m: replace(r, **changes) for m, r in recipes.items()} for name, changes in variants.items()}}
    bare_suffix = ", G itself (no EMA)"
    width = max(len(name) + (len(bare_suffix) if args.without_ema else 0) for name in settings) + 1
    runs: dict[tuple[str, str], list[dict]] = {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for model in args.models:
            for name, recipes in settings.items():
                run = train_model(model, images, recipes[model], seed=seed, progress=False)
                recipe = run.recipe  # as it ran: bf16 only where bfloat16 was used
                score = ev.evaluate_generator(run.G)
                score["seconds"] = run.history.seconds
                runs.setdefault((model, name), []).append(score)
                d_lr, g_lr = recipe.learning_rates
                print(f"seed {seed} {model:<8}{name:<{width}} batch {recipe.batch_size} x {recipe.iterations} it, D lr "
                      f"{d_lr:g}, G lr {g_lr:g}, beta2 {recipe.betas[1]:g}, EMA {recipe.ema_decay}, bf16 "
                      f"{recipe.bf16}: {score['seconds']:6.1f} s, {quality(score)}", flush=True)
                if args.without_ema and run.ema is not None:
                    bare = ev.evaluate_generator(unwrap(run.trainer.G)) | {"seconds": score["seconds"]}
                    runs.setdefault((model, name + bare_suffix), []).append(bare)
                    print(f"seed {seed} {model:<8}{name + bare_suffix:<{width}} the same training, G without its "
                          f"EMA: {quality(bare)}", flush=True)

    print(f"\n{'model':<9}{'setting':<{width}}{'runs':>5}{'FD mean ± std':>18}{'digits >= 5 %':>15}{'seconds':>10}")
    for (model, name), scores in runs.items():
        fd = np.array([s["fd"] for s in scores])
        classes = min(s["classes_5pct"] for s in scores)
        print(f"{model:<9}{name:<{width}}{len(scores):>5}{fd.mean():>10.1f} ± {fd.std():<5.1f}{classes:>12}/10"
              f"{np.mean([s['seconds'] for s in scores]):>10.1f}")
    print()
    for model in args.models:
        for name in list(settings)[1:]:
            base, ours = runs[(model, "CS231n")], runs[(model, name)]
            fd_b, fd_r = np.mean([s["fd"] for s in base]), np.mean([s["fd"] for s in ours])
            t_b, t_r = np.mean([s["seconds"] for s in base]), np.mean([s["seconds"] for s in ours])
            # each run against its own seed's baseline, trained just before it: the host's drift over the run shows
            # as the spread of these ratios
            paired = np.array([r["seconds"] / b["seconds"] for r, b in zip(ours, base)])
            digits = all(s["classes_5pct"] == 10 for s in ours)
            bars = [fd_r < fd_b, digits, t_r <= TIME_BAR[model] * t_b]
            print(f"{model:<8} {name} FD {fd_r:.1f} vs {fd_b:.1f} ({'lower' if bars[0] else 'NOT lower'}); every digit "
                  f">= 5 % in every run: {'yes' if digits else 'NO'}; time {t_r / t_b:.3f} of the baseline's (seed by "
                  f"seed {paired.mean():.3f} ± {paired.std():.3f}; bar {TIME_BAR[model]:.3f}): "
                  f"{'met' if bars[2] else 'MISSED'}")
    print(f"total {time.process_time():.0f} CPU seconds")


if __name__ == "__main__":
    machine.run(main, __file__)
