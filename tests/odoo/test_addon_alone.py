"""The addon carries its contracts: copied alone into another addons path, it installs and finds them.

One copy of the contract files exists, in addons/ai_generation/schemas/: the repo root's ``schemas`` is a
link to it (the worker, n8n and the docs read it there) and setup.cfg packages it as ``aigen_contracts``.
"""

import configparser
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.odoo import ADDONS_DIR, REPO, OdooInstallation, require_odoo, throwaway_database

ADDON_SCHEMAS = ADDONS_DIR / "ai_generation" / "schemas"


def test_the_contracts_have_one_copy_in_the_addon():
    assert (ADDON_SCHEMAS / "error_taxonomy.json").is_file()
    root = REPO / "schemas"
    assert root.is_symlink() and root.resolve() == ADDON_SCHEMAS.resolve()
    contents = {p.read_bytes() for p in ADDON_SCHEMAS.glob("*.json")}
    elsewhere = [
        p
        for p in REPO.rglob("*.json")
        if ADDON_SCHEMAS not in p.parents
        and root not in p.parents
        and not {".venv", "node_modules", "var", ".git"} & set(p.relative_to(REPO).parts)
        and p.read_bytes() in contents
    ]
    assert not elsewhere, f"copies of the contracts outside the addon: {elsewhere}"


def test_the_worker_package_is_the_addons_folder():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    package_dir = dict(line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines())
    assert (REPO / package_dir["aigen_contracts"]).resolve() == ADDON_SCHEMAS.resolve()
    import aigen_contracts

    assert Path(aigen_contracts.__file__).resolve().parent == ADDON_SCHEMAS.resolve()


@dataclass(frozen=True)
class OdooWithAddonsAt(OdooInstallation):
    """Odoo with only Odoo's own addons and ``extra`` on its addons path (not the repo's addons/)."""

    extra: Path = Path()

    @property
    def addons_path(self) -> str:
        return f"{self.home / 'src' / 'addons'},{self.extra}"


@pytest.mark.odoo
@pytest.mark.slow
def test_the_addon_copied_alone_installs_and_reads_its_own_contracts(tmp_path, monkeypatch):
    odoo = require_odoo()
    monkeypatch.delenv("AIGEN_SCHEMAS_DIR", raising=False)
    elsewhere = tmp_path / "other_addons"
    shutil.copytree(
        ADDONS_DIR / "ai_generation",
        elsewhere / "ai_generation",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    alone = OdooWithAddonsAt(odoo.home, extra=elsewhere)
    # with its demo data, whose requests go through the contracts (validation, taxonomy, callbacks)
    with throwaway_database(alone, ["ai_generation"], prefix="aigen_alone") as db:
        out = alone.shell(
            db,
            "from odoo.addons.ai_generation.pure import contracts\n"
            "print('DIR', contracts.schemas_dir())\n"
            "print('TYPES', len(contracts.taxonomy()['error_types']))\n"
            "print('FAILED', env['ai.generation.request'].search_count([('state', '=', 'failed')]))\n",
        )
    found = dict(
        line.split(" ", 1) for line in out.splitlines() if line.startswith(("DIR", "TYPES", "FAILED"))
    )
    assert Path(found["DIR"]) == elsewhere / "ai_generation" / "schemas"
    assert int(found["TYPES"]) >= 13 and int(found["FAILED"]) > 0
