"""Regenerate the reference arrays from the solution version of gan_pytorch.py.

    python -m instructor.make_checks            # writes gan-checks.npz and instructor/hidden-checks.npz

``gan-checks.npz`` ships to students (seed 0). ``instructor/hidden-checks.npz`` holds the same checks on
other inputs (seed 1): the grader probes submissions with those, so a submission that copies the public
reference outputs gains nothing. Everything is drawn from fixed seeds with numpy's ``RandomState``
and computed in float64, so the arrays are the same on every run and machine. Each part's case is built by
the builder of its kind (``gan_utils.parts``).
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

from gan_utils import parts, probes
from gan_utils.files import atomic_path
from gan_utils.references import fixed_parameters, flatten, pad_shapes

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


def train_step_variant(solution: ModuleType, *, detach: bool = True, zero_d: bool = True, zero_g: bool = True,
                       g_uses_d_loss: bool = False, reuse_noise: bool = False, g_first: bool = False) -> type:
    """A GANTrainer whose train_step makes the named mistakes (all off: a correct alternative)."""

    class Variant(solution.GANTrainer):
        def d_step(self, real_batch: torch.Tensor) -> tuple:
            n = real_batch.shape[0]
            if zero_d:
                self.D_solver.zero_grad()
            self.z = solution.sample_noise(n, self.noise_dim)
            fake = self.G(self.z)
            out_real, out_fake = self.D(real_batch), self.D(fake.detach() if detach else fake)
            d_loss = self.discriminator_loss(out_real, out_fake)
            d_loss.backward(retain_graph=g_uses_d_loss)
            self.D_solver.step()
            return d_loss, out_real, out_fake

        def g_step(self, real_batch: torch.Tensor) -> torch.Tensor:
            if zero_g:
                self.G_solver.zero_grad()
            z = self.z if reuse_noise else solution.sample_noise(real_batch.shape[0], self.noise_dim)
            out_g = self.D(self.G(z))
            g_loss = (self.discriminator_loss(self.D(real_batch), out_g) if g_uses_d_loss
                      else self.generator_loss(out_g))
            g_loss.backward()
            self.G_solver.step()
            return g_loss

        def train_step(self, real_batch: torch.Tensor):
            if g_first:
                self.z = solution.sample_noise(real_batch.shape[0], self.noise_dim)
                g_loss = self.g_step(real_batch)
                d_loss, out_real, out_fake = self.d_step(real_batch)
            else:
                d_loss, out_real, out_fake = self.d_step(real_batch)
                g_loss = self.g_step(real_batch)
            return solution.StepStats(d_loss.detach(), g_loss.detach(), self.mean_output(out_real),
                                      self.mean_output(out_fake))

    return Variant


TRAIN_STEP_MISTAKES = {
    "D's gradients are not zeroed before its backward pass, so they pile up across steps": {"zero_d": False},
    "G's gradients are not zeroed before its backward pass, so they pile up across steps": {"zero_g": False},
    "G is updated with the discriminator's loss instead of the generator's": {"g_uses_d_loss": True},
    "the generator step reuses the discriminator step's noise": {"reuse_noise": True},
    "G stepped before D: update the discriminator first": {"g_first": True},
}


def _noise_mistake(draw: Callable[[int, int], torch.Tensor]) -> Callable[..., torch.Tensor]:
    def sample_noise(batch_size: int, dim: int, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            torch.manual_seed(seed)
        return draw(batch_size, dim)

    return sample_noise


NOISE_MISTAKES = {
    "torch.rand gives [0, 1): scale it to [-1, 1] with 2 * u - 1": _noise_mistake(torch.rand),
    "torch.randn draws from a Gaussian: use torch.rand": _noise_mistake(torch.randn),
    "torch.randn scaled like torch.rand: use torch.rand": _noise_mistake(lambda n, d: torch.randn(n, d) * 2 - 1),
    "the noise is float64: use torch.rand's default float32":
        _noise_mistake(lambda n, d: torch.rand(n, d, dtype=torch.float64) * 2 - 1),
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


def _parameter_layout(params: list[nn.Parameter], model: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes, scales and offsets of parameters: weights ~ 1/sqrt(fan-in), batch norms' scales near 1."""
    norm_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    shapes, scales, offsets = [], [], []
    for p in params:
        shapes.append(tuple(p.shape))
        if id(p) in norm_weights:
            scales.append(0.2), offsets.append(1.0)
        elif p.dim() > 1:
            scales.append(float(np.sqrt(3.0 / np.prod(p.shape[1:])))), offsets.append(0.0)
        else:
            scales.append(0.1), offsets.append(0.0)
    return pad_shapes(shapes), np.array(scales), np.array(offsets)


def _mistake_entries(k: int, label: str, outputs: dict[str, np.ndarray]) -> Case:
    case: Case = {f"mistake.{k}.label": np.array(label)}
    case.update({f"mistake.{k}.{name}": value for name, value in outputs.items()})
    return case


def _probe_or_fail(name: str, module: object, inputs: Case) -> dict[str, np.ndarray]:
    outputs = probes.probe(name, module, inputs)
    if "error" in outputs:
        raise RuntimeError(f"the solution's {name} failed: {outputs['error']}")
    return outputs


def _case(inputs: Case, refs: dict[str, np.ndarray], mistakes: dict[str, dict[str, np.ndarray]] = ()) -> Case:
    case: Case = {f"in.{k}": v for k, v in inputs.items()}
    case.update({f"ref.{k}": v for k, v in refs.items()})
    for k, (label, outputs) in enumerate(dict(mistakes).items()):
        case.update(_mistake_entries(k, label, outputs))
    return case


def noise_case(solution: ModuleType, part: parts.Part, rng: np.random.RandomState) -> Case:
    inputs: Case = {"shape": np.array([4096, 4]), "seeds": rng.randint(2 ** 31, size=2)}
    out = _probe_or_fail(part.name, solution, inputs)
    mistakes = {label: {"seeded_a": probes.probe(part.name, _Module(solution, sample_noise=fn), inputs)["seeded_a"]}
                for label, fn in NOISE_MISTAKES.items()}
    return _case(inputs, {"seeded_a": out["seeded_a"], "seeded_c": out["seeded_c"]}, mistakes)


def architecture_case(solution: ModuleType, part: parts.Part, rng: np.random.RandomState) -> Case:
    noise_dim = 32  # not the default NOISE_DIM, so that a generator ignoring its noise_dim argument fails
    inputs: Case = {"noise_dim": np.array(noise_dim), "seed_init": np.array(rng.randint(2 ** 31))}
    x = rng.uniform(-1, 1, size=(16, noise_dim if "generator" in part.name else 784))
    reference = probes.build_network(part, solution, inputs).double()
    params = probes.parameters_in_run_order(reference, torch.from_numpy(x))
    shapes, scales, offsets = _parameter_layout(params, reference)
    inputs.update(param_shapes=shapes, param_scales=scales, param_offsets=offsets,
                  param_seed=np.array(rng.randint(2 ** 31)), x=x)
    out = _probe_or_fail(part.name, solution, inputs)
    values = fixed_parameters(shapes, scales, offsets, int(inputs["param_seed"]))
    mistakes = {}
    for label, model in architecture_mistakes(part.name, noise_dim).items():
        model = model.double().train()
        probes.assign(probes.parameters_in_run_order(model, torch.from_numpy(x)), values)
        with torch.no_grad():
            mistakes[label] = {"y": model(torch.from_numpy(x)).numpy()}
    return _case(inputs, {"n_numbers": out["n_numbers"], "y": out["y"]}, mistakes)


def loss_case(solution: ModuleType, part: parts.Part, rng: np.random.RandomState) -> Case:
    n = 32
    inputs: Case = {a: rng.randint(0, 2, size=(n, 1)).astype(np.float64) if a == "target" else rng.normal(0, 3, (n, 1))
                    for a in part.args}
    if part.stable:
        for a in part.args:
            inputs[f"extreme_{a}"] = (np.array([[0.0], [1.0], [0.0], [1.0]]) if a == "target"
                                      else np.array([[1000.0], [-1000.0], [-1000.0], [1000.0]]))
    out = _probe_or_fail(part.name, solution, inputs)
    mistakes = {}
    for label, fn in LOSS_MISTAKES[part.name].items():
        wrong = probes.probe(part.name, _Module(solution, **{part.name: fn}), inputs)
        mistakes[label] = {k: v for k, v in wrong.items() if k in ("value", "extreme")}
    return _case(inputs, {k: v for k, v in out.items() if k in ("value", "extreme") or k.startswith("grad_")},
                 mistakes)


def optimizer_case(solution: ModuleType, part: parts.Part, rng: np.random.RandomState) -> Case:
    sizes = np.array([12, 4, 8, 2])  # Linear(3, 4) and Linear(4, 2)
    magnitude = rng.uniform(0.5, 2.0, size=(3, sizes.sum()))
    inputs: Case = {"sizes": sizes, "start": rng.normal(0, 0.5, size=sizes.sum()),
                    "grads": magnitude * rng.choice([-1.0, 1.0], size=magnitude.shape)}
    out = _probe_or_fail(part.name, solution, inputs)
    return _case(inputs, {"trajectory": out["trajectory"], "betas": np.array(solution.BETAS)})


def train_step_case(solution: ModuleType, part: parts.Part, rng: np.random.RandomState) -> Case:
    n, steps, noise_dim, hidden = 8, 2, 4, 16
    inputs: Case = {
        "dims": np.array([6, noise_dim, hidden]),  # real batches are (N, 1, 2, 3) images; G makes (N, 6)
        "param_seed": np.array(rng.randint(2 ** 31)),
        "lr": np.array(0.01),
        "real": rng.normal(0, 1, size=(steps, n, 1, 2, 3)),
        "noise": rng.uniform(-1, 1, size=(steps, 2, n, noise_dim)),
    }
    out = _probe_or_fail(part.name, solution, inputs)
    names = ("stats", "d_params", "g_params", "raw_stats")
    mistakes = {}
    for label, flags in TRAIN_STEP_MISTAKES.items():
        wrong = probes.probe_train_step(part, solution, inputs, train_step_variant(solution, **flags))
        mistakes[label] = {k: wrong[k] for k in names[:3]}
    return _case(inputs, {k: out[k] for k in names}, mistakes)


def interpolation_case(solution: ModuleType, part: parts.Part, rng: np.random.RandomState) -> Case:
    inputs: Case = {"z0": rng.normal(size=8), "z1": rng.normal(size=8), "steps": np.array(7)}
    mistakes = {label: {"y": probes.probe(part.name, _Module(solution, interpolate_latent=fn), inputs)["y"]}
                for label, fn in INTERPOLATE_MISTAKES.items()}
    return _case(inputs, {"y": _probe_or_fail(part.name, solution, inputs)["y"]}, mistakes)


CASE_BUILDERS: dict[str, Callable[[ModuleType, parts.Part, np.random.RandomState], Case]] = {
    "noise": noise_case,
    "architecture": architecture_case,
    "loss": loss_case,
    "optimizer": optimizer_case,
    "train_step": train_step_case,
    "interpolation": interpolation_case,
}


def build_cases(solution: ModuleType, seed: int) -> dict[str, Case]:
    """Every part's inputs, references and known mistakes, drawn from ``seed``."""
    torch.manual_seed(seed)
    return {part.name: CASE_BUILDERS[part.kind](solution, part, np.random.RandomState(1000 * seed + i))
            for i, part in enumerate(parts.PARTS)}


def write_cases(cases: dict[str, Case], path: Path) -> None:
    """Write atomically: a failure half-way never replaces a good file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy would append ".npz" to a name
        np.savez_compressed(f, **flatten(cases))


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
