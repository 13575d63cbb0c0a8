"""The addon's translation template, exported by Odoo itself (``odoo-bin --i18n-export``).

``python -m tests.support.i18n`` rewrites addons/ai_generation/i18n/ai_generation.pot from a throwaway
database with the addon (and its demo data) installed; tests/odoo/test_translations.py checks that the
shipped file is what that export gives now.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from tests.support.odoo import ADDONS_DIR, OdooInstallation, find_odoo, throwaway_database

ADDON = "ai_generation"
POT_PATH = ADDONS_DIR / ADDON / "i18n" / f"{ADDON}.pot"
# the header lines that change on every export
VOLATILE_HEADER = re.compile(r'^"(POT-Creation-Date|PO-Revision-Date): .*\\n"\n', re.M)


def export_pot(odoo: OdooInstallation) -> str:
    with throwaway_database(odoo, [ADDON], prefix="aigen_pot") as db, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{ADDON}.pot"
        done = odoo.run(
            db,
            f"--i18n-export={out}",
            f"--modules={ADDON}",
            "--stop-after-init",
            "--no-http",
            "--log-level=warn",
        )
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"odoo-bin --i18n-export failed:\n{done.stderr[-4000:]}")
        return out.read_text(encoding="utf-8")


def comparable(pot: str) -> str:
    return VOLATILE_HEADER.sub("", pot)


def main() -> int:
    odoo = find_odoo()
    if odoo is None:
        print("no Odoo 18.0 (AIGEN_ODOO_HOME): cannot export the translation template", file=sys.stderr)
        return 1
    fresh = export_pot(odoo)
    if POT_PATH.is_file() and comparable(POT_PATH.read_text(encoding="utf-8")) == comparable(fresh):
        print(f"{POT_PATH.relative_to(ADDONS_DIR.parent)} is current")
        return 0
    POT_PATH.parent.mkdir(exist_ok=True)
    POT_PATH.write_text(fresh, encoding="utf-8")
    print(f"wrote {POT_PATH.relative_to(ADDONS_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
