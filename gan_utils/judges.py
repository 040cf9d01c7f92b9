"""Comparing a probe's arrays with the references: the half of a check that needs the expected outputs.

``judge(name, outputs, case)`` returns one ``Outcome`` per sub-test of the part. It runs wherever the references
are: in the student's process for the public checks, in the grader's own process for the hidden ones. It trusts
nothing about ``outputs`` beyond their being arrays: anything else fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gan_utils.parts import Part, get
from gan_utils.references import Arrays, mistakes_of, shape_text


@dataclass(frozen=True)
class Outcome:
    """One sub-test: whether it passed, what to do if not, and a note worth reading even if it passed."""

    part: str
    test: str
    passed: bool
    message: str = ""
    note: str = ""


def max_relative_error(x: np.ndarray, ref: np.ndarray) -> float:
    """max |x - ref| / max(|ref|, 1e-8) over all elements, on a common scale (CS231n's rel_error)."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    if x.shape != ref.shape or not np.all(np.isfinite(x)):
        return math.inf
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - ref)) / max(np.max(np.abs(ref)), 1e-8))


def is_numbers(x: Any) -> bool:
    """A plain numpy array of numbers (not a subclass, not objects that pretend to compare equal)."""
    return type(x) is np.ndarray and x.dtype.kind in "biuf"


def close(x: Any, ref: np.ndarray, rtol: float) -> bool:
    return is_numbers(x) and max_relative_error(x, ref) <= rtol


class Judge:
    """Collects one part's outcomes; ``evidence`` records that its values show the student's code ran."""

    def __init__(self, part: Part, outputs: Arrays, case: Arrays) -> None:
        self.part, self.outputs, self.case = part, outputs, case
        self.outcomes: list[Outcome] = []
        self.evidence = False

    def add(self, test: str, passed: bool, message: str = "", note: str = "") -> bool:
        self.outcomes.append(Outcome(self.part.name, test, bool(passed),
                                     "" if passed else f"{self.part.label}: {message}", note))
        return bool(passed)

    def mistake(self, names: tuple[str, ...], rtol: float) -> str:
        """The label of a known mistake whose outputs ``names`` match the student's, or ''."""
        for label, arrays in mistakes_of(self.case):
            present = [n for n in names if n in arrays]
            if present and all(close(self.outputs.get(n), arrays[n], rtol) for n in present):
                self.evidence = True
                return label
        return ""

    def values(self, test: str, name: str, rtol: float, what: str, hint: str = "") -> bool:
        """Compare outputs[name] with ref.name; on failure say the max relative error and the likely mistake."""
        ref, got = self.case[f"ref.{name}"], self.outputs.get(name)
        if not is_numbers(got):
            return self.add(test, False, f"{what}: no numeric result to compare.")
        if got.shape != ref.shape:
            return self.add(test, False, f"{what} has shape {got.shape}, expected {ref.shape}.")
        err = max_relative_error(got, ref)
        if err <= rtol:
            self.evidence = True
            return self.add(test, True)
        detail = ("contains inf or nan" if not np.all(np.isfinite(got))
                  else f"differs from the reference (max relative error {err:.2e}, tolerance {rtol:.0e})")
        label = self.mistake((name,), rtol)
        return self.add(test, False, f"{what} {detail}." + (f" Likely mistake: {label}." if label else
                                                              f" {hint}" if hint else ""))


# ---------------------------------------------------------------------------------------------------- noise


def _uniformity(x: np.ndarray) -> str:
    """Why ``x`` (N, D) is not independent uniform draws on [-1, 1], or ''."""
    if x.min() < -1 or x.max() > 1:
        gaussian = " It looks Gaussian: use torch.rand, not torch.randn." if np.abs(x).max() > 1.5 else ""
        return f"values run from {x.min():.3f} to {x.max():.3f}, outside [-1, 1].{gaussian}"
    if x.min() > -0.9:
        return (f"values run from {x.min():.3f} to {x.max():.3f}: torch.rand gives [0, 1); scale it to [-1, 1] "
                "with 2 * u - 1.")
    # Kolmogorov-Smirnov distance to U(-1, 1); with 16384 values a correct sampler stays below 0.02
    flat = np.sort(x.ravel())
    cdf = (flat + 1) / 2
    k = np.arange(1, flat.size + 1) / flat.size
    ks = float(max(np.max(k - cdf), np.max(cdf - (k - 1 / flat.size))))
    corr = np.corrcoef(x.T) if x.shape[1] > 1 else np.eye(1)
    off_diagonal = float(np.max(np.abs(corr - np.eye(len(corr))))) if np.all(np.isfinite(corr)) else 1.0
    if ks >= 0.02 or off_diagonal >= 0.1:
        return (f"values are not independent uniform draws on [-1, 1] (Kolmogorov-Smirnov distance {ks:.3f}, "
                f"largest correlation between columns {off_diagonal:.2f}); draw every entry independently.")
    return ""


def judge_noise(j: Judge) -> None:
    o, case = j.outputs, j.case
    seeded = [o.get(f"seeded_{k}") for k in "abc"]
    shape = case["ref.seeded_a"].shape
    if all(is_numbers(s) and s.shape == shape for s in seeded):
        a, b, c = (s.astype(np.float64) for s in seeded)
        right = close(a, case["ref.seeded_a"], 1e-6) and close(c, case["ref.seeded_c"], 1e-6)
        if right and np.array_equal(a, b):
            j.evidence = True
            j.add("seeded values", True)
        else:
            label = j.mistake(("seeded_a",), 1e-6)
            why = (f"Likely mistake: {label}." if label else
                   "the same seed gave different noise: draw with torch's random functions after the provided "
                   "torch.manual_seed call." if not np.array_equal(a, b) else
                   "draw with torch.rand (or Tensor.uniform_) after the provided torch.manual_seed call, scaled to "
                   "[-1, 1].")
            j.add("seeded values", False, f"sample_noise(64, 5, seed=s) differs from torch's draws for seed s. {why}")
    else:
        got = [getattr(s, "shape", None) for s in seeded]
        j.add("seeded values", False, f"sample_noise(64, 5, seed=s) returned shapes {got}, expected {shape}.")
    draws = [o.get(f"unseeded_{i}") for i in range(2)] + seeded
    dtypes = sorted({str(d.dtype) for d in draws if is_numbers(d)})
    j.add("float32", dtypes == ["float32"], f"the noise has dtype {', '.join(dtypes) or '?'}, expected float32 "
                                            "(torch.rand's default).")
    n, d = (int(v) for v in case["in.shape"])
    u0, u1 = draws[:2]
    if not all(is_numbers(u) and u.shape == (n, d) for u in (u0, u1)):
        j.add("uniform", False, f"sample_noise({n}, {d}) returned shape {getattr(u0, 'shape', None)}, "
                                f"expected ({n}, {d}).")
        return
    why = _uniformity(u0.astype(np.float64))
    if not why and np.array_equal(u0, u1):
        why = "two calls without a seed returned the same noise: only a given seed may fix it."
    j.add("uniform", not why, why)


# ---------------------------------------------------------------------------------------------------- networks


def judge_architecture(j: Judge) -> None:
    o, case = j.outputs, j.case
    ref_shapes, shapes = case["in.param_shapes"], o.get("shapes")
    if "y" in o:
        j.values("output", "y", 1e-6, "the output on fixed parameters",
                 "Check the activations (kind, slope, place) and the order of the layers.")
    else:
        j.add("output", False, "not compared: the layers must match first.")
    if "image input" in j.part.subtests:
        if "image_error" in o:
            j.add("image input", False, f"images of shape (N, 1, 28, 28) raised {o['image_error']}; flatten the "
                                        "input first (nn.Flatten or x.reshape(len(x), -1)).")
        elif "y_images" in o:
            ok = close(o["y_images"], case["ref.y"], 1e-6)
            j.evidence |= ok
            j.add("image input", ok, "images of shape (N, 1, 28, 28) give another output than the same images "
                                     "flattened to (N, 784); the two must give the same logits.")
        else:
            j.add("image input", False, "not compared: the layers must match first.")
    count = int(case["ref.n_numbers"])
    j.add("parameter count", is_numbers(o.get("n_numbers")) and int(o["n_numbers"]) == count,
          f"the model has {o.get('n_numbers')} parameters, expected {count}; check every layer's size.")
    if is_numbers(shapes) and shapes.shape == ref_shapes.shape and np.array_equal(shapes, ref_shapes):
        j.add("layers", True)
    else:
        detail = f"expected {len(ref_shapes)} parameter tensors, found {len(shapes) if is_numbers(shapes) else 0}"
        if is_numbers(shapes) and shapes.ndim == 2:
            for i, (got, want) in enumerate(zip(shapes, ref_shapes)):
                if not np.array_equal(got, want):
                    detail = (f"parameter tensor {i} (in the order the layers run) has shape {shape_text(got)}, "
                              f"expected {shape_text(want)} ({len(shapes)} tensors found, {len(ref_shapes)} expected)")
                    break
        j.add("layers", False, f"{detail}. Check the layers, their sizes and their order against the docstring "
                               "(generators: the first layer's input size is the noise_dim argument).")
    if "seed" in j.part.subtests:
        j.add("seed", bool(o.get("seed_same", False)) and bool(o.get("seed_differs", False)),
              "the seed must make the initial weights reproducible (the same seed: the same weights; another seed: "
              "other weights): create the layers after the provided torch.manual_seed call.")


# ---------------------------------------------------------------------------------------------------- losses


def judge_loss(j: Judge) -> None:
    o, case = j.outputs, j.case
    if is_numbers(o.get("value_ndim")) and int(o["value_ndim"]) != 0:
        j.add("value", False, f"returned a tensor with {int(o['value_ndim'])} dimensions; a loss is a 0-dim tensor "
                              "(reduce with .mean(), without keepdim).")
    else:
        j.values("value", "value", 1e-6, "the loss value")
    grads = [k[4:] for k in case if k.startswith("ref.grad_")]
    ok = all(close(o.get(g), case[f"ref.{g}"], 1e-5) for g in grads)
    j.evidence |= ok
    j.add("gradient", ok, "its gradient differs from the reference: keep the computation in torch, differentiable "
                          "all the way from the inputs, and check the value first.")
    if "ref.extreme" in case:
        j.values("stable", "extreme", 1e-6, "the loss on logits of +-1000",
                 "Compute it from the logits with the stable form max(s, 0) - s*y + log(1 + exp(-|s|)), "
                 "not log(sigmoid(s)).")
    own = o.get("own_value")
    if j.part.uses and is_numbers(own) and not close(own, case["ref.value"], 1e-6) and j.outcomes[0].passed:
        note = (f"fix {j.part.uses} first: with a correct {j.part.uses} this function is right, with yours it "
                "gives another value.")
        j.outcomes = [Outcome(x.part, x.test, x.passed, x.message, note) for x in j.outcomes]


# ---------------------------------------------------------------------------------------------------- optimizer


def judge_optimizer(j: Judge) -> None:
    """Everything is read off the parameters after each step: Adam's first step moves every number by exactly
    lr * sign(gradient), whatever the betas; the later steps, divided by lr, depend on the betas only."""
    o, case = j.outputs, j.case
    trajectory, ref = o.get("trajectory"), case["ref.trajectory"]
    start, grads = case["in.start"], case["in.grads"]
    if not is_numbers(trajectory) or trajectory.shape != ref.shape:
        for test in j.part.subtests:
            j.add(test, False, f"the optimizer's steps could not be followed (parameters of shape "
                               f"{getattr(trajectory, 'shape', None)}).")
        return
    step1 = trajectory[0] - start
    sizes = case["in.sizes"]
    moved = [bool(np.any(chunk != 0)) for chunk in np.split(step1, np.cumsum(sizes)[:-1])]
    j.add("parameters", all(moved), f"{moved.count(False)} of {len(moved)} parameter tensors did not move in a "
                                    "step: pass model.parameters() to the optimizer.")
    live = step1 != 0
    size = np.abs(step1[live])
    adam_like = bool(live.any()) and np.allclose(size, size.mean(), rtol=1e-5) and \
        np.array_equal(np.sign(step1[live]), -np.sign(grads[0][live]))
    kind = str(o.get("kind", "?"))
    j.add("Adam", adam_like, f"the steps are not Adam's (optimizer {kind}); use torch.optim.Adam.")
    lr = float(size.mean()) if adam_like else float(np.median(size / np.abs(grads[0][live]))) if live.any() else 0.0
    ref_lr = float(np.abs(ref[0] - start).max())
    ok_lr = math.isclose(lr, ref_lr, rel_tol=1e-5)
    j.add("lr", ok_lr, f"the learning rate is {lr:.3g}, expected {ref_lr:g}.")
    unit = np.diff(trajectory, axis=0) / max(lr, 1e-30)
    ok_betas = adam_like and close(unit[:, live], (np.diff(ref, axis=0) / ref_lr)[:, live], 1e-4)
    j.add("betas", ok_betas, "the later steps are not those of the expected betas "
                             f"({', '.join(f'{b:g}' for b in case['ref.betas'])})." if adam_like else
          "not checked: the steps are not Adam's.")
    j.evidence = True  # every sub-test here is read off values


# ---------------------------------------------------------------------------------------------------- train_step

_RETURNED = {1: "a Python number or other non-tensor", 2: "a tensor with dimensions (not 0-dim)",
             3: "a tensor still attached to the graph (call .detach())"}


def judge_train_step(j: Judge) -> None:
    o = j.outputs
    names = ("stats", "d_params", "g_params")
    j.values("losses", "stats", 1e-8, "the returned (d_loss, g_loss, d_real, d_fake)",
             "Return the losses of this step, and self.mean_output of D's outputs on the real batch and on the fakes "
             "of the discriminator step.")
    j.values("discriminator update", "d_params", 1e-8, "D's parameters after each step",
             "Zero D's gradients before its backward pass and step D_solver on the discriminator loss.")
    j.values("generator update", "g_params", 1e-8, "G's parameters after each step",
             "Zero G's gradients before its backward pass and step G_solver on the generator loss.")
    j.values("raw scores", "raw_stats", 1e-8, "the returned values for a trainer built with logits=False",
             "With logits=False D returns raw scores: report self.mean_output(out), which skips the sigmoid.")
    j.mistake(names, 1e-8)
    returned = o.get("returned")
    bad = sorted({int(k) for k in returned.ravel() if int(k)}) if is_numbers(returned) else [1]
    j.add("returns", not bad, "StepStats must hold 0-dim tensors without gradient; found "
                              + "; ".join(_RETURNED.get(k, "?") for k in bad) + ".")
    order = o.get("order")
    g_first = is_numbers(order) and bool(np.any(order == 0))
    j.add("order", is_numbers(order) and bool(np.all(order == 1)),
          "G stepped before D: update the discriminator first, then the generator." if g_first else
          "each train_step must take exactly one D_solver step and then one G_solver step.")
    calls = o.get("noise_calls")
    j.add("fresh noise", is_numbers(calls) and bool(np.all(calls == 2)),
          f"sample_noise was called {calls.tolist() if is_numbers(calls) else '?'} times per step, expected 2: once "
          "for the discriminator step, then fresh noise for the generator step.")
    leaked = o.get("g_grad_in_d_step")
    j.add("detach", is_numbers(leaked) and not bool(np.any(leaked)),
          "the discriminator's backward pass reached the generator's parameters: detach the fake images "
          "(G(z).detach()) in the discriminator step.")


def judge_interpolation(j: Judge) -> None:
    j.values("values", "y", 1e-6, "the interpolated points",
             "Row i is (1 - t) z0 + t z1 with t = i / (steps - 1), so the first row is z0 and the last z1.")


JUDGES: dict[str, Callable[[Judge], None]] = {
    "noise": judge_noise,
    "architecture": judge_architecture,
    "loss": judge_loss,
    "optimizer": judge_optimizer,
    "train_step": judge_train_step,
    "interpolation": judge_interpolation,
}

NOT_CREDITED = ("not credited: this rests on what the code reports about itself, and none of this part's values "
                "matched the reference or a known mistake.")


def judge(name: str, outputs: Arrays, case: Arrays) -> list[Outcome]:
    """Compare a probe's outputs with the case's references: one Outcome per sub-test of the part, in order."""
    part = get(name)
    error_type = str(outputs.get("error_type", ""))
    if error_type:
        why = (f"{part.label} raised {outputs.get('error')}" if error_type != "NotImplementedError" else
               f"{part.label}: not implemented yet: replace the raise NotImplementedError under # YOUR CODE HERE in "
               "gan_pytorch.py.")
        return [Outcome(part.name, t, False, why) for t in part.subtests]
    j = Judge(part, outputs, case)
    try:
        JUDGES[part.kind](j)
    except Exception as exc:  # malformed outputs (wrong types or shapes) read as a failure, not a crash
        j.add("outputs", False, f"produced outputs that cannot be checked ({type(exc).__name__}: {exc}).")
    by_test = {o.test: o for o in j.outcomes}
    result = []
    for test in part.subtests:
        o = by_test.get(test) or Outcome(part.name, test, False, f"{part.label}: not checked: an earlier sub-test "
                                                                 "failed.")
        if test in part.reported and o.passed and not j.evidence:
            o = Outcome(part.name, test, False, f"{part.label}: {NOT_CREDITED}")
        result.append(o)
    return result
