"""What grading writes: per-student feedback (Markdown), Gradescope's results.json, and the CSV gradebook."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gan_utils.files import atomic_path
from gan_utils.parts import MODULE_POINTS, PART, PARTS
from instructor.notebook_grading import SourceCourse
from instructor.safe_io import clean_text

GRADER_VERSION = "3"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` all at once: readers see the old file or the new one, never half of it. Text that cannot be
    encoded (a lone surrogate in a student's exception message) is escaped, never an error."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data)


@dataclass
class TestResult:
    """One sub-test: points earned and why any were lost."""

    part: str
    test: str
    score: float
    max_score: float
    message: str = ""
    note: str = ""  # worth reading even when the sub-test passed ("fix bce_loss first")

    @property
    def name(self) -> str:
        return f"{self.part}: {self.test}"


@dataclass
class StudentResult:
    """Everything graded for one student; serialised to ``results/STUDENT.json``."""

    student: str
    key: str
    tests: list[TestResult]
    notes: list[str] = field(default_factory=list)  # about the whole submission: missing file, process killed
    notebook: list[dict] = field(default_factory=list)
    notebook_error: str = ""
    grader_error: str = ""
    seconds: float = 0.0
    crashes: list[str] = field(default_factory=list)  # parts whose code raised or ran out of time
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of the sandboxed runs, per mode

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 4)

    def to_json(self) -> str:
        data = asdict(self)
        data.update(score=self.score, max_score=MODULE_POINTS, grader_version=GRADER_VERSION)
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> StudentResult:
        """The result that ``to_json`` wrote; ValueError if ``text`` is not one (damaged, or nested too deeply)."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("the results file is nested far too deeply") from None
        if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
            raise ValueError("not a results file")
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["tests"] = [TestResult(**t) for t in data["tests"]]
        return cls(**data)


def feedback_markdown(r: StudentResult) -> str:
    """What passed, what failed and why; never test source or reference values."""
    lines = [f"# GAN assignment: feedback for {r.student}", "",
             f"**gan_pytorch.py: {r.score:g} / {MODULE_POINTS:g} points** (checked on inputs other than the "
             "public ones in gan-checks.npz)", ""]
    for note in r.notes:
        lines.append(f"> {note}")
    for part in PARTS:
        tests = [t for t in r.tests if t.part == part.name]
        got, top = sum(t.score for t in tests), sum(t.max_score for t in tests)
        lines += ["", f"## {part.label}: {got:.4g} / {top:.4g}"]
        for note in dict.fromkeys(t.note for t in tests if t.note):
            lines.append(f"> {part.label}: {note}")
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


def problems(r: StudentResult) -> list[str]:
    """Everything missing or broken in a submission, for the gradebook's ``problems`` column: a missing or renamed
    file or id, a process that was killed or timed out, a part that crashed or ran out of time, a notebook that
    nbgrader refused or could not run, an internal grader error."""
    found = [*r.notes, *r.crashes, *([f"notebook: {r.notebook_error}"] if r.notebook_error else []),
             *([r.grader_error] if r.grader_error else [])]
    return list(dict.fromkeys(clean_text(p, 300) for p in found))


def output_paths(out: Path, student: str) -> dict[str, Path]:
    """Where a student's files go; ``results`` (the cache entry) is written last."""
    return {"feedback": out / "feedback" / f"{student}.md",
            "gradescope": out / "gradescope" / student / "results.json",
            "results": out / "results" / f"{student}.json"}


def write_student(out: Path, r: StudentResult) -> None:
    """Feedback and Gradescope results first, the results file (which a rerun takes from the cache) last: a
    failure part-way leaves no cache entry without its feedback."""
    paths = output_paths(out, r.student)
    atomic_write(paths["feedback"], feedback_markdown(r))
    atomic_write(paths["gradescope"], json.dumps(gradescope_results(r), indent=1))
    atomic_write(paths["results"], r.to_json())


def write_gradebook(path: Path, results: list[StudentResult], course: SourceCourse | None) -> None:
    """A row per student, a column per sub-test, the module total, empty columns for hand-graded answers, and the
    problems found (missing files, crashes, time-outs)."""
    names = [f"{p.name}: {t}" for p in PARTS for t in p.subtests]
    manual = [c for c in course.cells if not c.auto] if course else []
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", *names, "total", *(f"{c.grade_id} (by hand, /{c.points:g})" for c in manual),
                     "problems"])
    writer.writerow(["(max)", *(f"{PART[n.split(': ')[0]].subtest_points:g}" for n in names), f"{MODULE_POINTS:g}",
                     *(f"{c.points:g}" for c in manual), ""])
    for r in sorted(results, key=lambda r: r.student):
        scores = {t.name: t.score for t in r.tests}
        writer.writerow([r.student, *(f"{scores.get(n, 0):.4g}" for n in names), f"{r.score:.4g}",
                         *("" for _ in manual), " | ".join(problems(r))[:1000]])
    atomic_write(path, buf.getvalue())
