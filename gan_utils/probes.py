"""Running the student's functions on a case's inputs: the half of a check that runs in the student's process.

``probe(name, module, inputs)`` calls the part's function(s) in ``module`` and returns only plain numpy arrays
(numbers and short strings); ``gan_utils.judges`` compares them with the references, possibly in another process.
Nothing here knows the expected outputs, and nothing here implements a student function.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_utils.parts import Part, get
from gan_utils.references import Arrays, fixed_parameters, pad_shapes

IMAGE_SHAPE = (1, 28, 28)


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy().copy()
    return np.asarray(x, dtype=np.float64)


def _as_is(x: Any, what: str) -> np.ndarray:
    """A returned tensor as an array in its own dtype (so that the judge sees float32 vs float64)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} returned {type(x).__name__}, expected a torch.Tensor")
    return x.detach().cpu().numpy().copy()


def _module(model: Any, what: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what} returned {type(model).__name__}, expected an nn.Module")
    return model


@contextlib.contextmanager
def replaced(module: Any, name: str, value: Any) -> Iterator[None]:
    """``module.name`` is ``value`` inside the block, and back to what it was after."""
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


# ---------------------------------------------------------------------------------------------------- noise


def probe_noise(part: Part, module: ModuleType, inputs: Arrays) -> Arrays:
    """Two unseeded draws of the hidden shape, and draws for seed a, seed a again, and seed b."""
    n, d = (int(v) for v in inputs["shape"])
    seed_a, seed_b = (int(s) for s in inputs["seeds"])
    draws = {f"unseeded_{i}": module.sample_noise(n, d) for i in range(2)}
    draws.update(seeded_a=module.sample_noise(64, 5, seed=seed_a), seeded_b=module.sample_noise(64, 5, seed=seed_a),
                 seeded_c=module.sample_noise(64, 5, seed=seed_b))
    return {k: _as_is(v, "sample_noise") for k, v in draws.items()}


# ---------------------------------------------------------------------------------------------------- networks


def parameters_in_run_order(model: nn.Module, x: torch.Tensor) -> list[nn.Parameter]:
    """The model's parameters ordered by when their layer first runs on ``x`` (each layer's own parameters in
    registration order), so that a module may declare its layers in any order. Layers that never run come last;
    if the forward pass fails, the declaration order is returned.
    """
    order: list[nn.Module] = []
    leaves = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]

    def record(layer: nn.Module, args: Any) -> None:
        if layer not in order:
            order.append(layer)

    handles = [m.register_forward_pre_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            model(x)
    except Exception:
        return list(model.parameters())
    finally:
        for h in handles:
            h.remove()
    ran = [p for layer in order for p in layer.parameters(recurse=False)]
    seen = {id(p) for p in ran}
    return ran + [p for p in model.parameters() if id(p) not in seen]


def assign(params: list[nn.Parameter], values: list[np.ndarray]) -> None:
    with torch.no_grad():
        for param, value in zip(params, values):
            param.copy_(torch.from_numpy(value))


def build_network(part: Part, module: ModuleType, inputs: Arrays, seed_offset: int = 0) -> nn.Module:
    """Call the part's builder with the case's keyword arguments (noise_dim, seed)."""
    values = {"noise_dim": int(inputs.get("noise_dim", 0)), "seed": int(inputs.get("seed_init", 0)) + seed_offset}
    return _module(getattr(module, part.name)(**{a: values[a] for a in part.args}), part.name)


def probe_architecture(part: Part, module: ModuleType, inputs: Arrays) -> Arrays:
    """Parameter shapes in run order; the output on fixed parameters (for discriminators, on flat and on image-shaped
    input); whether the seed makes the initial weights reproducible."""
    model = build_network(part, module, inputs)
    out: Arrays = {}
    if "seed" in part.args:
        first = [p.detach().clone() for p in model.parameters()]
        again, other = build_network(part, module, inputs), build_network(part, module, inputs, seed_offset=1)
        out["seed_same"] = np.array(all(torch.equal(a, b) for a, b in zip(first, again.parameters())))
        out["seed_differs"] = np.array(any(not torch.equal(a, b) for a, b in zip(first, other.parameters())))
    model = model.to(torch.float64).train()
    x = torch.from_numpy(inputs["x"].copy())
    params = parameters_in_run_order(model, x)
    shapes = pad_shapes([tuple(p.shape) for p in params]) if params else np.zeros((0, 4), np.int64)
    out.update(shapes=shapes, n_numbers=np.array(sum(p.numel() for p in params)))
    ref_shapes = inputs["param_shapes"]
    if shapes.shape == ref_shapes.shape and np.array_equal(shapes, ref_shapes):
        assign(params, fixed_parameters(ref_shapes, inputs["param_scales"], inputs["param_offsets"],
                                        inputs["param_seed"]))
        with torch.no_grad():
            out["y"] = _np(model(x))
            if "image input" in part.subtests:
                try:
                    out["y_images"] = _np(model(x.reshape(len(x), *IMAGE_SHAPE)))
                except Exception as exc:
                    out["image_error"] = np.array(f"{type(exc).__name__}: {exc}"[:300])
    return out


# ---------------------------------------------------------------------------------------------------- losses


def _loss_outputs(part: Part, fn: Callable[..., Any], inputs: Arrays) -> Arrays:
    tensors = [torch.tensor(inputs[a], requires_grad=True) for a in part.args]
    value = fn(*tensors)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{part.name} returned {type(value).__name__}, expected a torch.Tensor")
    if value.numel() != 1:
        raise TypeError(f"{part.name} returned a tensor of shape {tuple(value.shape)}, expected a 0-dim tensor")
    if not value.requires_grad:
        raise TypeError(f"{part.name}'s result carries no gradient: compute it with torch operations on the input "
                        "tensors (no numpy, no .item(), no .detach())")
    out = {"value": _np(value).reshape(()), "value_ndim": np.array(value.dim())}
    value.sum().backward()
    for a, t in zip(part.args, tensors):
        out[f"grad_{a}"] = _np(t.grad) if t.grad is not None else np.full(t.shape, np.nan)
    if part.stable:  # logits of +-1000
        with torch.no_grad():
            extreme = fn(*(torch.tensor(inputs[f"extreme_{a}"]) for a in part.args))
        out["extreme"] = _np(extreme).reshape(-1)[:1].reshape(()) if isinstance(extreme, torch.Tensor) else \
            np.array(np.nan)
    return out


def probe_loss(part: Part, module: ModuleType, inputs: Arrays) -> Arrays:
    """Value, gradients and (for losses on logits) the value at logits of +-1000.

    A loss that uses another part (the BCE losses call ``bce_loss``) is probed with that part replaced by
    PyTorch's own, so that a bug there costs only that part; the value with the student's own is kept as
    ``own_value``, to tell them to fix the other part first.
    """
    fn = getattr(module, part.name)
    if not part.uses:
        return _loss_outputs(part, fn, inputs)
    with replaced(module, part.uses, F.binary_cross_entropy_with_logits):
        out = _loss_outputs(part, getattr(module, part.name), inputs)
    try:
        own = _loss_outputs(part, fn, inputs)
        out["own_value"] = own["value"]
    except Exception:
        out["own_value"] = np.array(np.nan)
    return out


# ---------------------------------------------------------------------------------------------------- optimizer


def probe_optimizer(part: Part, module: ModuleType, inputs: Arrays) -> Arrays:
    """The parameters of a small model after each of a few optimizer steps on fixed gradients."""
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    params = list(model.parameters())
    sizes = [p.numel() for p in params]
    with torch.no_grad():
        for p, value in zip(params, np.split(inputs["start"], np.cumsum(sizes)[:-1])):
            p.copy_(torch.from_numpy(value.reshape(p.shape)))
    optimizer = module.get_optimizer(model)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"get_optimizer returned {type(optimizer).__name__}, expected a torch.optim.Optimizer")
    trajectory = []
    for grads in inputs["grads"]:
        for p, g in zip(params, np.split(grads, np.cumsum(sizes)[:-1])):
            p.grad = torch.from_numpy(g.reshape(p.shape).copy())
        optimizer.step()
        trajectory.append(np.concatenate([_np(p).ravel() for p in params]))
    return {"kind": np.array(type(optimizer).__name__), "trajectory": np.stack(trajectory)}


# ---------------------------------------------------------------------------------------------------- train_step


def critic_losses() -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """Linear critic losses for the train_step probe: they answer no task, and any mix-up of them shows in the
    updates."""
    return (lambda real, fake: fake.mean() - real.mean()), (lambda fake: -fake.mean())


def probe_networks(inputs: Arrays) -> tuple[nn.Module, nn.Module]:
    """Small float64 D (flattening its input) and G with fixed weights, for the train_step probe."""
    data_dim, noise_dim, hidden = (int(v) for v in inputs["dims"])
    D = nn.Sequential(nn.Flatten(), nn.Linear(data_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1)).double()
    G = nn.Sequential(nn.Linear(noise_dim, hidden), nn.Tanh(), nn.Linear(hidden, data_dim)).double()
    for net, offset in ((D, 0), (G, 1)):
        shapes = pad_shapes([tuple(p.shape) for p in net.parameters()])
        assign(list(net.parameters()), fixed_parameters(shapes, np.full(len(shapes), 0.5), np.zeros(len(shapes)),
                                                        int(inputs["param_seed"]) + offset))
    return D, G


class _Recorder:
    """What happens during each train_step: gradient arrivals on D's ("d") and G's ("g") parameters, D_solver
    ("D") and G_solver ("G") steps, and the sample_noise calls (answered from the case's recorded noise)."""

    def __init__(self, D: nn.Module, G: nn.Module, D_solver: torch.optim.Optimizer,
                 G_solver: torch.optim.Optimizer, noise: np.ndarray) -> None:
        self.noise, self.events, self.calls = noise, [], []
        for net, tag in ((D, "d"), (G, "g")):
            for p in net.parameters():
                p.register_post_accumulate_grad_hook(lambda _p, tag=tag: self.events[-1].append(tag))
        for solver, tag in ((D_solver, "D"), (G_solver, "G")):
            step = solver.step

            def recorded(*args: Any, _step: Callable = step, _tag: str = tag, **kwargs: Any) -> Any:
                self.events[-1].append(_tag)
                return _step(*args, **kwargs)

            solver.step = recorded  # type: ignore[method-assign]

    def start_step(self) -> None:
        self.events.append([])
        self.calls.append(0)

    def sample_noise(self, batch_size: int, dim: int, seed: int | None = None) -> torch.Tensor:
        step, k = len(self.calls) - 1, self.calls[-1]
        self.calls[-1] += 1
        source = self.noise[step, k] if k < self.noise.shape[1] else self.noise[step, -1] * -0.5
        if (batch_size, dim) != source.shape:
            raise ValueError(f"sample_noise was asked for shape ({batch_size}, {dim}); the batch and noise size "
                             f"give {source.shape}")
        return torch.from_numpy(source.copy())

    def facts(self) -> Arrays:
        """Per step: the order of the solver steps (1: D then G, each once; 0: G first; 2: otherwise) and whether
        any gradient reached G between the step's start (or G's last step) and D's step."""
        order, leaked = [], []
        for events in self.events:
            steps = [e for e in events if e in "DG"]
            order.append(1 if steps == ["D", "G"] else 0 if steps[:1] == ["G"] else 2)
            d_at = events.index("D") if "D" in events else len(events)
            start = max((i for i, e in enumerate(events[:d_at]) if e == "G"), default=-1)
            leaked.append("g" in events[start + 1:d_at])
        return {"order": np.array(order), "g_grad_in_d_step": np.array(leaked), "noise_calls": np.array(self.calls)}


def _returned(value: Any) -> int:
    """0: a detached 0-dim tensor; 1: not a tensor; 2: not 0-dim; 3: attached to the graph."""
    if not isinstance(value, torch.Tensor):
        return 1
    return 2 if value.dim() != 0 else 3 if value.requires_grad else 0


def probe_train_step(part: Part, module: ModuleType, inputs: Arrays, trainer_class: type | None = None) -> Arrays:
    """Two train_step calls on a small float64 GAN with ``sample_noise`` replaced by a replay of recorded noise,
    real batches shaped like images (G makes flat samples), and linear critic losses; once with ``logits=True``
    and once with ``logits=False`` (raw scores)."""
    trainer_class = trainer_class or module.GANTrainer
    out: Arrays = {}
    for logits, prefix in ((True, ""), (False, "raw_")):
        D, G = probe_networks(inputs)
        lr = float(inputs["lr"])
        D_solver = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
        G_solver = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        recorder = _Recorder(D, G, D_solver, G_solver, inputs["noise"])
        stats, kinds, d_params, g_params = [], [], [], []
        with replaced(module, "sample_noise", recorder.sample_noise):
            trainer = trainer_class(D, G, D_solver, G_solver, *critic_losses(), noise_dim=int(inputs["dims"][1]),
                                    logits=logits)
            for real in inputs["real"]:
                recorder.start_step()
                result = trainer.train_step(torch.from_numpy(real.copy()))
                if not isinstance(result, tuple) or len(result) != 4:
                    raise TypeError("train_step must return StepStats(d_loss, g_loss, d_real, d_fake)")
                kinds.append([_returned(v) for v in result])
                stats.append([float(v.detach().reshape(-1)[0]) if isinstance(v, torch.Tensor) else float(v)
                              for v in result])
                d_params.append(np.concatenate([_np(p).ravel() for p in D.parameters()]))
                g_params.append(np.concatenate([_np(p).ravel() for p in G.parameters()]))
        out[f"{prefix}stats"] = np.array(stats)
        if logits:
            out.update(returned=np.array(kinds), d_params=np.stack(d_params), g_params=np.stack(g_params),
                       **recorder.facts())
    return out


# ---------------------------------------------------------------------------------------------------- interpolation


def probe_interpolation(part: Part, module: ModuleType, inputs: Arrays) -> Arrays:
    z0, z1 = (torch.from_numpy(inputs[k].copy()) for k in ("z0", "z1"))
    return {"y": _np(_as_is(module.interpolate_latent(z0, z1, int(inputs["steps"])), "interpolate_latent"))}


PROBES: dict[str, Callable[[Part, ModuleType, Arrays], Arrays]] = {
    "noise": probe_noise,
    "architecture": probe_architecture,
    "loss": probe_loss,
    "optimizer": probe_optimizer,
    "train_step": probe_train_step,
    "interpolation": probe_interpolation,
}


def probe(name: str, module: ModuleType, inputs: Arrays) -> Arrays:
    """Run one part of the student's module on ``inputs``; an error comes back as arrays too (``error_type``,
    ``error``: its message, naming the line of gan_pytorch.py where it happened)."""
    part = get(name)
    try:
        outputs = PROBES[part.kind](part, module, inputs)
    except NotImplementedError:
        return {"error_type": np.array("NotImplementedError"), "error": np.array("")}
    except Exception as exc:  # any student error becomes a message, never a crash of the check
        frames = traceback.extract_tb(exc.__traceback__)
        where = next((f"{Path(f.filename).name}, line {f.lineno}" for f in reversed(frames)
                      if Path(f.filename).name == "gan_pytorch.py"), "")
        text = f"{type(exc).__name__}: {exc}"[:500] + (f" ({where})" if where else "")
        return {"error_type": np.array(type(exc).__name__), "error": np.array(text)}
    return {k: np.asarray(v) for k, v in outputs.items()}
