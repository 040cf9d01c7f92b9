"""Issue 12 (the grader survives anything a submission does) and issue 11 items 6-7 (problems column, limits).

Every attack or bad input runs in a real ``grade`` run beside honest submissions; the tests check that the run
completes, that the honest results are unchanged, and that the attacker gets a clear reason. Two runs (module
only; module and notebook) keep this fast; small unit tests cover the readers on their own.
"""

import csv
import inspect
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from gan_utils.parts import PART
from instructor import cli, fixtures, grade, notebook_grading, reports, sandbox
from instructor.safe_io import UnsafeFile, clean_text, read_regular
from instructor.submissions import Submission

LIMITS = sandbox.Limits(wall_s=20, part_timeout_s=4, memory_mb=4500, nproc=100, cgroup_memory_mb=1500)
HONEST = ("solution", "honest_b", "honest_b-2", "zoe", "sleepy")  # sleepy: 6 s of sleep in a 4 s CPU-time part
ZIPS = {"enc": "encrypted", "damaged": "", "deep": "folders deep", "method": "NotImplementedError"}
SANDBOX_UIDS = sandbox.all_uids(10)


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {row["student"]: row for row in rows[1:]}


def _reasons(r) -> str:
    return " | ".join(t.message for t in r.tests if t.message)


def _zip_with(path: Path, name: str, data: bytes, method: int = zipfile.ZIP_STORED) -> bytes:
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr(name, data)
    return path.read_bytes()


def _patch_headers(path: Path, local: int, central: int, value: int) -> None:
    """Overwrite a 2-byte field of the only entry's local header and central directory record."""
    raw = bytearray(path.read_bytes())
    raw[local:local + 2] = struct.pack("<H", value)
    at = raw.rfind(b"PK\x01\x02")
    raw[at + central:at + central + 2] = struct.pack("<H", value)
    path.write_bytes(bytes(raw))


def _bad_zips(subs: Path, source: bytes) -> None:
    _zip_with(subs / "enc_1_GAN.zip", "gan_pytorch.py", source)
    _patch_headers(subs / "enc_1_GAN.zip", 6, 8, 0x1)  # the "encrypted" flag
    raw = bytearray(_zip_with(subs / "damaged_1_GAN.zip", "gan_pytorch.py", source * 4, zipfile.ZIP_DEFLATED))
    start = 30 + len("gan_pytorch.py")
    raw[start + 20:start + 400] = os.urandom(380)  # garbage in the middle of the deflate stream
    (subs / "damaged_1_GAN.zip").write_bytes(bytes(raw))
    _zip_with(subs / "deep_1_GAN.zip", "a/" * 1200 + "gan_pytorch.py", source)
    _zip_with(subs / "method_1_GAN.zip", "gan_pytorch.py", source)
    _patch_headers(subs / "method_1_GAN.zip", 8, 10, 99)  # a compression method that zipfile does not know


@pytest.fixture(scope="module")
def module_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks12")
    subs, out = tmp / "subs", tmp / "out"
    for kind, make in fixtures.ATTACKS.items():
        fixtures.write_submission(subs / kind, kind, source=make())
    for name in ("solution", "honest b", "honest_b"):
        fixtures.write_submission(subs / name, "solution")
    solution = fixtures.solution_source().encode()
    with zipfile.ZipFile(subs / "zoe_12345_GAN.zip", "w") as z:
        z.writestr("my-folder/gan_pytorch.py", solution)
    _bad_zips(subs, solution)
    logs: list[str] = []
    results = grade.grade_all(subs, out, jobs=2, limits=LIMITS, log=logs.append)
    return {r.student: r for r in results}, out, subs, logs


def test_the_run_completes_with_one_row_per_entry(module_run):
    results, out, subs, logs = module_run
    entries = [e for e in subs.iterdir()]
    assert len(results) == len(entries) and set(_rows(out)) == set(results)
    assert logs[0].startswith("grading ") and "isolation: " in logs[0] and "cgroups: " in logs[0]
    for student in results:
        assert (out / "feedback" / f"{student}.md").is_file()
        assert (out / "gradescope" / student / "results.json").is_file()


def test_honest_submissions_are_unchanged(module_run):
    results = module_run[0]
    for student in HONEST:
        r = results[student]
        assert r.score == 100 and not r.crashes and not r.grader_error, (student, _reasons(r))


@pytest.mark.parametrize("student", ["fifo_stage", "symlink_stage"])
def test_a_fifo_or_symlink_instead_of_the_stage_file_is_not_read(module_run, student):
    r = module_run[0][student]  # the symlink's decoy names bce_loss: followed, it would cost only that part
    assert r.score == 0 and "could not be imported" in r.notes[0] and "exited with code 0" in r.notes[0], r.notes


@pytest.mark.parametrize("student,kind", [("import_fifo", "FIFO"), ("import_symlink", "symlink")])
def test_a_fifo_or_symlink_instead_of_the_import_report_is_refused(module_run, student, kind):
    r = module_run[0][student]
    assert r.score == 0 and kind in r.notes[0] and "cannot be imported" in r.notes[0], r.notes
    assert "FORGED" not in r.notes[0]


def test_outputs_replaced_by_a_symlink_or_fifo_cost_only_those_parts(module_run):
    r = module_run[0]["swap_outputs"]
    assert r.score == pytest.approx(100 - PART["bce_loss"].points - PART["discriminator"].points)
    bce = {t.message for t in r.tests if t.part == "bce_loss"}
    disc = {t.message for t in r.tests if t.part == "discriminator"}
    assert all("symlink" in m for m in bce) and all("FIFO" in m for m in disc), (bce, disc)


def test_an_output_folder_replaced_by_a_symlink_is_not_followed(module_run):
    r = module_run[0]["swap_out_folder"]
    assert r.score == 0 and all("replaced the grader's output folder with a symlink" in t.message for t in r.tests)


def test_surrogates_and_escapes_in_messages_reach_every_file(module_run):
    results, out, subs, logs = module_run
    r = results["surrogate"]
    assert r.score == 100 - PART["bce_loss"].points
    assert any("bce_loss: raised ValueError: bad \\udc80 value" in c for c in r.crashes), r.crashes
    imp = results["surrogate_import"]
    assert imp.score == 0 and "RuntimeError" in imp.notes[0]
    for path in (out / "gradebook.csv", out / "feedback" / "surrogate.md", out / "feedback" / "surrogate_import.md"):
        text = path.read_bytes().decode("utf-8")  # valid UTF-8
        assert "\x1b" not in text
    assert not any("\x1b" in line for line in logs)


def test_a_rerun_writes_feedback_that_a_stopped_run_left_missing(module_run):
    results, first_out, subs, logs = module_run
    out = subs.parent / "out-rerun"  # a copy: the other tests read the first run's output
    shutil.copytree(first_out, out)
    (out / "feedback" / "surrogate.md").unlink()
    shutil.rmtree(out / "gradescope" / "surrogate")
    again: list[str] = []
    rerun = subs.parent / "subs-rerun"
    shutil.copytree(subs / "surrogate", rerun / "surrogate")
    [r] = grade.grade_all(rerun, out, limits=LIMITS, log=again.append)
    assert any("(cached)" in line for line in again) and r.score == results["surrogate"].score
    assert (out / "feedback" / "surrogate.md").is_file()
    assert (out / "gradescope" / "surrogate" / "results.json").is_file()


@pytest.mark.parametrize("student,reason", list(ZIPS.items()))
def test_broken_zips_cost_only_their_student(module_run, student, reason):
    r = module_run[0][student]
    assert r.score == 0 and "cannot be unpacked" in r.notes[-1] and reason in r.notes[-1], r.notes
    assert "cannot be unpacked" in _rows(module_run[1])[student]["problems"]


def test_sanitised_ids_are_unique_and_say_so(module_run):
    results, out, _, _ = module_run
    rows = _rows(out)
    assert "honest_b" in rows and "honest_b-2" in rows
    assert not results["honest_b"].notes
    assert "'honest b' is not a usable student id" in rows["honest_b-2"]["problems"]
    assert "graded as 'honest_b-2'" in rows["honest_b-2"]["problems"]
    assert json.loads((out / "results" / "honest_b-2.json").read_text())["student"] == "honest_b-2"


def test_a_stub_forging_every_probe_earns_only_the_analysed_noise_points(module_run):
    r = module_run[0]["forger"]
    passed = [t.name for t in r.tests if t.score > 0]
    assert passed == ["sample_noise: uniform"] and r.score == PART["sample_noise"].subtest_points <= 5
    assert all("not credited" in t.message for t in r.tests if t.part in ("discriminator", "generator")
               and t.test in ("layers", "parameter count", "seed"))


def test_the_readme_states_how_many_points_are_self_reported():
    from gan_utils.parts import PARTS

    reported = sum(len(p.reported) * p.subtest_points for p in PARTS)
    text = (fixtures.ROOT / "instructor" / "README-grading.md").read_text()
    assert f"**{reported:.2f} points** in all" in text
    assert f"so {reported + PART['sample_noise'].subtest_points:.2f} with `uniform`" in text
    assert all("seed" not in p.subtests for p in PARTS if p.name.startswith("build_dc"))  # "the DC ... take no seed"


def test_a_fork_bomb_is_contained_and_killed(module_run):
    results = module_run[0]
    r = results["fork_bomb"]
    [message] = {t.message for t in r.tests if t.part == "interpolate_latent"}
    forked = int(message.split("FORKED ")[1].split()[0].rstrip(")"))
    assert 0 < forked < LIMITS.nproc, message
    assert r.score == 100 - PART["interpolate_latent"].points, _reasons(r)
    left = sandbox._processes_of(SANDBOX_UIDS)
    assert not left, f"sandbox processes left running: {left}"


def test_memory_is_capped_across_a_submissions_processes(module_run):
    if "cgroups: unavailable" in module_run[3][0]:
        pytest.skip("no cgroups on this machine: only the per-process address-space limit holds")
    r = module_run[0]["memory_hog"]
    [message] = {t.message for t in r.tests if t.part == "interpolate_latent"}
    statuses = json.loads(message.split("STATUSES ")[1].split("]")[0] + "]")
    assert -9 in statuses, message  # the cgroup's OOM killer took some of the six 500 MB children


def test_submission_cgroup_has_its_limits():
    groups, text = sandbox.Cgroups.setup(f"gan-grader-test-{os.getpid()}")
    if groups is None:
        pytest.skip(f"cgroups {text}")
    try:
        group = groups.create("alice b", 1.5, 300, 40)
        files = {1: {"cpu": "cpu.cfs_quota_us", "memory": "memory.limit_in_bytes", "pids": "pids.max"},
                 2: {"cpu": "cpu.max", "memory": "memory.max", "pids": "pids.max"}}[groups.version]
        values = {c: (group.dirs[c] / name).read_text().split()[0] for c, name in files.items()}
        assert values == {"cpu": "150000", "memory": str(300 * 2**20), "pids": "40"}
        group.remove()
        assert not any(d.exists() for d in group.dirs.values())
    finally:
        groups.close()
    assert not any(d.exists() for d in groups.dirs.values())


def test_borrowing_every_shipped_name_earns_nothing(module_run):
    """Issue 11 item 4: a module that answers each part with whatever public function or class of the shipped
    gan_utils takes the part's call (and returns the right kind of object) gets no point: nothing that ships
    computes a task."""
    r = module_run[0]["borrower"]
    assert not r.notes and not r.grader_error, r.notes  # it imported, and every part was probed
    assert r.score == 0, [(t.name, t.message) for t in r.tests if t.score]
    assert not any("not implemented yet" in t.message for t in r.tests), _reasons(r)
    judged = {t.part for t in r.tests if "BORROWED nothing" not in t.message}
    assert judged, _reasons(r)[:2000]  # some parts were answered by shipped objects (a classifier, ...), and lost


def test_a_part_that_runs_out_of_cpu_time_costs_only_that_part(module_run):
    r = module_run[0]["part_cpu"]
    assert r.score == 100 - PART["interpolate_latent"].points, _reasons(r)
    assert all("took more than" in t.message for t in r.tests if t.part == "interpolate_latent"), _reasons(r)


def test_problems_column_names_what_is_broken(module_run):
    rows = _rows(module_run[1])
    assert "bce_loss: raised ValueError" in rows["surrogate"]["problems"]
    assert "interpolate_latent: ran out of time: took more than" in rows["part_cpu"]["problems"]
    assert "exited with code 0" in rows["fifo_stage"]["problems"]
    assert "cannot be imported" in rows["surrogate_import"]["problems"]
    assert rows["solution"]["problems"] == ""


# --------------------------------------------------------------------------------------------------
# Notebooks


@pytest.fixture(scope="module")
def notebook_attack_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb-attacks")
    source_nb, student_nb, subs, out = fixtures.notebook_course(tmp)
    victim = fixtures.write_submission(subs / "victim", "solution")
    fixtures.victim_notebook(student_nb, victim / "GAN.ipynb")
    stolen = str(victim / "GAN.ipynb")
    for name, kind, cell in (("killer", "release", fixtures.NOTEBOOK_KILLER.format(victim=stolen, end="os._exit(0)")),
                             ("forger_nb", "release", fixtures.NOTEBOOK_KILLER.format(victim=stolen, end="")),
                             ("hang", "solution", fixtures.NOTEBOOK_HANG)):
        folder = fixtures.write_submission(subs / name, kind)
        fixtures.add_cell(student_nb, folder / "GAN.ipynb", cell)
    folder = fixtures.write_submission(subs / "checksum", "solution")
    fixtures.edit_cell(student_nb, folder / "GAN.ipynb", "check_bce_loss",
                       lambda cell: cell["metadata"]["nbgrader"].update(solution=True))
    folder = fixtures.write_submission(subs / "deepjson", "solution")
    (folder / "GAN.ipynb").write_text('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    fixtures.write_submission(subs / "nonotebook", "solution")
    limits = sandbox.Limits(wall_s=20, part_timeout_s=4, memory_mb=4500)
    results = grade.grade_all(subs, out, jobs=2, notebook=source_nb, limits=limits)
    return {r.student: r for r in results}, out, limits


def _auto(r) -> list[dict]:
    return [row for row in r.notebook if row["auto"]]


def test_honest_notebook_passes_beside_the_attacks(notebook_attack_run):
    r = notebook_attack_run[0]["victim"]
    assert r.score == 100 and not r.notebook_error and all(row["passed"] for row in _auto(r)), r.notebook


def test_a_kernel_that_kills_and_forges_gets_nothing(notebook_attack_run):
    results, out, _ = notebook_attack_run
    r = results["killer"]
    assert r.score == 0
    assert "kernel died" in r.notebook_error, r.notebook_error
    assert _auto(r) and not any(row["passed"] for row in _auto(r))
    assert results["victim"].score == 100 and all(row["passed"] for row in _auto(results["victim"]))


def test_a_stub_notebook_never_reads_as_passed_and_copies_nothing(notebook_attack_run):
    results, out, _ = notebook_attack_run
    for student in ("killer", "forger_nb"):
        assert not any(row["passed"] for row in _auto(results[student])), results[student].notebook
        for path in (out / "feedback" / f"{student}.md", out / "gradescope" / student / "results.json",
                     out / "results" / f"{student}.json"):
            assert fixtures.VICTIM_SECRET not in path.read_text()
    r = results["forger_nb"]  # its kernel ran to the end: the genuine (failing) checks are reported
    assert not r.notebook_error and all("not implemented yet" in row["message"] for row in _auto(r)), r.notebook


def test_the_notebook_obeys_the_timeout(notebook_attack_run):
    results, _, limits = notebook_attack_run
    r = results["hang"]
    assert r.score == 100 and "time limit" in r.notebook_error
    assert all("time limit" in row["message"] for row in _auto(r))
    assert r.seconds < limits.wall_s + 40, r.seconds
    assert "notebook: notebook autograding stopped after the" in _rows(notebook_attack_run[1])["hang"]["problems"]


def test_nbgraders_own_reason_is_passed_on(notebook_attack_run):
    results, out, _ = notebook_attack_run
    r = results["checksum"]
    assert r.score == 100
    assert "Inconsistent checksums for cell check_bce_loss" in r.notebook_error, r.notebook_error
    assert all("Inconsistent checksums" in row["message"] for row in _auto(r))
    assert "Inconsistent checksums" in _rows(out)["checksum"]["problems"]


def test_a_broken_notebook_never_costs_the_module(notebook_attack_run):
    results, out, _ = notebook_attack_run
    r = results["deepjson"]
    assert r.score == 100 and "nested far too deeply" in r.notebook_error
    assert "notebook: the notebook is missing" in _rows(out)["nonotebook"]["problems"]
    assert results["nonotebook"].score == 100


# --------------------------------------------------------------------------------------------------
# What the sandbox shows: a venv inside a clone of the course


def test_a_venv_inside_the_course_folder_does_not_show_the_course(tmp_path):
    if sandbox.isolation() != "namespaces":
        pytest.skip("only the namespaces level hides files (see README-grading.md)")
    course = tmp_path / "course"
    course.mkdir()
    (course / "gan_pytorch.py").write_text(fixtures.solution_source())
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(course / ".venv")], check=True)
    python = course / ".venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    real_site = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "torch").is_dir())
    Path(site, "course-deps.pth").write_text(real_site + "\n")
    subs = tmp_path / "subs"
    attack = fixtures.stubbed_source() + (
        "\nimport os as _os, sys as _sys\n_BESIDE = _os.path.join(_os.path.dirname(_sys.prefix), 'gan_pytorch.py')\n"
        "try:\n    exec(open(_BESIDE).read())\nexcept OSError as _exc:\n    _WHY = repr(_exc)\n")
    fixtures.write_submission(subs / "prefix", "release", source=attack)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([str(python), "-m", "instructor", "grade", str(subs), str(tmp_path / "out"), "--timeout",
                           "60"], cwd=fixtures.ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "results" / "prefix.json").read_text())
    assert result["score"] == 0, "the submission read the course's gan_pytorch.py beside the venv"


# --------------------------------------------------------------------------------------------------
# The readers on their own


def test_read_regular_refuses_links_fifos_and_large_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ok").write_bytes(b"x" * 10)
    (tmp_path / "a" / "link").symlink_to(tmp_path / "a" / "ok")
    os.mkfifo(tmp_path / "a" / "fifo")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert read_regular(tmp_path, "a/ok", 10) == b"x" * 10
    for rel, why in (("a/link", "symlink"), ("a/fifo", "FIFO"), ("b/ok", "b is a symlink"), ("a/none", "missing"),
                     ("a", "folder")):
        with pytest.raises(UnsafeFile, match=why):
            read_regular(tmp_path, rel, 100)
    with pytest.raises(UnsafeFile, match="larger"):
        read_regular(tmp_path, "a/ok", 5)
    with pytest.raises(UnsafeFile, match="not written by"):
        read_regular(tmp_path, "a/ok", 100, owner=os.getuid() + 1)
    done = threading.Event()
    threading.Thread(target=lambda: (pytest.raises(UnsafeFile, read_regular, tmp_path, "a/fifo", 9), done.set()),
                     daemon=True).start()
    assert done.wait(5), "reading a FIFO blocked"


def _within(seconds: float, fn):
    """``fn()``'s value, failing the test if it blocks (a plain open of a FIFO never returns)."""
    box: list = []
    thread = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert box, f"{fn} blocked"
    return box[0]


def test_log_tails_never_follow_links_or_block_on_fifos(tmp_path):
    """Issue 12 item 1: a run's logs are read like any file a sandbox could have replaced (at the 'rlimits' level
    it runs as the grader's uid)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "module.stdout").write_bytes(b"x" * 10_000 + b"the end \x1b[31m\xff")
    tail = sandbox._tail(logs / "module.stdout", 12)
    assert tail.startswith("e end") and "\x1b" not in tail and len(tail) <= 12
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    (logs / "module.stderr").symlink_to(secret)
    os.mkfifo(logs / "kernel.log")
    for name in ("module.stderr", "kernel.log", "missing.log"):
        assert _within(5, lambda name=name: sandbox._tail(logs / name)) == "", name
    (logs / "sub").mkdir()
    (logs / "via").symlink_to(logs / "sub")
    (logs / "sub" / "x.log").write_text("behind a link")
    assert _within(5, lambda: sandbox._tail(logs / "via" / "x.log")) == ""


def test_a_damaged_or_deeply_nested_results_file_costs_only_its_student(tmp_path):
    """Issue 12 item 1: a results file (the cache) or nbgrader's result.json nested deeply enough to exhaust the
    parser's recursion is read as missing: that student is graded again, the others are not affected."""
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    student = type("Sub", (), {"student": "alice"})()
    for text in ("[" * 100_000 + "]" * 100_000, '{"tests": ' + "[" * 100_000, "[]", '{"tests": 3}', "\udc80"):
        (out / "results" / "alice.json").write_text(text, errors="surrogateescape")
        assert grade._cached(student, out, "key") is None
    with pytest.raises(ValueError, match="nested"):
        reports.StudentResult.from_json("[" * 100_000 + "]" * 100_000)
    (tmp_path / "driver").mkdir()
    for data in (b"[" * 100_000, b'{"exit": ' + b"[" * 100_000, b"[1]", b"\xff"):
        (tmp_path / "driver" / "result.json").write_bytes(data)
        assert grade.read_driver_result(tmp_path, None) == {}
    (tmp_path / "driver" / "result.json").write_text('{"exit": 0, "log": []}')
    assert grade.read_driver_result(tmp_path, None) == {"exit": 0, "log": []}
    assert grade.read_driver_result(tmp_path, os.getuid() + 1) == {}  # not the driver's file


def test_clean_text_escapes_surrogates_and_controls():
    text = clean_text("a\udc80b\x1b[2Jc\nd\te")
    assert text.encode("utf-8") and "\x1b" not in text and "\\udc80" in text and "\n" in text and "\t" in text


def test_malformed_autograded_notebooks_fail_their_cells_without_crashing(tmp_path):
    source = notebook_grading.SourceCourse(fixtures.fixture_notebook(tmp_path / "GAN.ipynb"), tmp_path)
    cell = {"metadata": {"nbgrader": {"grade_id": "check_bce_loss"}}, "execution_count": 1}
    for outputs in ("text", {"a": 1}, [1, 2], None):
        data = json.dumps({"cells": [{**cell, "outputs": outputs}, "not a cell", {"metadata": []}]}).encode()
        [bce, interp, _] = notebook_grading.read_autograded(source, data)
        assert bce["passed"] is False and bce["message"] and interp["passed"] is False
    unexecuted = json.dumps({"cells": [{**cell, "execution_count": None, "outputs": [
        {"output_type": "stream", "name": "stdout", "text": "[PASS]"}]}]}).encode()
    assert "did not run" in notebook_grading.read_autograded(source, unexecuted)[0]["message"]
    for data in (b"[" * 100_000, b"{}", b"\xff"):
        assert all(row["passed"] is False for row in notebook_grading.read_autograded(source, data) if row["auto"])


def test_nbgrader_reasons_are_put_in_a_students_words():
    log = ["WARNING: Attribute 'checksum' for cell x has changed!",
           "ERROR: Traceback (most recent call last):\n  File ...\nRuntimeError: Inconsistent checksums for cell "
           "check_bce_loss", "ERROR: Please see the the above traceback"]
    assert "Inconsistent checksums for cell check_bce_loss" in notebook_grading.nbgrader_reason(log)
    dead = ["ERROR: Traceback ...\nnbclient.exceptions.DeadKernelError: Kernel died"]
    assert "kernel died" in notebook_grading.nbgrader_reason(dead)


def test_timeout_help_says_it_bounds_the_notebook_too():
    grade_parser = cli.parser()._subparsers._group_actions[0].choices["grade"]
    [timeout] = [a for a in grade_parser._actions if "--timeout" in a.option_strings]
    assert "notebook" in timeout.help and "CPU time" in timeout.help



def test_the_timeout_option_reaches_the_notebook_sandbox(tmp_path, monkeypatch):
    """Issue 12 item 7: ``grade --timeout S`` becomes the limits of the run, and the notebook's sandboxed run gets
    S as its wall-clock limit (the keeper kills it then) and min(30, S/2) s per cell (nbgrader's timeout)."""
    nb = fixtures.fixture_notebook(tmp_path / "src" / "GAN.ipynb")
    seen: dict = {}
    monkeypatch.setattr(grade, "grade_all", lambda *a, **k: seen.update(k) or [])
    assert cli.main(["grade", str(tmp_path / "subs"), str(tmp_path / "out"), "--timeout", "12", "--notebook",
                     str(nb)]) == 0
    limits = seen["limits"]
    assert (limits.wall_s, limits.part_timeout_s, limits.cell_timeout_s) == (12, 4, 6) and seen["notebook"] == nb

    runs: list[tuple[str, dict]] = []

    class Template:  # what Sandboxes.run hands to the warm template (whose keeper waits cfg["wall_s"] s)
        def start_run(self, cfg, logs):
            runs.append(("cfg", cfg))
            raise sandbox.TemplateError("not started in this test")

    boxes = type("Boxes", (), {"level": "rlimits", "limits": limits, "base_env": {}, "template": Template()})()
    for mode in ("notebook", "module"):
        with pytest.raises(sandbox.TemplateError):
            sandbox.Sandboxes.run(boxes, mode, tmp_path, tmp_path, 0, {})
    assert [cfg["wall_s"] for _, cfg in runs] == [12, 12] and runs[0][1]["mode"] == "notebook"

    laid_out: dict = {}
    signature = inspect.signature(notebook_grading.layout_course)
    monkeypatch.setattr(notebook_grading, "layout_course",
                        lambda *a, **k: laid_out.update(signature.bind(*a, **k).arguments))
    fake_run = sandbox.RunResult(None, True, 12.0, "", "", "rlimits", limits.wall_s)
    ctx_boxes = type("Boxes", (), {"level": "rlimits", "data_dir": "",
                                   "run": lambda self, mode, *a, **k: runs.append((mode, {})) or fake_run})()
    ctx = grade.Context(tmp_path, tmp_path, {}, b"", limits, ctx_boxes, "", notebook_grading.SourceCourse(nb, tmp_path))
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "GAN.ipynb").write_bytes(nb.read_bytes())
    (tmp_path / "scratch").mkdir()
    rows, problem, _ = grade.grade_notebook(Submission("alice", folder, ""), ctx, tmp_path / "scratch", tmp_path, 0)
    assert laid_out["cell_timeout"] == 6 and runs[-1][0] == "notebook"
    assert "stopped after the 12 s time limit" in problem and all("12 s" in r["message"] for r in rows if r["auto"])


def test_the_first_line_says_when_cgroups_are_unavailable(tmp_path, monkeypatch):
    """Issue 12 item 7: without cgroups, the run's first line says so and that limits are then per process."""
    class Template:  # no warm process: the only submission has no gan_pytorch.py, so nothing runs
        def __init__(self, *args, **kwargs):
            pass

        def wait_ready(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(sandbox, "Template", Template)
    monkeypatch.setattr(sandbox.Cgroups, "setup", classmethod(lambda cls, tag=None: (None, "unavailable (test)")))
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    logs: list[str] = []
    [r] = grade.grade_all(tmp_path / "subs", tmp_path / "out", limits=LIMITS, log=logs.append)
    assert "cgroups: unavailable (test) (limits are per process only: a submission's processes together are not " \
           "capped)" in logs[0], logs[0]
    assert r.score == 0 and "gan_pytorch.py is missing" in r.notes[0]


def _sigint_as_in_a_terminal() -> None:
    """Let SIGINT act in the child, as it does in a terminal: a shell starts background jobs (a CI runner's, say)
    with SIGINT ignored, and children inherit that, so Ctrl-C could not be simulated there."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_the_run_at_once_and_cleans_up(tmp_path):
    subs, tmpdir = tmp_path / "subs", tmp_path / "tmp"
    tmpdir.mkdir()
    fixtures.write_submission(subs / "loop", "import_loop")
    fixtures.write_submission(subs / "fifo", "fifo", source=fixtures.ATTACKS["fifo_stage"]())
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "instructor", "grade", str(subs), str(tmp_path / "out"),
                             "--timeout", "300"], cwd=fixtures.ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_as_in_a_terminal)
    try:
        assert proc.stdout.readline().startswith("grading 2 submissions")
        assert proc.stdout.readline().startswith("fifo: 0/100")  # the FIFO did not block the grader
        proc.send_signal(signal.SIGINT)  # while the endless import runs
        assert proc.wait(timeout=60) == 130, proc.stderr.read()
    finally:
        proc.kill()
    assert "interrupted" in proc.stderr.read()
    assert not list(tmpdir.iterdir()), "the work folder was left behind"
    assert not (tmp_path / "out" / "gradebook.csv").exists()
    left = sandbox._processes_of(SANDBOX_UIDS)
    assert not left, f"sandbox processes left running: {left}"


def test_closing_waits_until_the_sandboxed_processes_are_gone_but_not_forever():
    mine = {os.getuid()}
    assert str(os.getpid()) in sandbox._processes_of(mine)
    started = time.monotonic()
    sandbox._wait_until_gone(mine, timeout_s=0.2)  # this process never goes: the wait ends at its timeout
    assert 0.2 <= time.monotonic() - started < 2
    if os.geteuid() != 0:
        return
    uid = sandbox.uids(9)["kernel"]
    child = subprocess.Popen(["/bin/sleep", "0.5"], user=uid, group=uid)
    threading.Thread(target=child.wait).start()  # reaped as soon as it exits, as the template's are
    sandbox._wait_until_gone({uid}, timeout_s=10)
    assert child.poll() is not None and sandbox._processes_of({uid}) == []


@pytest.mark.parametrize("level", ["uid", "rlimits"])
def test_weaker_isolation_levels_still_grade(tmp_path, monkeypatch, level):
    """Root without namespaces ('uid': separate uids only) and no privileges at all ('rlimits'): the same code
    paths that Gradescope-like containers take; grading must work there too (weaker, as the README says)."""
    if os.geteuid() != 0:
        pytest.skip("forcing a level needs root")
    monkeypatch.setattr(sandbox, "isolation", lambda: level)
    source_nb = fixtures.fixture_notebook(tmp_path / "src" / "GAN.ipynb")
    student_nb = notebook_grading.generate_assignment(source_nb, tmp_path / "course")
    fixtures.write_submission(tmp_path / "subs" / "solution", "solution", student_nb)
    logs: list[str] = []
    if level == "uid" and sandbox.unreadable_by_others(list(sandbox.python_paths())):
        with pytest.raises(sandbox.SandboxError, match="cannot read the Python installation"):
            grade.grade_all(tmp_path / "subs", tmp_path / "out", notebook=source_nb, limits=LIMITS)
        return  # this machine's Python lives where others cannot read it (e.g. under /root): a clear refusal
    [r] = grade.grade_all(tmp_path / "subs", tmp_path / "out", notebook=source_nb, limits=LIMITS, log=logs.append)
    assert f"isolation: {level} (WEAKER" in logs[0]
    assert r.score == 100 and not r.notebook_error and all(row["passed"] for row in _auto(r)), r.notebook
