"""The notebook side, through nbgrader: the student version of the notebook, and its autograding.

Conventions a notebook must follow (GAN.ipynb does): nbgrader cell metadata; autograded test cells with
``grade_id`` ``check_<part>`` calling ``check("<part>")``, hidden tests between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``; manually graded answers are markdown cells with ``grade: true`` and ``solution: true``
(``grade_id`` ``q_<name>``); cells that train or evaluate carry the tag ``no-autograde``.

The one autograding guard: the gradebook of the ``SourceCourse`` is made from a copy of the source notebook in
which every ``no-autograde`` cell is emptied. nbgrader's autograde replaces each locked cell of a submission with
the gradebook's source, so those cells run as empty cells, and only the setup, the checks and the student's own
cells take time.

Autograding runs ``nbgrader autograde`` inside the sandbox on a throw-away course (a copy of the source course's
gradebook, the student's notebook and ``gan_pytorch.py``, kept with ``Autograde.exclude_overwriting``), with the
kernel under another uid than nbgrader (``sandbox_notebook.py``). The grader counts a cell as run only if
nbgrader exited 0 and the notebook it wrote (copied by nbgrader's process into a folder the kernel cannot reach)
gives the cell an execution count and outputs. The outputs themselves come from the student's kernel, which
could forge them: one reason why the notebook's autograded cells give feedback and no points.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from instructor.safe_io import UnsafeFile, clean_text, read_regular

ASSIGNMENT = "gan"
MAX_NOTEBOOK_BYTES = 20 * 2**20
SKIP_TAG = "no-autograde"
EMPTIED = "# not run when autograding (tag no-autograde)"

CONFIG = """c = get_config()
c.CourseDirectory.root = {root!r}
c.Autograde.exclude_overwriting = {{{assignment!r}: ["gan_pytorch.py"]}}
c.Autograde.create_student = True
c.Execute.timeout = {cell_timeout}
c.Execute.startup_timeout = 60
c.LimitOutput.max_lines = 200
"""


class NotebookError(ValueError):
    """The submitted notebook cannot be graded (missing, not JSON, not a notebook)."""


@dataclass(frozen=True)
class GradeCell:
    """A graded cell of the source notebook: autograded tests (``auto``) or a manually graded answer."""

    grade_id: str
    points: float
    auto: bool


class SourceCourse:
    """The nbgrader course made from the source notebook (its ``no-autograde`` cells emptied), whose gradebook every
    student's autograde copies; built on first use, once per run."""

    def __init__(self, source: Path, work: Path) -> None:
        self.source, self.course, self.notebook_name = source, work / "source-course", source.name
        self.cells = grade_cells(json.loads(source.read_text()))
        self._lock = threading.Lock()
        self._built = False

    def build(self) -> None:
        with self._lock:
            if not self._built:
                emptied = self.course.parent / "source-notebook" / self.notebook_name
                emptied.parent.mkdir(parents=True, exist_ok=True)
                emptied.write_text(json.dumps(without_skipped_cells(json.loads(self.source.read_text())), indent=1))
                generate_assignment(emptied, self.course)
                self._built = True


def without_skipped_cells(notebook: dict) -> dict:
    """The notebook with the source of every cell tagged ``no-autograde`` replaced by a comment."""
    for cell in notebook.get("cells", []):
        if SKIP_TAG in cell.get("metadata", {}).get("tags", []):
            cell["source"] = EMPTIED
    return notebook


def write_config(course: Path, cell_timeout: int = 120) -> None:
    (course / "nbgrader_config.py").write_text(CONFIG.format(root=str(course), assignment=ASSIGNMENT,
                                                             cell_timeout=cell_timeout))


def grade_cells(notebook: dict) -> tuple[GradeCell, ...]:
    cells = []
    for cell in notebook.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            cells.append(GradeCell(str(meta["grade_id"]), float(meta.get("points", 0)),
                                   cell.get("cell_type") == "code"))
    return tuple(cells)


def generate_assignment(source_notebook: Path, course: Path) -> Path:
    """``nbgrader generate_assignment`` on ``source_notebook`` in a new course dir; returns the student version."""
    if course.exists():
        shutil.rmtree(course)
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(source_notebook, course / "source" / ASSIGNMENT / source_notebook.name)
    write_config(course)
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--force",
                           "--log-level=WARN"], cwd=course, capture_output=True, text=True)
    released = course / "release" / ASSIGNMENT / source_notebook.name
    if proc.returncode != 0 or not released.is_file():
        raise RuntimeError(f"nbgrader generate_assignment failed on {source_notebook}:\n{proc.stderr[-3000:]}")
    return released


def read_student_notebook(path: Path | None) -> dict:
    """Parse the submitted notebook here, in the grader, only as JSON; raise NotebookError with a clear reason."""
    if path is None:
        raise NotebookError("the notebook is missing from the submission")
    try:
        data = read_regular(path.parent, path.name, MAX_NOTEBOOK_BYTES)
    except UnsafeFile as exc:
        too_large = f"larger than {MAX_NOTEBOOK_BYTES}" in str(exc)
        raise NotebookError(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB; clear its outputs"
                            if too_large else f"{path.name} cannot be read: {exc}") from None
    try:
        nb = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path.name} is not valid JSON ({exc}); it was damaged, resave it from Jupyter") from None
    except RecursionError:
        raise NotebookError(f"{path.name} is not a Jupyter notebook (its JSON is nested far too deeply)") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path.name} is JSON but not a Jupyter notebook (no cell list)")
    if not all(isinstance(c, dict) for c in nb["cells"]):
        raise NotebookError(f"{path.name} is JSON but not a Jupyter notebook (a cell is not an object)")
    return nb


def layout_course(source: SourceCourse, scratch: Path, student: str, notebook: Path, module: Path | None,
                  driver_uid: int | None = None, kernel_uid: int | None = None, cell_timeout: int = 30) -> None:
    """The throw-away course the sandbox autogrades, laid out so that the kernel cannot touch nbgrader's files.

    ``scratch/course`` (nbgrader's: the gradebook, the submitted copy and the source are private to the driver
    uid; the kernel may only walk to the autograded folder and read the student's files there),
    ``scratch/driver`` (the driver's home, where it writes its result; private), ``scratch/kernel`` (the kernel's
    home; private to the kernel uid).
    """
    source.build()
    course = scratch / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    sub = course / "submitted" / student / ASSIGNMENT
    sub.mkdir(parents=True)
    (sub / "images").mkdir()
    shutil.copy(source.course / "gradebook.db", course / "gradebook.db")
    write_config(course, cell_timeout)
    shutil.copy(notebook, sub / source.notebook_name)
    if module is not None:
        shutil.copy(module, sub / "gan_pytorch.py")
    for home in ("driver", "kernel"):
        for sub_dir in ("tmp", "runtime", "config", "data"):
            (scratch / home / sub_dir).mkdir(parents=True, exist_ok=True)
    modes = {course: 0o711, course / "source": 0o700, course / "submitted": 0o700, course / "gradebook.db": 0o600,
             course / "nbgrader_config.py": 0o600, scratch / "driver": 0o700, scratch / "kernel": 0o700}
    for root, dirs, files in os.walk(scratch):
        for name in [root, *(os.path.join(root, f) for f in dirs + files)]:
            path = Path(name)
            mode = modes.get(path, 0o755 if path.is_dir() else 0o644)
            os.chmod(path, mode)
            owner = kernel_uid if _under(path, scratch / "kernel") else driver_uid if path != scratch else None
            if owner is not None:
                os.lchown(path, owner, owner)
    os.chmod(scratch, 0o755)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _outputs(cell: dict) -> list | None:
    outputs = cell.get("outputs")
    return outputs if isinstance(outputs, list) else None


def _cell_failure(cell: dict) -> str:
    """Why an executed graded cell failed ('' if it passed); never the cell's source."""
    outputs = _outputs(cell)
    if not isinstance(cell.get("execution_count"), int) or isinstance(cell.get("execution_count"), bool) \
            or not outputs:
        return "the cell did not run (no execution count or no output in the autograded notebook)"
    for out in outputs:
        if not isinstance(out, dict):
            return "the cell's outputs are malformed"
        if out.get("output_type") == "error":
            value = clean_text(out.get("evalue", "")).strip().splitlines()
            return f"{clean_text(out.get('ename', 'Error'), 100)}: {' '.join(value)[:600]}"
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return ("the cell wrote to stderr (nbgrader counts that as a failure): "
                    + clean_text(out.get("text", ""), 300))
    return ""


def parse_autograded(data: bytes) -> dict[str, dict]:
    """grade_id -> cell, from the autograded notebook's bytes; NotebookError if they are not a notebook."""
    try:
        nb = json.loads(data)
    except (ValueError, RecursionError):
        raise NotebookError("the autograded notebook is not valid JSON") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise NotebookError("the autograded notebook has no cell list")
    executed: dict[str, dict] = {}
    for cell in cells:
        meta = cell.get("metadata") if isinstance(cell, dict) else None
        nbg = meta.get("nbgrader") if isinstance(meta, dict) else None
        grade_id = nbg.get("grade_id") if isinstance(nbg, dict) else None
        if isinstance(grade_id, str):
            executed.setdefault(grade_id, cell)
    return executed


def read_autograded(source: SourceCourse, data: bytes | None, problem: str = "") -> list[dict]:
    """Per graded cell of the source: passed or not and why (never the cell's source, which may hold hidden tests).

    ``data`` is the autograded notebook as nbgrader wrote it (None when it wrote none); ``problem``, when set, is
    why no cell counts as run (nbgrader failed, was stopped, refused the notebook). A cell counts as passed only
    if it has an execution count, outputs, and no error or stderr output.
    """
    executed: dict[str, dict] = {}
    if not problem:
        if data is None:
            problem = "nbgrader produced no autograded notebook (the kernel died, or the notebook could not run)"
        else:
            try:
                executed = parse_autograded(data)
            except NotebookError as exc:
                problem = str(exc)
    rows = []
    for gc in source.cells:
        row = {"grade_id": gc.grade_id, "points": gc.points, "auto": gc.auto}
        if gc.auto:
            cell = executed.get(gc.grade_id)
            why = problem or ("the cell is missing from the notebook" if cell is None else _cell_failure(cell))
            row.update(passed=not why, message=why)
        else:
            row.update(passed=None, message="graded by hand")
        rows.append(row)
    return rows


_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Interrupt))(?::\s*(.*))?$")


def nbgrader_reason(log: list[str]) -> str:
    """nbgrader's own reason for failing, from its log lines, in words a student can act on."""
    lines = [clean_text(line).strip() for entry in log if isinstance(entry, str) for line in entry.splitlines()]
    found = ""
    for line in lines:
        text = line.split(": ", 1)[1] if line.startswith(("ERROR: ", "WARNING: ", "CRITICAL: ")) else line
        match = _EXCEPTION_LINE.match(text.strip())
        if match and match.group(1) not in ("NbGraderException",):
            found = f"{match.group(1)}: {match.group(2) or ''}".strip().rstrip(":")
            if "checksum" in found.lower():
                break
    if "Inconsistent checksums" in found:
        cell = found.rsplit(" ", 1)[-1]
        return (f"nbgrader refused the notebook: {found.split(': ', 1)[1]} (the locked cell {cell}, or its "
                "metadata, was changed: copy it back from the released notebook)")
    if "DeadKernelError" in found or "Kernel died" in found:
        return "the notebook's kernel died while it ran (os._exit, a crash, or running out of memory)"
    if any("became unresponsive" in line for line in lines):
        return "the notebook's kernel became unresponsive and could not be interrupted (an endless loop?)"
    if found:
        return f"nbgrader could not autograde the notebook: {found[:400]}"
    errors = [line for line in lines if line.startswith("ERROR: ")]
    return f"nbgrader could not autograde the notebook: {errors[0][7:][:400]}" if errors else \
        "nbgrader could not autograde the notebook (no reason given)"
