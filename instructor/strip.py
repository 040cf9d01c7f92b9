"""Turn solution regions of a Python file into stubs: the gap nbgrader leaves open for ``.py`` files."""

from __future__ import annotations

import re

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE\n{indent}raise NotImplementedError(\"{name} is not implemented yet\")"
_DEF = re.compile(r"^\s*(?:def|class)\s+(\w+)")


class SolutionMarkerError(ValueError):
    """Unbalanced or nested solution markers."""


def strip_solutions(source: str, filename: str = "<source>") -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region with a NotImplementedError stub.

    The stub keeps the indentation of the BEGIN marker and names the enclosing function (or method).
    """
    out: list[str] = []
    inside_since: int | None = None
    names: list[tuple[int, str]] = []  # (indent, name) of the enclosing defs
    for lineno, line in enumerate(source.splitlines(keepends=True), 1):
        stripped = line.strip()
        if inside_since is None:
            match = _DEF.match(line)
            if match:
                indent = len(line) - len(line.lstrip())
                names = [(i, n) for i, n in names if i < indent] + [(indent, match.group(1))]
        if stripped == BEGIN:
            if inside_since is not None:
                raise SolutionMarkerError(
                    f"{filename}:{lineno}: {BEGIN} inside the region opened at line {inside_since}")
            inside_since = lineno
            indent = line[: len(line) - len(line.lstrip())]
            name = names[-1][1] if names else "this part"
            if len(names) > 1 and names[-2][0] < names[-1][0]:
                name = f"{names[-2][1]}.{name}"
            out.append(indent + STUB.format(indent=indent, name=name) + "\n")
        elif stripped == END:
            if inside_since is None:
                raise SolutionMarkerError(f"{filename}:{lineno}: {END} without a {BEGIN}")
            inside_since = None
        elif inside_since is None:
            out.append(line)
    if inside_since is not None:
        raise SolutionMarkerError(f"{filename}:{inside_since}: {BEGIN} is never closed")
    return "".join(out)
