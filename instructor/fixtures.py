"""Fixture submissions and a small nbgrader notebook, for the grader's tests and benchmark.

The notebook follows GAN.ipynb's conventions: autograded ``check_<part>`` cells calling ``check`` (0 points), a
hidden-tests region, a hand-graded markdown answer ``q_modes``, and a training cell tagged ``no-autograde`` that
fails if it runs under the grader.
Submissions are written from the solution ``gan_pytorch.py`` by textual edits, so they follow it when it changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import nbformat

from instructor import notebook_grading
from instructor.strip import strip_solutions

ROOT = Path(__file__).resolve().parent.parent
SECRET_ANSWER = "Mode collapse: the generator maps most noise vectors onto the few digits that fool D."


def _meta(grade_id: str, grade: bool, solution: bool, locked: bool, points: float = 0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def notebook_course(tmp: Path) -> tuple[Path, Path, Path, Path]:
    """A grading test's layout in ``tmp``: (source notebook, its student version, submissions folder, output
    folder)."""
    source = fixture_notebook(tmp / "src" / "GAN.ipynb")
    return source, notebook_grading.generate_assignment(source, tmp / "course"), tmp / "subs", tmp / "out"


def fixture_notebook(path: Path) -> Path:
    """Write the small source notebook (instructor version, with hidden tests and a model answer)."""
    cells = [
        nbformat.v4.new_markdown_cell("# GAN fixture notebook"),
        nbformat.v4.new_code_cell("from gan_utils.checks import check", metadata=_meta("setup", False, False, True)),
        nbformat.v4.new_code_cell('check("bce_loss")\n### BEGIN HIDDEN TESTS\ncheck("discriminator_loss")\n'
                                  "### END HIDDEN TESTS", metadata=_meta("check_bce_loss", True, False, True)),
        nbformat.v4.new_code_cell('check("interpolate_latent")',
                                  metadata=_meta("check_interpolate_latent", True, False, True)),
        nbformat.v4.new_markdown_cell(SECRET_ANSWER, metadata=_meta("q_modes", True, True, False, 2)),
        nbformat.v4.new_code_cell("raise RuntimeError('training must not run under the grader')",
                                  metadata={**_meta("train", False, False, True), "tags": ["no-autograde"]}),
    ]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                        "language": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def solution_source() -> str:
    return (ROOT / "gan_pytorch.py").read_text()


def stubbed_source() -> str:
    return strip_solutions(solution_source(), "gan_pytorch.py")


def replace_function(source: str, name: str, body: str) -> str:
    """``source`` with top-level function ``name``'s body replaced by ``body`` (indented 4 spaces)."""
    match = re.search(rf"^def {name}\(.*?(?=^\S)", source, re.S | re.M)
    if match is None:
        raise ValueError(f"no top-level function {name}")
    header = re.match(r"def .*?:\n", match.group(0), re.S).group(0)
    return source[: match.start()] + header + "".join(f"    {line}\n" for line in body.splitlines()) + "\n\n" + \
        source[match.end():]


# Student code that tries to get at what it must not; it reports what it managed in interpolate_latent's error,
# and uses the solution if it could read it.
SNOOP = '''
import glob as _glob, os as _os, socket as _socket
_FOUND = []
def _try(label, fn):
    try:
        fn()
        _FOUND.append(label + "=OPEN")
    except BaseException as exc:
        _FOUND.append(label + "=blocked")
_ROOT = {root!r}
_OUT = {out!r}
_SUBS = {subs!r}
def _write(path):
    with open(path, "a") as f:
        f.write("pwned")
_try("read_hidden", lambda: open(_os.path.join(_ROOT, "instructor", "hidden-checks.npz"), "rb").read(10))
_try("read_solution", lambda: open(_os.path.join(_ROOT, "gan_pytorch.py")).read(10))
import sys as _sys
_BESIDE_PYTHON = _os.path.join(_os.path.dirname(_sys.prefix), "gan_pytorch.py")  # a venv inside a course clone
_try("read_beside_python", lambda: open(_BESIDE_PYTHON).read(10))
_try("list_submissions", lambda: _os.listdir(_SUBS) or (_ for _ in ()).throw(OSError("empty")))
_try("write_gradebook", lambda: _write(_os.path.join(_OUT, "gradebook.csv")))
_try("write_results", lambda: _write(_os.path.join(_OUT, "results", "victim.json")))
_try("write_tmp", lambda: _write("/tmp/gan-grader-pwned"))
_try("write_repo", lambda: _write(_os.path.join(_ROOT, "pwned.txt")))
_try("network", lambda: _socket.create_connection(("1.1.1.1", 53), timeout=2))
def _see_processes():
    if len([p for p in _os.listdir("/proc") if p.isdigit()]) < 10:
        raise OSError("only the sandbox's own processes are visible")
_try("see_processes", _see_processes)
for _source in (_os.path.join(_ROOT, "gan_pytorch.py"), _BESIDE_PYTHON):
    try:
        exec(open(_source).read())
    except BaseException:
        pass
'''

CHEAT = '''
import numpy as _np, torch as _torch
_np.allclose = lambda *a, **k: True
_np.array_equal = lambda *a, **k: True
_torch.allclose = lambda *a, **k: True
_torch.equal = lambda *a, **k: True
class _Yes(float):
    def __eq__(self, other): return True
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __gt__(self, other): return True
    def __ge__(self, other): return True
    __hash__ = float.__hash__
try:
    import gan_utils.judges as _j
    _j.judge = lambda part, outputs, case: []
    _j.max_relative_error = lambda *a: 0.0
except Exception:
    pass
'''


def attack_snoop(root: Path, out: Path, subs: Path) -> str:
    body = "raise RuntimeError('SNOOP ' + ' '.join(_FOUND))"
    return replace_function(stubbed_source(), "interpolate_latent", body) + SNOOP.format(
        root=str(root), out=str(out), subs=str(subs))


def attack_cheat() -> str:
    source = stubbed_source()
    source = replace_function(source, "bce_loss", "return _Yes(0.0)")
    source = replace_function(source, "interpolate_latent", "return _Yes(1.0)")
    return source + CHEAT


SUBMISSIONS: dict[str, Callable[[], str | None]] = {
    "solution": solution_source,
    "release": stubbed_source,
    # lr wrong (1 sub-test of get_optimizer) and interpolate_latent not done: 100 - 1 - 4 = 95
    "partial": lambda: replace_function(solution_source().replace("lr=LEARNING_RATE", "lr=2e-4"), "interpolate_latent",
                                        "raise NotImplementedError"),
    "syntax": lambda: solution_source() + "\ndef broken(:\n    pass\n",
    "import_loop": lambda: solution_source() + "\nwhile True:\n    pass\n",
    "membomb": lambda: solution_source() + "\n_hog = []\nwhile True:\n    _hog.append(bytearray(2**28))\n",
    "exit0": lambda: solution_source() + "\nimport os\nos._exit(0)\n",
    # prints 100 MB through print (truncated, grading goes on), then endlessly straight to fd 1 in one part
    "print100mb": lambda: replace_function(solution_source(), "interpolate_latent",
                                           "import os\nwhile True:\n    os.write(1, b'x' * 10_000_000)")
    + "\nprint('x' * 100_000_000)\n",
    # an endless loop in one part that also ignores the part timer: the wall clock kills it, the rest is graded
    "part_loop": lambda: replace_function(solution_source(), "interpolate_latent",
                                          "import signal\nfor _s in (signal.SIGALRM, signal.SIGPROF, "
                                          "signal.SIGVTALRM):\n    signal.signal(_s, signal.SIG_IGN)\n"
                                          "while True:\n    pass"),
    "cheat": attack_cheat,
    "conftest": stubbed_source,
    "missing": lambda: None,
}

# Issue 12's attacks on the grader itself. Each reports what it managed in interpolate_latent's error where that
# matters, so that the tests can check the attack from outside.

FIFO_STAGE = """
import os as _os
_os.remove("out/_stage")
_os.mkfifo("out/_stage")  # a plain open() of it blocks forever, even through SIGINT
_os._exit(0)
"""

IMPORT_FIFO = """
import os as _os
_os.mkfifo("out/_import.npz")
_os._exit(0)
"""

# the same with symlinks, to decoys that would blame bce_loss or forge the import error if they were followed
SYMLINK_STAGE = """
import os as _os
with open("decoy_stage", "w") as _f:
    _f.write("bce_loss")
_os.remove("out/_stage")
_os.symlink("../decoy_stage", "out/_stage")
_os._exit(0)
"""

IMPORT_SYMLINK = """
import os as _os, numpy as _np
_np.savez("decoy.npz", error=_np.array("FORGED import error"))
_os.symlink("../decoy.npz", "out/_import.npz")
_os._exit(0)
"""

# the last part replaces finished outputs: a symlink to the hidden checks, a FIFO; then answers correctly
SWAP_OUTPUTS = """

def interpolate_latent(z0, z1, steps):
    import os
    os.remove("out/bce_loss.npz")
    os.symlink({hidden!r}, "out/bce_loss.npz")
    os.remove("out/discriminator.npz")
    os.mkfifo("out/discriminator.npz")
    return _solution_interpolate_latent(z0, z1, steps)
"""

SWAP_OUT_FOLDER = """import os
os.rename("out", "out_real")
os.symlink("/", "out")
raise RuntimeError("swapped")"""

SURROGATE = "raise ValueError('bad \\udc80 value \\x1b[31mred\\x1b[0m')"

# A stub that forges every probe's outputs (issue 12 item 8): only what the grader analyses itself can pass.
FORGER = """
import numpy as _np
import gan_utils.probes as _probes

def _forge(part, module, inputs):
    if part.kind == "noise":
        n, d = (int(v) for v in inputs["shape"])
        u = lambda *s: _np.random.uniform(-1, 1, s).astype(_np.float32)
        return {"unseeded_0": u(n, d), "unseeded_1": u(n, d), "seeded_a": u(64, 5), "seeded_b": u(64, 5),
                "seeded_c": u(64, 5)}
    if part.kind == "architecture":
        shapes = inputs["param_shapes"]
        count = int(sum(_np.prod([x for x in row if x > 0]) for row in shapes))
        return {"shapes": shapes, "n_numbers": _np.array(count), "seed_same": _np.array(True),
                "seed_differs": _np.array(True)}
    if part.kind == "loss":
        out = {"value": _np.array(0.5), "value_ndim": _np.array(0)}
        out.update({"grad_" + a: _np.zeros_like(inputs[a]) for a in part.args})
        if part.stable:
            out["extreme"] = _np.array(0.0)
        return out
    if part.kind == "optimizer":
        return {"kind": _np.array("Adam"), "trajectory": _np.stack([inputs["start"]] * len(inputs["grads"]))}
    if part.kind == "train_step":
        steps = len(inputs["real"])
        return {"stats": _np.zeros((steps, 4)), "raw_stats": _np.zeros((steps, 4)),
                "returned": _np.zeros((steps, 4), int), "order": _np.ones(steps, int),
                "g_grad_in_d_step": _np.zeros(steps, bool), "noise_calls": _np.full(steps, 2)}
    return {"y": _np.zeros((int(inputs["steps"]), len(inputs["z0"])))}

_probes.PROBES.update({kind: _forge for kind in _probes.PROBES})
"""

# 48 busy children, each in its own session, then as many sleeping ones as it can fork (issue 12 item 7)
FORK_BOMB = """
import os as _os, time as _time
_FORKED, _t0 = 0, _time.time()
for _i in range(48):
    try:
        if _os.fork() == 0:
            _os.setsid()
            while _time.time() < _t0 + 8:
                pass
            _os._exit(0)
        _FORKED += 1
    except OSError:
        break
for _i in range(3000):
    try:
        if _os.fork() == 0:
            _os.setsid()
            _time.sleep(600)
            _os._exit(0)
        _FORKED += 1
    except OSError:
        break
"""

# six children of 500 MB each: each is within its own address-space limit, together they are not
MEMORY_HOG = """
import os as _os, time as _time
_pids = []
for _i in range(6):
    _pid = _os.fork()
    if _pid == 0:
        _block = b"x" * (500 * 2**20)
        _time.sleep(3)
        _os._exit(0)
    _pids.append(_pid)
_STATUSES = [_os.waitstatus_to_exitcode(_os.waitpid(_p, 0)[1]) for _p in _pids]
"""

# Issue 11 item 4: a submission that imports every public name of the shipped gan_utils (the whole package ships,
# see release.py) and answers each part with the first of them that takes the part's call and returns the right
# kind of object (each tried for at most 0.3 s, and not again for that part once it failed). Only what the package
# computes could earn points; an answer that ships would show here (and in the release's answer search).
BORROWER = """
import importlib as _importlib, signal as _signal
import torch as _torch
{imports}
_CANDIDATES = {candidates!r}
_KINDS = {kinds!r}
_FAILED, _CHOSEN, _BUSY = set(), {{}}, []


class _Slow(BaseException):
    pass


def _alarm(signum, frame):
    raise _Slow()


def _acceptable(kind, value):
    if kind == "architecture":
        return isinstance(value, _torch.nn.Module)
    if kind == "optimizer":
        return isinstance(value, _torch.optim.Optimizer)
    if kind == "train_step":
        return isinstance(value, tuple) and len(value) == 4
    return isinstance(value, _torch.Tensor)


def _borrow(part, args, kwargs):
    if _BUSY:  # a candidate that calls back into this module (a check of every part): not an answer
        raise RuntimeError("BORROWED re-entered")
    _BUSY.append(part)
    try:
        return _try_all(part, args, kwargs)
    finally:
        _BUSY.pop()


def _try_all(part, args, kwargs):
    names = [n for n in _CANDIDATES[part] if (part, n) not in _FAILED]
    names.sort(key=lambda n: n != _CHOSEN.get(part))
    for name in names:
        module, _, attr = name.rpartition(".")
        previous = _signal.signal(_signal.SIGALRM, _alarm)
        _signal.setitimer(_signal.ITIMER_REAL, 0.3)
        try:
            value = getattr(_importlib.import_module(module), attr)(*args, **kwargs)
        except (Exception, SystemExit, _Slow):
            _FAILED.add((part, name))
            continue
        finally:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            _signal.signal(_signal.SIGALRM, previous)
        if _acceptable(_KINDS[part], value):
            _CHOSEN[part] = name
            return value
        _FAILED.add((part, name))
    raise RuntimeError(f"BORROWED nothing for {{part}}: none of {{len(_CANDIDATES[part])}} names answers it")


def _borrower(part):
    def borrowed(*args, **kwargs):
        return _borrow(part, args, kwargs)
    return borrowed


for _part in _CANDIDATES:
    if _part == "train_step":
        GANTrainer.train_step = _borrower(_part)
    else:
        globals()[_part] = _borrower(_part)
"""


def shipped_candidates() -> tuple[list[str], dict[str, list[str]]]:
    """The shipped package's modules, and per part the public functions and classes defined in it whose signature
    takes the part's call (``answer_search``'s test), by qualified name."""
    import gan_utils  # noqa: PLC0415
    from gan_utils.parts import PARTS  # noqa: PLC0415
    from instructor.answer_search import binds, candidates  # noqa: PLC0415

    objects = [(name, obj) for name, obj in candidates(gan_utils) if not name.rpartition(".")[2].startswith("_")]
    modules = sorted({name.rpartition(".")[0] for name, _ in objects})
    return modules, {part.name: [name for name, obj in objects if binds(obj, part)] for part in PARTS}


def attack_borrower() -> str:
    from gan_utils.parts import PARTS  # noqa: PLC0415

    modules, found = shipped_candidates()
    imports = "\n".join(f"from {m} import *  # noqa" for m in modules)
    return stubbed_source() + BORROWER.format(imports=imports, candidates=found,
                                              kinds={p.name: p.kind for p in PARTS})


ATTACKS: dict[str, Callable[[], str]] = {
    "fifo_stage": lambda: solution_source() + FIFO_STAGE,
    "import_fifo": lambda: solution_source() + IMPORT_FIFO,
    "symlink_stage": lambda: solution_source() + SYMLINK_STAGE,
    "import_symlink": lambda: solution_source() + IMPORT_SYMLINK,
    "swap_outputs": lambda: solution_source().replace("def interpolate_latent(", "def _solution_interpolate_latent(")
    + SWAP_OUTPUTS.format(hidden=str(ROOT / "instructor" / "hidden-checks.npz")),
    "swap_out_folder": lambda: replace_function(solution_source(), "interpolate_latent", SWAP_OUT_FOLDER),
    "surrogate": lambda: replace_function(solution_source(), "bce_loss", SURROGATE),
    "surrogate_import": lambda: solution_source() + "\nraise RuntimeError('\\udcff \\x1b[2J cleared')\n",
    "forger": lambda: stubbed_source() + FORGER,
    "borrower": attack_borrower,
    # not an attack: a part that takes longer than the part timer in wall time but uses no CPU keeps its points
    "sleepy": lambda: solution_source().replace("def interpolate_latent(", "def _solution_interpolate_latent(")
    + "\n\ndef interpolate_latent(z0, z1, steps):\n    import time\n    time.sleep(6)\n"
      "    return _solution_interpolate_latent(z0, z1, steps)\n",
    # an endless loop in one part that leaves the timers alone: the part's CPU-time timer stops it, the rest counts
    "part_cpu": lambda: replace_function(solution_source(), "interpolate_latent", "while True:\n    pass"),
    "fork_bomb": lambda: replace_function(solution_source() + FORK_BOMB, "interpolate_latent",
                                          "raise RuntimeError(f'FORKED {_FORKED}')"),
    "memory_hog": lambda: replace_function(solution_source() + MEMORY_HOG, "interpolate_latent",
                                           "raise RuntimeError(f'STATUSES {_STATUSES}')"),
}

# Notebook attacks: a cell the student adds (unlocked cells run as they are) right after the setup cell.

NOTEBOOK_KILLER = """import json, os, signal
_forged = {{"cells": [{{"cell_type": "code", "execution_count": 1, "metadata": {{"nbgrader": {{"grade_id": g}}}},
             "outputs": [{{"name": "stdout", "output_type": "stream", "text": "[PASS]"}}], "source": ""}}
            for g in ("check_bce_loss", "check_interpolate_latent")], "metadata": {{}}, "nbformat": 4,
            "nbformat_minor": 5}}
_written = []
for _path in ("GAN.ipynb", "../../../../driver/autograded.ipynb", "../../../../driver/result.json",
              "../../../../course/autograded/x.ipynb"):
    try:
        with open(_path, "w") as _f:
            json.dump(_forged if _path.endswith("ipynb") else {{"exit": 0, "log": []}}, _f)
        _written.append(_path)
    except OSError:
        pass
for _path in ("GAN.ipynb", "../../../../driver/autograded.ipynb"):
    try:
        os.remove(_path)
        os.symlink({victim!r}, _path)
        _written.append(_path)
    except OSError:
        pass
for _pid in os.listdir("/proc"):
    if _pid.isdigit() and int(_pid) != os.getpid():
        try:
            os.kill(int(_pid), signal.SIGKILL)
            _written.append("killed " + _pid)
        except OSError:
            pass
print("ATTACK", _written)
{end}"""

NOTEBOOK_HANG = """import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    time.sleep(0.5)"""

VICTIM_SECRET = "VICTIM-SECRET-42"


def add_cell(notebook: Path, dest: Path, code: str, after: str = "setup") -> Path:
    """A copy of the student ``notebook`` with a new code cell (no nbgrader metadata) after the cell ``after``."""
    nb = nbformat.read(notebook, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after)
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code))
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


def edit_cell(notebook: Path, dest: Path, grade_id: str, edit: Callable[[dict], None]) -> Path:
    """A copy of the student ``notebook`` with ``edit`` applied to the cell ``grade_id``."""
    nb = nbformat.read(notebook, as_version=4)
    edit(next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id))
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


def victim_notebook(notebook: Path, dest: Path) -> Path:
    """The student notebook as saved after a run whose output holds a secret (what an attacker would copy)."""
    def saved_output(cell: dict) -> None:
        cell["execution_count"] = 3
        cell["outputs"] = [nbformat.v4.new_output("error", ename="CheckFailed", evalue=VICTIM_SECRET, traceback=[])]

    return edit_cell(notebook, dest, "check_bce_loss", saved_output)


CONFTEST = '''import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
'''


def write_submission(folder: Path, kind: str, notebook: Path | None = None, source: str | None = None) -> Path:
    """One student folder: ``gan_pytorch.py`` of ``kind`` (or ``source``), plus ``notebook`` if given."""
    folder.mkdir(parents=True, exist_ok=True)
    text = source if source is not None else SUBMISSIONS[kind]()
    if text is not None:
        (folder / "gan_pytorch.py").write_text(text)
    if kind == "conftest":
        (folder / "conftest.py").write_text(CONFTEST)
    if notebook is not None:
        (folder / notebook.name).write_bytes(notebook.read_bytes())
    return folder
