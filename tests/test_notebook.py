"""GAN.ipynb: committed clean, nbgrader metadata complete, and it runs top to bottom in smoke mode."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from gan_utils.parts import NOTEBOOK_CELL_POINTS, PARTS
from instructor.notebook_grading import SKIP_TAG

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "GAN.ipynb"
#: every figure and grid the notebook writes, in images/
EXPECTED_IMAGES = (
    "toy_baseline.png", "toy_baseline_seeds.png", "toy_losses.png", "toy_saturating.png", "toy_remedy.png",
    "toy_remedy_seeds.png", "toy_comparison.png", "vanilla_final.png", "vanilla_history.png", "lsgan_final.png",
    "lsgan_history.png", "dcgan_final.png", "dcgan_history.png", "interpolation.png",
)


def nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_committed_without_outputs(notebook):
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_the_check_cells_are_the_table_of_parts(notebook):
    """One check cell per part, in the table's order, feedback only (the module grader gives the points)."""
    checks = [c for c in notebook.cells if nbgrader(c)["grade_id"].startswith("check_")]
    assert [nbgrader(c)["grade_id"] for c in checks] == [part.cell for part in PARTS]
    for part, cell in zip(PARTS, checks):
        assert cell.source.startswith(f'check("{part.name}")')
        assert "### BEGIN HIDDEN TESTS" in cell.source and nbgrader(cell)["locked"] and nbgrader(cell)["grade"]
        assert nbgrader(cell)["points"] == NOTEBOOK_CELL_POINTS


def test_one_autograding_guard(notebook):
    """Only the setup, the checks and the student's cell run under the grader: every other code cell carries the
    tag that the grader's source course empties, and no cell tests for autograding itself."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        meta = nbgrader(cell)
        runs_when_grading = meta["grade_id"] == "setup" or meta.get("grade") or meta.get("solution")
        assert (SKIP_TAG in cell.metadata.get("tags", [])) != bool(runs_when_grading), meta["grade_id"]
        assert "NBGRADER_EXECUTION" not in cell.source and "autograding" not in cell.source


def test_nbgrader_metadata_is_consistent(notebook):
    ids = [nbgrader(c)["grade_id"] for c in notebook.cells]
    assert len(ids) == len(notebook.cells) and len(set(ids)) == len(ids)
    answers = [c for c in notebook.cells if c.cell_type == "markdown" and nbgrader(c).get("grade")]
    assert len(answers) >= 4 and all(nbgrader(c)["solution"] and not nbgrader(c)["locked"] for c in answers)
    for cell in notebook.cells:
        meta = nbgrader(cell)
        assert meta["schema_version"] == 3
        if "### BEGIN SOLUTION" in cell.source:
            assert meta["solution"], meta["grade_id"]


def run_notebook(folder: Path, env: dict[str, str], timeout: int = 900, allow_errors: bool = True
                 ) -> nbformat.NotebookNode:
    """Execute folder/GAN.ipynb in place of a student; with allow_errors=False it stops at the first error."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(folder / "GAN.ipynb", as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                                resources={"metadata": {"path": str(folder)}})
        try:
            client.execute()
        except CellExecutionError:
            pass  # the error is in the failing cell's outputs
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def errors(nb) -> list[tuple[int, str, str]]:
    return [(i, o.ename, o.evalue) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error"]


def student_folder(tmp_path: Path) -> Path:
    """A copy of what the notebook needs, so that its images land in a temporary folder."""
    for name in ("GAN.ipynb", "gan_pytorch.py", "gan-checks.npz"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "gan_utils", tmp_path / "gan_utils", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "images").mkdir()
    return tmp_path


@pytest.mark.skipif(sys.platform == "win32", reason="the smoke run is for CI's Linux machines")
def test_solution_runs_top_to_bottom_in_smoke_mode(tmp_path):
    folder = student_folder(tmp_path)
    nb = run_notebook(folder, {"GAN_SMOKE": "1", "PYTHONPATH": str(folder)})
    assert not errors(nb), errors(nb)
    written = {p.name for p in (folder / "images").iterdir()}
    missing = [name for name in EXPECTED_IMAGES if name not in written]
    assert not missing, f"not written: {missing}; written: {sorted(written)}"
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "[FAIL]" not in printed and printed.count("[PASS]") >= len(PARTS)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    """The students' copy of the real notebook (``build_release``), built once for the tests below."""
    from instructor.release import build_release

    folder = tmp_path_factory.mktemp("released") / "release"
    build_release(folder)
    return folder


def test_released_notebook_points_only_to_what_students_get(released):
    """Followed in the students' copy, every pointer of the notebook leads somewhere: each file or folder it names
    ships, or is the student's own data folder, or lies in the course's ``bench/``, which its introduction says
    students do not get; a "see the README" names only what the students' README says; the rest of its pointers to
    a README are to the course's."""
    nb = nbformat.read(released / "GAN.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    named = set(re.findall(r"`((?:[\w.-]+/)+[\w.-]*|[\w-]+\.(?:py|npz|md|ipynb|txt))[` ]", text))
    assert {"gan_pytorch.py", "gan-checks.npz", "images/", "bench/"} <= named  # the search finds what is there
    for path in named:
        top = path.split("/")[0]
        if top == "bench":
            assert "your copy of the assignment has none of them" in " ".join(text.split())
        elif top != "data":
            assert (released / path).exists(), f"the notebook names {path}, which students do not get"
    readme = (released / "README.md").read_text()
    pointers = re.findall(r"see the README: ([^)]*)\)", text)
    assert pointers and all(name in readme for p in pointers for name in re.findall(r"`([^`]+)`", p))
    assert len(re.findall(r"\bREADME\b", text)) == len(pointers) + len(re.findall(r"course\s+README\b", text))


def test_release_stops_at_the_first_unimplemented_part(released):
    """The student version runs until its first check, which fails saying the function is not implemented."""
    nb = run_notebook(released, {"GAN_SMOKE": "1", "PYTHONPATH": str(released)}, allow_errors=False)
    failed = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              and any(o.output_type == "error" for o in c.outputs)]
    assert len(failed) == 1
    index, cell = failed[0]
    assert nbgrader(cell)["grade_id"] == "check_sample_noise"
    assert "### BEGIN HIDDEN TESTS" not in cell.source
    error = next(o for o in cell.outputs if o.output_type == "error")
    assert error.ename == "CheckFailed" and "sample_noise: not implemented yet" in error.evalue
    assert all(c.execution_count for c in nb.cells[:index] if c.cell_type == "code")


def test_grader_gives_the_solution_full_marks_with_the_real_notebook(released, tmp_path):
    """End to end: the released notebook beside the solution module, graded by the instructor tool."""
    import subprocess

    submission = tmp_path / "submissions" / "alice"
    submission.mkdir(parents=True)
    shutil.copy(ROOT / "gan_pytorch.py", submission)
    shutil.copy(released / "GAN.ipynb", submission)
    result = subprocess.run([sys.executable, "-m", "instructor", "check", str(submission)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    notebook_part = result.stdout.split("## Notebook")[1]
    for part in PARTS:
        assert f"[x] {part.cell}" in notebook_part
    assert "[ ]" not in notebook_part
