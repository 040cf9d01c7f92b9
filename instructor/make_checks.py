"""Regenerate the reference arrays from the solution version of gan_pytorch.py.

    python -m instructor.make_checks            # writes gan-checks.npz and instructor/hidden-checks.npz

``gan-checks.npz`` ships to students (seed 0). ``instructor/hidden-checks.npz`` holds the same checks on
other inputs (seed 1): the grader probes submissions with those, so a submission that copies the public
reference outputs gains nothing. Everything is drawn from fixed seeds with numpy's ``RandomState``
and computed in float64, so the arrays are the same on every run and machine.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from gan_utils import checks
from gan_utils.files import atomic_path

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_FILE = ROOT / "gan-checks.npz"
HIDDEN_FILE = Path(__file__).resolve().parent / "hidden-checks.npz"
SEEDS = {PUBLIC_FILE: 0, HIDDEN_FILE: 1}

Case = dict[str, np.ndarray]


def load_solution(path: Path = ROOT / "gan_pytorch.py") -> ModuleType:
    spec = importlib.util.spec_from_file_location("gan_pytorch_solution", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if "### BEGIN SOLUTION" not in path.read_text():
        raise SystemExit(f"{path} has no solution regions: references must come from the solution version.")
    return module


# ---- known mistakes, as alternative implementations ------------------------------------------------------


def _mlp_discriminator(act: nn.Module, tail: list[nn.Module] = ()) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), act, nn.Linear(256, 256), act, nn.Linear(256, 1),
                         *tail)


def _mlp_generator(noise_dim: int, act: nn.Module, tail: list[nn.Module]) -> nn.Module:
    return nn.Sequential(nn.Linear(noise_dim, 1024), act, nn.Linear(1024, 1024), act, nn.Linear(1024, 784), *tail)


def _dc_classifier(act: nn.Module, pool: type = nn.MaxPool2d, tail: list[nn.Module] = ()) -> nn.Module:
    return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 5), act, pool(2, 2), nn.Conv2d(32, 64, 5),
                         act, pool(2, 2), nn.Flatten(), nn.Linear(1024, 1024), act, nn.Linear(1024, 1), *tail)


def _dc_generator(noise_dim: int, bn_first: bool = False, tanh: bool = True) -> nn.Module:
    def block(bn: nn.Module) -> list[nn.Module]:
        return [bn, nn.ReLU()] if bn_first else [nn.ReLU(), bn]

    return nn.Sequential(nn.Linear(noise_dim, 1024), *block(nn.BatchNorm1d(1024)), nn.Linear(1024, 6272),
                         *block(nn.BatchNorm1d(6272)), nn.Unflatten(1, (128, 7, 7)),
                         nn.ConvTranspose2d(128, 64, 4, 2, 1), *block(nn.BatchNorm2d(64)),
                         nn.ConvTranspose2d(64, 1, 4, 2, 1), *([nn.Tanh()] if tanh else []), nn.Flatten())


def architecture_mistakes(part: str, noise_dim: int) -> dict[str, nn.Module]:
    leaky = nn.LeakyReLU(0.01)
    return {
        "discriminator": {
            "LeakyReLU with slope 0.2 instead of 0.01": _mlp_discriminator(nn.LeakyReLU(0.2)),
            "ReLU instead of LeakyReLU(0.01)": _mlp_discriminator(nn.ReLU()),
            "a Sigmoid at the end; the discriminator returns logits": _mlp_discriminator(leaky, [nn.Sigmoid()]),
        },
        "generator": {
            "the final Tanh is missing": _mlp_generator(noise_dim, nn.ReLU(), []),
            "Sigmoid instead of Tanh at the end (images live in [-1, 1])":
                _mlp_generator(noise_dim, nn.ReLU(), [nn.Sigmoid()]),
            "LeakyReLU instead of ReLU in the hidden layers": _mlp_generator(noise_dim, leaky, [nn.Tanh()]),
        },
        "build_dc_classifier": {
            "ReLU instead of LeakyReLU(0.01)": _dc_classifier(nn.ReLU()),
            "average pooling instead of max pooling": _dc_classifier(leaky, nn.AvgPool2d),
            "a Sigmoid at the end; the discriminator returns logits": _dc_classifier(leaky, tail=[nn.Sigmoid()]),
        },
        "build_dc_generator": {
            "batch norm before ReLU; this design applies ReLU, then batch norm": _dc_generator(noise_dim, True),
            "the final Tanh is missing": _dc_generator(noise_dim, tanh=False),
        },
    }[part]


def _bce(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(s, y)


def _unstable_bce(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(s)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def _ones(x: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(x)


def _zeros(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


LOSS_MISTAKES: dict[str, dict[str, Callable[..., torch.Tensor]]] = {
    "bce_loss": {
        "summed over the batch instead of averaged":
            lambda s, y: _bce(s, y) * s.numel(),
        "log(sigmoid(s)) overflows at large logits; use the stable form": _unstable_bce,
        "the sign is flipped": lambda s, y: -_bce(s, y),
    },
    "discriminator_loss": {
        "the two terms are averaged; they should be summed":
            lambda r, f: (_bce(r, _ones(r)) + _bce(f, _zeros(f))) / 2,
        "real and fake are swapped (real images have target 1, fakes 0)":
            lambda r, f: _bce(r, _zeros(r)) + _bce(f, _ones(f)),
        "the fake term is missing": lambda r, f: _bce(r, _ones(r)),
        "log(sigmoid(s)) overflows at large logits; use the stable form":
            lambda r, f: _unstable_bce(r, _ones(r)) + _unstable_bce(f, _zeros(f)),
    },
    "generator_loss": {
        "this is the saturating loss log(1 - D(G(z))); the non-saturating loss is -log D(G(z))":
            lambda f: -_bce(f, _zeros(f)),
        "the target is 0; the generator wants its fakes called real (target 1)": lambda f: _bce(f, _zeros(f)),
        "log(sigmoid(s)) overflows at large logits; use the stable form": lambda f: _unstable_bce(f, _ones(f)),
    },
    "generator_loss_saturating": {
        "this is the non-saturating loss -log D(G(z)); the saturating loss is log(1 - D(G(z)))":
            lambda f: _bce(f, _ones(f)),
        "the sign is flipped: the generator minimises log(1 - D(G(z))), which is <= 0":
            lambda f: _bce(f, _zeros(f)),
        "log(1 - sigmoid(s)) overflows at large logits; use the stable form":
            lambda f: -_unstable_bce(f, _zeros(f)),
    },
    "ls_discriminator_loss": {
        "the factor 1/2 is missing": lambda r, f: ((r - 1) ** 2).mean() + (f ** 2).mean(),
        "real and fake are swapped": lambda r, f: 0.5 * (r ** 2).mean() + 0.5 * ((f - 1) ** 2).mean(),
        "the two terms are averaged instead of each halved and summed":
            lambda r, f: 0.25 * ((r - 1) ** 2).mean() + 0.25 * (f ** 2).mean(),
    },
    "ls_generator_loss": {
        "the factor 1/2 is missing": lambda f: ((f - 1) ** 2).mean(),
        "the target is 0; the generator wants its fakes scored 1": lambda f: 0.5 * (f ** 2).mean(),
    },
}


def train_step_variant(solution: ModuleType, *, detach: bool = True, zero_d: bool = True,
                       zero_g: bool = True, g_uses_d_loss: bool = False, reuse_noise: bool = False) -> type:
    """A GANTrainer whose train_step makes the named mistakes (all off: a correct alternative)."""

    class Variant(solution.GANTrainer):
        def train_step(self, real_batch: torch.Tensor):
            n = real_batch.shape[0]
            if zero_d:
                self.D_solver.zero_grad()
            z = solution.sample_noise(n, self.noise_dim)
            fake = self.G(z)
            out_real, out_fake = self.D(real_batch), self.D(fake.detach() if detach else fake)
            d_loss = self.discriminator_loss(out_real, out_fake)
            d_loss.backward(retain_graph=g_uses_d_loss)
            self.D_solver.step()
            if zero_g:
                self.G_solver.zero_grad()
            z_g = z if reuse_noise else solution.sample_noise(n, self.noise_dim)
            out_g = self.D(self.G(z_g))
            if g_uses_d_loss:
                g_loss = self.discriminator_loss(self.D(real_batch), out_g)
            else:
                g_loss = self.generator_loss(out_g)
            g_loss.backward()
            self.G_solver.step()
            return solution.StepStats(d_loss.detach(), g_loss.detach(), self.to_probability(out_real),
                                      self.to_probability(out_fake))

    return Variant


TRAIN_STEP_MISTAKES = {
    "D's gradients are not zeroed before its backward pass, so they pile up across steps":
        {"zero_d": False},
    "G's gradients are not zeroed before its backward pass, so they pile up across steps":
        {"zero_g": False},
    "G is updated with the discriminator's loss instead of the generator's": {"g_uses_d_loss": True},
    "the generator step reuses the discriminator step's noise": {"reuse_noise": True},
}


def _interpolate_without_end(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    t = (torch.arange(steps, dtype=z0.dtype) / steps).unsqueeze(1)
    return (1 - t) * z0 + t * z1


def _interpolate_reversed(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    t = torch.linspace(0, 1, steps, dtype=z0.dtype).unsqueeze(1)
    return t * z0 + (1 - t) * z1


INTERPOLATE_MISTAKES = {
    "t = i / steps leaves out the end point z1; use t = i / (steps - 1)": _interpolate_without_end,
    "the line runs from z1 to z0; the first row must be z0": _interpolate_reversed,
}


# ---- building the cases ---------------------------------------------------------------------------------------


class _Module:
    """A stand-in module exposing one function, so that probes can run a known mistake."""

    def __init__(self, solution: ModuleType, **overrides: object) -> None:
        self.__dict__.update({k: getattr(solution, k) for k in dir(solution) if not k.startswith("__")})
        self.__dict__.update(overrides)


def _parameter_layout(model: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes, scales and offsets of a model's parameters: weights ~ 1/sqrt(fan-in), norms' scales near 1."""
    shapes, scales, offsets = [], [], []
    for layer in model.modules():
        is_norm = isinstance(layer, nn.modules.batchnorm._BatchNorm)
        for name, p in layer.named_parameters(recurse=False):
            shapes.append(tuple(p.shape))
            if is_norm and name == "weight":
                scales.append(0.2), offsets.append(1.0)
            elif p.dim() > 1:
                scales.append(float(np.sqrt(3.0 / np.prod(p.shape[1:])))), offsets.append(0.0)
            else:
                scales.append(0.1), offsets.append(0.0)
    return checks.pad_shapes(shapes), np.array(scales), np.array(offsets)


def _mistake_entries(k: int, label: str, outputs: dict[str, np.ndarray]) -> Case:
    case: Case = {f"mistake.{k}.label": np.array(label)}
    case.update({f"mistake.{k}.{name}": value for name, value in outputs.items()})
    return case


def _probe_or_fail(part: str, module: object, inputs: Case) -> dict[str, np.ndarray]:
    outputs = checks.probe(part, module, inputs)
    if "error" in outputs:
        raise RuntimeError(f"the solution's {part} failed: {outputs['error']}")
    return outputs


def architecture_case(solution: ModuleType, part: str, rng: np.random.RandomState) -> Case:
    noise_dim = 32  # not the default NOISE_DIM, so that a generator ignoring its noise_dim argument fails
    inputs: Case = {"noise_dim": np.array(noise_dim), "seed_init": np.array(rng.randint(2 ** 31))}
    reference = checks.ARCHITECTURES[part](solution, inputs)
    shapes, scales, offsets = _parameter_layout(reference)
    batch = 16
    x_dim = noise_dim if "generator" in part else 784
    inputs.update(param_shapes=shapes, param_scales=scales, param_offsets=offsets,
                  param_seed=np.array(rng.randint(2 ** 31)), x=rng.uniform(-1, 1, size=(batch, x_dim)))
    if part not in ("discriminator", "generator"):
        del inputs["seed_init"]
    outputs = _probe_or_fail(part, solution, inputs)
    case: Case = {f"in.{k}": v for k, v in inputs.items()}
    case.update({"ref.n_numbers": outputs["n_numbers"], "ref.y": outputs["y"]})
    if "seed_reproducible" in outputs:
        case["ref.seed_reproducible"] = outputs["seed_reproducible"]
    values = checks.fixed_parameters(shapes, scales, offsets, int(inputs["param_seed"]))
    for k, (label, model) in enumerate(architecture_mistakes(part, noise_dim).items()):
        model = model.double().train()
        checks.assign_parameters(model, values)
        with torch.no_grad():
            y = model(torch.from_numpy(inputs["x"])).numpy()
        case.update(_mistake_entries(k, label, {"y": y}))
    return case


def loss_case(solution: ModuleType, part: str, rng: np.random.RandomState) -> Case:
    args = checks.LOSS_ARGS[part]
    n = 32
    inputs: Case = {}
    for a in args:
        inputs[a] = (rng.randint(0, 2, size=(n, 1)).astype(np.float64) if a == "target"
                     else rng.normal(0, 3, size=(n, 1)))
    if not part.startswith("ls_"):
        for a in args:
            inputs[f"extreme_{a}"] = (np.array([[0.0], [1.0], [0.0], [1.0]]) if a == "target"
                                      else np.array([[1000.0], [-1000.0], [-1000.0], [1000.0]]))
    outputs = _probe_or_fail(part, solution, inputs)
    case: Case = {f"in.{k}": v for k, v in inputs.items()}
    case.update({f"ref.{k}": v for k, v in outputs.items()})
    for k, (label, fn) in enumerate(LOSS_MISTAKES[part].items()):
        wrong = checks.probe(part, _Module(solution, **{part: fn}), inputs)
        case.update(_mistake_entries(k, label, {key: v for key, v in wrong.items() if key in ("value", "extreme")}))
    return case


def train_step_case(solution: ModuleType, rng: np.random.RandomState) -> Case:
    data_dim, noise_dim, hidden, n, steps = 6, 4, 16, 8, 2
    inputs: Case = {
        "dims": np.array([data_dim, noise_dim, hidden]),
        "param_seed": np.array(rng.randint(2 ** 31)),
        "lr": np.array(0.01),
        "real": rng.normal(0, 1, size=(steps, n, data_dim)),
        "noise": rng.uniform(-1, 1, size=(steps, 2, n, noise_dim)),
    }
    outputs = _probe_or_fail("train_step", solution, inputs)
    case: Case = {f"in.{k}": v for k, v in inputs.items()}
    case.update({f"ref.{k}": outputs[k] for k in ("stats", "d_params", "g_params")})
    for k, (label, flags) in enumerate(TRAIN_STEP_MISTAKES.items()):
        wrong = checks.probe_train_step(solution, inputs, train_step_variant(solution, **flags))
        case.update(_mistake_entries(k, label, {key: wrong[key] for key in ("stats", "d_params", "g_params")}))
    return case


def interpolate_case(solution: ModuleType, rng: np.random.RandomState) -> Case:
    inputs: Case = {"z0": rng.normal(size=8), "z1": rng.normal(size=8), "steps": np.array(7)}
    case: Case = {f"in.{k}": v for k, v in inputs.items()}
    case["ref.y"] = _probe_or_fail("interpolate_latent", solution, inputs)["y"]
    for k, (label, fn) in enumerate(INTERPOLATE_MISTAKES.items()):
        wrong = checks.probe("interpolate_latent", _Module(solution, interpolate_latent=fn), inputs)
        case.update(_mistake_entries(k, label, {"y": wrong["y"]}))
    return case


def build_cases(solution: ModuleType, seed: int) -> dict[str, Case]:
    """Every part's inputs, references and known mistakes, drawn from ``seed``."""
    torch.manual_seed(seed)
    cases: dict[str, Case] = {}
    for i, part in enumerate(checks.PARTS):
        rng = np.random.RandomState(1000 * seed + i)
        if part == "sample_noise":
            cases[part] = {"in.shape": np.array([4096, 4]), "in.seeds": rng.randint(2 ** 31, size=2)}
        elif part in checks.ARCHITECTURES:
            cases[part] = architecture_case(solution, part, rng)
        elif part in checks.LOSS_ARGS:
            cases[part] = loss_case(solution, part, rng)
        elif part == "get_optimizer":
            cases[part] = {"ref.lr": np.array(1e-3), "ref.betas": np.array([0.5, 0.999])}
        elif part == "train_step":
            cases[part] = train_step_case(solution, rng)
        elif part == "interpolate_latent":
            cases[part] = interpolate_case(solution, rng)
    return cases


def write_cases(cases: dict[str, Case], path: Path) -> None:
    """Write atomically: a failure half-way never replaces a good file."""
    flat = {f"{part}.{key}": value for part, case in cases.items() for key, value in case.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy would append ".npz" to a name
        np.savez_compressed(f, **flat)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solution", type=Path, default=ROOT / "gan_pytorch.py")
    parser.add_argument("--public", type=Path, default=PUBLIC_FILE)
    parser.add_argument("--hidden", type=Path, default=HIDDEN_FILE)
    args = parser.parse_args(argv)
    solution = load_solution(args.solution)
    for path, seed in ((args.public, SEEDS[PUBLIC_FILE]), (args.hidden, SEEDS[HIDDEN_FILE])):
        cases = build_cases(solution, seed)
        write_cases(cases, path)
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB, {len(cases)} parts, seed {seed})")


if __name__ == "__main__":
    main()
