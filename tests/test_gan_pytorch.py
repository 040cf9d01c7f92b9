"""The notebook's checks, run by pytest: ``python -m pytest tests/test_gan_pytorch.py``.

Each test checks one part of gan_pytorch.py against gan-checks.npz; a failure says what differs and why.
"""

import pytest

from gan_utils.checks import PARTS, function_name, load_cases, run


@pytest.fixture(scope="module")
def cases():
    return load_cases()


@pytest.mark.parametrize("part", PARTS)
def test_part(part, cases):
    failures = [o.message for o in run(part, cases=cases) if not o.passed]
    assert not failures, f"{function_name(part)} failed:\n" + "\n".join(dict.fromkeys(failures))
