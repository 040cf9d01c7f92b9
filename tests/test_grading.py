"""End-to-end grading of fixture submissions: honest ones, broken ones and attacks, in two ``grade`` runs."""

import csv
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from gan_utils.parts import PART, PARTS
from instructor import cli, fixtures, grade, sandbox

LIMITS = sandbox.Limits(wall_s=20, part_timeout_s=4, memory_mb=4500)
WITH_NOTEBOOK = ("solution", "partial", "badnb")
MODULE_ONLY = ("release", "missing", "syntax", "import_loop", "membomb", "exit0", "print100mb", "part_loop", "cheat",
               "conftest", "snoop")


@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb")
    source_nb, student_nb, subs, out = fixtures.notebook_course(tmp)
    for kind in WITH_NOTEBOOK:
        fixtures.write_submission(subs / kind, "solution" if kind == "badnb" else kind, student_nb)
    (subs / "badnb" / "GAN.ipynb").write_text('{"cells": [ this is not json')
    results = grade.grade_all(subs, out, jobs=2, notebook=source_nb, limits=LIMITS)
    return {r.student: r for r in results}, out, subs, source_nb


@pytest.fixture(scope="module")
def attack_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks")
    subs, out = tmp / "subs", tmp / "out"
    for kind in MODULE_ONLY:
        source = fixtures.attack_snoop(fixtures.ROOT, out, subs) if kind == "snoop" else None
        fixtures.write_submission(subs / kind, kind if kind != "snoop" else "release", source=source)
    (subs / "symlink").mkdir()
    (subs / "symlink" / "gan_pytorch.py").symlink_to(fixtures.ROOT / "gan_pytorch.py")  # the solution
    solution = fixtures.write_submission(tmp / "zipped", "solution")
    with zipfile.ZipFile(subs / "zoe_12345_GAN.zip", "w") as z:
        z.write(solution / "gan_pytorch.py", "my-folder/gan_pytorch.py")
    (out / "results").mkdir(parents=True)
    (out / "results" / "victim.json").write_text("untouched")
    results = grade.grade_all(subs, out, jobs=2, limits=LIMITS)
    shutil.copy(out / "gradebook.csv", tmp / "first-gradebook.csv")  # a later test regrades into out/
    return {r.student: r for r in results}, out, subs


def _reasons(r) -> str:
    return " ".join(t.message for t in r.tests)


def _part_score(r, part: str) -> float:
    return sum(t.score for t in r.tests if t.part == part)


def test_solution_gets_full_marks_and_notebook_checks_pass(notebook_run):
    results, out, _, _ = notebook_run
    r = results["solution"]
    assert r.score == 100 and not r.notes and not r.grader_error
    assert len(r.tests) == sum(len(p.subtests) for p in PARTS)
    auto = [row for row in r.notebook if row["auto"]]
    assert auto and all(row["passed"] for row in auto), r.notebook
    assert [row["grade_id"] for row in r.notebook if not row["auto"]] == ["q_modes"]


def test_release_gets_zero_with_a_reason_for_every_lost_point(attack_run):
    r = attack_run[0]["release"]
    assert r.score == 0 and not r.grader_error and not r.notes
    assert all("not implemented yet" in t.message for t in r.tests)


def test_partial_submission_gets_exact_partial_credit(notebook_run):
    r = notebook_run[0]["partial"]
    lr_point = PART["get_optimizer"].subtest_points
    assert r.score == pytest.approx(100 - PART["interpolate_latent"].points - lr_point)
    [lr] = [t for t in r.tests if t.name == "get_optimizer: lr"]
    assert lr.score == 0 and "0.0002" in lr.message
    assert _part_score(r, "interpolate_latent") == 0
    assert {row["grade_id"]: row["passed"] for row in r.notebook if row["auto"]} == {
        "check_bce_loss": True, "check_interpolate_latent": False}


def test_broken_notebook_and_missing_module_are_reported(notebook_run, attack_run):
    badnb = notebook_run[0]["badnb"]
    assert badnb.score == 100 and "not valid JSON" in badnb.notebook_error
    assert all(row["passed"] is False and "not valid JSON" in row["message"] for row in badnb.notebook if row["auto"])
    for student in ("missing", "symlink"):
        r = attack_run[0][student]
        assert r.score == 0 and "gan_pytorch.py is missing" in r.notes[0]


def test_feedback_gradescope_and_gradebook(notebook_run):
    results, out, subs, source_nb = notebook_run
    feedback = (out / "feedback" / "partial.md").read_text()
    expected = 100 - PART["interpolate_latent"].points - PART["get_optimizer"].subtest_points
    assert "learning rate is 0.0002" in feedback and f"{expected:g} / 100" in feedback
    for text in (feedback, (out / "gradescope" / "partial" / "results.json").read_text()):
        assert "HIDDEN" not in text and 'check("discriminator_loss")' not in text
        assert fixtures.SECRET_ANSWER not in text
    gs = json.loads((out / "gradescope" / "partial" / "results.json").read_text())
    assert gs["score"] == pytest.approx(sum(t["score"] for t in gs["tests"]), abs=0.01)
    assert all({"name", "score", "max_score", "output", "visibility"} <= set(t) for t in gs["tests"])
    with open(out / "gradebook.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, maxima, body = rows[0], rows[1], {row[0]: row for row in rows[2:]}
    assert set(body) == set(WITH_NOTEBOOK)
    assert header[-3:] == ["total", "q_modes (by hand, /2)", "problems"]
    assert float(maxima[header.index("total")]) == 100
    for student, row in body.items():
        assert float(row[header.index("total")]) == pytest.approx(results[student].score, abs=1e-3)
        assert float(row[header.index("total")]) == pytest.approx(sum(map(float, row[1:header.index("total")])),
                                                                  abs=0.01)


def test_gradebook_problems_name_missing_modules_and_timeouts(attack_run):
    """Issue 11 item 6: the ``problems`` column says what is missing or was stopped at a limit."""
    with open(attack_run[1].parent / "first-gradebook.csv", newline="", encoding="utf-8") as f:
        rows = {row["student"]: row["problems"] for row in csv.DictReader(f)}
    assert "gan_pytorch.py is missing from the submission" in rows["missing"]
    assert "importing gan_pytorch.py took more than" in rows["import_loop"]  # the import's CPU-time timer
    assert f"interpolate_latent: stopped after the {LIMITS.wall_s:g} s time limit" in rows["part_loop"]  # wall clock
    assert rows["zoe"] == ""


@pytest.mark.parametrize("kind,reason", [
    ("syntax", "SyntaxError"), ("import_loop", "took more than"), ("membomb", "MemoryError"),
    ("exit0", "exited with code 0"),
])
def test_broken_modules_get_zero_with_a_clear_reason(attack_run, kind, reason):
    r = attack_run[0][kind]
    assert r.score == 0 and not r.grader_error
    assert all(reason in t.message for t in r.tests), _reasons(r)[:300]


@pytest.mark.parametrize("kind,reason", [("print100mb", "File too large"), ("part_loop", "time limit")])
def test_a_part_that_kills_the_process_costs_only_that_part(attack_run, kind, reason):
    r = attack_run[0][kind]
    assert r.score == 100 - PART["interpolate_latent"].points
    assert all(reason in t.message for t in r.tests if t.part == "interpolate_latent")


@pytest.mark.parametrize("kind", ["cheat", "conftest", "snoop"])
def test_attacks_gain_nothing(attack_run, kind):
    assert attack_run[0][kind].score == 0


def test_snoop_finds_everything_blocked(attack_run):
    results, out, subs = attack_run
    [message] = {t.message for t in results["snoop"].tests if t.part == "interpolate_latent"}
    assert "SNOOP" in message and "=OPEN" not in message, message
    if sandbox.isolation() == "namespaces":
        assert message.count("=blocked") == 10, message
    assert (out / "results" / "victim.json").read_text() == "untouched"
    assert "pwned" not in (out / "gradebook.csv").read_text()
    assert not Path("/tmp/gan-grader-pwned").exists() and not (fixtures.ROOT / "pwned.txt").exists()


def test_zip_submission_is_unpacked_and_named(attack_run):
    r = attack_run[0]["zoe"]
    assert r.score == 100


def test_rerun_is_resumable_and_force_regrades(attack_run):
    first, out, subs = attack_run
    fixtures.write_submission(subs / "syntax", "solution")  # the student fixed the bug
    logs: list[str] = []
    results = {r.student: r for r in grade.grade_all(subs, out, jobs=2, limits=LIMITS, log=logs.append)}
    cached = {line.split(":")[0] for line in logs if "(cached)" in line}
    assert cached == set(first) - {"syntax"}
    assert results["syntax"].score == 100 and results["cheat"].score == 0
    assert (out / "results" / "victim.json").read_text() == "untouched"
    for entry in subs.iterdir():
        if entry.name != "cheat":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    logs.clear()
    grade.grade_all(subs, out, force=True, limits=LIMITS, log=logs.append)
    graded = [line for line in logs if not line.startswith("grading ")]
    assert len(graded) == 1 and "cheat: 0/100" in graded[0] and "(cached)" not in graded[0]


def test_cli_exit_codes(tmp_path, capsys):
    assert cli.main(["grade", str(tmp_path / "nope"), str(tmp_path / "out"), "--notebook", "x.ipynb"]) == 2
    assert cli.main(["grade", str(tmp_path / "nope"), str(tmp_path / "out"), "--jobs", "0"]) == 2
