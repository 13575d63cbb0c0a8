"""The addon's own Odoo tests (TransactionCase + HttpCase) inside a real Odoo 18.0."""

import pytest

from tests.support.odoo import require_odoo, run_addon_tests, throwaway_database

pytestmark = [pytest.mark.odoo, pytest.mark.slow]


def test_addon_test_suite_passes():
    odoo = require_odoo()
    with throwaway_database(odoo, prefix="aigen_suite") as db:
        counts, log = run_addon_tests(odoo, db, "ai_generation")
    print(f"ai_generation Odoo tests: {counts}")
    assert counts is not None, f"no test summary in Odoo's log:\n{log[-4000:]}"
    failures = [line for line in log.splitlines() if " ERROR " in line or " FAIL: " in line]
    assert counts["tests"] > 0, "zero tests ran"
    assert counts["failed"] == 0 and counts["errors"] == 0, "\n".join(failures[:40]) or log[-4000:]
