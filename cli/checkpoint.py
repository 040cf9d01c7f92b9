"""Checkpoints of train.py: written atomically, read back only if they are ours.

A checkpoint is a plain dict of tensors and plain Python values, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs). Keys: ``format``, ``model``, ``config``, ``step``,
``G``, ``D``, ``G_opt``, ``D_opt``, ``G_ema`` (the EMA generator's state, or None), ``batches`` (the position in
the shuffled data), ``rng`` (torch's random state) and ``history``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from gan_utils.files import atomic_path

FORMAT = "gan-assignment-checkpoint/2"
REQUIRED = ("model", "config", "step", "G", "D", "G_opt", "D_opt", "G_ema", "batches", "rng", "history")


RUNS_DIR = Path("runs")
DEFAULT_MODEL = "vanilla"


def run_dir(model: str | None) -> Path:
    """Where train.py writes a model's run by default: runs/<model> (the default model if None)."""
    return RUNS_DIR / (model or DEFAULT_MODEL)


def last_checkpoint(out_dir: Path) -> Path:
    """The checkpoint train.py keeps in a run folder: <out_dir>/checkpoints/last.pt."""
    return out_dir / "checkpoints" / "last.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, not ours, or made for another model."""


def save(checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``checkpoint`` (adding the format marker) to ``path`` atomically, flushed to disk."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **checkpoint}, f)
            f.flush()
            os.fsync(f.fileno())


def load(path: str | os.PathLike, model: str | None = None) -> dict[str, Any]:
    """Read a checkpoint onto the CPU, checking that it is ours and (if ``model`` is given) for that model.

    Raises CheckpointError with a one-line message naming the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # torch.save writes a zip archive
            raise CheckpointError(f"{path} is corrupt or not a checkpoint at all (not a torch.save archive); "
                                  "delete it or train again")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise CheckpointError(f"{path} is corrupt, cannot be read (UnpicklingError); delete it or train again"
                                  ) from None
        raise CheckpointError(f"{path} is not a GAN checkpoint of this project: it holds objects other than "
                              "tensors and plain values; refusing to load it") from None
    except Exception as exc:  # torch.load fails in many ways (RuntimeError, EOFError, KeyError...) on bad bytes
        first = (str(exc).splitlines() or [""])[0].split(". ")[0][:100]
        raise CheckpointError(f"{path} is corrupt or truncated, cannot be read ({type(exc).__name__}: {first}); "
                              "delete it or train again") from None
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise CheckpointError(f"{path} is not a GAN checkpoint of this project (no format marker)")
    if ckpt["format"] != FORMAT:
        raise CheckpointError(f"{path} has format {ckpt['format']!r}; this code reads {FORMAT!r}")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is incomplete: missing {', '.join(missing)}")
    if model is not None and ckpt["model"] != model:
        raise CheckpointError(f"{path} was made for model {ckpt['model']!r}, not {model!r}")
    return ckpt


def load_state(module: torch.nn.Module | torch.optim.Optimizer, state: dict[str, Any], what: str,
               path: str | os.PathLike) -> None:
    """``module.load_state_dict(state)``, turning a shape or key mismatch into a one-line CheckpointError."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = (str(exc).splitlines() or [""])[0][:160]
        raise CheckpointError(f"{path}: its {what} does not fit this model ({first})") from None
