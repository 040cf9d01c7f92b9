"""The MNIST training loop around your ``GANTrainer.train_step``, and the recipes it runs.

Typical use (the notebook's training cells)::

    run = train_model("vanilla", images, fixed_noise=fixed_noise)   # make_trainer + fit, with recipe_for("vanilla")
    run.G        # the generator to sample from (the EMA copy when the recipe keeps one)
    run.history  # what every train_step reported

``fit`` is the loop itself; ``train.py`` calls it too, adding checkpoints and resume through ``on_step``.
It shows a progress bar and saves sample grids; ``gan_utils.plots`` draws what it records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import gan_pytorch as gp
from gan_utils import env
from gan_utils.data import Batches
from gan_utils.models import EMA, make_trainer, sample, unwrap
from gan_utils.plots import save_grid


@dataclass(frozen=True)
class Recipe:
    """How one model is trained: batch size, iterations, D's and G's learning rates and Adam's beta2 when they differ
    from ``get_optimizer``'s (None: the same), the EMA decay of G's weights to sample from (None: sample from G itself),
    bfloat16 networks (where ``env.use_bfloat16``), ``fast`` (fused Adam, channels-last convolutions: the same
    maths, less time), and how often to save a sample grid."""

    batch_size: int
    iterations: int
    d_lr: float | None = None
    g_lr: float | None = None
    beta2: float | None = None
    ema_decay: float | None = None
    bf16: bool = False
    fast: bool = True
    sample_every: int = 250

    @property
    def learning_rates(self) -> tuple[float, float]:
        """(D's, G's) learning rate: the recipe's where it sets one, else ``get_optimizer``'s (``LEARNING_RATE``)."""
        return self.d_lr or gp.LEARNING_RATE, self.g_lr or gp.LEARNING_RATE

    @property
    def betas(self) -> tuple[float, float]:
        """Both Adams' (beta1, beta2): ``get_optimizer``'s (``BETAS``), with the recipe's beta2 where it sets one."""
        return gp.BETAS[0], self.beta2 or gp.BETAS[1]

    def for_this_run(self) -> Recipe:
        """The recipe as it will run now: iterations cut in smoke mode."""
        return replace(self, iterations=env.iterations(self.iterations))


# CS231n's settings, run as CS231n runs them (float32, the default Adam): the baseline the recipes are measured
# against (bench/bench_mnist.py). Both use your get_optimizer's Adam: lr 1e-3, betas (0.5, 0.999).
CS231N = {
    "vanilla": Recipe(batch_size=128, iterations=3900, fast=False),
    "lsgan": Recipe(batch_size=128, iterations=3900, fast=False),
    "dcgan": Recipe(batch_size=128, iterations=1950, fast=False),
}

# The notebook's recipes where the GANs train in bfloat16: CS231n's batch and Adam (but G of the DCGAN at twice the
# learning rate), bfloat16 networks, fewer steps, to fit in 1/2 (MLP GANs) or 1/3 (DCGAN) of the baseline's time, and
# samples from an EMA of G's weights. Its decay of 0.999 is never reached in runs this short: the EMA's warm-up sets
# the decay at every step, so the samples average about the last ninth of the run (see EMA).
# bench/bench_mnist.py measures them against CS231N (quality and time); bench/HISTORY.md has the runs (the MLP GANs
# fit in 1/2 on one CPU, and not on another, where bfloat16 gains less over float32; there, 2300 or 2000 steps lost
# much of the gain in quality, and G at 2e-3 collapsed).
RECIPES = {
    "vanilla": Recipe(batch_size=128, iterations=2700, ema_decay=0.999, bf16=True),
    "lsgan": Recipe(batch_size=128, iterations=2700, ema_decay=0.999, bf16=True),
    "dcgan": Recipe(batch_size=128, iterations=1050, g_lr=2e-3, ema_decay=0.999, bf16=True),
}

# Where the GANs train in float32 (a CPU without AVX-512 BF16 or AMX, or GAN_BF16=0), a step costs more:
# - the MLP GANs take smaller, more numerous steps (batch 64 for 2800 steps: less than half the baseline's time) with
#   Adam's beta2 at 0.99, so that its estimate of each gradient's scale averages over about the last 100 steps rather
#   than 1000, and keeps up with gradients that change as the two networks move;
# - a DCGAN step of the recipe costs nearly as much as CS231n's, so the DCGAN stops at 720 steps, to keep the notebook
#   near 10 minutes.
# On such a CPU each kept a lower mean distance than CS231N with every digit, in under 1/2 (MLP GANs) or 1/3 (DCGAN)
# of its time (bench/bench_mnist.py, on seeds that played no part in the choices; the README has the figures).
FLOAT32_RECIPES = {
    "vanilla": Recipe(batch_size=64, iterations=2800, beta2=0.99, ema_decay=0.999),
    "lsgan": Recipe(batch_size=64, iterations=2800, beta2=0.99, ema_decay=0.999),
    "dcgan": replace(RECIPES["dcgan"], iterations=720, bf16=False),
}


def recipes_for(bf16: bool) -> dict[str, Recipe]:
    """The notebook's recipes, by model: ``RECIPES`` where the GANs train in bfloat16, else ``FLOAT32_RECIPES``."""
    return RECIPES if bf16 else FLOAT32_RECIPES


def recipe_for(model: str, device: torch.device | str) -> Recipe:
    """The notebook's recipe for ``model`` on ``device``: ``recipes_for`` whether the GANs train in bfloat16 there
    (``env.use_bfloat16``)."""
    return recipes_for(env.use_bfloat16(device))[model]


class History:
    """What ``fit`` recorded: one row per iteration of StepStats (``d_loss``, ``g_loss``, ``d_real``, ``d_fake``,
    each a float64 array), the seconds spent training and the grids saved."""

    def __init__(self) -> None:
        self._rows: list[torch.Tensor] = []  # kept as tensors: no per-step conversion to Python floats
        self.seconds = 0.0
        self.grids: list[Path] = []

    def append(self, stats: gp.StepStats) -> None:
        self._rows.append(torch.stack([torch.as_tensor(v).detach().float().reshape(()) for v in stats]))

    def __len__(self) -> int:
        return len(self._rows)

    def table(self, last: int | None = None) -> np.ndarray:
        """(iterations, 4) float64: every row, or the ``last`` ones."""
        rows = self._rows if last is None else self._rows[-last:]
        return torch.stack(rows).double().cpu().numpy() if rows else np.zeros((0, 4))

    def column(self, name: str) -> np.ndarray:
        return self.table()[:, gp.StepStats._fields.index(name)]

    d_loss = property(lambda self: self.column("d_loss"))
    g_loss = property(lambda self: self.column("g_loss"))
    d_real = property(lambda self: self.column("d_real"))
    d_fake = property(lambda self: self.column("d_fake"))

    def state_dict(self) -> dict:
        return {"stats": torch.from_numpy(self.table()), "seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        self._rows = list(state["stats"].float().unbind())
        self.seconds = float(state["seconds"])


def fit(trainer: gp.GANTrainer, batches: Batches, iterations: int, *, ema: EMA | None = None,
        history: History | None = None, fixed_noise: torch.Tensor | None = None, sample_every: int = 250,
        name: str = "gan", image_dir: str | Path = env.IMAGE_DIR, progress: bool = True,
        on_step: Callable[[int], bool] | None = None) -> History:
    """Call ``trainer.train_step`` on ``batches`` until ``iterations`` steps are done, counting those already in
    ``history`` (a resumed run passes its own).

    - ema: updated from ``trainer.G`` after every step.
    - fixed_noise: if given, a grid of samples on it (from the EMA copy when there is one) is saved to
      ``image_dir/<name>_iter<k>.png`` at the start, every ``sample_every`` steps and at the end.
    - on_step(k): called after step k; returning True stops the loop there (train.py's Ctrl-C and checkpoints).
    """
    if iterations < 0 or sample_every <= 0:
        raise ValueError(f"iterations must be >= 0 and sample_every > 0, got {iterations} and {sample_every}")
    history = history if history is not None else History()
    sampler = ema.module if ema is not None else trainer.G

    def snapshot(k: int) -> None:
        if fixed_noise is not None:
            path = Path(image_dir) / f"{name}_iter{k:05d}.png"
            history.grids.append(save_grid(sample(sampler, fixed_noise), path))

    done = len(history)
    if done == 0:
        snapshot(0)
    start = time.perf_counter()
    with tqdm(total=iterations, initial=done, desc=name, disable=not progress, mininterval=1.0) as bar:
        for k in range(done + 1, iterations + 1):
            history.append(trainer.train_step(next(batches)))
            if ema is not None:
                ema.update(trainer.G)
            if k % 50 == 0 or k == iterations:
                d_loss, g_loss, d_real, d_fake = history.table(last=1)[0]
                bar.set_postfix(D=f"{d_loss:.3f}", G=f"{g_loss:.3f}", Dx=f"{d_real:.2f}", DGz=f"{d_fake:.2f}",
                                refresh=False)
                bar.update(k - bar.n)
            if k % sample_every == 0 or k == iterations:
                snapshot(k)
            if on_step is not None and on_step(k):
                break
    history.seconds += time.perf_counter() - start
    return history


@dataclass
class Run:
    """A trained model: its trainer (D, G, optimizers), G's EMA copy if any, and the History."""

    model: str
    recipe: Recipe
    trainer: gp.GANTrainer
    ema: EMA | None
    history: History = field(repr=False)

    @property
    def G(self) -> nn.Module:
        """The generator to sample from: the EMA copy when there is one, else G itself (without bfloat16)."""
        return self.ema.module if self.ema is not None else unwrap(self.trainer.G)


def train_model(model: str, images: torch.Tensor, recipe: Recipe | None = None, *,
                fixed_noise: torch.Tensor | None = None, seed: int = 0, progress: bool = True,
                image_dir: str | Path = env.IMAGE_DIR) -> Run:
    """Build ``model`` with ``make_trainer`` and train it on ``images`` (already on the device) with ``recipe``
    (default ``recipe_for(model, images.device)``; iterations cut in smoke mode). Sample grids go to
    ``image_dir/<model>_iter<k>.png``.
    The Run's recipe is the one that ran: its iterations, and ``bf16`` only if bfloat16 was used (``env.use_bfloat16``).
    """
    recipe = (recipe or recipe_for(model, images.device)).for_this_run()
    recipe = replace(recipe, bf16=recipe.bf16 and env.use_bfloat16(images.device))
    trainer = make_trainer(model, device=images.device, seed=seed, bf16=recipe.bf16, fast=recipe.fast,
                           d_lr=recipe.d_lr, g_lr=recipe.g_lr, beta2=recipe.beta2)
    ema = EMA(trainer.G, recipe.ema_decay) if recipe.ema_decay else None
    torch.manual_seed(seed)  # the noise that train_step draws
    history = fit(trainer, Batches(images, recipe.batch_size, seed), recipe.iterations, ema=ema,
                  fixed_noise=fixed_noise, sample_every=recipe.sample_every, name=model, image_dir=image_dir,
                  progress=progress)
    return Run(model, recipe, trainer, ema, history)
