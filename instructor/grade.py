"""Grade a folder of submissions: sandboxed probes, judged here against the hidden references.

Per submission, the module is probed in one sandboxed process (``sandbox.py`` starts ``sandbox_child.py``) on the
inputs of ``instructor/hidden-checks.npz``; only plain arrays come back (``np.load(allow_pickle=False)``, then
validated); ``gan_utils.judges.judge`` compares them with the hidden references here, and each part's points
(``gan_utils.parts``) are split over its sub-tests. The notebook, when a source notebook is given, is autograded
by nbgrader in a second sandboxed process (``notebook_grading.py``). ``reports.py`` writes what comes out.

Results are cached per student in ``OUT/results/STUDENT.json`` under a key made of the submission's bytes and
the grader's own inputs, so a rerun grades only what changed (``force`` regrades everything).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gan_utils.judges import Outcome, judge
from gan_utils.parts import MODULE_POINTS, PART, PARTS
from gan_utils.references import Cases, flatten, inputs_of, load_cases
from instructor import notebook_grading, sandbox
from instructor.reports import GRADER_VERSION, StudentResult, TestResult, write_gradebook, write_student
from instructor.submissions import Submission, discover

ROOT = Path(__file__).resolve().parent.parent
HIDDEN_CHECKS = Path(__file__).resolve().parent / "hidden-checks.npz"
STRING_KEYS = {"kind", "error", "error_type", "image_error"}
MAX_OUTPUT_BYTES = 64 * 2**20


# --------------------------------------------------------------------------------------------------
# The grading context, built once per run


@dataclass
class Context:
    """What every submission's grading shares; built once per run by ``make_context``."""

    work: Path
    runtime: Path
    cases: Cases
    inputs: bytes
    limits: sandbox.Limits
    hide: list[Path]
    fingerprint: str
    course: notebook_grading.SourceCourse | None = None


def make_context(work: Path, hidden: Path = HIDDEN_CHECKS, notebook: Path | None = None,
                 limits: sandbox.Limits | None = None, hide: list[Path] = ()) -> Context:
    """Copy the student-side runtime (sandbox_child.py, gan_utils, public checks) into ``work``; load references."""
    runtime = work / "runtime"
    shutil.copytree(ROOT / "gan_utils", runtime / "gan_utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "gan-checks.npz", runtime / "gan-checks.npz")
    shutil.copy(Path(__file__).with_name("sandbox_child.py"), runtime / "sandbox_child.py")
    for root, _dirs, files in os.walk(runtime):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    cases = load_cases(hidden)
    buf = io.BytesIO()
    np.savez(buf, **flatten({part: inputs_of(case) for part, case in cases.items()}))
    limits = limits or sandbox.Limits()
    points = {p.name: (p.points, p.subtests, p.reported) for p in PARTS}
    h = hashlib.sha256(f"{GRADER_VERSION}{json.dumps(points, sort_keys=True)}{asdict(limits)}".encode())
    h.update(hidden.read_bytes())
    course = None
    if notebook is not None:
        course = notebook_grading.SourceCourse(notebook, work)
        h.update(notebook.read_bytes())
    return Context(work, runtime, cases, buf.getvalue(), limits,
                   [ROOT, work, *hide, Path("/root"), Path("/home")], h.hexdigest(), course)


# --------------------------------------------------------------------------------------------------
# Module grading


def read_outputs(path: Path) -> dict[str, np.ndarray]:
    """Load one part's outputs written by the sandbox, keeping only plain numeric (or known string) arrays."""
    if path.stat().st_size > MAX_OUTPUT_BYTES:
        raise ValueError("outputs too large")
    with zipfile.ZipFile(path) as z:
        if sum(i.file_size for i in z.infolist()) > 4 * MAX_OUTPUT_BYTES:
            raise ValueError("outputs too large")
    out: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            try:
                arr = data[key]
            except ValueError:  # an object array: pickles are refused
                continue
            if type(arr) is not np.ndarray or arr.dtype.fields is not None:
                continue
            if key in STRING_KEYS:
                if arr.dtype.kind == "U" and arr.size == 1:
                    out[key] = np.array(str(arr.reshape(()))[:2000])
            elif arr.dtype.kind in "biuf":
                out[key] = arr
    return out


def _outcomes_to_results(name: str, outcomes: list[Outcome]) -> list[TestResult]:
    each = PART[name].subtest_points
    return [TestResult(name, o.test, each if o.passed else 0.0, each, "" if o.passed else o.message, o.note)
            for o in outcomes]


def _failed(name: str, reason: str) -> list[TestResult]:
    part = PART[name]
    return [TestResult(name, t, 0.0, part.subtest_points, reason) for t in part.subtests]


def _read_text(path: Path, limit: int = 200) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def grade_module(module: Path | None, ctx: Context, scratch_root: Path, log_dir: Path, slot: int
                 ) -> tuple[list[TestResult], list[str]]:
    """All parts of one ``gan_pytorch.py``: one sandboxed run, plus reruns past a part that killed the process."""
    if module is None:
        reason = "gan_pytorch.py is missing from the submission"
        return [r for part in PARTS for r in _failed(part.name, reason)], [reason]
    results: dict[str, list[TestResult]] = {}
    notes: list[str] = []
    remaining = [part.name for part in PARTS]
    for attempt in range(3):
        scratch = scratch_root / f"module{attempt}"
        scratch.mkdir()
        shutil.copy(module, scratch / "gan_pytorch.py")
        (scratch / "inputs.npz").write_bytes(ctx.inputs)
        run = sandbox.run_sandboxed("module", scratch, ctx.runtime, log_dir, slot, ctx.limits, ctx.hide,
                                 {"parts": remaining})
        out = scratch / "out"
        import_error = out / "_import.npz"
        if import_error.is_file():
            try:
                why = str(read_outputs(import_error).get("error", "unknown error"))
            except Exception:
                why = "unknown error"
            reason = f"gan_pytorch.py cannot be imported: {why}"
            notes.append(reason)
            for part in remaining:
                results[part] = _failed(part, reason)
            break
        for part in remaining:
            path = out / f"{part}.npz"
            if path.is_file() and not path.is_symlink():
                try:
                    outputs = read_outputs(path)
                except Exception as exc:  # garbage written where outputs belong: that part fails
                    results[part] = _failed(part, f"{PART[part].label}: its outputs were unreadable "
                                                  f"({type(exc).__name__})")
                    continue
                results[part] = _outcomes_to_results(part, judge(part, outputs, ctx.cases[part]))
        remaining = [p for p in remaining if p not in results]
        if not remaining:
            break
        why = run.describe(ctx.limits) or (f"the grading process exited with code {run.returncode} before "
                                           "reporting (os._exit or sys.exit in the student code?)")
        stage = _read_text(out / "_stage")
        if stage == "import" or stage not in remaining:
            reason = f"gan_pytorch.py could not be imported: {why}" if stage in ("import", "") else why
            notes.append(reason)
            for part in remaining:
                results[part] = _failed(part, reason)
            break
        notes.append(f"{PART[stage].label}: {why}")
        results[stage] = _failed(stage, f"{PART[stage].label}: {why}")
        remaining.remove(stage)
    for part in remaining:
        results.setdefault(part, _failed(part, "not checked: the grading process kept dying"))
    return [r for part in PARTS for r in results[part.name]], notes


# --------------------------------------------------------------------------------------------------
# One submission, and the run


def grade_notebook(sub: Submission, ctx: Context, scratch_root: Path, log_dir: Path, slot: int
                   ) -> tuple[list[dict], str]:
    course = ctx.course
    assert course is not None
    path = sub.find_notebook(course.notebook_name)
    try:
        notebook_grading.read_student_notebook(path)
    except notebook_grading.NotebookError as exc:
        rows = [{"grade_id": c.grade_id, "points": c.points, "auto": c.auto, "passed": False if c.auto else None,
                 "message": str(exc)} for c in course.cells]
        return rows, str(exc)
    scratch = scratch_root / "notebook"
    scratch.mkdir()
    notebook_grading.layout_course(course, scratch, sub.student, path, sub.find("gan_pytorch.py"))
    limits = ctx.limits
    run = sandbox.run_sandboxed("notebook", scratch, ctx.runtime, log_dir, slot, limits, ctx.hide,
                             {"assignment": notebook_grading.ASSIGNMENT, "student": sub.student, "loopback": True},
                             env={"PYTHONPATH": str(ctx.runtime), "NBGRADER_EXECUTION": "autograde",
                                  "JUPYTER_RUNTIME_DIR": str(scratch / "tmp")})
    rows = notebook_grading.read_autograded(course, scratch, sub.student)
    why = run.describe(limits)
    return rows, f"notebook autograding: {why}" if why else ""


def grade_submission(sub: Submission, ctx: Context, slot: int) -> StudentResult:
    """Grade one submission; a problem with it becomes reasons in its result, never an exception."""
    start = time.monotonic()
    if sub.error:
        tests = [r for part in PARTS for r in _failed(part.name, sub.error)]
        return StudentResult(sub.student, "", tests, [sub.error])
    scratch_root = Path(tempfile.mkdtemp(prefix=f"{sub.student}.", dir=ctx.work))
    os.chmod(scratch_root, 0o711)
    log_dir = scratch_root / "logs"
    log_dir.mkdir(mode=0o700)
    try:  # the notebook (its own sandbox, same uid) runs beside the module probe: one submission, two cores
        with ThreadPoolExecutor(max_workers=1) as pool:
            notebook = pool.submit(grade_notebook, sub, ctx, scratch_root, log_dir, slot) if ctx.course else None
            tests, notes = grade_module(sub.find("gan_pytorch.py"), ctx, scratch_root, log_dir, slot)
            result = StudentResult(sub.student, "", tests, notes)
            if notebook is not None:
                result.notebook, result.notebook_error = notebook.result()
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    result.seconds = round(time.monotonic() - start, 2)
    return result


def cache_key(sub: Submission, ctx: Context) -> str:
    return hashlib.sha256(f"{ctx.fingerprint}:{sub.digest}".encode()).hexdigest()


def grade_all(submissions: Path, out: Path, jobs: int = 1, force: bool = False, notebook: Path | None = None,
              limits: sandbox.Limits | None = None, log: Callable[[str], None] = print, hide: list[Path] = ()
              ) -> list[StudentResult]:
    """Grade every submission in ``submissions`` into ``out``; returns the results (cached or new)."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    work = Path(tempfile.mkdtemp(prefix="gan-grading."))
    os.chmod(work, 0o711)
    try:
        subs = discover(submissions, work / "unpacked")
        level = sandbox.isolation()
        log(f"grading {len(subs)} submissions, --jobs {jobs}, isolation: {level}"
            + ("" if level == "namespaces" else " (WEAKER than namespaces: see instructor/README-grading.md)"))
        ctx = make_context(work, notebook=notebook, limits=limits, hide=[submissions.resolve(), out.resolve(), *hide])
        slots: queue.Queue[int] = queue.Queue()
        for i in range(max(1, jobs)):
            slots.put(i)

        def one(sub: Submission) -> StudentResult:
            key = cache_key(sub, ctx)
            path = out / "results" / f"{sub.student}.json"
            if not force and not sub.error and path.is_file():
                try:
                    cached = StudentResult.from_json(path.read_text())
                    if cached.key == key and not cached.grader_error:
                        log(f"{sub.student}: unchanged, {cached.score:g}/{MODULE_POINTS:g} (cached)")
                        return cached
                except (ValueError, KeyError, TypeError):
                    pass
            slot = slots.get()
            try:
                result = grade_submission(sub, ctx, slot)
            except Exception as exc:  # a grader bug on one submission must not stop the others
                reason = f"internal grader error: {type(exc).__name__}: {exc}"
                result = StudentResult(sub.student, "", [r for p in PARTS for r in _failed(p.name, reason)],
                                       [reason], grader_error=reason)
            finally:
                slots.put(slot)
            result.key = key if not sub.error else ""
            write_student(out, result)
            log(f"{sub.student}: {result.score:g}/{MODULE_POINTS:g} in {result.seconds:.1f} s"
                + (f" ({result.notes[0][:120]})" if result.notes else ""))
            return result

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = list(pool.map(one, subs))
        write_gradebook(out / "gradebook.csv", results, ctx.course)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


