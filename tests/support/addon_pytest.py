"""The addon's Odoo tests as individual pytest items, under pytest-odoo, in a real Odoo 18.0.

``python -m tests.support.addon_pytest [pytest args]`` (``./run-tests`` runs it after the main suite,
with the same arguments): prepares a database of its own (the template copy plus the addon and its
demo data), writes an Odoo config for it, runs ``pytest -p pytest_odoo`` with Odoo's interpreter on
``addons/ai_generation/tests``, then drops the database. Every TransactionCase / HttpCase test is then
a pytest item: listed by ``--collect-only``, selectable with ``-k``, reported by pytest.

Without Odoo it says why in one line and exits 0 (the main suite reports the Odoo tiers as skipped).
The odoo-bin ``--test-enable`` run (tests/odoo/test_addon_suite.py) stays: it is how OCA's CI runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.odoo import (
    ADDONS_DIR,
    DB_HOST,
    DB_PASSWORD,
    DB_USER,
    create_database,
    drop_database,
    find_odoo,
    free_port,
)

ADDON = "ai_generation"
INI = Path(__file__).with_name("addon_pytest.ini")
NO_TESTS_COLLECTED = 5


def odoo_config(odoo, db: str) -> str:
    return "\n".join(
        [
            "[options]",
            f"addons_path = {odoo.addons_path}",
            f"db_host = {DB_HOST}",
            f"db_user = {DB_USER}",
            f"db_password = {DB_PASSWORD}",
            f"db_name = {db}",
            "http_interface = 127.0.0.1",
            f"http_port = {free_port()}",
            "log_level = warn",
            "",
        ]
    )


def split_paths(args: list[str]) -> tuple[list[str], list[str]]:
    """(options, paths): the arguments naming files or folders (``path::test`` too) apart."""
    paths = [a for a in args if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    return [a for a in args if a not in paths], paths


def main(args: list[str]) -> int:
    options, paths = split_paths(args)
    addon_dir = ADDONS_DIR / ADDON
    selected = [p for p in paths if addon_dir in Path(p.split("::")[0]).resolve().parents]
    if paths and not selected:
        print("addon tests (pytest-odoo): not selected by the paths given")
        return 0
    odoo = find_odoo()
    if odoo is None:
        home = os.environ.get("AIGEN_ODOO_HOME", "/opt/odoo-18.0")
        print(f"addon tests (pytest-odoo): skipped, no Odoo 18.0 at {home}")
        return 0
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('pytest_odoo') is None)"
    if subprocess.run([str(odoo.python), "-c", probe], check=False).returncode != 0:
        print("addon tests (pytest-odoo): not installed in Odoo's venv (scripts/provision installs it)")
        return 1
    db = create_database(odoo, [ADDON], prefix="aigen_pyodoo")
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="aigen-odoo-") as config:
            config.write(odoo_config(odoo, db))
            config.flush()
            command = [
                str(odoo.python),
                "-m",
                "pytest",
                "-c",
                str(INI),
                "--rootdir",
                str(ADDONS_DIR.parent),
                f"--odoo-database={db}",
                f"--odoo-config={config.name}",
                "--odoo-http",
                *(selected or [str(addon_dir / "tests")]),
                *options,
            ]
            # Odoo is a source tree, not an installed package: pytest-odoo imports it from there
            env = {**os.environ, "PYTHONPATH": str(odoo.home / "src")}
            code = subprocess.run(command, env=env, check=False).returncode
    finally:
        drop_database(db)
    # a -k or a path that selects none of the addon's tests is not a failure of this run
    if code == NO_TESTS_COLLECTED and args:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
