"""Grading speed on generated submissions: CPU seconds per submission (module and notebook apart), the whole run.

    python bench/bench_grading.py --n 100 --jobs 2                # the issue's target: 100 in at most 5 minutes
    python bench/bench_grading.py --n 20 --jobs 2 --notebook none  # module only
    python bench/bench_grading.py --n 20 --notebook GAN.ipynb      # the real notebook instead of the fixture
    python bench/bench_grading.py --n 20 --notebook GAN.ipynb --as-rewritten   # ... run as the rewrite will run

Submissions cycle through solution / partial / release (each with the student version of the notebook); the
notebook is the small fixture notebook unless ``--notebook PATH`` or ``none``. Isolation is whatever ``grade``
gets on this machine (printed first). CPU seconds are the sandboxed processes' own (from the keeper's wait4: the
probe; nbgrader, the kernel and their children) plus the grader's (judging, files): unlike wall time, they do not
depend on what else the machine runs, so they are the figures to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import machine  # noqa: E402
from cli.args import positive_int  # noqa: E402
from instructor import fixtures, grade, notebook_grading, sandbox  # noqa: E402

KINDS = ("solution", "partial", "release")
TARGET_MIN = 5.0


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stats(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}, mean {statistics.fmean(values):.2f}, max {max(values):.2f}"


def _as_rewritten(source: Path, dest: Path) -> Path:
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        meta = cell.get("metadata", {})
        grader = meta.get("nbgrader", {})
        if cell["cell_type"] == "code" and grader.get("locked") and not grader.get("grade") and \
                grader.get("grade_id") != "setup":
            meta.setdefault("tags", []).append(notebook_grading.SKIP_TAG)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1))
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=positive_int, default=20)
    p.add_argument("--jobs", type=positive_int, default=2)
    p.add_argument("--notebook", default="fixture", help="fixture, none, or a source notebook path")
    p.add_argument("--as-rewritten", action="store_true",
                   help="tag every locked, ungraded code cell but 'setup' no-autograde first (how the rewritten "
                        "GAN.ipynb runs under the grader: the setup, the checks and the student's own cells)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source_nb = None
        if args.notebook == "fixture":
            source_nb = fixtures.fixture_notebook(tmp / "src" / "GAN.ipynb")
        elif args.notebook != "none":
            source_nb = Path(args.notebook).resolve()
            if args.as_rewritten:
                source_nb = _as_rewritten(source_nb, tmp / "src" / source_nb.name)
        student_nb = notebook_grading.generate_assignment(source_nb, tmp / "course") if source_nb else None
        for i in range(args.n):
            kind = KINDS[i % len(KINDS)]
            fixtures.write_submission(tmp / "subs" / f"s{i:03d}-{kind}", kind, student_nb)
        lines: list[str] = []
        stamps: list[float] = []

        def log(line: str) -> None:
            lines.append(line)
            stamps.append(time.monotonic())

        load0 = os.getloadavg()[0]
        cpu0, start = _self_cpu(), time.monotonic()
        results = grade.grade_all(tmp / "subs", tmp / "out", jobs=args.jobs, notebook=source_nb,
                                  limits=sandbox.Limits(), log=log)
        total = time.monotonic() - start
        grader_cpu = _self_cpu() - cpu0
        setup = stamps[0] - start  # template warm-up and source course, once per run
        again = time.monotonic()
        grade.grade_all(tmp / "subs", tmp / "out", jobs=args.jobs, notebook=source_nb, log=lambda _: None)
        cached = time.monotonic() - again
    n = args.n
    module = [r.cpu.get("module", 0.0) for r in results]
    notebook = [r.cpu.get("notebook", 0.0) for r in results]
    grading = total - setup
    per_sub_cpu = (sum(module) + sum(notebook) + grader_cpu) / n
    print(machine.header())
    print(lines[0])
    print(f"{n} submissions, --jobs {args.jobs}, notebook: {args.notebook}; load average {load0:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (other jobs share this machine: wall times are pessimistic)")
    print(f"CPU s per submission, module sandbox:   {_stats(module)}")
    if source_nb is not None:
        print(f"CPU s per submission, notebook sandbox: {_stats(notebook)} (nbgrader + kernel)")
    print(f"CPU s per submission, grader process:   {grader_cpu / n:.2f} (judging, files; includes its start-up)")
    print(f"CPU s per submission, all:              {per_sub_cpu:.2f} -> 100 submissions need "
          f"{per_sub_cpu * 100 / 2 / 60:.1f} min of 2 otherwise idle cores")
    print(f"wall: setup {setup:.1f} s (warm template, source course; once per run), grading {grading:.1f} s = "
          f"{grading / n:.2f} s a submission, seconds per submission {_stats([r.seconds for r in results])}")
    estimate = (setup + grading / n * 100) / 60
    print(f"100 submissions: {estimate:.1f} min at this run's pace (target <= {TARGET_MIN:g} min: "
          f"{'met' if estimate <= TARGET_MIN else 'MISSED'})")
    print(f"rerun with nothing changed: {cached:.1f} s")
    print("scores:", {k: sorted({r.score for r in results if r.student.endswith(k)}) for k in KINDS})


if __name__ == "__main__":
    main()
