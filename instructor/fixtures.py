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

from instructor.strip import strip_solutions

ROOT = Path(__file__).resolve().parent.parent
SECRET_ANSWER = "Mode collapse: the generator maps most noise vectors onto the few digits that fool D."


def _meta(grade_id: str, grade: bool, solution: bool, locked: bool, points: float = 0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


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
try:
    exec(open(_os.path.join(_ROOT, "gan_pytorch.py")).read())
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
                                          "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                                          "while True:\n    pass"),
    "cheat": attack_cheat,
    "conftest": stubbed_source,
    "missing": lambda: None,
}

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
