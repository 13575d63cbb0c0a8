"""Prints the end-to-end figures in the test summary, so plain ./run-tests shows them too."""

from tests.e2e.figures import FIGURES


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("end-to-end figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name} = {value:.3f}")
