"""The student release: the files students need, and nothing of the instructor's."""

import shutil
import subprocess
import sys

import pytest

from instructor import fixtures
from instructor.release import ReleaseError, build_release, find_answers, find_leaks, solution_lines


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release")
    notebook = fixtures.fixture_notebook(tmp / "src" / "GAN.ipynb")
    out = tmp / "release"
    build_release(out, notebook)
    return out, notebook


def test_release_has_what_students_need(release):
    out, _ = release
    for rel in ("GAN.ipynb", "gan_pytorch.py", "gan-checks.npz", "gan_utils/checks.py", "gan_utils/data.py",
                "tests/test_gan_pytorch.py", "tests/conftest.py", "requirements.txt", "README.md", "pytest.ini",
                "images/.gitkeep"):
        assert (out / rel).is_file(), rel
    names = {p.relative_to(out).parts[0] for p in out.rglob("*")}
    assert not names & {"instructor", "cli", "bench", "tools", ".ci", "train.py", "inference.py"}
    assert not list(out.rglob("hidden-checks*")) and not list(out.rglob("__pycache__"))
    assert sorted(p.name for p in (out / "tests").iterdir()) == ["conftest.py", "test_gan_pytorch.py"]


def test_student_readme_and_requirements_say_what_a_student_needs(release):
    out, _ = release
    readme = (out / "README.md").read_text()
    assert "GAN_SMOKE=1" in readme and "one code cell of your own" in readme and "\n    pytest\n" in readme
    requirements = [line.split()[0] for line in (out / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    for package in ("torch", "torchvision", "ipywidgets", "jupyterlab", "pytest"):
        assert any(r.startswith(package + ">=") for r in requirements), package


def test_released_code_imports_only_released_code(release):
    """The shipping boundary: every import in a released module is a released module or a third-party package."""
    import ast

    out, _ = release
    ours = {"gan_utils", "gan_pytorch", "instructor", "cli", "train", "inference", "bench", "tools"}
    shipped = {p.stem for p in out.glob("*.py")} | {"gan_utils"}
    for path in out.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                assert top not in ours or top in shipped, f"{path.relative_to(out)} imports {name}"


def test_no_solution_or_hidden_test_anywhere(release):
    out, _ = release
    secrets = solution_lines(fixtures.solution_source())
    assert len(secrets) > 20  # the search has something to find
    assert find_leaks(out, secrets) == []
    for path in (p for p in out.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        assert "BEGIN HIDDEN TESTS" not in text and "hidden-checks" not in text, path
        assert fixtures.SECRET_ANSWER not in text and 'check("discriminator_loss")' not in text, path


def test_released_notebook_is_locked_and_stubbed(release):
    out, _ = release
    nb = fixtures.nbformat.read(out / "GAN.ipynb", as_version=4)
    checks = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("check_")]
    assert len(checks) == 2 and all(c.metadata["nbgrader"]["locked"] for c in checks)
    assert all(c.metadata["nbgrader"]["points"] == 0 for c in checks)  # feedback only: the module earns the points
    [answer] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q_modes"]
    assert "YOUR ANSWER HERE" in answer.source


def test_released_module_imports_and_is_stubbed(release, tmp_path):
    out, _ = release
    code = ("import gan_pytorch\ntry:\n    gan_pytorch.bce_loss(None, None)\nexcept NotImplementedError as e:\n"
            "    print('stub:', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0 and "stub: bce_loss is not implemented yet" in proc.stdout, proc.stderr


def test_leak_search_finds_planted_leaks(release, tmp_path):
    out, notebook = release
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert find_leaks(copy, solution_lines(fixtures.solution_source())) == []
    secret = max(solution_lines(fixtures.solution_source()), key=len)
    (copy / "gan_utils" / "extra.py").write_text(f"x = 1\n    {secret}\n")
    (copy / "notes.txt").write_text("### BEGIN HIDDEN TESTS\n")
    (copy / "instructor").mkdir()
    (copy / "instructor" / "x.py").write_text("")
    leaks = "\n".join(find_leaks(copy, solution_lines(fixtures.solution_source())))
    assert "extra.py: contains the solution line" in leaks and "notes.txt" in leaks and "instructor-only" in leaks


def test_release_refuses_to_overwrite(release):
    out, notebook = release
    with pytest.raises(ReleaseError, match="not empty"):
        build_release(out, notebook)
    with pytest.raises(ReleaseError, match="not found"):
        build_release(out.parent / "other", out.parent / "missing.ipynb")


def test_answer_search_finds_an_answer_planted_in_the_package(release, tmp_path):
    """A reference loss hidden in a shipped module (even under a private name) fails the release."""
    out, _ = release
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert find_answers(copy) == []
    (copy / "gan_utils" / "helpers.py").write_text(
        "import torch.nn.functional as F\n\n\n"
        "def _ref_bce(logits, target):\n    return F.binary_cross_entropy_with_logits(logits, target)\n\n\n"
        "def lerp_rows(a, b, steps):\n    import torch\n"
        "    t = torch.linspace(0, 1, steps, dtype=a.dtype)[:, None]\n    return (1 - t) * a + t * b\n")
    assert sorted(find_answers(copy)) == ["gan_utils.helpers._ref_bce: bce_loss",
                                          "gan_utils.helpers.lerp_rows: interpolate_latent"]


def test_plain_pytest_in_the_release_prints_one_line_per_part(release):
    out, _ = release
    for argv in (["pytest"], [sys.executable, "-m", "pytest"]):
        proc = subprocess.run(argv, cwd=out, capture_output=True, text=True, timeout=300,
                              env={**__import__("os").environ, "PYTHONPATH": ""})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stdout.strip().splitlines()
        todo = [line for line in lines if "not implemented yet" in line]
        assert len(todo) == 14 and len(lines) <= 18, proc.stdout
        assert "ModuleNotFoundError" not in proc.stdout + proc.stderr
