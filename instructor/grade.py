"""Grade a folder of submissions: sandboxed probes, judged here against the hidden references.

Per submission, the module is probed in one sandboxed process (``jail.py`` + ``sandbox.py``) on the inputs of
``instructor/hidden-checks.npz``; only plain arrays come back (``np.load(allow_pickle=False)``, then validated);
``gan_utils.checks.judge`` compares them with the hidden references here, and ``points.py`` turns sub-tests into
points. The notebook, when a source notebook is given, is autograded by nbgrader in a second sandboxed process.

Results are cached per student in ``OUT/results/STUDENT.json`` under a key made of the submission's bytes and
the grader's own inputs, so a rerun grades only what changed (``force`` regrades everything).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import queue
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gan_utils import checks
from instructor import jail, notebook_grading
from instructor.points import MODULE_TOTAL, POINTS, subtest_points

GRADER_VERSION = "1"
ROOT = Path(__file__).resolve().parent.parent
HIDDEN_CHECKS = Path(__file__).resolve().parent / "hidden-checks.npz"
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
STRING_KEYS = {"dtype", "kind", "error", "error_type"}
MAX_OUTPUT_BYTES = 64 * 2**20
MAX_ZIP_BYTES = 200 * 2**20


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` through a temporary file in the same folder and ``os.replace``: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------
# Submissions


@dataclass
class Submission:
    """One student's files, unpacked; ``error`` says why nothing could be graded."""

    student: str
    folder: Path | None
    digest: str
    error: str = ""

    def find(self, name: str) -> Path | None:
        """The shallowest file called ``name`` (zips often wrap everything in one folder)."""
        if self.folder is None:
            return None
        found = [p for p in self.folder.rglob(name) if _regular_inside(p, self.folder) and "__MACOSX" not in p.parts]
        return min(found, key=lambda p: (len(p.parts), str(p))) if found else None

    def find_notebook(self, name: str) -> Path | None:
        exact = self.find(name)
        if exact is not None or self.folder is None:
            return exact
        others = [p for p in self.folder.rglob("*.ipynb")
                  if _regular_inside(p, self.folder) and ".ipynb_checkpoints" not in p.parts]
        return others[0] if len(others) == 1 else None


def _regular_inside(path: Path, folder: Path) -> bool:
    """A regular file really inside ``folder``: a symlink could point at the solution or the hidden checks."""
    return path.is_file() and not path.is_symlink() and folder.resolve() in path.resolve().parents


def _digest_folder(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        infos = z.infolist()
        if sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
            raise ValueError(f"unpacks to more than {MAX_ZIP_BYTES // 2**20} MB")
        for info in infos:
            target = (dest / info.filename).resolve()
            if dest.resolve() not in target.parents:
                raise ValueError(f"holds a path outside the archive: {info.filename!r}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)


def student_of(entry: Path) -> str:
    """The student id: the folder name, or the zip name up to its first ``_`` (``alice_1234_GAN.zip`` -> alice)."""
    return entry.name if entry.is_dir() else entry.stem.split("_")[0]


def discover(submissions: Path, unpack_to: Path) -> list[Submission]:
    """One Submission per student folder or ``<student>[_anything].zip`` in ``submissions``."""
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder of submissions")
    found: dict[str, Submission] = {}
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith(".") or not (entry.is_dir() or entry.suffix == ".zip"):
            continue
        student = student_of(entry)
        if not STUDENT_ID.match(student):
            found[entry.name] = Submission(re.sub(r"[^A-Za-z0-9._-]", "_", entry.name)[:100] or "unnamed", None, "",
                                           f"{entry.name!r} is not a usable student id (letters, digits, ._@-)")
            continue
        if student in found:
            found[student].error = f"two submissions for {student} ({entry.name} and another); keep one"
            continue
        if entry.is_dir():
            found[student] = Submission(student, entry, _digest_folder(entry))
            continue
        digest = hashlib.sha256(entry.read_bytes()).hexdigest()
        folder = unpack_to / student
        try:
            _unzip(entry, folder)
            found[student] = Submission(student, folder, digest)
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            found[student] = Submission(student, None, digest, f"{entry.name} cannot be unpacked: {exc}")
    return list(found.values())


# --------------------------------------------------------------------------------------------------
# The grading context, built once per run


@dataclass
class Context:
    """What every submission's grading shares; built once per run by ``make_context``."""

    work: Path
    runtime: Path
    cases: dict[str, dict[str, np.ndarray]]
    inputs: bytes
    limits: jail.Limits
    hide: list[Path]
    fingerprint: str
    master: notebook_grading.Master | None = None


def make_context(work: Path, hidden: Path = HIDDEN_CHECKS, notebook: Path | None = None,
                 limits: jail.Limits | None = None, hide: list[Path] = ()) -> Context:
    """Copy the student-side runtime (sandbox.py, gan_utils, public checks) into ``work``; load references."""
    runtime = work / "runtime"
    shutil.copytree(ROOT / "gan_utils", runtime / "gan_utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "gan-checks.npz", runtime / "gan-checks.npz")
    shutil.copy(Path(__file__).with_name("sandbox.py"), runtime / "sandbox.py")
    for root, _dirs, files in os.walk(runtime):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    cases = checks.load_cases(hidden)
    buf = io.BytesIO()
    np.savez(buf, **{f"{part}.{k}": v for part, case in cases.items() for k, v in checks.inputs_of(case).items()})
    limits = limits or jail.Limits()
    h = hashlib.sha256(f"{GRADER_VERSION}{json.dumps(POINTS, sort_keys=True)}{asdict(limits)}".encode())
    h.update(hidden.read_bytes())
    master = None
    if notebook is not None:
        master = notebook_grading.prepare_master(notebook, work)
        h.update(notebook.read_bytes())
    return Context(work, runtime, cases, buf.getvalue(), limits,
                   [ROOT, work, *hide, Path("/root"), Path("/home")], h.hexdigest(), master)


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


@dataclass
class TestResult:
    """One sub-test: points earned and why any were lost."""

    part: str
    test: str
    score: float
    max_score: float
    message: str = ""

    @property
    def name(self) -> str:
        return f"{self.part}: {self.test}"


def _outcomes_to_results(part: str, outcomes: list[checks.Outcome]) -> list[TestResult]:
    each = subtest_points(part)
    return [TestResult(part, o.test, each if o.passed else 0.0, each, "" if o.passed else o.message)
            for o in outcomes]


def _failed(part: str, reason: str) -> list[TestResult]:
    return [TestResult(part, t, 0.0, subtest_points(part), reason) for t in checks.SUBTESTS[part]]


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
        return [r for part in checks.PARTS for r in _failed(part, reason)], [reason]
    results: dict[str, list[TestResult]] = {}
    notes: list[str] = []
    remaining = list(checks.PARTS)
    for attempt in range(3):
        scratch = scratch_root / f"module{attempt}"
        scratch.mkdir()
        shutil.copy(module, scratch / "gan_pytorch.py")
        (scratch / "inputs.npz").write_bytes(ctx.inputs)
        run = jail.run_sandboxed("module", scratch, ctx.runtime, log_dir, slot, ctx.limits, ctx.hide,
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
                    results[part] = _failed(part, f"{checks.function_name(part)}: its outputs were unreadable "
                                                  f"({type(exc).__name__})")
                    continue
                results[part] = _outcomes_to_results(part, checks.judge(part, outputs, ctx.cases[part]))
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
        notes.append(f"{checks.function_name(stage)}: {why}")
        results[stage] = _failed(stage, f"{checks.function_name(stage)}: {why}")
        remaining.remove(stage)
    for part in remaining:
        results.setdefault(part, _failed(part, "not checked: the grading process kept dying"))
    return [r for part in checks.PARTS for r in results[part]], notes


# --------------------------------------------------------------------------------------------------
# One submission, and the run


@dataclass
class StudentResult:
    """Everything graded for one student; serialised to ``results/STUDENT.json``."""

    student: str
    key: str
    tests: list[TestResult]
    notes: list[str] = field(default_factory=list)
    notebook: list[dict] = field(default_factory=list)
    notebook_error: str = ""
    grader_error: str = ""
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 4)

    def to_json(self) -> str:
        data = asdict(self)
        data.update(score=self.score, max_score=MODULE_TOTAL, grader_version=GRADER_VERSION)
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> StudentResult:
        data = json.loads(text)
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["tests"] = [TestResult(**t) for t in data["tests"]]
        return cls(**data)


def grade_notebook(sub: Submission, ctx: Context, scratch_root: Path, log_dir: Path, slot: int
                   ) -> tuple[list[dict], str]:
    master = ctx.master
    assert master is not None
    path = sub.find_notebook(master.notebook_name)
    try:
        notebook_grading.read_student_notebook(path)
    except notebook_grading.NotebookError as exc:
        rows = [{"grade_id": c.grade_id, "points": c.points, "auto": c.auto, "passed": False if c.auto else None,
                 "message": str(exc)} for c in master.cells]
        return rows, str(exc)
    scratch = scratch_root / "notebook"
    scratch.mkdir()
    notebook_grading.layout_course(master, scratch, sub.student, path, sub.find("gan_pytorch.py"))
    limits = ctx.limits
    run = jail.run_sandboxed("notebook", scratch, ctx.runtime, log_dir, slot, limits, ctx.hide,
                             {"assignment": notebook_grading.ASSIGNMENT, "student": sub.student, "loopback": True},
                             env={"PYTHONPATH": str(ctx.runtime), "NBGRADER_EXECUTION": "autograde",
                                  "JUPYTER_RUNTIME_DIR": str(scratch / "tmp")})
    rows = notebook_grading.read_autograded(master, scratch, sub.student)
    why = run.describe(limits)
    return rows, f"notebook autograding: {why}" if why else ""


def grade_submission(sub: Submission, ctx: Context, slot: int) -> StudentResult:
    """Grade one submission; a problem with it becomes reasons in its result, never an exception."""
    start = time.monotonic()
    if sub.error:
        tests = [r for part in checks.PARTS for r in _failed(part, sub.error)]
        return StudentResult(sub.student, "", tests, [sub.error])
    scratch_root = Path(tempfile.mkdtemp(prefix=f"{sub.student}.", dir=ctx.work))
    os.chmod(scratch_root, 0o711)
    log_dir = scratch_root / "logs"
    log_dir.mkdir(mode=0o700)
    try:  # the notebook (its own sandbox, same uid) runs beside the module probe: one submission, two cores
        with ThreadPoolExecutor(max_workers=1) as pool:
            notebook = pool.submit(grade_notebook, sub, ctx, scratch_root, log_dir, slot) if ctx.master else None
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
              limits: jail.Limits | None = None, log: Callable[[str], None] = print, hide: list[Path] = ()
              ) -> list[StudentResult]:
    """Grade every submission in ``submissions`` into ``out``; returns the results (cached or new)."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    work = Path(tempfile.mkdtemp(prefix="gan-grading."))
    os.chmod(work, 0o711)
    try:
        subs = discover(submissions, work / "unpacked")
        level = jail.isolation()
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
                        log(f"{sub.student}: unchanged, {cached.score:g}/{MODULE_TOTAL:g} (cached)")
                        return cached
                except (ValueError, KeyError, TypeError):
                    pass
            slot = slots.get()
            try:
                result = grade_submission(sub, ctx, slot)
            except Exception as exc:  # a grader bug on one submission must not stop the others
                reason = f"internal grader error: {type(exc).__name__}: {exc}"
                result = StudentResult(sub.student, "", [r for p in checks.PARTS for r in _failed(p, reason)],
                                       [reason], grader_error=reason)
            finally:
                slots.put(slot)
            result.key = key if not sub.error else ""
            write_student(out, result)
            log(f"{sub.student}: {result.score:g}/{MODULE_TOTAL:g} in {result.seconds:.1f} s"
                + (f" ({result.notes[0][:120]})" if result.notes else ""))
            return result

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = list(pool.map(one, subs))
        write_gradebook(out / "gradebook.csv", results, ctx.master)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Outputs: per-student JSON, feedback, Gradescope results, gradebook


def feedback_markdown(r: StudentResult) -> str:
    """What passed, what failed and why; never test source or reference values."""
    lines = [f"# GAN assignment: feedback for {r.student}", "",
             f"**gan_pytorch.py: {r.score:g} / {MODULE_TOTAL:g} points** (checked on inputs other than the "
             "public ones in gan-checks.npz)", ""]
    for note in r.notes:
        lines.append(f"> {note}")
    for part in checks.PARTS:
        tests = [t for t in r.tests if t.part == part]
        got, top = sum(t.score for t in tests), sum(t.max_score for t in tests)
        lines += ["", f"## {checks.function_name(part)}: {got:.4g} / {top:.4g}"]
        for t in tests:
            mark = "x" if t.score >= t.max_score else " "
            lines.append(f"- [{mark}] {t.test}" + (f": {t.message}" if t.message else ""))
    if r.notebook or r.notebook_error:
        lines += ["", "## Notebook (feedback only; written answers are graded by hand)"]
        if r.notebook_error:
            lines.append(f"> {r.notebook_error}")
        for row in r.notebook:
            if row["auto"]:
                mark = "x" if row["passed"] else " "
                lines.append(f"- [{mark}] {row['grade_id']}" + (f": {row['message']}" if row["message"] else ""))
            else:
                lines.append(f"- {row['grade_id']}: graded by hand ({row['points']:g} points)")
    return "\n".join(lines) + "\n"


def gradescope_results(r: StudentResult) -> dict:
    """Gradescope's results.json: score, tests [{name, score, max_score, status, output, visibility}]."""
    tests = [{"name": t.name, "score": round(t.score, 4), "max_score": round(t.max_score, 4),
              "status": "passed" if t.score >= t.max_score else "failed", "output": t.message,
              "visibility": "visible"} for t in r.tests]
    for row in r.notebook:
        if row["auto"]:
            tests.append({"name": f"notebook: {row['grade_id']} (feedback only)", "score": 0, "max_score": 0,
                          "status": "passed" if row["passed"] else "failed", "output": row["message"],
                          "visibility": "visible"})
    output = "\n".join(r.notes + ([r.notebook_error] if r.notebook_error else []))
    return {"score": r.score, "output": output, "visibility": "visible", "stdout_visibility": "hidden",
            "tests": tests}


def write_student(out: Path, r: StudentResult) -> None:
    atomic_write(out / "results" / f"{r.student}.json", r.to_json())
    atomic_write(out / "feedback" / f"{r.student}.md", feedback_markdown(r))
    atomic_write(out / "gradescope" / r.student / "results.json", json.dumps(gradescope_results(r), indent=1))


def write_gradebook(path: Path, results: list[StudentResult], master: notebook_grading.Master | None) -> None:
    """A row per student, a column per sub-test, the module total, empty columns for hand-graded answers."""
    names = [f"{p}: {t}" for p in checks.PARTS for t in checks.SUBTESTS[p]]
    manual = [c for c in master.cells if not c.auto] if master else []
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", *names, "total", *(f"{c.grade_id} (by hand, /{c.points:g})" for c in manual),
                     "problems"])
    writer.writerow(["(max)", *(f"{subtest_points(n.split(': ')[0]):g}" for n in names), f"{MODULE_TOTAL:g}",
                     *(f"{c.points:g}" for c in manual), ""])
    for r in sorted(results, key=lambda r: r.student):
        scores = {t.name: t.score for t in r.tests}
        writer.writerow([r.student, *(f"{scores.get(n, 0):.4g}" for n in names), f"{r.score:.4g}",
                         *("" for _ in manual), " | ".join(r.notes)[:500]])
    atomic_write(path, buf.getvalue())
