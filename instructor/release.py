"""The student release: what students get, and two searches of it for anything that must not be there.

What ships follows from the layout:

- the student package ``gan_utils/``, whole (so nothing that must not ship may live in it);
- the notebook, through ``nbgrader generate_assignment`` (solutions stubbed, hidden tests removed, cells locked),
  and ``gan_pytorch.py`` with its solution regions stubbed (nbgrader leaves ``.py`` files alone);
- the files the package and the notebook need at the top level: the reference arrays and the requirements;
- the test of ``gan_pytorch.py``, ``tests/test_gan_pytorch.py``;
- everything in ``instructor/release_files/`` (the student README, the pytest settings), at the top level.

Then every released file is searched for marker lines, "hidden-checks", instructor-only folders and solution-only
lines (``find_leaks``), and every function and class of the released package is tried in place of each student
function (``answer_search.py``): any that passes a part's check is an answer that ships. Either fails the release.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gan_utils.references import CHECKS_FILE
from instructor import notebook_grading
from instructor.strip import BEGIN, strip_solutions

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
PACKAGE = ROOT / "gan_utils"
TOP_LEVEL = (CHECKS_FILE.name, "requirements.txt")
STUDENT_TEST = Path("tests") / "test_gan_pytorch.py"
RELEASE_FILES = HERE / "release_files"
INSTRUCTOR_ONLY = ("instructor", "cli", "bench", "tools", ".ci")
FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "hidden-checks")


class ReleaseError(RuntimeError):
    """The release cannot be built, or it leaks something."""


def solution_lines(source: str) -> set[str]:
    """Lines that occur only inside solution regions (stripped, at least 12 characters): proof of a leak if seen."""
    inside, outside, in_region = set(), set(), False
    for line in source.splitlines():
        s = line.strip()
        if s == BEGIN:
            in_region = True
        elif s == "### END SOLUTION":
            in_region = False
        elif len(s) >= 12:
            (inside if in_region else outside).add(s)
    return inside - outside


def _is_marker(line: str) -> bool:
    return any(line.startswith(f"### {m}") for m in FORBIDDEN if m != "hidden-checks")


def find_leaks(folder: Path, secrets: set[str]) -> list[str]:
    """Every file of ``folder`` with a marker line, "hidden-checks", or solution-only lines, with what was found.

    Solution lines are matched whole (stripped). A short generic line (``nn.Flatten(),``) may also occur in
    honest support code, so a file is flagged for one line of 30+ characters or for three distinct shorter ones.
    """
    leaks = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if rel.parts[0] in INSTRUCTOR_ONLY or path.name == "hidden-checks.npz":
            leaks.append(f"{rel}: instructor-only file")
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        lines = {line.strip().strip('",').strip() for line in text.replace("\\n", "\n").splitlines()}
        for line in sorted(line for line in lines if _is_marker(line)):
            leaks.append(f"{rel}: contains the marker line {line!r}")
        if "hidden-checks" in text:
            leaks.append(f"{rel}: mentions 'hidden-checks'")
        found = sorted(secrets & lines, key=len, reverse=True)
        if found and (len(found[0]) >= 30 or len(found) >= 3):
            leaks.append(f"{rel}: contains the solution line {found[0]!r}" + (f" and {len(found) - 1} more"
                                                                              if len(found) > 1 else ""))
    return leaks


def find_answers(folder: Path) -> list[str]:
    """Functions and classes of the released package that pass a part's check in place of the student's code,
    as ``module.name: part`` (run in a separate Python with only the release on its path)."""
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.run([sys.executable, str(HERE / "answer_search.py")], cwd=scratch, capture_output=True,
                              text=True, timeout=900, env={"PATH": "/usr/bin:/bin", "HOME": scratch,
                                                           "MPLBACKEND": "Agg", "GAN_DATA_DIR": scratch,
                                                           "PYTHONPATH": str(folder.resolve()),
                                                           "PYTHONDONTWRITEBYTECODE": "1"})
    if proc.returncode != 0:
        raise ReleaseError(f"the answer search failed:\n{proc.stderr[-2000:]}")
    return [line.removeprefix("ANSWER ") for line in proc.stdout.splitlines() if line.startswith("ANSWER ")]


def build_release(out: Path, notebook: Path | None = None, force: bool = False) -> list[Path]:
    """Write the student version into ``out`` (refuses a non-empty folder unless ``force``); returns its files."""
    notebook = notebook or ROOT / "GAN.ipynb"
    if not notebook.is_file():
        raise ReleaseError(f"{notebook} not found: pass --notebook PATH")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ReleaseError(f"{out} is not empty; pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    source = (ROOT / "gan_pytorch.py").read_text()
    (out / "gan_pytorch.py").write_text(strip_solutions(source, "gan_pytorch.py"))
    work = out.parent / f".{out.name}.nbgrader"
    try:
        shutil.copy(notebook_grading.generate_assignment(notebook, work), out / notebook.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(PACKAGE, out / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in TOP_LEVEL:
        shutil.copy(ROOT / name, out / name)
    (out / STUDENT_TEST).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / STUDENT_TEST, out / STUDENT_TEST)
    shutil.copytree(RELEASE_FILES, out, dirs_exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    (out / "images" / ".gitkeep").touch()
    leaks = find_leaks(out, solution_lines(source) | notebook_solution_lines(notebook))
    leaks += [f"{answer} passes that part's check: an answer ships" for answer in find_answers(out)]
    if leaks:
        raise ReleaseError("the release leaks instructor material:\n" + "\n".join(leaks))
    return sorted(p for p in out.rglob("*") if p.is_file())


def notebook_solution_lines(notebook: Path) -> set[str]:
    """Solution-only lines of the notebook: inside solution regions, or whole solution cells without markers."""
    nb = json.loads(notebook.read_text())
    inside, outside = set(), set()
    for cell in nb.get("cells", []):
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and BEGIN not in src:
            inside |= {s.strip() for s in src.splitlines() if len(s.strip()) >= 12}
        else:
            only = solution_lines(src)
            inside |= only
            outside |= {s.strip() for s in src.splitlines()} - only
    return inside - outside
