"""The student version of gan_pytorch.py imports cleanly, and every check fails on it with 'not implemented yet'."""

import importlib.util

import pytest

from gan_utils import checks
from gan_utils.parts import PARTS
from instructor.release import ROOT
from instructor.strip import SolutionMarkerError, strip_solutions

SOURCE = ROOT / "gan_pytorch.py"


@pytest.fixture(scope="module")
def stubbed(tmp_path_factory):
    path = tmp_path_factory.mktemp("release") / "gan_pytorch.py"
    path.write_text(strip_solutions(SOURCE.read_text(), str(SOURCE)))
    spec = importlib.util.spec_from_file_location("gan_pytorch_release", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


def test_release_has_no_solution_text(stubbed):
    path, _ = stubbed
    text = path.read_text()
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    solution_lines, other_lines = set(), set()
    inside = False
    for line in SOURCE.read_text().splitlines():
        if line.strip() == "### BEGIN SOLUTION":
            inside = True
        elif line.strip() == "### END SOLUTION":
            inside = False
        else:
            (solution_lines if inside else other_lines).add(line.strip())
    # lines that only a solution region has (``)`` or ``if seed is not None:`` also stand elsewhere)
    solution_only = solution_lines - other_lines - {"", ")", "return model"}
    assert len(solution_only) > 30
    leaked = [line for line in text.splitlines() if line.strip() in solution_only]
    assert not leaked, leaked


@pytest.mark.parametrize("part", [p.name for p in PARTS])
def test_every_check_fails_cleanly(stubbed, part):
    _, module = stubbed
    outcomes = checks.run(part, module)
    assert outcomes and not any(o.passed for o in outcomes)
    assert all("not implemented yet" in o.message for o in outcomes), [o.message for o in outcomes]


def test_check_raises_one_assertion_naming_each_function(stubbed, capsys):
    _, module = stubbed
    with pytest.raises(AssertionError) as info:
        checks.check(module=module)
    message = str(info.value)
    for part in PARTS:
        assert f"{part.label}: not implemented yet" in message
    assert "[FAIL]" in capsys.readouterr().out


def test_unbalanced_markers_are_rejected():
    with pytest.raises(SolutionMarkerError, match="never closed"):
        strip_solutions("def f():\n    ### BEGIN SOLUTION\n    return 1\n")
    with pytest.raises(SolutionMarkerError, match="without a"):
        strip_solutions("def f():\n    ### END SOLUTION\n")


def test_stub_keeps_indentation_and_names_methods():
    source = "class A:\n    def run(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n"
    out = strip_solutions(source)
    assert '        raise NotImplementedError("A.run is not implemented yet")' in out
    namespace = {}
    exec(out, namespace)
    with pytest.raises(NotImplementedError):
        namespace["A"]().run()
