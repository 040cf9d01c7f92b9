"""Train one of the assignment's GANs on MNIST from the command line.

    python train.py --model dcgan --n_epochs 5
    python train.py --model dcgan --n_epochs 10 --resume          # go on from runs/dcgan/checkpoints/last.pt

Writes into --out_dir (default runs/<model>): checkpoints/last.pt (G, D, optimizers, RNG states, config and
history; every --checkpoint_every epochs, at the end, on Ctrl-C), images/<step>.png (samples of a fixed noise
batch every --sample_interval batches) and loss.png. A resumed run gives the same weights as an uninterrupted
one with the same seed. Exit status: 0 done, 1 non-finite loss (the last good checkpoint is kept), 2 bad flags
or checkpoint (one line on stderr), 130 interrupted (checkpoint written).
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
from tqdm import tqdm  # noqa: E402

import gan_pytorch as gp  # noqa: E402
from gan_utils import checkpoint as ckpt_io  # noqa: E402
from gan_utils.data import MNISTDataError, iterate_minibatches, load_mnist  # noqa: E402
from gan_utils.files import atomic_path  # noqa: E402
from gan_utils.models import IMG_SHAPE, MODELS, build  # noqa: E402
from gan_utils.training import sample, save_grid  # noqa: E402
from inference import Parser, pick_device, positive_int  # noqa: E402

FIXED_SAMPLES = 64
SYNC_EVERY = 25  # steps between reading losses back (a device sync): NaN checks and progress-bar updates
STATS = ("d_loss", "g_loss", "d_real", "d_fake")
# Flags that change the trajectory: a resumed run must use the checkpoint's values.
LOCKED = ("model", "batch_size", "lr", "b1", "b2", "latent_dim", "dropout", "seed", "subset")


class ConfigError(ValueError):
    """A flag value that cannot work; the message is one line naming the flag."""


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or weight."""


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def unit_interval(text: str) -> float:
    """argparse type: a float in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; every training flag defaults to None so that --resume can tell what was given."""
    models = "; ".join(f"{s.name}: {s.help} (lr {s.lr:g}, latent {s.latent_dim})" for s in MODELS.values())
    p = Parser(prog="train.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=list(MODELS), help=f"default mlp. {models}")
    p.add_argument("--n_epochs", type=positive_int, help="epochs in total, counting resumed ones (default 10)")
    p.add_argument("--batch_size", type=positive_int, help="default 128")
    p.add_argument("--lr", type=positive_float, help="Adam learning rate (default: 1e-3, 2e-4 for mlp-wide)")
    p.add_argument("--b1", type=unit_interval, help="Adam beta1 (default 0.5)")
    p.add_argument("--b2", type=unit_interval, help="Adam beta2 (default 0.999)")
    p.add_argument("--latent_dim", type=positive_int, help="noise size (default: 96, 100 for mlp-wide)")
    p.add_argument("--img_size", type=positive_int, default=28, help="image side; MNIST models make 28")
    p.add_argument("--channels", type=positive_int, default=1, help="image channels; MNIST models make 1")
    p.add_argument("--dropout", type=unit_interval, help="dropout in D, mlp-wide only (default 0)")
    p.add_argument("--sample_interval", type=positive_int, default=400, help="batches between grids (default 400)")
    p.add_argument("--checkpoint_every", type=positive_int, default=1, help="epochs between checkpoints (default 1)")
    p.add_argument("--seed", type=int, help="seed for weights, noise and shuffling (default 0)")
    p.add_argument("--device", default="auto", help="auto (default: cuda, else mps, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--data_dir", help="MNIST directory (default: $GAN_DATA_DIR, else ./data)")
    p.add_argument("--out_dir", type=Path, help="output directory (default runs/<model>)")
    p.add_argument("--resume", nargs="?", const="last", metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default <out_dir>/checkpoints/last.pt)")
    p.add_argument("--subset", type=positive_int, help="train on the first N images only (quick tests)")
    # For tests: behave as if Ctrl-C arrived right after this many steps in total.
    p.add_argument("--stop_after_steps", type=positive_int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace, saved: dict[str, Any] | None) -> dict[str, Any]:
    """Fill unset flags from the checkpoint (when resuming), else from the model's defaults; check them."""
    if saved is not None:
        for key in LOCKED:
            given = getattr(args, key)
            if given is not None and given != saved[key]:
                raise ConfigError(f"--{key} {given} does not match the checkpoint ({key}={saved[key]}); "
                                  f"a resumed run keeps the checkpoint's {key}")
        config = dict(saved)
    else:
        spec = MODELS[args.model or "mlp"]
        config = {"model": spec.name, "batch_size": 128, "lr": spec.lr, "b1": spec.b1, "b2": spec.b2,
                  "latent_dim": spec.latent_dim, "dropout": 0.0, "seed": 0, "subset": None, "n_epochs": 10}
        config.update({k: getattr(args, k) for k in LOCKED if getattr(args, k) is not None})
    if args.n_epochs is not None:
        config["n_epochs"] = args.n_epochs
    spec = MODELS[config["model"]]
    if config["dropout"] and not spec.dropout:
        raise ConfigError(f"--dropout: model {spec.name!r} has no dropout (only mlp-wide does)")
    if (args.channels, args.img_size, args.img_size) != IMG_SHAPE:
        raise ConfigError(f"--img_size {args.img_size} --channels {args.channels}: model {spec.name!r} makes "
                          f"{IMG_SHAPE[1]}x{IMG_SHAPE[2]} images with {IMG_SHAPE[0]} channel (MNIST); "
                          f"use --img_size {IMG_SHAPE[1]} --channels {IMG_SHAPE[0]}")
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


def plot_losses(history: dict[str, list[float]], path: Path) -> None:
    """Per-step losses and D outputs, written atomically."""
    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("d_loss", "D loss"), ("g_loss", "G loss")):
        ax_loss.plot(history[key], label=label, linewidth=0.8)
    for key, label in (("d_real", "D(x)"), ("d_fake", "D(G(z))")):
        ax_d.plot(history[key], label=label, linewidth=0.8)
    for ax, title in ((ax_loss, "losses"), (ax_d, "discriminator outputs")):
        ax.set(xlabel="step", title=title)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def train(args: argparse.Namespace) -> int:
    """Train as ``args`` say; return the exit status."""
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    ckpt = None
    if args.resume:
        explicit = args.resume != "last"
        model_dir = args.out_dir or Path("runs") / (args.model or "mlp")
        path = Path(args.resume) if explicit else model_dir / "checkpoints" / "last.pt"
        ckpt = ckpt_io.load(path, model=args.model)
        if ckpt["model"] not in MODELS:
            raise ckpt_io.CheckpointError(f"{path} was made for model {ckpt['model']!r}, unknown here")
    config = resolve_config(args, ckpt["config"] if ckpt else None)
    out_dir = args.out_dir or (path.parent.parent if ckpt and explicit else Path("runs") / config["model"])
    ckpt_path = out_dir / "checkpoints" / "last.pt"

    images = load_mnist(args.data_dir)[0]
    if tuple(images.shape[1:]) != IMG_SHAPE:
        raise ConfigError(f"the data has images of shape {tuple(images.shape[1:])}, the models make {IMG_SHAPE}")
    if config["subset"]:
        images = images[:config["subset"]]
    if config["batch_size"] > len(images):
        raise ConfigError(f"--batch_size {config['batch_size']} is larger than the {len(images)} training images")
    images = images.to(device)
    steps_per_epoch = len(images) // config["batch_size"]

    gan = build(config["model"], config["latent_dim"], config["lr"], config["b1"], config["b2"],
                config["dropout"], device, seed=config["seed"])
    shuffle = torch.Generator().manual_seed(config["seed"])
    fixed_noise = gp.sample_noise(FIXED_SAMPLES, config["latent_dim"], seed=config["seed"] + 1).to(device)
    history: dict[str, list[float]] = {k: [] for k in STATS}
    epoch = batch = step = 0
    if ckpt:
        for module, key, what in ((gan.G, "G", "generator"), (gan.D, "D", "discriminator"),
                                  (gan.G_solver, "G_opt", "generator optimizer"),
                                  (gan.D_solver, "D_opt", "discriminator optimizer")):
            ckpt_io.load_state(module, ckpt[key], what, path)
        ckpt_io.set_rng_state(ckpt["rng"], shuffle)
        epoch, batch, step, history = ckpt["epoch"], ckpt["batch"], ckpt["step"], ckpt["history"]
        print(f"resumed from {path}: epoch {epoch}, step {step}")
    if epoch >= config["n_epochs"]:
        print(f"nothing to do: {epoch} of --n_epochs {config['n_epochs']} epochs are done; pass a larger --n_epochs")
        return 0
    config["out_dir"] = str(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)

    shuffle_state = shuffle.get_state()

    def save_checkpoint() -> None:
        params = [*gan.G.parameters(), *gan.D.parameters()]
        if not all(bool(torch.isfinite(p).all()) for p in params):
            raise NonFiniteError(f"non-finite weights at step {step}")
        ckpt_io.save({"model": config["model"], "config": config, "epoch": epoch, "batch": batch, "step": step,
                      "G": gan.G.state_dict(), "D": gan.D.state_dict(), "G_opt": gan.G_solver.state_dict(),
                      "D_opt": gan.D_solver.state_dict(),
                      "rng": ckpt_io.rng_state(shuffle.get_state() if batch == 0 else shuffle_state),
                      "history": history}, ckpt_path)

    pending: list[torch.Tensor] = []

    def flush() -> None:
        if not pending:
            return
        rows = torch.stack(pending).cpu()
        pending.clear()
        for key, column in zip(STATS, rows.T.tolist()):
            history[key].extend(column)
        finite = torch.isfinite(rows).all(dim=1)
        if not finite.all():
            first = int((~finite).nonzero()[0])
            values = ", ".join(f"{k}={v:.4g}" for k, v in zip(STATS, rows[first].tolist()))
            raise NonFiniteError(f"non-finite loss at step {step - len(rows) + first + 1} ({values})")

    header = f"{'epoch':>7} {'D loss':>9} {'G loss':>9} {'D(x)':>7} {'D(G(z))':>8} {'time':>7}"
    bar = tqdm(total=config["n_epochs"] * steps_per_epoch, initial=step, unit="step", dynamic_ncols=True)
    stopped = None
    try:
        with StopRequest() as stop:
            # Printed once Ctrl-C is caught, so whoever waits for this line may interrupt safely.
            tqdm.write(f"training {config['model']} on {len(images)} images, {device}, {steps_per_epoch} "
                       f"steps/epoch; output in {out_dir}")
            tqdm.write(header)
            sys.stdout.flush()
            while epoch < config["n_epochs"] and stopped is None:
                started = time.perf_counter()
                shuffle_state = shuffle.get_state()
                for i, real in enumerate(iterate_minibatches(images, config["batch_size"], generator=shuffle)):
                    if i < batch:  # resuming mid-epoch: these batches were trained on before the stop
                        continue
                    pending.append(torch.stack(gan.trainer.train_step(real)))
                    step, batch = step + 1, batch + 1
                    if len(pending) >= SYNC_EVERY:
                        flush()
                        bar.set_postfix({k: f"{v[-1]:.3f}" for k, v in history.items()}, refresh=False)
                    if step % args.sample_interval == 0:
                        save_grid(sample(gan.G, fixed_noise), out_dir / "images" / f"{step:07d}.png")
                    bar.update()
                    if stop.signum is not None or step == args.stop_after_steps:
                        stopped = stop.signum or signal.SIGINT
                        break
                flush()
                if stopped is None:
                    epoch, batch = epoch + 1, 0
                    means = [sum(history[k][-steps_per_epoch:]) / steps_per_epoch for k in STATS]
                    tqdm.write(f"{epoch:>3}/{config['n_epochs']:<3} {means[0]:9.4f} {means[1]:9.4f} "
                               f"{means[2]:7.3f} {means[3]:8.3f} {time.perf_counter() - started:6.1f}s")
                    if epoch % args.checkpoint_every == 0 or epoch == config["n_epochs"]:
                        save_checkpoint()
            if stopped is not None:
                save_checkpoint()
    except NonFiniteError as exc:
        bar.close()
        kept = f"the last good checkpoint is kept at {ckpt_path}" if ckpt_path.exists() else "no checkpoint was saved"
        print(f"train.py: error: {exc}; training stopped, {kept}. Try a smaller --lr.",
              file=sys.stderr)
        return 1
    bar.close()
    if stopped is not None:
        name = signal.Signals(stopped).name
        print(f"train.py: {name}: stopped at epoch {epoch} step {step}; checkpoint saved to {ckpt_path}; "
              "continue with --resume", file=sys.stderr)
        return 128 + stopped
    save_grid(sample(gan.G, fixed_noise), out_dir / "images" / "final.png")
    plot_losses(history, out_dir / "loss.png")
    print(f"done: {step} steps; checkpoint {ckpt_path}, samples {out_dir / 'images'}, losses {out_dir / 'loss.png'}")
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
