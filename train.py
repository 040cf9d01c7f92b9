"""Train one of the assignment's GANs on MNIST from the command line, through the notebook's own training path.

    python train.py --model dcgan --n_epochs 5
    python train.py --model dcgan --n_epochs 10 --resume          # go on from runs/dcgan/checkpoints/last.pt

The GAN is built by ``gan_utils.models.make_trainer`` (your gan_pytorch functions, one get_optimizer per network)
and trained by ``gan_utils.training.fit``, as in the notebook, with the notebook's recipe for the model (batch
size, learning rates, Adam's beta2, EMA of G; bfloat16 where the machine supports it, else the float32 recipe)
unless flags say otherwise. On top of that: checkpoints (every --checkpoint_every epochs, at the end and on
Ctrl-C), exact resume, and the flags below.

Writes into --out_dir (default runs/<model>): checkpoints/last.pt, images/<model>_iter<step>.png (samples of a
fixed noise batch every --sample_interval steps) and loss.png. A resumed run gives the same weights as one never
stopped. A fresh run refuses a folder that holds a checkpoint (pass --resume, or --overwrite to start again).
Exit status: 0 done, 1 non-finite loss (the last good checkpoint is kept), 2 bad flags or checkpoint (one line on
stderr), 130 interrupted (checkpoint written).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import gan_pytorch as gp  # noqa: E402
from cli import checkpoint as ckpt_io  # noqa: E402
from cli.args import (  # noqa: E402
    ConfigError,
    Parser,
    bfloat16_here,
    check_writable,
    device,
    positive_float,
    positive_int,
    unit_interval,
)
from gan_utils.data import DATA_DIR_ENV, DEFAULT_DATA_DIR, Batches, MNISTDataError, load_mnist  # noqa: E402
from gan_utils.models import EMA, MODELS, make_trainer, sample, unwrap  # noqa: E402
from gan_utils.plots import plot_history, save_grid  # noqa: E402
from gan_utils.training import FLOAT32_RECIPES, RECIPES, History, fit, recipes_for  # noqa: E402

FIXED_SAMPLES = 64
SYNC_EVERY = 25  # steps between reading losses back (a device sync) to check that they are finite
IMAGE_SHAPE = (1, 28, 28)  # MNIST: every model makes 28x28 single-channel images
# Flags that change the trajectory: a resumed run must use the checkpoint's values.
LOCKED = ("model", "batch_size", "lr", "g_lr", "b1", "b2", "latent_dim", "seed", "subset", "ema", "bf16")
DEFAULTS = {"model": ckpt_io.DEFAULT_MODEL, "n_epochs": 10, "b1": gp.BETAS[0],
            "b2": gp.BETAS[1], "latent_dim": gp.NOISE_DIM, "seed": 0, "subset": None, "sample_interval": 400,
            "checkpoint_every": 1}


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or weight."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; flags default to None so that --resume can tell what was given."""
    models = "; ".join(f"{name}: {spec.description}" for name, spec in MODELS.items())
    p = Parser(prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=list(MODELS), help=f"default vanilla. {models}")
    p.add_argument("--n_epochs", type=positive_int, help="epochs in total, counting resumed ones (default 10)")
    p.add_argument("--batch_size", type=positive_int,
                   help="default: the notebook's recipe for the model (128; 64 for vanilla and lsgan in float32)")
    d_rates, g_rates = (", ".join(f"{name} {recipe.learning_rates[net]:g}" for name, recipe in RECIPES.items())
                        for net in (0, 1))
    p.add_argument("--lr", type=positive_float,
                   help=f"Adam's learning rate for D, and for G unless --g_lr is given (default: the model's recipe: "
                        f"{d_rates})")
    p.add_argument("--g_lr", type=positive_float,
                   help=f"Adam's learning rate for G (default: --lr if given, else the model's recipe: {g_rates})")
    p.add_argument("--b1", type=unit_interval, help=f"Adam's beta1 (default {gp.BETAS[0]:g})")
    p.add_argument("--b2", type=unit_interval, help=f"Adam's beta2 (default: the notebook's recipe: {gp.BETAS[1]:g}; "
                                                    f"{FLOAT32_RECIPES['vanilla'].beta2:g} for vanilla and lsgan in "
                                                    "float32)")
    p.add_argument("--latent_dim", type=positive_int, help=f"noise size (default {gp.NOISE_DIM})")
    p.add_argument("--img_size", type=positive_int, default=28, help="image side; the MNIST models make 28")
    p.add_argument("--channels", type=positive_int, default=1, help="image channels; the MNIST models make 1")
    p.add_argument("--ema", type=unit_interval, help="decay of the moving average of G's weights that samples are "
                                                     "drawn from; 0 turns it off (default: the model's recipe). Its "
                                                     "warm-up caps it at (1 + n) / (10 + n) at step n, until step "
                                                     "8990 for 0.999")
    p.add_argument("--no_bf16", action="store_true", help="train in float32 even where bfloat16 is supported "
                                                         "(as GAN_BF16=0 does)")
    p.add_argument("--sample_interval", type=positive_int, help="steps between sample grids (default 400)")
    p.add_argument("--checkpoint_every", type=positive_int, help="epochs between checkpoints (default 1)")
    p.add_argument("--seed", type=int, help="seed for weights, noise and shuffling (default 0)")
    p.add_argument("--device", default="auto", help="auto (default: cuda, else mps, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--data_dir", help=f"MNIST folder (default: ${DATA_DIR_ENV}, else {DEFAULT_DATA_DIR})")
    p.add_argument("--out_dir", type=Path, help="output folder (default runs/<model>)")
    p.add_argument("--resume", nargs="?", const="last", metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default <out_dir>/checkpoints/last.pt)")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --out_dir that holds a checkpoint")
    p.add_argument("--subset", type=positive_int, help="train on the first N images only (quick tests)")
    # For tests: behave as if Ctrl-C arrived right after this many steps in total.
    p.add_argument("--stop_after_steps", type=positive_int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace, saved: dict[str, Any] | None, bf16_here: bool) -> dict[str, Any]:
    """Fill unset flags from the checkpoint (when resuming), else from the defaults and the model's recipe."""
    given = {"bf16": False if args.no_bf16 else None, **{k: getattr(args, k) for k in LOCKED if k != "bf16"}}
    if saved is not None:
        saved = {"g_lr": saved["lr"], **saved}  # checkpoints from before --g_lr trained G at --lr
        for key in LOCKED:
            if given[key] is not None and given[key] != saved[key]:
                raise ConfigError(f"--{key} {given[key]} does not match the checkpoint ({key}={saved[key]}); "
                                  f"a resumed run keeps the checkpoint's {key}")
        config = dict(saved)
    else:
        model = args.model or DEFAULTS["model"]
        bf16 = bf16_here and not args.no_bf16
        recipe = recipes_for(bf16)[model]
        d_lr, g_lr = recipe.learning_rates
        config = {**DEFAULTS, "model": model, "batch_size": recipe.batch_size, "lr": d_lr,
                  "b2": recipe.betas[1], "ema": recipe.ema_decay or 0.0, "bf16": recipe.bf16 and bf16}
        config.update({k: v for k, v in given.items() if v is not None})
        if config.get("g_lr") is None:  # --lr's, if given, else the recipe's
            config["g_lr"] = config["lr"] if args.lr is not None else g_lr
    for key in ("n_epochs", "sample_interval", "checkpoint_every"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if (args.channels, args.img_size, args.img_size) != IMAGE_SHAPE:
        raise ConfigError(f"--img_size {args.img_size} --channels {args.channels}: model {config['model']!r} makes "
                          f"{IMAGE_SHAPE[1]}x{IMAGE_SHAPE[2]} images with {IMAGE_SHAPE[0]} channel (MNIST); "
                          f"use --img_size {IMAGE_SHAPE[1]} --channels {IMAGE_SHAPE[0]}")
    return config


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a flag the loop checks after each step (so the checkpoint is whole);
    a second signal interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def __enter__(self) -> StopRequest:
        for s in self._old:
            signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum
        for s, old in self._old.items():  # a second signal acts as usual
            signal.signal(s, old)


def locate(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """(output folder, checkpoint to resume from or None)."""
    if args.resume and args.resume != "last":
        path = Path(args.resume)
        return args.out_dir or path.parent.parent, path
    out_dir = args.out_dir or ckpt_io.run_dir(args.model)
    return out_dir, ckpt_io.last_checkpoint(out_dir) if args.resume else None


def train(args: argparse.Namespace) -> int:
    """Train as ``args`` say; return the exit status."""
    run_device = device(args.device)
    out_dir, resume_from = locate(args)
    ckpt_path = ckpt_io.last_checkpoint(out_dir)
    ckpt = None
    if resume_from is not None:
        try:
            ckpt = ckpt_io.load(resume_from, model=args.model)
        except ckpt_io.CheckpointError as exc:
            hint = "" if resume_from.exists() else " (train without --resume first, or pass --resume PATH)"
            raise ckpt_io.CheckpointError(f"{exc}{hint}") from None
        if ckpt["model"] not in MODELS:
            raise ckpt_io.CheckpointError(f"{resume_from} was made for model {ckpt['model']!r}, unknown here")
    elif ckpt_path.exists() and not args.overwrite:
        raise ConfigError(f"{ckpt_path} exists: pass --resume to continue it, or --overwrite to start again")
    config = resolve_config(args, ckpt["config"] if ckpt else None, bfloat16_here(run_device))
    check_writable(out_dir, "--out_dir")

    images = load_mnist(args.data_dir)[0]
    if config["subset"]:
        images = images[:config["subset"]]
    if config["batch_size"] > len(images):
        raise ConfigError(f"--batch_size {config['batch_size']} is larger than the {len(images)} training images")
    images = images.to(run_device)
    batches = Batches(images, config["batch_size"], seed=config["seed"])
    total = config["n_epochs"] * batches.per_epoch

    trainer = make_trainer(config["model"], noise_dim=config["latent_dim"], device=run_device, seed=config["seed"],
                           bf16=config["bf16"])
    # the flags' settings; their defaults are the recipe's learning rates and gan_pytorch's BETAS, as get_optimizer's
    for solver, lr in ((trainer.D_solver, config["lr"]), (trainer.G_solver, config["g_lr"])):
        for group in solver.param_groups:
            group.update(lr=lr, betas=(config["b1"], config["b2"]))
    ema = EMA(trainer.G, config["ema"]) if config["ema"] else None
    history = History()
    fixed_noise = gp.sample_noise(FIXED_SAMPLES, config["latent_dim"], seed=config["seed"] + 1).to(run_device)
    torch.manual_seed(config["seed"])  # the noise train_step draws
    if ckpt:
        for module, key, what in ((unwrap(trainer.G), "G", "generator"), (unwrap(trainer.D), "D", "discriminator"),
                                  (trainer.G_solver, "G_opt", "generator optimizer"),
                                  (trainer.D_solver, "D_opt", "discriminator optimizer"),
                                  *([(ema, "G_ema", "averaged generator")] if ema else []),
                                  (batches, "batches", "data position"), (history, "history", "history")):
            ckpt_io.load_state(module, ckpt[key], what, resume_from)
        torch.set_rng_state(ckpt["rng"])
        print(f"resumed from {resume_from}: step {len(history)} of {total}")
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    if len(history) >= total:
        print(f"nothing to do: {len(history)} steps ({len(history) // batches.per_epoch} epochs) are done; "
              "pass a larger --n_epochs")
        return 0

    def save_checkpoint() -> None:
        params = [*trainer.G.parameters(), *trainer.D.parameters()]
        if not all(bool(torch.isfinite(p).all()) for p in params):
            raise NonFiniteError(f"non-finite weights at step {len(history)}")
        ckpt_io.save({"model": config["model"], "config": config, "step": len(history),
                      "G": unwrap(trainer.G).state_dict(), "D": unwrap(trainer.D).state_dict(),
                      "G_opt": trainer.G_solver.state_dict(), "D_opt": trainer.D_solver.state_dict(),
                      "G_ema": ema.state_dict() if ema else None, "batches": batches.state_dict(),
                      "rng": torch.get_rng_state(), "history": history.state_dict()}, ckpt_path)

    started = [time.perf_counter()]
    stopped: list[int] = []

    def on_step(step: int) -> bool:
        """Finiteness checks, the epoch table, checkpoints and stop requests, after each step."""
        if step % SYNC_EVERY == 0 or step % batches.per_epoch == 0:
            rows = torch.from_numpy(history.table(last=SYNC_EVERY))
            bad = (~torch.isfinite(rows).all(dim=1)).nonzero()
            if len(bad):
                values = ", ".join(f"{k}={v:.4g}" for k, v in zip(gp.StepStats._fields, rows[int(bad[0])].tolist()))
                raise NonFiniteError(f"non-finite loss at step {step - len(rows) + int(bad[0]) + 1} ({values})")
        if step % batches.per_epoch == 0:
            epoch = step // batches.per_epoch
            means = history.table(last=batches.per_epoch).mean(axis=0)
            tqdm.write(f"{epoch:>3}/{config['n_epochs']:<3} {means[0]:9.4f} {means[1]:9.4f} {means[2]:7.3f} "
                       f"{means[3]:8.3f} {time.perf_counter() - started[0]:6.1f}s")
            started[0] = time.perf_counter()
            if epoch % config["checkpoint_every"] == 0 or step == total:
                save_checkpoint()
        if stop.signum is not None or step == args.stop_after_steps:
            stopped.append(stop.signum or signal.SIGINT)
            save_checkpoint()
            return True
        return False

    try:
        with StopRequest() as stop:
            # Printed once Ctrl-C is caught, so whoever waits for this line may interrupt safely.
            print(f"training {config['model']} on {len(images)} images, {run_device}"
                  f"{', bfloat16' if config['bf16'] else ''}, {batches.per_epoch} steps/epoch; output in {out_dir}")
            print(f"{'epoch':>7} {'D loss':>9} {'G loss':>9} {'D(x)':>7} {'D(G(z))':>8} {'time':>7}", flush=True)
            fit(trainer, batches, total, ema=ema, history=history, fixed_noise=fixed_noise,
                sample_every=config["sample_interval"], name=config["model"], image_dir=out_dir / "images",
                on_step=on_step)
    except NonFiniteError as exc:
        kept = f"the last good checkpoint is kept at {ckpt_path}" if ckpt_path.exists() else "no checkpoint was saved"
        print(f"train.py: error: {exc}; training stopped, {kept}. Try a smaller --lr.", file=sys.stderr)
        return 1
    if stopped:
        step = len(history)
        print(f"train.py: {signal.Signals(stopped[0]).name}: stopped in epoch {step // batches.per_epoch + 1} at "
              f"step {step}; checkpoint saved to {ckpt_path}; continue with --resume", file=sys.stderr)
        return 128 + stopped[0]
    G = ema.module if ema else trainer.G
    save_grid(sample(G, fixed_noise), out_dir / "images" / "final.png")
    plt.close(plot_history(history, config["model"], out_dir / "loss.png", show=False))
    print(f"done: {len(history)} steps; checkpoint {ckpt_path}, samples {out_dir / 'images'}, "
          f"losses {out_dir / 'loss.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train, and turn expected failures into one line on stderr; return the exit status."""
    args = parse_args(argv)
    try:
        return train(args)
    except (ConfigError, ckpt_io.CheckpointError, MNISTDataError) as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training began
        print("train.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
