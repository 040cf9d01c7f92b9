"""Grade Gradescope's ``ROOT/submission`` with the course grader; write ``ROOT/results/results.json``.

A results file is written whatever happens, so that a grader failure shows a reason instead of a blank.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from instructor.grade import ROOT as SOURCE
from instructor.grade import grade_all
from instructor.reports import atomic_write, gradescope_results


def run(root: Path) -> int:
    out_file = root / "results" / "results.json"
    notebook = SOURCE / "GAN.ipynb"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            subs = Path(tmp) / "submissions"
            subs.mkdir()
            shutil.copytree(root / "submission", subs / "submission", symlinks=True)
            [result] = grade_all(subs, Path(tmp) / "out", notebook=notebook if notebook.is_file() else None,
                                 hide=[root / "submission", root / "results"])
        atomic_write(out_file, json.dumps(gradescope_results(result), indent=1))
        return 1 if result.grader_error else 0
    except Exception:
        atomic_write(out_file, json.dumps({"score": 0, "output": "The autograder failed; your instructor has been "
                                           "told. " + traceback.format_exc(limit=2)[-800:], "tests": []}))
        return 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="/autograder")
    return run(Path(p.parse_args().root))


if __name__ == "__main__":
    sys.exit(main())
