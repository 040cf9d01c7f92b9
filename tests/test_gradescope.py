"""The Gradescope bundle, run locally on a submission laid out as Gradescope lays it out."""

import json
import os
import subprocess
import sys
import zipfile

from gan_utils.parts import PART
from instructor import fixtures
from instructor.gradescope.build import build_bundle


def test_bundle_ships_the_notebook(tmp_path):
    source_nb = fixtures.fixture_notebook(tmp_path / "src" / "GAN.ipynb")
    with zipfile.ZipFile(build_bundle(tmp_path / "autograder.zip", source_nb)) as z:
        assert z.read("GAN.ipynb") == source_nb.read_bytes()


def test_run_autograder_writes_results_json(tmp_path):
    """Module only (the notebook path is tested in test_grading.py): keeps this test short."""
    bundle = build_bundle(tmp_path / "autograder.zip")
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "instructor/hidden-checks.npz", "gan_utils/checks.py"} <= names
        assert "gan_pytorch.py" not in names and not any("__pycache__" in n for n in names)
        assert (z.getinfo("run_autograder").external_attr >> 16) & 0o111
        z.extractall(root / "source")
    os.chmod(root / "source" / "run_autograder", 0o755)
    fixtures.write_submission(root / "submission", "partial")
    env = {**os.environ, "GRADESCOPE_ROOT": str(root), "PYTHON": sys.executable}
    proc = subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    lr_point = PART["get_optimizer"].subtest_points
    assert abs(results["score"] - (100 - PART["interpolate_latent"].points - lr_point)) < 1e-3
    tests = results["tests"]
    assert all({"name", "score", "max_score", "status", "output", "visibility"} <= set(t) for t in tests)
    assert abs(sum(t["max_score"] for t in tests) - 100) < 0.01
    failed = [t for t in tests if t["status"] == "failed"]
    assert all(t["output"] for t in failed)
    assert {t["name"] for t in failed} == {"get_optimizer: lr", "interpolate_latent: values"}


def test_run_autograder_reports_a_broken_bundle(tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    from instructor.gradescope.run import run  # noqa: PLC0415

    (root / "submission").rmdir()  # no submission folder at all: a results file with a reason, not a crash
    assert run(root) == 1
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and "autograder failed" in results["output"]
