"""The addon's Odoo tests are individual pytest items under pytest-odoo (./run-tests' second run)."""

import ast
import subprocess
import sys

import pytest

from tests.support.addon_pytest import split_paths
from tests.support.odoo import ADDONS_DIR, REPO, require_odoo

TESTS_DIR = ADDONS_DIR / "ai_generation" / "tests"


def defined_tests():
    """Every test method of the addon's test modules, as pytest-odoo's node ids name them."""
    found = set()
    for path in sorted(TESTS_DIR.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name.startswith("test"):
                        found.add(f"addons/ai_generation/tests/{path.name}::{node.name}::{item.name}")
    return found


@pytest.mark.odoo
def test_collect_only_lists_every_addon_test_one_by_one():
    require_odoo()
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.addon_pytest", "--collect-only", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = {line.strip() for line in done.stdout.splitlines() if "::" in line}
    expected = defined_tests()
    assert len(expected) > 50
    assert collected == expected


def test_paths_are_told_apart_from_options():
    options, paths = split_paths(["-k", "ledger", "tests/worker", "addons/ai_generation/tests::X", "-x"])
    assert options == ["-k", "ledger", "-x"]
    assert paths == ["tests/worker", "addons/ai_generation/tests::X"]
