"""Steps per second of one GAN: the common DataLoader loop against this project's training path (the notebook's and
train.py's), and the quality of float32 against bfloat16 at equal steps.

    python bench/bench_trainer.py [--model vanilla] [--batch 128] [--steps 60] [--repeats 5] [--quality_seeds 3]
                                  [--compile] [--g_once] [--profile]

(a) is the loop of the popular PyTorch-GAN ``gan.py``, on the same networks: torchvision's MNIST with
ToTensor/Normalize through a DataLoader(shuffle=True), a Sigmoid on D with nn.BCELoss, numpy noise, PyTorch's default
Adam, float32, and the losses read back every step. (b) is ``gan_utils.models.make_trainer`` +
``gan_utils.training.fit``: the in-memory tensor, fused Adam, channels-last convolutions, float32; (c) the same with
bfloat16 networks (where the CPU supports them); with ``--compile``, (d) the same again with D and G passed through
``torch.compile``, its compilation timed apart (its first steps); with ``--g_once``, (e) the path of (c) (of (b)
without bfloat16) with a step that runs G once (``g_once_step``, pytorch/examples' DCGAN step; not the notebook's),
which shows how much of the gap to the DataLoader loop, which also runs G once, comes from the graded step's second
pass through G. The loops alternate, ``--repeats`` times, and each rate and speed-up is reported as mean ± std over
the repeats; so is the speed-up that bfloat16 gives G's matrix products alone (``product_speedup``, where bfloat16 is
supported), near which a step made mostly of them stays. Then (b) and (c) each train ``--quality_steps`` steps from
each of ``--quality_seeds`` seeds, G at the learning rate of the model's recipe, and are scored by the Frechet
distance of 10 000 samples of G (mean ± std), so that the speed is not bought with quality.

With ``--profile``, each loop also runs its steps once more under ``torch.profiler``, which splits a step into matrix
products, the optimizer, casts and copies, and the rest (``step_parts``); the script then says how much of the
bfloat16 path's step (float32 without it) lies outside its matrix products and in its optimizer, against the time a
step may take at 3x the DataLoader loop's rate, and counts the floating-point operations in that step's matrix
products (``step_product_flops``) against the rate of one large product on these cores (``product_rate``): the least
time its products could take, however well they ran. Prints figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import functools
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
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gan_pytorch as gp  # noqa: E402
from bench import machine  # noqa: E402
from cli.args import non_negative_int, positive_int  # noqa: E402
from gan_utils import env  # noqa: E402
from gan_utils import evaluation as ev  # noqa: E402
from gan_utils.data import FILES, Batches, find_file, load_mnist, resolve_data_dir  # noqa: E402
from gan_utils.models import MODELS, BFloat16, make_trainer  # noqa: E402
from gan_utils.training import RECIPES, fit  # noqa: E402


def torchvision_mnist(tmp: Path):
    """torchvision's MNIST dataset on the local files (it wants them decompressed in <root>/MNIST/raw)."""
    from torchvision import datasets, transforms

    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    root = resolve_data_dir()
    for name in (*FILES[True], *FILES[False]):  # torchvision checks that all four are there
        src = find_file(root, name)
        if src is None:
            raise SystemExit(f"{name} not found in {root}: see the README's data directory")
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as f_in, open(raw / name, "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    return datasets.MNIST(str(tmp), train=True, download=False, transform=transform)


def common_loop(model: str, dataset, batch: int) -> Callable[[], Iterator[None]]:
    """PyTorch-GAN's gan.py loop on the model's networks, one yield per step."""
    torch.manual_seed(0)
    D, G = MODELS[model].networks(gp.NOISE_DIM)
    D = nn.Sequential(D, nn.Sigmoid())
    loss = nn.BCELoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=gp.LEARNING_RATE, betas=gp.BETAS)
    opt_d = torch.optim.Adam(D.parameters(), lr=gp.LEARNING_RATE, betas=gp.BETAS)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)

    def steps() -> Iterator[None]:
        while True:
            for imgs, _ in loader:
                valid, fake = torch.ones(imgs.size(0), 1), torch.zeros(imgs.size(0), 1)
                opt_g.zero_grad()
                z = torch.tensor(np.random.uniform(-1, 1, (imgs.shape[0], gp.NOISE_DIM)), dtype=torch.float32)
                gen_imgs = G(z)
                g_loss = loss(D(gen_imgs), valid)
                g_loss.backward()
                opt_g.step()
                opt_d.zero_grad()
                d_loss = loss(D(imgs), valid) + loss(D(gen_imgs.detach()), fake)
                d_loss.backward()
                opt_d.step()
                g_loss.item(), d_loss.item()  # the usual per-step print/log reads both losses
                yield

    return steps


def g_once_step(trainer: gp.GANTrainer, real_batch: torch.Tensor) -> gp.StepStats:
    """A reference step, not the notebook's: pytorch/examples' DCGAN step, in which G's fakes serve both updates, so G
    runs once a step (the graded ``train_step`` draws fresh noise for G's update and so runs G twice)."""
    fake = trainer.G(gp.sample_noise(real_batch.shape[0], trainer.noise_dim).to(real_batch.device))
    trainer.D_solver.zero_grad()
    out_real, out_fake = trainer.D(real_batch), trainer.D(fake.detach())
    d_loss = trainer.discriminator_loss(out_real, out_fake)
    d_loss.backward()
    trainer.D_solver.step()
    trainer.G_solver.zero_grad()
    g_loss = trainer.generator_loss(trainer.D(fake))
    g_loss.backward()
    trainer.G_solver.step()
    return gp.StepStats(d_loss.detach(), g_loss.detach(), trainer.mean_output(out_real), trainer.mean_output(out_fake))


def project_trainer(model: str, bf16: bool, g_once: bool = False) -> gp.GANTrainer:
    """make_trainer's GAN, as this project's path trains it; with ``g_once``, ``g_once_step`` in place of the graded
    ``train_step``."""
    trainer = make_trainer(model, bf16=bf16)
    if g_once:
        trainer.train_step = functools.partial(g_once_step, trainer)
    return trainer


def project_loop(model: str, images: torch.Tensor, batch: int, bf16: bool, compiled: bool = False,
                 g_once: bool = False) -> Callable[[int, int], float]:
    """This project's path, timed through ``fit`` itself: make_trainer's GAN on in-memory batches. ``compiled``:
    D and G through ``torch.compile``, compiled here by their first steps (printed with their seconds). ``g_once``:
    ``g_once_step`` in place of the graded ``train_step``."""
    trainer = project_trainer(model, bf16, g_once)
    batches = Batches(images, batch, seed=0)
    history = None
    if compiled:
        trainer.D, trainer.G = torch.compile(trainer.D), torch.compile(trainer.G)
        start = time.perf_counter()
        try:
            history = fit(trainer, batches, 3, progress=False)  # every graph of train_step is compiled by now
        except Exception as exc:  # no C++ compiler, an unsupported platform: inductor's errors vary
            reason = (str(exc).strip().splitlines() or [""])[0]
            raise SystemExit(f"--compile: torch.compile failed on this machine ({type(exc).__name__}: {reason}); "
                             "run without --compile") from None
        print(f"torch.compile: the first 3 steps, compilation included, took {time.perf_counter() - start:.1f} s",
              flush=True)

    def rate(n: int, warmup: int) -> float:
        nonlocal history
        history = fit(trainer, batches, (len(history) if history else 0) + warmup, history=history, progress=False)
        start = time.perf_counter()
        history = fit(trainer, batches, len(history) + n, history=history, progress=False)
        return n / (time.perf_counter() - start)

    return rate


def common_rate(steps: Callable[[], Iterator[None]]) -> Callable[[int, int], float]:
    it = steps()

    def rate(n: int, warmup: int) -> float:
        for _ in range(warmup):
            next(it)
        start = time.perf_counter()
        for _ in range(n):
            next(it)
        return n / (time.perf_counter() - start)

    return rate


PARTS = ("matrix products", "optimizer", "casts and copies", "the rest")


def _is_product(op: str) -> bool:
    return op in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm") or "conv" in op


def step_parts(rate: Callable[[int, int], float], steps: int) -> dict[str, float]:
    """Where a step of a loop (a ``rate`` function of this script) goes: milliseconds per step over ``steps`` steps
    run under ``torch.profiler``, split into PARTS. Matrix products and casts and copies (``aten::copy_``, which the
    bfloat16 casts go through) count the operators' own time; the optimizer counts all of its ``step`` and
    ``zero_grad``; the rest (element-wise layers, losses, noise, autograd's and Python's own work, data loading) is
    the remainder of the step. The profiler slows every operator call a little, which inflates the rest most."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        step_ms = 1000 / rate(steps, 0)
    events = profiler.key_averages()
    microseconds = {"matrix products": sum(e.self_cpu_time_total for e in events if _is_product(e.key)),
                    "optimizer": sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.")),
                    "casts and copies": sum(e.self_cpu_time_total for e in events if e.key == "aten::copy_")}
    parts = {name: us / 1000 / steps for name, us in microseconds.items()}
    return {"step": step_ms, **parts, "the rest": step_ms - sum(parts.values())}


def print_parts(loops: dict[str, Callable[[int, int], float]], steps: int) -> dict[str, dict[str, float]]:
    """Print ``step_parts`` of every loop; return each loop's share of its step per part."""
    print(f"\nwhere a step goes, under torch.profiler ({steps} steps a loop): milliseconds a step (share of it)")
    print(f"{'loop':40s} {'step':>6s}" + "".join(f" {name:>18s}" for name in PARTS))
    shares = {}
    for name, rate in loops.items():
        parts = step_parts(rate, steps)
        shares[name] = {part: parts[part] / parts["step"] for part in PARTS}
        print(f"{name:40s} {parts['step']:6.1f}" + "".join(f" {parts[part]:9.1f} ({100 * shares[name][part]:3.0f} %)"
                                                           for part in PARTS))
    return shares


def step_product_flops(model: str, images: torch.Tensor, batch: int, bf16: bool, g_once: bool = False) -> float:
    """Floating-point operations in the matrix products of one step of the project's path (its ``train_step``, or
    ``g_once_step``), counted by ``torch.utils.flop_counter``: fixed by the networks, the batch and the step."""
    trainer = project_trainer(model, bf16, g_once)
    batches = Batches(images, batch, seed=0)
    history = fit(trainer, batches, 1, progress=False)  # the first step, not counted, creates the optimizers' state
    with FlopCounterMode(display=False) as counter:
        fit(trainer, batches, 2, history=history, progress=False)
    return float(counter.get_total_flops())


@torch.no_grad()
def product_rate(dtype: torch.dtype, size: int = 2048, calls: int = 10) -> float:
    """Floating-point operations per second of one large square product (``size`` x ``size``) in ``dtype`` on this
    process's threads: about the most these cores do in matrix products, which a step's smaller ones stay under."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    for _ in range(3):  # warm-up: the first products here run slower
        a @ b
    start = time.perf_counter()
    for _ in range(calls):
        a @ b
    return 2 * size**3 * calls / (time.perf_counter() - start)


@torch.no_grad()
def product_speedup(model: str, batch: int, repeats: int, calls: int = 50) -> np.ndarray:
    """bfloat16 over float32 speed of G's matrix products alone: the forward of each of G's linear and convolution
    layers on the input it gets from G (batch ``batch``), in float32 and with bfloat16 weights and input; one ratio
    of the summed times per repeat. A step made mostly of such products can gain little more than this from
    bfloat16."""
    G = make_trainer(model).G
    inputs: dict[nn.Module, torch.Tensor] = {}
    layers = [m for m in G.modules() if isinstance(m, BFloat16.CAST)]

    def keep_input(layer: nn.Module, args: tuple[torch.Tensor, ...], _: torch.Tensor) -> None:
        inputs[layer] = args[0]

    hooks = [m.register_forward_hook(keep_input) for m in layers]
    G(gp.sample_noise(batch, gp.NOISE_DIM))
    for hook in hooks:
        hook.remove()
    pairs = [((m, inputs[m]), (copy.deepcopy(m).to(torch.bfloat16), inputs[m].to(torch.bfloat16))) for m in layers]

    def seconds(precision: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            for pair in pairs:
                layer, x = pair[precision]
                layer(x)
        return time.perf_counter() - start

    seconds(0), seconds(1)  # warm-up
    return np.array([seconds(0) / seconds(1) for _ in range(repeats)])


def quality(model: str, images: torch.Tensor, batch: int, steps: int, bf16: bool, seed: int) -> tuple[float, float]:
    """(Frechet distance of G after ``steps`` steps from ``seed``, seconds): through fit, as train.py trains."""
    trainer = make_trainer(model, bf16=bf16, seed=seed, d_lr=RECIPES[model].d_lr, g_lr=RECIPES[model].g_lr)
    torch.manual_seed(seed)
    history = fit(trainer, Batches(images, batch, seed=seed), steps, progress=False)
    return ev.evaluate_generator(trainer.G)["fd"], history.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=list(MODELS), default="vanilla")
    p.add_argument("--batch", type=positive_int, default=128)
    p.add_argument("--steps", type=positive_int, default=60, help="timed steps per loop and repeat")
    p.add_argument("--warmup", type=non_negative_int, default=5)
    p.add_argument("--repeats", type=positive_int, default=5,
                   help="alternate the loops this often (mean ± std over them)")
    p.add_argument("--quality_steps", type=positive_int, default=2000,
                   help="steps of the float32/bfloat16 quality runs")
    p.add_argument("--quality_seeds", type=non_negative_int, default=3,
                   help="seeds of the quality runs (mean ± std over them; 0: none)")
    p.add_argument("--compile", action="store_true", help="also time the project's path through torch.compile")
    p.add_argument("--profile", action="store_true",
                   help="also split a step of each loop into matrix products, the optimizer, casts and copies, and "
                        "the rest (torch.profiler)")
    p.add_argument("--g_once", action="store_true",
                   help="also time the project's path (bfloat16 where supported) with a step that runs G once "
                        "(a reference, not the notebook's)")
    args = p.parse_args()
    try:
        threads = env.set_threads()
    except ValueError as error:
        p.error(str(error))
    bf16 = env.supports_bfloat16("cpu")
    print(f"{machine.header()}, {threads} threads, model {args.model}, batch {args.batch}, {args.steps} timed "
          f"steps after {args.warmup} warm-up, {args.repeats} alternating repeats; bfloat16 supported: {bf16}")
    images = load_mnist()[0]
    with tempfile.TemporaryDirectory() as tmp:
        loops = {"DataLoader loop (PyTorch-GAN style)": common_rate(common_loop(args.model,
                                                                                 torchvision_mnist(Path(tmp)),
                                                                                 args.batch)),
                 "project path, float32": project_loop(args.model, images, args.batch, bf16=False)}
        if bf16:
            loops["project path, bfloat16"] = project_loop(args.model, images, args.batch, bf16=True)
        fastest = f"project path, {'bfloat16' if bf16 else 'float32'}"
        if args.compile:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor")  # from cold, as a first run compiles
            loops[f"{fastest}, compiled"] = project_loop(args.model, images, args.batch, bf16=bf16, compiled=True)
        if args.g_once:
            loops[f"{fastest}, G once a step"] = project_loop(args.model, images, args.batch, bf16=bf16, g_once=True)
        rates: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(args.repeats):
            for name, rate in loops.items():
                rates[name].append(rate(args.steps, args.warmup))
        common = np.array(rates["DataLoader loop (PyTorch-GAN style)"])
        print(f"{'loop':40s} {'steps/s (mean ± std)':>22s} {'speed-up (mean ± std)':>23s}")
        for name, values in rates.items():
            ratio = np.array(values) / common  # per repeat: both loops timed back to back
            print(f"{name:40s} {np.mean(values):13.2f} ± {np.std(values):5.2f} {ratio.mean():15.2f}x ± "
                  f"{ratio.std():4.2f}")
        if args.profile:
            shares = print_parts(loops, args.steps)
            budget, step = 1000 / (3 * common.mean()), 1000 / np.mean(rates[fastest])
            outside = step * (1 - shares[fastest]["matrix products"])
            optimizer = step * shares[fastest]["optimizer"]
            print(f"at 3x the DataLoader loop's rate a step may take {budget:.1f} ms; a step of the {fastest} takes "
                  f"{step:.1f} ms (its rate above), {outside:.1f} ms of it outside matrix products and {optimizer:.1f} "
                  "ms in the optimizer (its shares under the profiler)")
            flops = step_product_flops(args.model, images, args.batch, bf16)
            peak = product_rate(torch.bfloat16 if bf16 else torch.float32)
            floor = 1000 * flops / peak
            print(f"its matrix products: {flops / 1e9:.2f} billion floating-point operations a step; one 2048x2048 "
                  f"product runs at {peak / 1e9:.0f} billion a second here, at which they would take {floor:.1f} ms, "
                  f"and with the rest of the step (as above) {floor + outside:.1f} ms")
    if bf16:
        ratio = product_speedup(args.model, args.batch, args.repeats)
        print(f"G's matrix products alone (its linear and convolution layers' forward), bfloat16 over float32: "
              f"{ratio.mean():.2f}x ± {ratio.std():.2f}")
    if args.quality_seeds < 1:
        return
    rates = ", ".join(f"{net} at learning rate {lr:g}" for net, lr in (("D", RECIPES[args.model].d_lr),
                                                                         ("G", RECIPES[args.model].g_lr)) if lr)
    print(f"\nquality at {args.quality_steps} steps{f', {rates} (the recipe)' if rates else ''}, "
          f"seeds 0..{args.quality_seeds - 1}, 10 000 samples each:")
    for flag in (False, True) if bf16 else (False,):
        runs = [quality(args.model, images, args.batch, args.quality_steps, flag, seed)
                for seed in range(args.quality_seeds)]
        fds, seconds = np.array([r[0] for r in runs]), np.array([r[1] for r in runs])
        print(f"  {'bfloat16' if flag else 'float32 '}: Frechet distance {fds.mean():7.2f} ± {fds.std():5.2f} "
              f"({', '.join(f'{fd:.1f}' for fd in fds)}), {seconds.mean():.1f} s of training a run")


if __name__ == "__main__":
    machine.run(main, __file__)
