"""Checks of the student functions in ``gan_pytorch.py`` against reference arrays in ``gan-checks.npz``.

Use from the notebook or pytest::

    from gan_utils.checks import check
    check("bce_loss")                  # prints what passed, or raises AssertionError saying what is wrong

Each part is checked in two halves, so that a grader can run them in different processes:

- ``probe(part, module, inputs)`` runs the student's code on the inputs and returns only plain numpy
  arrays (numbers and strings);
- ``judge(part, outputs, case)`` compares those arrays with the references, and with the outputs of
  known mistakes, and returns one ``Outcome`` per sub-test.

The reference file holds, per part, ``PART.in.NAME`` (inputs), ``PART.ref.NAME`` (expected outputs) and
``PART.mistake.K.NAME`` (outputs of classic mistake K, with its description in ``PART.mistake.K.label``).
Architectures are checked with parameters assigned by order and shape (drawn from a seed, not stored), so
any correct implementation passes whatever its attribute names.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

CHECKS_FILE = Path(__file__).resolve().parent.parent / "gan-checks.npz"

Arrays = dict[str, np.ndarray]


class CheckFailed(AssertionError):
    """A check found differences; in Jupyter it shows its message without a stack trace."""

    def _render_traceback_(self) -> list[str]:
        return [f"CheckFailed: {self}"]


@dataclass(frozen=True)
class Outcome:
    """One sub-test of a part: its name, whether it passed, and what to do about it if not."""

    part: str
    test: str
    passed: bool
    message: str = ""


# --------------------------------------------------------------------------------------------------
# Reading the reference file


def load_cases(path: str | Path | None = None) -> dict[str, Arrays]:
    """Read a checks file into {part: {"in.x": ..., "ref.y": ..., "mistake.0.y": ...}}."""
    path = Path(path) if path is not None else CHECKS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with the assignment; restore it from the release.")
    cases: dict[str, Arrays] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            part, _, rest = key.partition(".")
            cases.setdefault(part, {})[rest] = data[key]
    return cases


def inputs_of(case: Arrays) -> Arrays:
    """Only the inputs of a case: what a student process may see."""
    return {k[3:]: v for k, v in case.items() if k.startswith("in.")}


def _mistakes(case: Arrays) -> dict[str, tuple[str, Arrays]]:
    found: dict[str, tuple[str, Arrays]] = {}
    for key, value in case.items():
        if key.startswith("mistake."):
            _, k, name = key.split(".", 2)
            label, arrays = found.get(k, ("", {}))
            if name == "label":
                label = str(value)
            else:
                arrays = {**arrays, name: value}
            found[k] = (label, arrays)
    return found


# --------------------------------------------------------------------------------------------------
# Fixed parameters for architecture checks


def fixed_parameters(shapes: np.ndarray, scales: np.ndarray, offsets: np.ndarray, seed: int
                     ) -> list[np.ndarray]:
    """Parameter values drawn from a seed: offset + scale * U(-1, 1), one array per (padded) shape row.

    ``RandomState`` is used because numpy guarantees its stream never changes.
    """
    rng = np.random.RandomState(int(seed))
    values = []
    for shape, scale, offset in zip(shapes, scales, offsets):
        dims = tuple(int(d) for d in shape if d > 0)
        values.append(offset + scale * rng.uniform(-1.0, 1.0, size=dims))
    return values


def pad_shapes(shapes: list[tuple[int, ...]]) -> np.ndarray:
    """Shapes as one int array, rows padded with 0 (no parameter has a zero dimension)."""
    out = np.zeros((len(shapes), 4), dtype=np.int64)
    for i, shape in enumerate(shapes):
        out[i, :len(shape)] = shape
    return out


def _shape_str(row: np.ndarray) -> str:
    return "(" + ", ".join(str(int(d)) for d in row if d > 0) + ")"


def assign_parameters(model: nn.Module, values: list[np.ndarray]) -> None:
    with torch.no_grad():
        for param, value in zip(model.parameters(), values):
            param.copy_(torch.from_numpy(value))


# --------------------------------------------------------------------------------------------------
# Reference losses for the train_step check (so that a wrong student loss cannot spoil that check)


def _ref_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target)


def ref_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return _ref_bce(real, torch.ones_like(real)) + _ref_bce(fake, torch.zeros_like(fake))


def ref_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    return _ref_bce(fake, torch.ones_like(fake))


# --------------------------------------------------------------------------------------------------
# Probes: run the student's code, return plain arrays


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy().copy()
    return np.asarray(x, dtype=np.float64)


def _scalar(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where} returned {type(value).__name__}, expected a torch.Tensor")
    if value.numel() != 1:
        raise TypeError(f"{where} returned a tensor of shape {tuple(value.shape)}, expected a scalar")
    return np.array(float(value.detach().reshape(())), dtype=np.float64)


def probe_sample_noise(module: ModuleType, inputs: Arrays) -> Arrays:
    n, d = (int(v) for v in inputs["shape"])
    seed_a, seed_b = (int(s) for s in inputs["seeds"])
    x = module.sample_noise(n, d)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"sample_noise returned {type(x).__name__}, expected a torch.Tensor")
    a = module.sample_noise(64, 5, seed=seed_a)
    b = module.sample_noise(64, 5, seed=seed_a)
    c = module.sample_noise(64, 5, seed=seed_b)
    return {"x": _np(x), "dtype": np.array(str(x.dtype)), "seeded": np.stack([_np(a), _np(b), _np(c)])}


def _architecture_probe(build: Callable[[], nn.Module]) -> Callable[[ModuleType, Arrays], Arrays]:
    def probe(module: ModuleType, inputs: Arrays) -> Arrays:
        model = build(module, inputs)
        if not isinstance(model, nn.Module):
            raise TypeError(f"returned {type(model).__name__}, expected an nn.Module")
        params = list(model.parameters())
        shapes = pad_shapes([tuple(p.shape) for p in params]) if params else np.zeros((0, 4), np.int64)
        out: Arrays = {"shapes": shapes, "n_numbers": np.array(sum(p.numel() for p in params))}
        if "seed_init" in inputs:
            again = build(module, inputs)
            out["seed_reproducible"] = np.array(all(torch.equal(p, q) for p, q in
                                                    zip(model.parameters(), again.parameters())))
        ref_shapes = inputs["param_shapes"]
        if shapes.shape == ref_shapes.shape and np.array_equal(shapes, ref_shapes):
            model = model.to(torch.float64).train()
            assign_parameters(model, fixed_parameters(ref_shapes, inputs["param_scales"],
                                                      inputs["param_offsets"], inputs["param_seed"]))
            with torch.no_grad():
                out["y"] = _np(model(torch.from_numpy(inputs["x"])))
        return out

    return probe


def _loss_probe(name: str, args: tuple[str, ...]) -> Callable[[ModuleType, Arrays], Arrays]:
    def probe(module: ModuleType, inputs: Arrays) -> Arrays:
        fn = getattr(module, name)
        tensors = [torch.tensor(inputs[a], requires_grad=True) for a in args]
        value = fn(*tensors)
        out = {"value": _scalar(value, name)}
        if not value.requires_grad:
            raise TypeError(f"{name}'s result carries no gradient: compute it with torch operations "
                            "on the input tensors (no numpy, no .item(), no .detach())")
        value.reshape(()).backward()
        for a, t in zip(args, tensors):
            out[f"grad_{a}"] = _np(t.grad) if t.grad is not None else np.full(t.shape, np.nan)
        if all(f"extreme_{a}" in inputs for a in args):  # logits of +-1000, for the BCE-based losses
            extreme = [torch.tensor(inputs[f"extreme_{a}"]) for a in args]
            with torch.no_grad():
                out["extreme"] = _scalar(fn(*extreme), name)
        return out

    return probe


def probe_get_optimizer(module: ModuleType, inputs: Arrays) -> Arrays:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = module.get_optimizer(model)
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"get_optimizer returned {type(opt).__name__}, expected a torch.optim.Optimizer")
    covered = {id(p) for group in opt.param_groups for p in group["params"]}
    group = opt.param_groups[0]
    betas = group.get("betas", (math.nan, math.nan))
    return {
        "kind": np.array(type(opt).__name__),
        "lr": np.array(float(group.get("lr", math.nan))),
        "betas": np.array([float(b) for b in betas]),
        "covered": np.array(sum(id(p) in covered for p in model.parameters())),
        "total": np.array(len(list(model.parameters()))),
    }


def toy_networks(inputs: Arrays) -> tuple[nn.Module, nn.Module]:
    """Small float64 D and G with fixed weights, for the train_step check."""
    data_dim, noise_dim, hidden = (int(v) for v in inputs["dims"])
    D = nn.Sequential(nn.Linear(data_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1)).double()
    G = nn.Sequential(nn.Linear(noise_dim, hidden), nn.Tanh(), nn.Linear(hidden, data_dim)).double()
    for net, seed in ((D, 0), (G, 1)):
        shapes = pad_shapes([tuple(p.shape) for p in net.parameters()])
        n = len(shapes)
        assign_parameters(net, fixed_parameters(shapes, np.full(n, 0.5), np.zeros(n),
                                                int(inputs["param_seed"]) + seed))
    return D, G


def probe_train_step(module: ModuleType, inputs: Arrays, trainer_class: type | None = None) -> Arrays:
    """Two train_step calls on a small float64 GAN, with sample_noise replaced by a recorded replay."""
    D, G = toy_networks(inputs)
    lr = float(inputs["lr"])
    D_solver = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    G_solver = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    noise = inputs["noise"]  # (steps, 2, N, noise_dim): the D-step draw, then the G-step draw
    calls: list[int] = []
    g_grad_at_d_step: list[float] = []

    def replay(batch_size: int, dim: int, seed: int | None = None) -> torch.Tensor:
        step, k = len(calls) - 1, calls[-1]
        calls[-1] += 1
        source = noise[step, k] if k < noise.shape[1] else noise[step, -1] * -0.5
        if (batch_size, dim) != source.shape:
            raise ValueError(f"sample_noise was asked for shape ({batch_size}, {dim}); "
                             f"the batch and noise size give {source.shape}")
        return torch.from_numpy(source.copy())

    d_step = D_solver.step

    def recording_d_step(*args: Any, **kwargs: Any) -> Any:
        if not g_grad_at_d_step:
            total = sum(float(p.grad.abs().sum()) for p in G.parameters() if p.grad is not None)
            g_grad_at_d_step.append(total)
        return d_step(*args, **kwargs)

    D_solver.step = recording_d_step  # type: ignore[method-assign]
    trainer_class = trainer_class or module.GANTrainer
    original = module.sample_noise
    module.sample_noise = replay
    try:
        trainer = trainer_class(D, G, D_solver, G_solver, ref_discriminator_loss, ref_generator_loss,
                                noise_dim=int(inputs["dims"][1]))
        stats, d_params, g_params = [], [], []
        for real in inputs["real"]:
            calls.append(0)
            result = trainer.train_step(torch.from_numpy(real.copy()))
            if result is None or len(result) != 4:
                raise TypeError("train_step must return StepStats(d_loss, g_loss, d_real, d_fake)")
            stats.append([float(_scalar(torch.as_tensor(v), "train_step")) for v in result])
            d_params.append(np.concatenate([_np(p).ravel() for p in D.parameters()]))
            g_params.append(np.concatenate([_np(p).ravel() for p in G.parameters()]))
    finally:
        module.sample_noise = original
    return {"stats": np.array(stats), "d_params": np.stack(d_params), "g_params": np.stack(g_params),
            "noise_calls": np.array(calls), "g_grad_at_d_step": np.array(g_grad_at_d_step or [0.0])}


def probe_interpolate_latent(module: ModuleType, inputs: Arrays) -> Arrays:
    z0, z1 = (torch.from_numpy(inputs[k].copy()) for k in ("z0", "z1"))
    out = module.interpolate_latent(z0, z1, int(inputs["steps"]))
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"interpolate_latent returned {type(out).__name__}, expected a torch.Tensor")
    return {"y": _np(out)}


def _build_discriminator(m: ModuleType, inputs: Arrays) -> nn.Module:
    return m.discriminator(seed=int(inputs["seed_init"]))


def _build_generator(m: ModuleType, inputs: Arrays) -> nn.Module:
    return m.generator(noise_dim=int(inputs["noise_dim"]), seed=int(inputs["seed_init"]))


def _build_dc_classifier(m: ModuleType, inputs: Arrays) -> nn.Module:
    return m.build_dc_classifier()


def _build_dc_generator(m: ModuleType, inputs: Arrays) -> nn.Module:
    return m.build_dc_generator(noise_dim=int(inputs["noise_dim"]))


LOSS_ARGS = {
    "bce_loss": ("input", "target"),
    "discriminator_loss": ("logits_real", "logits_fake"),
    "generator_loss": ("logits_fake",),
    "generator_loss_saturating": ("logits_fake",),
    "ls_discriminator_loss": ("scores_real", "scores_fake"),
    "ls_generator_loss": ("scores_fake",),
}

ARCHITECTURES = {
    "discriminator": _build_discriminator,
    "generator": _build_generator,
    "build_dc_classifier": _build_dc_classifier,
    "build_dc_generator": _build_dc_generator,
}

PROBES: dict[str, Callable[[ModuleType, Arrays], Arrays]] = {
    "sample_noise": probe_sample_noise,
    **{name: _architecture_probe(build) for name, build in ARCHITECTURES.items()},
    **{name: _loss_probe(name, args) for name, args in LOSS_ARGS.items()},
    "get_optimizer": probe_get_optimizer,
    "train_step": probe_train_step,
    "interpolate_latent": probe_interpolate_latent,
}

PARTS = tuple(PROBES)
_FUNCTION_OF = {"train_step": "GANTrainer.train_step"}


def function_name(part: str) -> str:
    return _FUNCTION_OF.get(part, part)


def probe(part: str, module: ModuleType, inputs: Arrays) -> Arrays:
    """Run one part of the student's module; errors come back as arrays too (``error``, ``error_type``)."""
    try:
        outputs = PROBES[part](module, inputs)
    except NotImplementedError:
        return {"error_type": np.array("NotImplementedError"), "error": np.array("")}
    except Exception as exc:  # any student error becomes a message, never a crash of the check
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"{Path(f.filename).name}, line {f.lineno}" for f in reversed(tb)
                      if Path(f.filename).name == "gan_pytorch.py"), "")
        text = f"{type(exc).__name__}: {exc}" + (f" ({where})" if where else "")
        return {"error_type": np.array(type(exc).__name__), "error": np.array(text)}
    return {k: np.asarray(v) for k, v in outputs.items()}


# --------------------------------------------------------------------------------------------------
# Judges: compare plain arrays with the references


def max_relative_error(x: np.ndarray, ref: np.ndarray) -> float:
    """max |x - ref| / max(|ref|, 1e-8) over all elements, on a common scale (the CS231n rel_error)."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    if x.shape != ref.shape:
        return math.inf
    if not np.all(np.isfinite(x)):
        return math.inf
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - ref)) / max(np.max(np.abs(ref)), 1e-8))


def _is_number_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind in "biuf" and type(x) is np.ndarray


def _close(x: Any, ref: np.ndarray, rtol: float) -> bool:
    return _is_number_array(x) and max_relative_error(x, ref) <= rtol


def _diagnose(outputs: Arrays, case: Arrays, names: tuple[str, ...], rtol: float) -> str:
    for label, arrays in _mistakes(case).values():
        if all(n in arrays and n in outputs and _close(outputs[n], arrays[n], rtol) for n in names
               if n in arrays) and any(n in arrays for n in names):
            return f" Likely mistake: {label}."
    return ""


class _Judge:
    """Collects the outcomes of one part's sub-tests."""

    def __init__(self, part: str, outputs: Arrays, case: Arrays) -> None:
        self.part, self.outputs, self.case = part, outputs, case
        self.outcomes: list[Outcome] = []
        self.fn = function_name(part)

    def add(self, test: str, passed: bool, message: str = "") -> bool:
        self.outcomes.append(Outcome(self.part, test, bool(passed), "" if passed else f"{self.fn}: {message}"))
        return bool(passed)

    def values(self, test: str, name: str, rtol: float, what: str, hint: str = "") -> bool:
        """Compare outputs[name] with ref.name; on failure, name the max relative error and likely mistake."""
        ref = self.case[f"ref.{name}"]
        got = self.outputs.get(name)
        if not _is_number_array(got):
            return self.add(test, False, f"{what}: no numeric result to compare.")
        if got.shape != ref.shape:
            return self.add(test, False, f"{what} has shape {got.shape}, expected {ref.shape}.")
        err = max_relative_error(got, ref)
        if err <= rtol:
            return self.add(test, True)
        if not np.all(np.isfinite(got)):
            detail = "contains inf or nan"
        else:
            detail = f"differs from the reference (max relative error {err:.2e}, tolerance {rtol:.0e})"
        diagnosis = _diagnose(self.outputs, self.case, (name,), rtol) or (f" {hint}" if hint else "")
        return self.add(test, False, f"{what} {detail}.{diagnosis}")


def judge_sample_noise(j: _Judge) -> None:
    o = j.outputs
    x = o.get("x")
    n, d = (int(v) for v in j.case["in.shape"])
    if not j.add("shape", _is_number_array(x) and x.shape == (n, d),
                 f"sample_noise({n}, {d}) returned shape {getattr(x, 'shape', None)}, expected ({n}, {d})."):
        return
    j.add("dtype", str(o.get("dtype")) == "torch.float32",
          f"dtype is {o.get('dtype')}, expected torch.float32 (torch.rand's default).")
    gaussian = " It looks Gaussian: use torch.rand, not torch.randn." if np.abs(x).max() > 1 else ""
    j.add("range", np.all(np.abs(x) <= 1.0),
          f"values run from {x.min():.3f} to {x.max():.3f}, outside [-1, 1].{gaussian}")
    j.add("both signs", x.min() < -0.9 and x.max() > 0.9,
          f"values run from {x.min():.3f} to {x.max():.3f}; uniform on [-1, 1] covers both signs. "
          "Likely mistake: torch.rand gives [0, 1): scale it to [-1, 1] with 2 * u - 1.")
    # Kolmogorov-Smirnov distance to U(-1, 1); at n*d = 16384 values a correct sampler stays below 0.02
    flat = np.sort(np.clip(x.ravel(), -1, 1))
    cdf = (flat + 1) / 2
    k = np.arange(1, flat.size + 1) / flat.size
    ks = float(max(np.max(k - cdf), np.max(cdf - (k - 1 / flat.size))))
    corr = np.corrcoef(x.T) if d > 1 else np.eye(1)
    off_diag = float(np.max(np.abs(corr - np.eye(d)))) if np.all(np.isfinite(corr)) else 1.0
    j.add("uniform", ks < 0.02 and off_diag < 0.1,
          f"values are not independent uniform draws on [-1, 1] (Kolmogorov-Smirnov distance {ks:.3f}, "
          f"largest correlation between columns {off_diag:.2f}); draw every entry independently.")
    seeded = o.get("seeded")
    if _is_number_array(seeded) and seeded.shape == (3, 64, 5):
        a, b, c = seeded
        j.add("seed", np.array_equal(a, b) and not np.array_equal(a, c),
              "the same seed must give the same noise, and different seeds different noise: "
              "seed a torch.Generator (or call torch.manual_seed) when seed is given.")
    else:
        j.add("seed", False, "sample_noise(64, 5, seed=s) must return shape (64, 5).")


def _judge_architecture(j: _Judge) -> None:
    o, case = j.outputs, j.case
    ref_shapes, shapes = case["in.param_shapes"], o.get("shapes")
    ref_count = int(case["ref.n_numbers"])
    count_ok = _is_number_array(o.get("n_numbers")) and int(o["n_numbers"]) == ref_count
    j.add("parameter count", count_ok,
          f"the model has {o.get('n_numbers')} parameters, expected {ref_count}; check every layer's size.")
    if not _is_number_array(shapes) or shapes.shape != ref_shapes.shape or not np.array_equal(shapes, ref_shapes):
        detail = f"expected {len(ref_shapes)} parameter tensors, found {0 if shapes is None else len(shapes)}"
        if _is_number_array(shapes):
            for i, (got, want) in enumerate(zip(shapes, ref_shapes)):
                if not np.array_equal(got, want):
                    detail = (f"parameter tensor {i} has shape {_shape_str(got)}, expected {_shape_str(want)} "
                              f"({len(shapes)} tensors found, {len(ref_shapes)} expected)")
                    break
        j.add("layers", False, f"{detail}. Check the layers, their sizes and their order against the docstring"
                               " (generators: the first layer's input size is the noise_dim argument).")
        j.add("output", False, "not compared: the layers must match first.")
    else:
        j.add("layers", True)
        j.values("output", "y", 1e-6, "the output on fixed parameters",
                 "Check the activations (kind, slope, place) and the order of the layers.")
    if "ref.seed_reproducible" in case:
        j.add("seed", bool(o.get("seed_reproducible", False)),
              "building the model twice with the same seed gave different weights: "
              "create the layers after the provided torch.manual_seed call.")


def _judge_loss(j: _Judge) -> None:
    if not j.values("value", "value", 1e-6, "the loss value"):
        return
    grads = [k[4:] for k in j.case if k.startswith("ref.grad_")]
    ok = all(_close(j.outputs.get(g), j.case[f"ref.{g}"], 1e-5) for g in grads)
    j.add("gradient", ok, "the value is right but its gradient is not: keep the computation in torch, "
                          "differentiable all the way from the inputs.")
    if "ref.extreme" in j.case:
        j.values("stable", "extreme", 1e-6, "the loss on logits of +-1000",
                 "Compute it from the logits with the stable form max(s, 0) - s*y + log(1 + exp(-|s|)), "
                 "not log(sigmoid(s)).")


def judge_get_optimizer(j: _Judge) -> None:
    o = j.outputs
    j.add("Adam", str(o.get("kind")) == "Adam", f"optimizer is {o.get('kind')}, expected torch.optim.Adam.")
    j.add("lr", _close(o.get("lr"), j.case["ref.lr"], 1e-9), f"learning rate is {o.get('lr')}, expected 1e-3.")
    j.add("betas", _close(o.get("betas"), j.case["ref.betas"], 1e-9),
          f"betas are {o.get('betas')}, expected (0.5, 0.999).")
    covered = o.get("covered")
    j.add("parameters", _is_number_array(covered) and int(covered) == int(o.get("total", -1)),
          "the optimizer does not cover all of the model's parameters: pass model.parameters().")


def judge_train_step(j: _Judge) -> None:
    o = j.outputs
    calls = o.get("noise_calls")
    j.add("fresh noise", _is_number_array(calls) and np.all(calls == 2),
          f"sample_noise was called {calls.tolist() if _is_number_array(calls) else '?'} times per step, "
          "expected 2: once for the discriminator step, then fresh noise for the generator step.")
    g_grad = o.get("g_grad_at_d_step")
    j.add("detach", _is_number_array(g_grad) and float(g_grad.ravel()[0]) == 0.0,
          "the discriminator's backward pass reached the generator's parameters: detach the fake images "
          "(G(z).detach()) in the discriminator step.")
    j.values("losses", "stats", 1e-8, "the returned (d_loss, g_loss, d_real, d_fake)",
             "Return the losses of this step and the mean sigmoid(D(x)), sigmoid(D(G(z))) of the D step.")
    j.values("discriminator update", "d_params", 1e-8, "D's parameters after each step",
             "Zero D's gradients before its backward pass and step D_solver on the discriminator loss.")
    j.values("generator update", "g_params", 1e-8, "G's parameters after each step",
             "Zero G's gradients before its backward pass and step G_solver on the generator loss.")


def judge_interpolate_latent(j: _Judge) -> None:
    j.values("values", "y", 1e-6, "the interpolated points",
             "Row i is (1 - t) z0 + t z1 with t = i / (steps - 1), so the first row is z0 and the last z1.")


JUDGES: dict[str, Callable[[_Judge], None]] = {
    "sample_noise": judge_sample_noise,
    **{name: _judge_architecture for name in ARCHITECTURES},
    **{name: _judge_loss for name in LOSS_ARGS},
    "get_optimizer": judge_get_optimizer,
    "train_step": judge_train_step,
    "interpolate_latent": judge_interpolate_latent,
}

#: the sub-tests of each part, in order; a part that errors fails all of them
SUBTESTS: dict[str, tuple[str, ...]] = {
    "sample_noise": ("shape", "dtype", "range", "both signs", "uniform", "seed"),
    "discriminator": ("parameter count", "layers", "output", "seed"),
    "generator": ("parameter count", "layers", "output", "seed"),
    "build_dc_classifier": ("parameter count", "layers", "output"),
    "build_dc_generator": ("parameter count", "layers", "output"),
    **{name: ("value", "gradient", "stable") for name in ("bce_loss", "discriminator_loss", "generator_loss",
                                                          "generator_loss_saturating")},
    "ls_discriminator_loss": ("value", "gradient"),
    "ls_generator_loss": ("value", "gradient"),
    "get_optimizer": ("Adam", "lr", "betas", "parameters"),
    "train_step": ("fresh noise", "detach", "losses", "discriminator update", "generator update"),
    "interpolate_latent": ("values",),
}


def judge(part: str, outputs: Arrays, case: Arrays) -> list[Outcome]:
    """Compare a probe's outputs with the case's references: one Outcome per sub-test of the part."""
    fn = function_name(part)
    error_type = str(outputs.get("error_type", ""))
    if error_type:
        if error_type == "NotImplementedError":
            why = (f"{fn}: not implemented yet. Replace the raise NotImplementedError under # YOUR CODE HERE "
                   "in gan_pytorch.py.")
        else:
            why = f"{fn} raised {outputs.get('error')}"
        return [Outcome(part, t, False, why) for t in SUBTESTS[part]]
    j = _Judge(part, outputs, case)
    try:
        JUDGES[part](j)
    except Exception as exc:  # malformed outputs (wrong types or shapes) must read as a failure, not a crash
        j.add("outputs", False, f"produced outputs that cannot be checked ({type(exc).__name__}: {exc}).")
    done = {o.test for o in j.outcomes}
    for t in SUBTESTS[part]:  # a sub-test skipped because an earlier one failed counts as failed
        if t not in done:
            j.add(t, False, "not checked: an earlier sub-test failed.")
    return [o for o in j.outcomes if o.test in SUBTESTS[part]]


# --------------------------------------------------------------------------------------------------
# The student's entry point


def run(part: str, module: ModuleType | None = None, cases: dict[str, Arrays] | None = None
        ) -> list[Outcome]:
    """Probe and judge one part in this process."""
    if part not in PROBES:
        raise KeyError(f"unknown part {part!r}; the parts are: {', '.join(PARTS)}")
    if module is None:
        import gan_pytorch as module  # noqa: PLC0415 - the student's module, imported when first checked
    cases = cases if cases is not None else load_cases()
    case = cases[part]
    return judge(part, probe(part, module, inputs_of(case)), case)


def check(*parts: str, module: ModuleType | None = None, quiet: bool = False,
          references: str | Path | None = None) -> None:
    """Check the named parts (all of them if none is named); raise CheckFailed listing each failure.

    ``references`` is the checks file to use (default: gan-checks.npz beside the package).
    """
    cases = load_cases(references)
    failures: list[str] = []
    for part in parts or PARTS:
        outcomes = run(part, module, cases)
        bad = [o for o in outcomes if not o.passed]
        if not quiet:
            mark = "PASS" if not bad else "FAIL"
            print(f"[{mark}] {function_name(part)}: {len(outcomes) - len(bad)}/{len(outcomes)} sub-tests passed")
        # one line per distinct message: an unimplemented part says so once, not per sub-test
        for message in dict.fromkeys(o.message for o in bad):
            failures.append(message)
    if failures:
        raise CheckFailed("\n" + "\n".join(f"- {m}" for m in failures))
