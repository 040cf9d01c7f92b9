"""Steps per second of the seed-style MLP GAN: the common DataLoader loop against this project's trainer.

    python bench/bench_trainer.py [--steps 100] [--warmup 10] [--threads N] [--repeats 2]

Both train G 100-128-256-512-1024-784 and D 784-1024-512-256-1 on MNIST with batch 128 and Adam(2e-4, (0.5,
0.999)). (a) is the loop of the popular PyTorch-GAN ``gan.py``: torchvision MNIST + ToTensor/Normalize +
DataLoader(shuffle=True), Sigmoid + nn.BCELoss, numpy noise. (b) is this project's path: the in-memory tensor,
``iterate_minibatches`` and ``GANTrainer.train_step`` with fused Adam, in float32 and (c) under bfloat16
autocast (an opt-in speed-up: other numerics). Prints steps/s, the ratios, and the achieved FLOP/s as a fraction
of a large float32 ``torch.mm`` measured on the same threads. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gan_utils.data import FILES, iterate_minibatches, load_mnist, resolve_data_dir  # noqa: E402
from gan_utils.models import build, wide_discriminator, wide_generator  # noqa: E402

BATCH, LATENT, LR, BETAS = 128, 100, 2e-4, (0.5, 0.999)
G_WIDTHS = (LATENT, 128, 256, 512, 1024, 784)
D_WIDTHS = (784, 1024, 512, 256, 1)


def matmul_flops(widths: tuple[int, ...]) -> int:
    """Forward multiply-add FLOPs of one sample through Linear layers of these widths."""
    return sum(2 * a * b for a, b in zip(widths[:-1], widths[1:]))


def step_flops(g_forwards: int) -> float:
    """FLOPs of one GAN step: forward+backward ~ 3x forward; D runs on real and fake, and again in the G step.

    The project's trainer makes fresh fakes for the G step (g_forwards=1 extra, no backward); the common loop
    reuses the G step's fakes for D.
    """
    g, d = matmul_flops(G_WIDTHS), matmul_flops(D_WIDTHS)
    return BATCH * (3 * g + g_forwards * g + 3 * 3 * d)


def peak_flops(n: int = 2048, reps: int = 10) -> float:
    """Best float32 torch.mm FLOP/s over a few timings."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * n**3 / best


def torchvision_mnist(tmp: Path):
    """torchvision's MNIST dataset on the local files (it wants them decompressed in <root>/MNIST/raw)."""
    from torchvision import datasets, transforms

    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    src = resolve_data_dir() / "MNIST" / "raw"
    for name in (*FILES[True], *FILES[False]):  # torchvision checks that all four are there
        gz, plain = src / f"{name}.gz", src / name
        if plain.is_file():
            shutil.copy(plain, raw / name)
        else:
            with gzip.open(gz, "rb") as f_in, open(raw / name, "wb") as f_out:
                shutil.copyfileobj(f_in, f_out)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    return datasets.MNIST(str(tmp), train=True, download=False, transform=transform)


def common_loop(dataset) -> Callable[[], Iterator[None]]:
    """PyTorch-GAN's gan.py loop, one yield per step."""
    torch.manual_seed(0)
    G = wide_generator(LATENT)
    D = nn.Sequential(wide_discriminator(), nn.Sigmoid())
    loss = nn.BCELoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=LR, betas=BETAS)
    opt_d = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True)

    def steps() -> Iterator[None]:
        while True:
            for imgs, _ in loader:
                valid = torch.ones(imgs.size(0), 1)
                fake = torch.zeros(imgs.size(0), 1)
                opt_g.zero_grad()
                z = torch.tensor(np.random.normal(0, 1, (imgs.shape[0], LATENT)), dtype=torch.float32)
                gen_imgs = G(z)
                g_loss = loss(D(gen_imgs), valid)
                g_loss.backward()
                opt_g.step()
                opt_d.zero_grad()
                d_loss = (loss(D(imgs), valid) + loss(D(gen_imgs.detach()), fake)) / 2
                d_loss.backward()
                opt_d.step()
                g_loss.item(), d_loss.item()  # the usual per-step print/log reads both losses
                yield

    return steps


def project_loop(images: torch.Tensor, bf16: bool = False) -> Callable[[], Iterator[None]]:
    """This project's path: in-memory batches and GANTrainer.train_step (built by train.py's ``build``:
    fused Adam), optionally under bfloat16 autocast."""
    gan = build("mlp-wide", LATENT, LR, *BETAS, seed=0)
    shuffle = torch.Generator().manual_seed(0)

    def steps() -> Iterator[None]:
        while True:
            for real in iterate_minibatches(images, BATCH, generator=shuffle):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    gan.trainer.train_step(real)
                yield

    return steps


def steps_per_second(steps: Callable[[], Iterator[None]], n: int, warmup: int) -> float:
    it = steps()
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeats", type=int, default=2, help="alternate the two loops this often, keep each best")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {BATCH}, {args.steps} timed steps "
          f"after {args.warmup} warm-up, best of {args.repeats}")
    peak = peak_flops()
    print(f"measured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s")
    images = load_mnist()[0]
    with tempfile.TemporaryDirectory() as tmp:
        dataset = torchvision_mnist(Path(tmp))
        loops = {"DataLoader loop (PyTorch-GAN style)": (common_loop(dataset), step_flops(0)),
                 "project trainer (in-memory + train_step)": (project_loop(images), step_flops(1)),
                 "project trainer, bfloat16 autocast": (project_loop(images, bf16=True), step_flops(1))}
        best = dict.fromkeys(loops, 0.0)
        for _ in range(args.repeats):
            for name, (steps, _) in loops.items():
                best[name] = max(best[name], steps_per_second(steps, args.steps, args.warmup))
    for name, (_, flops) in loops.items():
        rate = best[name]
        print(f"{name:42s} {rate:7.2f} steps/s  {1000 / rate:7.1f} ms/step  "
              f"{rate * flops / 1e9:6.1f} GFLOP/s = {rate * flops / peak:5.1%} of peak "
              f"({flops / 1e9:.2f} GFLOP/step)")
    common, ours, ours_bf16 = best.values()
    print(f"speed-up of the project trainer: {ours / common:.2f}x steps/s "
          f"({ours * step_flops(1) / (common * step_flops(0)):.2f}x FLOP/s; goal 3x steps/s); "
          f"with bfloat16 autocast {ours_bf16 / common:.2f}x")
    print("(bfloat16 percentages are of the float32 peak; its matmuls can run faster than that peak)")


if __name__ == "__main__":
    main()
