"""Checks of your functions in ``gan_pytorch.py`` against the reference arrays in ``gan-checks.npz``.

From the notebook or a terminal::

    from gan_utils.checks import check
    check("bce_loss")        # prints what passed, or raises CheckFailed saying what is wrong and what to do

A check runs your code on stored inputs (``gan_utils.probes``) and compares the results with the stored
references (``gan_utils.judges``). Any correct implementation passes, whatever its names and formulation.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from gan_utils import parts
from gan_utils.judges import Outcome, judge
from gan_utils.probes import probe
from gan_utils.references import Cases, inputs_of, load_cases


class CheckFailed(AssertionError):
    """A check found differences; in Jupyter it shows its message without a stack trace."""

    def _render_traceback_(self) -> list[str]:
        return [f"CheckFailed: {self}"]


def run(name: str, module: ModuleType | None = None, cases: Cases | None = None) -> list[Outcome]:
    """Probe and judge one part in this process: one Outcome per sub-test."""
    part = parts.get(name)
    if module is None:
        import gan_pytorch as module  # noqa: PLC0415 - your module, imported when first checked
    case = (cases if cases is not None else load_cases())[part.name]
    return judge(part.name, probe(part.name, module, inputs_of(case)), case)


def problems(outcomes: list[Outcome]) -> list[str]:
    """What to fix, one line per distinct message (an unimplemented part says so once, not per sub-test)."""
    found = [o.message for o in outcomes if not o.passed] + [o.note for o in outcomes if o.note]
    return list(dict.fromkeys(found))


def check(*names: str, module: ModuleType | None = None, quiet: bool = False,
          references: str | Path | None = None) -> None:
    """Check the named parts (every part if none is named); raise CheckFailed listing what to fix.

    ``references`` is the reference file to use (default: gan-checks.npz of the assignment).
    """
    cases = load_cases(references)
    failures: list[str] = []
    for name in names or parts.NAMES:
        outcomes = run(name, module, cases)
        todo = problems(outcomes)
        if not quiet:
            passed = sum(o.passed for o in outcomes)
            print(f"[{'FAIL' if todo else 'PASS'}] {parts.get(name).label}: {passed}/{len(outcomes)} sub-tests passed")
        failures += todo
    if failures:
        raise CheckFailed("\n" + "\n".join(f"- {m}" for m in failures))
