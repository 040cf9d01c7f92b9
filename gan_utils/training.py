"""The notebook's MNIST training loop around ``GANTrainer.train_step``, its default recipes and settings.

Typical use (one model, with its default recipe)::

    G, history = train_model("vanilla", images, fixed_noise)   # G: the EMA copy of the generator, for sampling

which is ``make_gan`` (D, G, Adam, losses, EMA copy of G) followed by ``fit`` (the loop).

``fit`` shows nothing; ``gan_utils.plots`` draws what it records.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.utils import save_image
from tqdm.auto import tqdm

import gan_pytorch as gp
from gan_utils.data import iterate_minibatches
from gan_utils.files import atomic_path

IMAGE_DIR = Path(__file__).resolve().parent.parent / "images"
SMOKE_ITERATIONS = 6
MODELS = ("vanilla", "lsgan", "dcgan")


# --------------------------------------------------------------------------------------------------
# Notebook settings


def is_autograding() -> bool:
    """True when nbgrader executes the notebook (it sets NBGRADER_EXECUTION): training cells then skip work."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def is_smoke() -> bool:
    """True when GAN_SMOKE=1: every training run is tiny, yet still writes every figure and image."""
    return os.environ.get("GAN_SMOKE", "") not in ("", "0")


def pick_device() -> torch.device:
    """CUDA if there is one, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads: ``n``, else $GAN_THREADS, else one per available core.

    On a machine shared with other busy processes, fewer threads than cores is often faster (threads that wait
    for each other get descheduled): try GAN_THREADS=1 there.
    """
    if n is None and os.environ.get("GAN_THREADS"):
        n = int(os.environ["GAN_THREADS"])
    if n is None:
        # sched_getaffinity sees container CPU limits, cpu_count does not.
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def scaled(n: int, smoke: int = SMOKE_ITERATIONS) -> int:
    """An iteration count for the current mode: 0 when autograding, ``smoke`` in smoke mode, else ``n``."""
    if is_autograding():
        return 0
    return min(n, smoke) if is_smoke() else n


# --------------------------------------------------------------------------------------------------
# Recipes


@dataclass(frozen=True)
class Recipe:
    """How one model is trained: Adam settings, batch size, iteration count, EMA decay (None: no EMA)."""

    batch_size: int
    iterations: int
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float | None = None
    sample_every: int = 250
    fast: bool = False  # fused Adam and channels_last convolutions: same maths, less time per step on a CPU


# CS231n's published settings: the baseline the defaults are compared with (bench/bench_mnist.py).
CS231N = {
    "vanilla": Recipe(batch_size=128, iterations=3900),
    "lsgan": Recipe(batch_size=128, iterations=3900),
    "dcgan": Recipe(batch_size=128, iterations=1950),
}

# The notebook's defaults. MLPs: batch 64 (about 0.63x the time of a batch-128 step on a CPU) and sampling from an
# exponential moving average (EMA) of G's weights, which averages out the oscillation of the adversarial game
# (Yazici et al., 2019). LSGAN's steps cost more, so it gets fewer to stay within half of CS231n's time. DCGAN:
# batch 64, 1000 steps, fused Adam and channels_last; neither EMA nor 1300 steps helped it in our runs.
RECIPES = {
    "vanilla": Recipe(batch_size=64, iterations=3000, ema_decay=0.995, fast=True),
    "lsgan": Recipe(batch_size=64, iterations=2700, ema_decay=0.995, fast=True),
    "dcgan": Recipe(batch_size=64, iterations=1000, fast=True),
}


def iterations(model: str, recipe: Recipe | None = None) -> int:
    """The recipe's iteration count for ``model``, scaled for autograding / smoke mode."""
    return scaled((recipe or RECIPES[model]).iterations)


def make_gan(model: str, recipe: Recipe | None = None, seed: int = 0,
             device: torch.device | str = "cpu") -> tuple[gp.GANTrainer, AveragedModel | None]:
    """A ``GANTrainer`` for "vanilla", "lsgan" or "dcgan" built from gan_pytorch's parts, and G's EMA copy.

    The EMA copy is None when the recipe has no ``ema_decay``.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    recipe = recipe or RECIPES[model]
    torch.manual_seed(seed)
    if model == "dcgan":
        D, G = gp.build_dc_classifier(), gp.build_dc_generator(gp.NOISE_DIM)
    else:
        D, G = gp.discriminator(), gp.generator(gp.NOISE_DIM)
    D, G = D.to(device), G.to(device)
    if recipe.fast and model == "dcgan":
        D, G = D.to(memory_format=torch.channels_last), G.to(memory_format=torch.channels_last)
    if recipe.fast or (recipe.lr, recipe.betas) != (1e-3, (0.5, 0.999)):
        D_solver, G_solver = (_adam(m, recipe) for m in (D, G))
    else:
        D_solver, G_solver = gp.get_optimizer(D), gp.get_optimizer(G)  # the student's own: CS231n's settings
    if model == "lsgan":
        losses, logits = (gp.ls_discriminator_loss, gp.ls_generator_loss), False
    else:
        losses, logits = (gp.discriminator_loss, gp.generator_loss), True
    trainer = gp.GANTrainer(D, G, D_solver, G_solver, *losses, noise_dim=gp.NOISE_DIM, logits=logits)
    return trainer, make_ema(G, recipe.ema_decay)


def _adam(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if recipe.fast:
        try:  # one fused kernel instead of a handful of ops per parameter tensor
            return torch.optim.Adam(params, lr=recipe.lr, betas=recipe.betas, fused=True)
        except (RuntimeError, ValueError):  # a device without a fused Adam
            pass
    return torch.optim.Adam(params, lr=recipe.lr, betas=recipe.betas)


def make_ema(G: nn.Module, decay: float | None) -> AveragedModel | None:
    """An exponential moving average of G's parameters and buffers (BatchNorm statistics), or None."""
    if decay is None:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema decay must be in (0, 1), got {decay}")
    return AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


# --------------------------------------------------------------------------------------------------
# Training


@dataclass
class History:
    """What ``fit`` recorded: one value per iteration of each StepStats field, the grids it saved, its time."""

    d_loss: np.ndarray
    g_loss: np.ndarray
    d_real: np.ndarray
    d_fake: np.ndarray
    seconds: float = 0.0
    grids: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.d_loss)


def _batches(images: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    while True:  # epoch after epoch, reshuffled each time
        yield from iterate_minibatches(images, batch_size, shuffle=True, drop_last=True, generator=generator)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Save (N, 784) or (N, 1, 28, 28) images in [-1, 1] as one PNG grid, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        save_image(images.detach().float().cpu().reshape(-1, 1, 28, 28), tmp, nrow=nrow, normalize=True,
                   value_range=(-1, 1), padding=2, format="png")
    return path


@torch.no_grad()
def sample(G: nn.Module, noise: torch.Tensor) -> torch.Tensor:
    """G's images for ``noise`` in eval mode (BatchNorm uses running statistics), G's mode restored."""
    was_training = G.training
    G.eval()
    try:
        return G(noise.to(next(G.parameters()).device)).cpu()
    finally:
        G.train(was_training)


def fit(trainer: gp.GANTrainer, images: torch.Tensor, iterations: int, batch_size: int, *,
        fixed_noise: torch.Tensor | None = None, sample_every: int = 250, image_dir: str | Path = IMAGE_DIR,
        name: str = "gan", ema: AveragedModel | None = None, progress: bool = True, seed: int = 0) -> History:
    """Run ``iterations`` of ``trainer.train_step`` on minibatches of ``images`` and record what they report.

    - images: the whole training set as one tensor (already on the trainer's device), e.g. ``load_mnist()[0]``.
    - fixed_noise: if given, a grid of G's samples on it is saved every ``sample_every`` iterations and at the end,
      as ``image_dir/<name>_iter<k>.png`` (k = 0 is the untrained G); from ``ema`` when there is one.
    - ema: an ``AveragedModel`` of ``trainer.G`` (see ``make_ema``), updated after every step.
    - seed: seeds the batch order and the noise ``train_step`` draws from torch's global generator.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if batch_size <= 0 or batch_size > len(images):
        raise ValueError(f"batch_size must be in 1..{len(images)} (the number of images), got {batch_size}")
    if sample_every <= 0:
        raise ValueError(f"sample_every must be positive, got {sample_every}")
    torch.manual_seed(seed)
    batches = _batches(images, batch_size, torch.Generator().manual_seed(seed))
    sampler = ema.module if ema is not None else trainer.G
    grids: list[Path] = []

    def snapshot(k: int) -> None:
        if fixed_noise is not None:
            grids.append(save_grid(sample(sampler, fixed_noise), Path(image_dir) / f"{name}_iter{k:05d}.png"))

    stats: list[torch.Tensor] = []
    start = time.perf_counter()
    snapshot(0)
    with tqdm(total=iterations, desc=name, disable=not progress, mininterval=1.0) as bar:
        for it in range(1, iterations + 1):
            step = trainer.train_step(next(batches))
            if ema is not None:
                ema.update_parameters(trainer.G)
            stats.append(torch.stack(step))  # kept as tensors: no per-step conversion to Python floats
            if it % 50 == 0 or it == iterations:
                d_loss, g_loss, d_real, d_fake = stats[-1].tolist()
                bar.set_postfix(D=f"{d_loss:.3f}", G=f"{g_loss:.3f}", Dx=f"{d_real:.2f}", DGz=f"{d_fake:.2f}",
                                refresh=False)
                bar.update(it - bar.n)
            if it % sample_every == 0 or it == iterations:
                snapshot(it)
    seconds = time.perf_counter() - start
    columns = torch.stack(stats).double().cpu().numpy().T if stats else np.zeros((4, 0))
    return History(*columns, seconds=seconds, grids=grids)


def train_model(model: str, images: torch.Tensor, fixed_noise: torch.Tensor | None = None,
                recipe: Recipe | None = None, seed: int = 0, progress: bool = True,
                image_dir: str | Path = IMAGE_DIR) -> tuple[nn.Module, History]:
    """Train "vanilla", "lsgan" or "dcgan" with its recipe (iterations scaled by ``iterations``) on ``images``.

    Returns the generator to sample from (the EMA copy when the recipe has one, in eval mode) and the History.
    Sample grids go to ``image_dir/<model>_iter<k>.png``.
    """
    recipe = recipe or RECIPES[model]
    trainer, ema = make_gan(model, recipe, seed=seed, device=images.device)
    history = fit(trainer, images, iterations(model, recipe), recipe.batch_size, fixed_noise=fixed_noise,
                  sample_every=recipe.sample_every, image_dir=image_dir, name=model, ema=ema, progress=progress,
                  seed=seed)
    G = ema.module if ema is not None else trainer.G
    return G.eval(), history
