"""The notebook's checks, run by pytest: ``pytest`` (or ``python -m pytest tests/test_gan_pytorch.py``).

Each test checks one part of gan_pytorch.py against gan-checks.npz; a failure says what to fix, one line each.
"""

import pytest

from gan_utils.checks import problems, run
from gan_utils.parts import PARTS
from gan_utils.references import load_cases


@pytest.fixture(scope="module")
def cases():
    return load_cases()


@pytest.mark.parametrize("name", [p.name for p in PARTS])
def test_part(name, cases):
    todo = problems(run(name, cases=cases))
    if todo:
        pytest.fail(" | ".join(todo), pytrace=False)
