"""The instructor's tool: ``python -m instructor VERB``.

    release [OUT] [--notebook NB] [--force]          the student version (default release/)
    grade SUBMISSIONS OUT [--jobs N] [--force] [--notebook NB] [--timeout S]
                                                     grades, feedback/, gradescope/, gradebook.csv in OUT
    check FOLDER [--notebook NB]                     grade one submission, print its feedback; exit 1 unless full
    gradescope-bundle OUT.zip [--notebook NB]        the Gradescope autograder zip (setup.sh, run_autograder)

Exit codes: 0 success; 1 a grader error (or, for ``check``, points lost); 2 bad arguments or input; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from instructor import sandbox


class UsageError(ValueError):
    """Bad arguments: reported in one line, exit code 2."""


def _notebook(arg: str | None, required: bool = False) -> Path | None:
    from instructor.release import ROOT  # noqa: PLC0415

    path = Path(arg) if arg else ROOT / "GAN.ipynb"
    if path.is_file():
        return path
    if arg or required:
        raise UsageError(f"notebook {path} not found")
    print(f"note: {path} not found; grading gan_pytorch.py only", file=sys.stderr)
    return None


def _limits(args: argparse.Namespace) -> sandbox.Limits:
    """``--timeout S`` bounds every sandboxed run (the module's and the notebook's) at S seconds of wall clock;
    each module part gets min(20, S/3) s of CPU time, each notebook cell min(30, S/2) s."""
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    return sandbox.Limits(wall_s=args.timeout, part_timeout_s=min(20.0, args.timeout / 3),
                          cell_timeout_s=min(30.0, args.timeout / 2))


def cmd_release(args: argparse.Namespace) -> int:
    from instructor.release import ReleaseError, build_release  # noqa: PLC0415

    try:
        files = build_release(Path(args.out), _notebook(args.notebook, required=True), force=args.force)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {args.out}; searched them for solutions and hidden tests: none found")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from instructor.grade import grade_all  # noqa: PLC0415

    try:
        results = grade_all(Path(args.submissions), Path(args.out), jobs=args.jobs, force=args.force,
                            notebook=_notebook(args.notebook), limits=_limits(args))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sandbox.SandboxError as exc:  # the machine cannot run the sandbox: nothing was graded
        print(f"error: {exc}", file=sys.stderr)
        return 1
    errors = [r for r in results if r.grader_error]
    print(f"graded {len(results)} submissions into {args.out} (gradebook.csv, feedback/, gradescope/)")
    for r in errors:
        print(f"GRADER ERROR for {r.student}: {r.grader_error}", file=sys.stderr)
    return 1 if errors else 0


def cmd_check(args: argparse.Namespace) -> int:
    from gan_utils.parts import MODULE_POINTS  # noqa: PLC0415
    from instructor.grade import grade_all  # noqa: PLC0415
    from instructor.reports import feedback_markdown  # noqa: PLC0415
    from instructor.submissions import STUDENT_ID  # noqa: PLC0415

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "submissions"
        subs.mkdir()
        name = folder.resolve().name
        shutil.copytree(folder, subs / (name if STUDENT_ID.match(name) else "student"))
        [result] = grade_all(subs, Path(tmp) / "out", notebook=_notebook(args.notebook), limits=_limits(args),
                             log=lambda _: None)
    print(feedback_markdown(result))
    notebook_failed = any(row["passed"] is False for row in result.notebook) or result.notebook_error
    return 0 if result.score >= MODULE_POINTS and not notebook_failed and not result.grader_error else 1


def cmd_bundle(args: argparse.Namespace) -> int:
    from instructor.gradescope.build import build_bundle  # noqa: PLC0415

    out = build_bundle(Path(args.out), _notebook(args.notebook))
    print(f"wrote {out}: upload it as the Gradescope autograder (Ubuntu image)")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m instructor", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("release", help="build the student version")
    r.add_argument("out", nargs="?", default="release")
    r.add_argument("--notebook")
    r.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    r.set_defaults(run=cmd_release)
    g = sub.add_parser("grade", help="grade a folder of submissions (folders or <student>.zip files)")
    g.add_argument("submissions")
    g.add_argument("out")
    g.add_argument("--jobs", type=int, default=1)
    g.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    g.add_argument("--notebook", help="source notebook (default GAN.ipynb of the course repository)")
    g.add_argument("--timeout", type=float, default=90.0,
                   help="wall-clock seconds for each sandboxed run, the module's and the notebook's alike (default "
                        "90); each module part gets min(20, S/3) s of CPU time, each notebook cell min(30, S/2) s")
    g.set_defaults(run=cmd_grade)
    c = sub.add_parser("check", help="grade one submission folder and print its feedback")
    c.add_argument("folder")
    c.add_argument("--notebook")
    c.add_argument("--timeout", type=float, default=90.0, help="as for grade")
    c.set_defaults(run=cmd_check)
    b = sub.add_parser("gradescope-bundle", help="build the Gradescope autograder zip")
    b.add_argument("out")
    b.add_argument("--notebook")
    b.set_defaults(run=cmd_bundle)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every sandboxed run was stopped and the work folder removed; gradebook.csv was not "
              "written. Run the same command again to resume (finished students are cached).", file=sys.stderr)
        return 130
