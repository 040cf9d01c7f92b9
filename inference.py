"""Sample from a generator trained by train.py (its moving average of G's weights when the run kept one).

    python inference.py --checkpoint runs/vanilla/checkpoints/last.pt --n 64 --seed 0 --out samples.png
    python inference.py --model dcgan --interpolate 8 --steps 10     # also an interpolation grid

Exit status 2 with one line on stderr when the checkpoint is missing, corrupt, not ours or for another model, or
the output cannot be written.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from torch import nn

import gan_pytorch as gp
from cli import checkpoint as ckpt_io
from cli.args import ConfigError, Parser, check_writable, device, positive_int
from gan_utils.models import MODELS, sample
from gan_utils.plots import save_grid


def load_generator(path: str | Path, model: str | None, run_device: torch.device) -> tuple[nn.Module, dict]:
    """The generator stored in checkpoint ``path`` (for ``model``, if given), in eval mode, and the run's config:
    the EMA copy when the run kept one, else G itself."""
    ckpt = ckpt_io.load(path, model=model)
    if ckpt["model"] not in MODELS:
        raise ckpt_io.CheckpointError(f"{path} was made for model {ckpt['model']!r}, which this code does not know "
                                      f"(known: {', '.join(MODELS)})")
    config = ckpt["config"]
    G = MODELS[ckpt["model"]].networks(int(config["latent_dim"]))[1]
    weights = ckpt["G_ema"]["module"] if ckpt["G_ema"] else ckpt["G"]
    ckpt_io.load_state(G, weights, "generator", path)
    return G.to(run_device).eval(), config


def interpolation_noise(pairs: int, steps: int, dim: int, seed: int) -> torch.Tensor:
    """``pairs`` rows of ``steps`` latents each, on straight lines between random latent pairs: (pairs*steps, dim)."""
    ends = gp.sample_noise(2 * pairs, dim, seed=seed + 1)  # seed + 1: other latents than the sample grid's
    return torch.cat([gp.interpolate_latent(ends[2 * i], ends[2 * i + 1], steps) for i in range(pairs)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = Parser(prog="inference.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint file (default: runs/<model>/checkpoints/last.pt)")
    p.add_argument("--model", choices=list(MODELS), default=None,
                   help="expected model; the checkpoint must be for it (default: whatever the checkpoint holds)")
    p.add_argument("--n", type=positive_int, default=64, help="number of samples (default 64)")
    p.add_argument("--nrow", type=positive_int, default=None, help="images per grid row (default ~sqrt(n))")
    p.add_argument("--seed", type=int, default=0, help="noise seed: the same seed gives the same samples")
    p.add_argument("--out", type=Path, default=Path("images/samples.png"), help="PNG to write")
    p.add_argument("--interpolate", type=int, default=0, metavar="PAIRS",
                   help="also write a grid interpolating between PAIRS random latent pairs (default 0: none)")
    p.add_argument("--steps", type=int, default=10, help="images per interpolation row, at least 2 (default 10)")
    p.add_argument("--interp_out", type=Path, default=None,
                   help="interpolation PNG (default: <out stem>_interp.png)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    args = p.parse_args(argv)
    if args.interpolate < 0:
        p.error(f"argument --interpolate: must be >= 0, got {args.interpolate}")
    if args.steps < 2:
        p.error(f"argument --steps: must be at least 2, got {args.steps}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run inference; return the exit status."""
    args = parse_args(argv)
    interp_out = args.interp_out or args.out.with_name(f"{args.out.stem}_interp.png")
    try:
        run_device = device(args.device)
        check_writable(args.out.parent, "--out")
        if args.interpolate:
            check_writable(interp_out.parent, "--interp_out")
        path = args.checkpoint or ckpt_io.last_checkpoint(ckpt_io.run_dir(args.model))
        if not path.exists():
            raise ckpt_io.CheckpointError(f"no checkpoint at {path} "
                                          "(train one with train.py, or pass --checkpoint PATH)")
        G, config = load_generator(path, args.model, run_device)
    except (ConfigError, ckpt_io.CheckpointError) as exc:
        print(f"inference.py: error: {exc}", file=sys.stderr)
        return 2
    dim = int(config["latent_dim"])
    nrow = args.nrow or math.ceil(math.sqrt(args.n))
    out = save_grid(sample(G, gp.sample_noise(args.n, dim, seed=args.seed)), args.out, nrow=nrow)
    print(f"wrote {args.n} samples to {out}")
    if args.interpolate:
        z = interpolation_noise(args.interpolate, args.steps, dim, args.seed)
        save_grid(sample(G, z), interp_out, nrow=args.steps)
        print(f"wrote {args.interpolate}x{args.steps} interpolation grid to {interp_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
