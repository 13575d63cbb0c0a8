"""The addon upgrades in place: ``odoo-bin -u`` on a database its previous version installed and used.

The previous version is the addon as it was before its manifest's version last changed (``git archive``
of that commit: the repo's own history, so a checkout without it skips). Its migration scripts run, the
requests and the money it left are kept as they were, and the new code goes on working on them.
"""

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.odoo.setup_scripts import setup_without_broker
from tests.support.odoo import (
    REPO,
    OdooInstallation,
    OdooWithAddons,
    json_lines,
    psql,
    require_odoo,
    throwaway_database,
)

pytestmark = [pytest.mark.odoo, pytest.mark.slow]

MANIFEST = "addons/ai_generation/__manifest__.py"
CREATE = """
import json
from odoo.addons.ai_generation.pure.validation import GenerationInput
user = env["res.users"].search([("login", "=", "ai_alice")])
gen = GenerationInput("external", "gpt-test", "text", {prompt!r}, {{}})
status, body, _ = env["ai.generation.request"]._api_create(user, gen)
env.cr.commit()
print(json.dumps({{"status": status, "request_id": body.get("request_id")}}))
"""
INDEXES = "SELECT indexname FROM pg_indexes WHERE tablename = 'ai_generation_request'"
LEDGER_MISMATCHES = (
    "SELECT a.id FROM ai_credit_account a LEFT JOIN ai_credit_ledger_line l ON l.account_id = a.id"
    " GROUP BY a.id HAVING a.balance != COALESCE(SUM(l.amount), 0)"
    " OR a.held != COALESCE(SUM(l.hold_amount), 0)"
)
REQUEST = "SELECT company_id, price, state FROM ai_generation_request WHERE uuid = '{uuid}'"
HELD = "SELECT held FROM ai_credit_account a JOIN res_users u ON u.id = a.user_id WHERE u.login = 'ai_alice'"


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=False)


def previous_version(into: Path) -> tuple[str, str]:
    """The addon before its version last changed, extracted under ``into``: (commit, version)."""
    changed = _git("log", "-1", "--format=%H", "-G", '"version"', "--", MANIFEST)
    commit = changed.stdout.decode().strip()
    archive = _git("archive", "--format=tar", f"{commit}^", "addons/ai_generation") if commit else None
    if archive is None or archive.returncode != 0:
        pytest.skip("the repo's history is not here (a shallow or exported tree): no previous version")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    manifest = (into / MANIFEST).read_text()
    version = manifest.split('"version":', 1)[1].split('"')[1]
    return commit, version


def _create(odoo: OdooInstallation, db: str, prompt: str) -> dict:
    return json_lines(odoo.shell(db, CREATE.format(prompt=prompt)))[-1]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def migrations_between(old: str, new: str) -> list[str]:
    """The addon's migration folders an upgrade from ``old`` to ``new`` runs."""
    folders = (REPO / "addons/ai_generation/migrations").iterdir()
    versions = sorted((f.name for f in folders if f.is_dir()), key=_version_key)
    return [v for v in versions if _version_key(old) < _version_key(v) <= _version_key(new)]


def test_the_previous_version_upgrades_in_place(tmp_path):
    odoo = require_odoo()
    _commit, old_version = previous_version(tmp_path)
    new_version = (REPO / MANIFEST).read_text().split('"version":', 1)[1].split('"')[1]
    assert old_version != new_version
    previous = OdooWithAddons(odoo.home, tmp_path / "addons")  # the addon's previous version
    with throwaway_database(odoo, prefix="aigen_upgrade") as db:
        previous.install(db, ["ai_generation"])
        json_lines(previous.shell(db, setup_without_broker(3, 30)))
        made_before = _create(previous, db, "made before the upgrade")
        assert made_before["status"] == 202
        before = {
            "request": psql(db, REQUEST.format(uuid=made_before["request_id"])),
            "accounts": psql(db, "SELECT user_id, balance, held FROM ai_credit_account ORDER BY id"),
        }

        done = odoo.run(db, "-u", "ai_generation", "--stop-after-init", "--no-http", "--log-level=info")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr and " ERROR " not in done.stderr, done.stderr[-3000:]
        for version in migrations_between(old_version, new_version):
            assert f"module ai_generation: Running migration [{version}" in done.stderr, version
        if "18.0.1.2.0" in migrations_between(old_version, new_version):
            assert "dropped the request indexes" in done.stderr

        installed = psql(db, "SELECT latest_version FROM ir_module_module WHERE name = 'ai_generation'")
        assert installed == [[new_version]]
        indexes = {row[0] for row in psql(db, INDEXES)}
        assert "ai_generation_request_user_id_create_date_index" in indexes
        assert not indexes & {"ai_generation_request__user_id_index", "ai_generation_request__uuid_index"}
        # what the previous version left is kept as it was
        assert psql(db, REQUEST.format(uuid=made_before["request_id"])) == before["request"]
        assert (
            psql(db, "SELECT user_id, balance, held FROM ai_credit_account ORDER BY id") == before["accounts"]
        )
        # and the new code goes on: a create holds again, the ledger adds up
        made_after = _create(odoo, db, "made after the upgrade")
        assert made_after["status"] == 202
        assert psql(db, HELD) == [["6"]], json.dumps(before)
        assert psql(db, LEDGER_MISMATCHES) == []
