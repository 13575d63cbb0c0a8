"""Prints the PWA figures (name=value) in the test summary; a failed test leaves a screenshot."""

import pytest

from tests.pwa.figures import FIGURES
from tests.support.browser import screenshot


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("PWA figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}={value:.1f}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed and "app" in item.funcargs:
        try:
            report.sections.append(("screenshot", str(screenshot(item.funcargs["app"], "FAILED"))))
        except Exception as exc:  # the page may be gone with the failure
            report.sections.append(("screenshot", f"none: {exc}"))
    return report
