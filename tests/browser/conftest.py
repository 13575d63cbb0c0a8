import pytest

from tests.support.browser import screenshot


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # a failing browser test leaves a picture of the screen it failed on
    if report.when == "call" and report.failed and "admin_page" in item.funcargs:
        try:
            report.sections.append(("screenshot", str(screenshot(item.funcargs["admin_page"], "FAILED"))))
        except Exception as exc:  # the page may be gone with the failure
            report.sections.append(("screenshot", f"none: {exc}"))
    return report
