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
gradebook, the student's notebook and ``gan_pytorch.py``, kept with ``Autograde.exclude_overwriting``). The
grader then reads only the autograded notebook's JSON: every value in it is student-controlled, which is one
reason why the notebook's autograded cells give feedback and no points.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

ASSIGNMENT = "gan"
MAX_NOTEBOOK_BYTES = 20 * 2**20
SKIP_TAG = "no-autograde"
EMPTIED = "# not run when autograding (tag no-autograde)"

CONFIG = """c = get_config()
c.CourseDirectory.root = {root!r}
c.Autograde.exclude_overwriting = {{{assignment!r}: ["gan_pytorch.py"]}}
c.Autograde.create_student = True
c.Execute.timeout = {cell_timeout}
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
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB; clear its outputs")
    try:
        nb = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path.name} is not valid JSON ({exc}); it was damaged, resave it from Jupyter") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path.name} is JSON but not a Jupyter notebook (no cell list)")
    return nb


def layout_course(source: SourceCourse, scratch: Path, student: str, notebook: Path, module: Path | None) -> None:
    """The throw-away course the sandbox autogrades: a copy of the source course's gradebook, the student's files."""
    source.build()
    course = scratch / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    sub = course / "submitted" / student / ASSIGNMENT
    sub.mkdir(parents=True)
    (sub / "images").mkdir()
    shutil.copy(source.course / "gradebook.db", course / "gradebook.db")
    write_config(course)
    shutil.copy(notebook, sub / source.notebook_name)
    if module is not None:
        shutil.copy(module, sub / "gan_pytorch.py")


def _cell_failure(cell: dict) -> str:
    for out in cell.get("outputs", []):
        if not isinstance(out, dict):
            continue
        if out.get("output_type") == "error":
            value = str(out.get("evalue", "")).strip().splitlines()
            return f"{out.get('ename', 'Error')}: {' '.join(value)[:600]}"
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return "the cell wrote to stderr (nbgrader counts that as a failure): " + str(out.get("text", ""))[:300]
    return ""


def read_autograded(source: SourceCourse, scratch: Path, student: str) -> list[dict]:
    """Per graded cell of the source: passed or not and why (never the cell's source, which may hold hidden tests)."""
    path = scratch / "course" / "autograded" / student / ASSIGNMENT / source.notebook_name
    executed: dict[str, dict] = {}
    problem = ""
    if not path.is_file():
        problem = "nbgrader produced no autograded notebook (the kernel died, or the notebook could not run)"
    elif path.stat().st_size > 4 * MAX_NOTEBOOK_BYTES:
        problem = "the autograded notebook is too large"
    else:
        try:
            nb = json.loads(path.read_bytes())
            for cell in nb.get("cells", []):
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                if isinstance(grade_id, str):
                    executed[grade_id] = cell
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            problem = "the autograded notebook is not valid JSON"
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
