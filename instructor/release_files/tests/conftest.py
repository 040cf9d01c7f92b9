"""Prints what each failing check says, one line per part, after the run (pytest.ini turns tracebacks off)."""


def pytest_terminal_summary(terminalreporter) -> None:
    failed = terminalreporter.stats.get("failed", [])
    if failed:
        terminalreporter.write_sep("-", "what to fix")
    for report in failed:
        terminalreporter.write_line(str(report.longrepr).removeprefix("Failed: "))
