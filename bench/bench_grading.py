"""Grading speed on generated submissions: per-submission seconds and the whole run, printed.

    python bench/bench_grading.py --n 100 --jobs 2                 # the issue's target: at most 15 minutes
    python bench/bench_grading.py --n 6 --jobs 1 --notebook none    # module only

Submissions cycle through solution / partial / release (with the student notebook); the notebook is the small
fixture notebook unless ``--notebook PATH`` (e.g. GAN.ipynb) or ``none``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from instructor import fixtures, grade, jail, notebook_grading  # noqa: E402

KINDS = ("solution", "partial", "release")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--notebook", default="fixture", help="fixture, none, or a source notebook path")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source_nb = None
        if args.notebook == "fixture":
            source_nb = fixtures.fixture_notebook(tmp / "src" / "GAN.ipynb")
        elif args.notebook != "none":
            source_nb = Path(args.notebook)
        student_nb = notebook_grading.generate_assignment(source_nb, tmp / "course") if source_nb else None
        for i in range(args.n):
            kind = KINDS[i % len(KINDS)]
            fixtures.write_submission(tmp / "subs" / f"s{i:03d}-{kind}", kind, student_nb)
        cpu0 = _children_cpu()
        start = time.monotonic()
        results = grade.grade_all(tmp / "subs", tmp / "out", jobs=args.jobs, notebook=source_nb,
                                  limits=jail.Limits(), log=lambda _: None)
        total = time.monotonic() - start
        cpu = _children_cpu() - cpu0
        again = time.monotonic()
        grade.grade_all(tmp / "subs", tmp / "out", jobs=args.jobs, notebook=source_nb, log=lambda _: None)
        cached = time.monotonic() - again
    each = [r.seconds for r in results]
    print(f"isolation: {jail.isolation()}; notebook: {args.notebook}; "
          f"{args.n} submissions, --jobs {args.jobs}")
    print(f"per submission: median {statistics.median(each):.1f} s, max {max(each):.1f} s (target <= 15 s)")
    print(f"whole run: {total:.1f} s = {total / args.n:.2f} s a submission -> "
          f"{total / args.n * 100 / 60:.1f} min for 100 (target <= 15 min)")
    print(f"CPU (sandboxes, nbgrader, kernels): {cpu / args.n:.1f} s a submission; on 2 otherwise idle cores "
          f"that bounds 100 submissions at about {cpu / args.n * 100 / 2 / 60:.1f} min; load average now "
          f"{os.getloadavg()[0]:.1f} (other jobs share this machine)")
    print(f"rerun with nothing changed: {cached:.1f} s")
    print("scores:", {k: sorted({r.score for r in results if r.student.endswith(k)}) for k in KINDS})


if __name__ == "__main__":
    main()
