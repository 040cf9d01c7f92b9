"""Grade a folder of submissions: sandboxed probes, judged here against the hidden references.

Per submission, the module is probed in one sandboxed run (``sandbox.py`` asks the warm template of
``sandbox_child.py`` for it) on the inputs of ``instructor/hidden-checks.npz``; only plain arrays come back
(read without following links or blocking, ``np.load(allow_pickle=False)``, then validated);
``gan_utils.judges.judge`` compares them with the hidden references here, and each part's points
(``gan_utils.parts``) are split over its sub-tests. The notebook, when a source notebook is given, is autograded
by nbgrader in a second sandboxed run beside it (``sandbox_notebook.py``, ``notebook_grading.py``). Both runs of
a submission share its cgroup. ``reports.py`` writes what comes out.

Results are cached per student in ``OUT/results/STUDENT.json`` under a key made of the submission's bytes and
the grader's own inputs, so a rerun grades only what changed (``force`` regrades everything).

Whatever a submission does, the run finishes: every student gets a row and a reason; a problem with one
submission (or a grader bug on it) costs only that submission, and only the part it broke.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shutil
import stat
import tempfile
import threading
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
from instructor.reports import GRADER_VERSION, StudentResult, TestResult, output_paths, write_gradebook, write_student
from instructor.safe_io import UnsafeFile, clean_text, read_regular, read_text
from instructor.submissions import Submission, discover

ROOT = Path(__file__).resolve().parent.parent
HIDDEN_CHECKS = Path(__file__).resolve().parent / "hidden-checks.npz"
STRING_KEYS = {"kind", "error", "error_type", "image_error"}
MAX_OUTPUT_BYTES = 64 * 2**20
MAX_RESULT_BYTES = 2**20


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
    sandboxes: sandbox.Sandboxes
    fingerprint: str
    course: notebook_grading.SourceCourse | None = None

    def close(self) -> None:
        """Stop the template (and with it any run still in flight) and remove the cgroups; safe to call twice."""
        self.sandboxes.close()


def fingerprint(hidden: Path, notebook: Path | None, limits: sandbox.Limits) -> str:
    """What a cached result depends on besides the submission: the grader's version, the parts' points, the
    limits, the hidden checks, the sandbox code and the source notebook."""
    points = {p.name: (p.points, p.subtests, p.reported) for p in PARTS}
    h = hashlib.sha256(f"{GRADER_VERSION}{json.dumps(points, sort_keys=True)}{asdict(limits)}".encode())
    h.update(hidden.read_bytes())
    for name in sandbox.RUNTIME_FILES:
        h.update(Path(__file__).with_name(name).read_bytes())
    if notebook is not None:
        h.update(notebook.read_bytes())
    return h.hexdigest()


def make_context(work: Path, hidden: Path = HIDDEN_CHECKS, notebook: Path | None = None,
                 limits: sandbox.Limits | None = None, secrets: list[Path] = (), jobs: int = 1) -> Context:
    """Copy the student-side runtime into ``work``, load the references, start the warm sandbox template."""
    runtime = work / "runtime"
    sandbox.copy_runtime(ROOT, runtime)
    cases = load_cases(hidden)
    buf = io.BytesIO()
    np.savez(buf, **flatten({part: inputs_of(case) for part, case in cases.items()}))
    limits = limits or sandbox.Limits()
    course = notebook_grading.SourceCourse(notebook, work) if notebook is not None else None
    boxes = sandbox.Sandboxes(work, runtime, limits, [ROOT, work, hidden, *secrets, Path("/root"), Path("/home")],
                              notebook=course is not None, jobs=jobs)
    try:  # nbgrader builds the source course while the template warms up
        if course is not None:
            course.build()
        boxes.template.wait_ready()
    except BaseException:
        boxes.close()
        raise
    return Context(work, runtime, cases, buf.getvalue(), limits, boxes, fingerprint(hidden, notebook, limits), course)


# --------------------------------------------------------------------------------------------------
# Module grading


def read_outputs(root: Path, relative: str) -> dict[str, np.ndarray]:
    """Load one part's outputs written by the sandbox under ``root`` (read safely: no link followed, no FIFO
    blocked on, no file over the size cap), keeping only plain numeric (or known string) arrays."""
    data = read_regular(root, relative, MAX_OUTPUT_BYTES)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        if sum(i.file_size for i in z.infolist()) > 4 * MAX_OUTPUT_BYTES:
            raise ValueError("outputs too large")
    out: dict[str, np.ndarray] = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        for key in npz.files:
            try:
                arr = npz[key]
            except ValueError:  # an object array: pickles are refused
                continue
            if type(arr) is not np.ndarray or arr.dtype.fields is not None:
                continue
            if key in STRING_KEYS:
                if arr.dtype.kind == "U" and arr.size == 1:
                    out[key] = np.array(clean_text(str(arr.reshape(())), 2000))
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


def _crash(name: str, outputs: dict[str, np.ndarray]) -> str:
    """'PART: what went wrong' when the part's code raised or ran out of time (not when it is not written yet)."""
    kind = str(outputs.get("error_type", ""))
    if not kind or kind == "NotImplementedError":
        return ""
    return f"{PART[name].label}: " + ("ran out of time: " if kind == "Timeout" else "raised ") + \
        str(outputs.get("error", kind))[:200]


def _folder_kind(path: Path) -> str:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    return "a folder" if stat.S_ISDIR(mode) else "a symlink" if stat.S_ISLNK(mode) else "something else"


@dataclass
class ModuleGrade:
    """What grading one ``gan_pytorch.py`` gives."""

    tests: list[TestResult]
    notes: list[str]
    crashes: list[str]
    cpu_s: float = 0.0


def grade_module(module: Path | None, ctx: Context, scratch_root: Path, log_dir: Path, slot: int,
                 cgroup: sandbox.Cgroup | None = None) -> ModuleGrade:
    """All parts of one ``gan_pytorch.py``: one sandboxed run, plus reruns past a part that killed the process."""
    if module is None:
        reason = "gan_pytorch.py is missing from the submission"
        return ModuleGrade([r for part in PARTS for r in _failed(part.name, reason)], [reason], [])
    results: dict[str, list[TestResult]] = {}
    notes: list[str] = []
    crashes: list[str] = []
    cpu = 0.0
    remaining = [part.name for part in PARTS]
    for attempt in range(3):
        scratch = scratch_root / f"module{attempt}"
        scratch.mkdir()
        (scratch / "tmp").mkdir()
        shutil.copy(module, scratch / "gan_pytorch.py")
        (scratch / "inputs.npz").write_bytes(ctx.inputs)
        uid = sandbox.uids(slot)["probe"] if ctx.sandboxes.level != "rlimits" else None
        if uid is not None:
            for root, dirs, files in os.walk(scratch):
                for name in [root, *(os.path.join(root, f) for f in dirs + files)]:
                    os.lchown(name, uid, uid)
            os.chmod(scratch, 0o700)
        run = ctx.sandboxes.run("module", scratch, log_dir, slot, {"parts": remaining}, cgroup)
        cpu += run.cpu_s
        if (kind := _folder_kind(scratch / "out")) not in ("a folder", "missing"):
            reason = f"the submission replaced the grader's output folder with {kind}: nothing it reported is read"
            notes.append(reason)
            for part in remaining:
                results[part] = _failed(part, reason)
            break
        try:
            why_import = str(read_outputs(scratch, "out/_import.npz").get("error", "unknown error"))
        except UnsafeFile as exc:
            why_import = "" if "is missing" in str(exc) else f"its error report was unreadable ({exc})"
        except Exception as exc:
            why_import = f"its error report was unreadable ({type(exc).__name__})"
        if why_import:
            reason = f"gan_pytorch.py cannot be imported: {why_import}"
            notes.append(reason)
            for part in remaining:
                results[part] = _failed(part, reason)
            break
        for part in remaining:
            try:
                outputs = read_outputs(scratch, f"out/{part}.npz")
            except UnsafeFile as exc:
                if "is missing" in str(exc):
                    continue  # not reached: the process died before
                results[part] = _failed(part, f"{PART[part].label}: its outputs were unreadable ({exc})")
                continue
            except Exception as exc:  # garbage written where outputs belong: that part fails
                results[part] = _failed(part, f"{PART[part].label}: its outputs were unreadable "
                                              f"({type(exc).__name__})")
                continue
            results[part] = _outcomes_to_results(part, judge(part, outputs, ctx.cases[part]))
            if crash := _crash(part, outputs):
                crashes.append(crash)
        remaining = [p for p in remaining if p not in results]
        if not remaining:
            break
        why = run.describe(ctx.limits) or (f"the grading process exited with code {run.returncode} before "
                                           "reporting (os._exit or sys.exit in the student code?)")
        stage = read_text(scratch, "out/_stage", 200)
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
    return ModuleGrade([r for part in PARTS for r in results[part.name]], notes, crashes, cpu)


# --------------------------------------------------------------------------------------------------
# Notebook grading


def _notebook_failed(course: notebook_grading.SourceCourse, reason: str) -> list[dict]:
    return [{"grade_id": c.grade_id, "points": c.points, "auto": c.auto, "passed": False if c.auto else None,
             "message": reason if c.auto else "graded by hand"} for c in course.cells]


def read_driver_result(scratch: Path, owner: int | None) -> dict:
    """The driver's ``result.json`` (nbgrader's exit status and log), or {} if it is missing, not a regular file of
    the driver's, or not a JSON object (damaged, or nested so deeply that parsing it would recurse too far)."""
    try:
        result = json.loads(read_regular(scratch, "driver/result.json", MAX_RESULT_BYTES, owner))
    except (OSError, ValueError, RecursionError):
        return {}
    return result if isinstance(result, dict) else {}


def grade_notebook(sub: Submission, ctx: Context, scratch_root: Path, log_dir: Path, slot: int,
                   cgroup: sandbox.Cgroup | None = None) -> tuple[list[dict], str, float]:
    """nbgrader autograde of the student's notebook in its sandbox: (rows per graded cell, problem, CPU s).

    A cell counts as run only if nbgrader exited 0 and the autograded notebook, which nbgrader's process (not the
    kernel's) wrote into its private folder, gives it an execution count and outputs.
    """
    course = ctx.course
    assert course is not None
    path = sub.find_notebook(course.notebook_name)
    try:
        notebook_grading.read_student_notebook(path)
    except notebook_grading.NotebookError as exc:
        return _notebook_failed(course, str(exc)), str(exc), 0.0
    scratch = scratch_root / "notebook"
    scratch.mkdir()
    level = ctx.sandboxes.level
    ids = sandbox.uids(slot) if level != "rlimits" else {"driver": None, "kernel": None}
    cell_timeout = max(1, int(min(ctx.limits.cell_timeout_s, ctx.limits.wall_s)))
    notebook_grading.layout_course(course, scratch, sub.student, path, sub.find("gan_pytorch.py"),
                                   ids["driver"], ids["kernel"], cell_timeout)
    base = {"LANG": "C.UTF-8", "NBGRADER_EXECUTION": "autograde", "MPLBACKEND": "Agg"}
    homes = {who: scratch / who for who in ("driver", "kernel")}
    env_of = {who: {"HOME": str(h), "TMPDIR": str(h / "tmp"), "JUPYTER_RUNTIME_DIR": str(h / "runtime"),
                    "JUPYTER_CONFIG_DIR": str(h / "config"), "JUPYTER_DATA_DIR": str(h / "data"),
                    "IPYTHONDIR": str(h / "config"), "MPLCONFIGDIR": str(h / "config"), **base}
              for who, h in homes.items()}
    extra = {"assignment": notebook_grading.ASSIGNMENT, "student": sub.student, "loopback": True,
             "course": str(scratch / "course"), "notebook_name": course.notebook_name,
             "driver_home": str(homes["driver"]), "kernel_home": str(homes["kernel"]),
             "driver_env": {**env_of["driver"], "USER": "grader"},
             "kernel_env": {**env_of["kernel"], "USER": "student", **(
                 {sandbox.DATA_DIR_ENV: ctx.sandboxes.data_dir} if ctx.sandboxes.data_dir else {})}}
    run = ctx.sandboxes.run("notebook", scratch, log_dir, slot, extra, cgroup, env={"HOME": str(scratch)})
    owner = ids["driver"]
    result = read_driver_result(scratch, owner)
    why = run.describe(ctx.limits)
    if run.timed_out:
        problem = f"notebook autograding {why}"
    elif run.returncode != 0 or result.get("exit") != 0:
        log = result.get("log") if isinstance(result.get("log"), list) else []
        problem = notebook_grading.nbgrader_reason(log) if log else \
            f"notebook autograding failed: {why or 'nbgrader did not report'}"
        if run.oom:
            problem = f"notebook autograding {why}"
    else:
        problem = ""
    data = None
    if not problem:
        try:
            data = read_regular(scratch, "driver/autograded.ipynb", 4 * notebook_grading.MAX_NOTEBOOK_BYTES, owner)
        except UnsafeFile as exc:
            problem = f"the autograded notebook cannot be read ({exc})"
    return notebook_grading.read_autograded(course, data, problem), problem, run.cpu_s


# --------------------------------------------------------------------------------------------------
# One submission, and the run


def grade_submission(sub: Submission, ctx: Context, slot: int) -> StudentResult:
    """Grade one submission; a problem with it becomes reasons in its result, never an exception. The notebook
    cannot cost the module anything: an error on its side (even a grader bug) is reported as a notebook problem."""
    start = time.monotonic()
    if sub.error:
        tests = [r for part in PARTS for r in _failed(part.name, sub.error)]
        result = StudentResult(sub.student, "", tests, [*sub.notes, sub.error])
        if ctx.course is not None:
            result.notebook, result.notebook_error = _notebook_failed(ctx.course, sub.error), sub.error
        return result
    scratch_root = Path(tempfile.mkdtemp(prefix=f"{sub.student}.", dir=ctx.work))
    os.chmod(scratch_root, 0o711)
    log_dir = scratch_root / "logs"
    log_dir.mkdir(mode=0o700)
    try:
        with ctx.sandboxes.submission(sub.student) as cgroup, ThreadPoolExecutor(max_workers=1) as pool:
            notebook = pool.submit(grade_notebook, sub, ctx, scratch_root, log_dir, slot, cgroup) \
                if ctx.course else None
            module = grade_module(sub.find("gan_pytorch.py"), ctx, scratch_root, log_dir, slot, cgroup)
            result = StudentResult(sub.student, "", module.tests, [*sub.notes, *module.notes],
                                   crashes=module.crashes, cpu={"module": round(module.cpu_s, 3)})
            if notebook is not None:
                try:
                    result.notebook, result.notebook_error, nb_cpu = notebook.result()
                    result.cpu["notebook"] = round(nb_cpu, 3)
                except Exception as exc:  # a grader bug on the notebook side: the module's result stands
                    reason = f"internal grader error while grading the notebook: {type(exc).__name__}: {exc}"
                    result.notebook, result.notebook_error = _notebook_failed(ctx.course, reason), reason
                    result.grader_error = clean_text(reason, 500)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    result.seconds = round(time.monotonic() - start, 2)
    return result


def cache_key(sub: Submission, grader_key: str) -> str:
    return hashlib.sha256(f"{grader_key}:{sub.student}:{sub.digest}".encode()).hexdigest()


def _say(log: Callable[[str], None], text: str) -> None:
    """Log a line; text from a submission can hold anything, and a log that fails must not stop grading."""
    try:
        log(clean_text(text))
    except Exception:  # noqa: BLE001
        pass


def _cached(sub: Submission, out: Path, key: str) -> StudentResult | None:
    paths = output_paths(out, sub.student)
    try:
        cached = StudentResult.from_json(paths["results"].read_text())
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # damaged or tampered with: grade again
        return None
    if cached.key != key or cached.grader_error:
        return None
    if not (paths["feedback"].is_file() and paths["gradescope"].is_file()):
        write_student(out, cached)  # a run stopped between the files: write them again
    return cached


def grade_all(submissions: Path, out: Path, jobs: int = 1, force: bool = False, notebook: Path | None = None,
              limits: sandbox.Limits | None = None, log: Callable[[str], None] = print, hide: list[Path] = ()
              ) -> list[StudentResult]:
    """Grade every submission in ``submissions`` into ``out``; returns the results (cached or new).

    Unchanged submissions come from the cache without starting any sandbox; the rest are graded ``jobs`` at a
    time. The gradebook is written once, at the end, with a row for every student.
    """
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    work = Path(tempfile.mkdtemp(prefix="gan-grading."))
    os.chmod(work, 0o711)
    limits = limits or sandbox.Limits()
    ctx: Context | None = None
    try:
        subs = discover(submissions, work / "unpacked")
        grader_key = fingerprint(HIDDEN_CHECKS, notebook, limits)
        done: dict[str, StudentResult] = {}
        for sub in subs:
            if not force and not sub.error and (cached := _cached(sub, out, cache_key(sub, grader_key))):
                done[sub.student] = cached
        todo = [sub for sub in subs if sub.student not in done]
        if todo:
            ctx = make_context(work, notebook=notebook, limits=limits, jobs=jobs,
                               secrets=[submissions.resolve(), out.resolve(), *hide])
            _say(log, f"grading {len(subs)} submissions, --jobs {jobs}, {ctx.sandboxes.describe()}")
        else:
            _say(log, f"grading {len(subs)} submissions: all unchanged since the last run")
        for sub in subs:
            if sub.student in done:
                _say(log, f"{sub.student}: unchanged, {done[sub.student].score:g}/{MODULE_POINTS:g} (cached)")
        slots: queue.Queue[int] = queue.Queue()
        for i in range(max(1, jobs)):
            slots.put(i)
        stopping = threading.Event()

        def one(sub: Submission) -> StudentResult:
            slot = slots.get()
            try:
                result = grade_submission(sub, ctx, slot)
                result.key = cache_key(sub, grader_key) if not (sub.error or result.grader_error) else ""
            except Exception as exc:  # a grader bug on one submission must not stop the others
                reason = clean_text(f"internal grader error: {type(exc).__name__}: {exc}", 500)
                result = StudentResult(sub.student, "", [r for p in PARTS for r in _failed(p.name, reason)],
                                       [*sub.notes, reason], grader_error=reason)
            finally:
                slots.put(slot)
            if stopping.is_set():  # interrupted: runs in flight were killed, their results mean nothing
                return result
            try:
                write_student(out, result)
            except Exception as exc:  # noqa: BLE001 - the gradebook still gets the row, with the reason
                result.grader_error = clean_text(f"internal grader error writing the results: {exc}", 500)
            _say(log, f"{sub.student}: {result.score:g}/{MODULE_POINTS:g} in {result.seconds:.1f} s"
                 + (f" ({result.notes[0][:120]})" if result.notes else ""))
            return result

        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        try:
            for result in pool.map(one, todo):
                done[result.student] = result
        except BaseException:  # Ctrl-C: stop every run in flight now (their keepers die with the template)
            stopping.set()
            if ctx is not None:
                ctx.close()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        course = ctx.course if ctx is not None else (
            notebook_grading.SourceCourse(notebook, work) if notebook is not None else None)
        results = [done[sub.student] for sub in subs]
        write_gradebook(out / "gradebook.csv", results, course)
        return results
    finally:
        if ctx is not None:
            ctx.close()
        shutil.rmtree(work, ignore_errors=True)
