"""./run-stack's database step: the addon is installed (with --demo, its demo data) once per database.

Odoo's --init on an installed module loads its data files again, and a demo <function> runs again in
init mode: every restart with --demo granted jane.ai another 150 credits and made the demo requests anew.
"""

import pytest

from devstack import run
from devstack.odoo import ADDON, OdooHome, setup_step, write_config
from tests.support.odoo import (
    DB_HOST,
    DB_PASSWORD,
    DB_USER,
    free_port,
    psql,
    require_odoo,
    throwaway_database,
)

INIT, UPDATE = f"--init={ADDON}", f"--update={ADDON}"


@pytest.mark.parametrize(
    ("state", "update", "step"),
    [
        (None, False, INIT),  # no database yet, or one without Odoo's tables
        (None, True, INIT),
        ("uninstalled", False, INIT),
        ("to install", False, INIT),  # an install that stopped half-way
        ("installed", False, None),  # a restart: nothing loaded again
        ("installed", True, UPDATE),
        ("to upgrade", False, UPDATE),  # an update that stopped half-way
    ],
)
def test_init_only_while_the_addon_is_not_installed(state, update, step):
    assert setup_step(state, update) == step


def demo_footprint(db: str) -> tuple:
    """(jane.ai's grants, credits granted to her, demo requests): what a second demo load would double."""
    grants = psql(
        db,
        "SELECT count(*), coalesce(sum(l.amount), 0) FROM ai_credit_ledger_line l"
        " JOIN res_users u ON u.id = l.user_id WHERE u.login = 'jane.ai' AND l.kind = 'grant'",
    )[0]
    requests = psql(db, "SELECT count(*) FROM ai_generation_request")[0][0]
    return int(grants[0]), int(grants[1]), int(requests)


def test_demo_data_is_loaded_once_per_database(tmp_path, capsys):
    odoo = require_odoo()
    home = OdooHome(odoo.home)
    db_params = {"host": DB_HOST, "port": 5432, "user": DB_USER, "password": DB_PASSWORD}
    with throwaway_database(odoo, prefix="aigen_runstack") as db:
        conf = write_config(
            tmp_path / "odoo.conf",
            home,
            db=db,
            http_port=free_port(),
            data_dir=tmp_path / "data",
            db_params=db_params,
            demo=True,
        )

        def start(update=False):
            return run.prepare_database(home, conf, db, db_params, update=update, demo=True)

        assert start() == INIT
        first = demo_footprint(db)
        assert first[0] == 1 and first[2] > 0, first  # jane.ai's welcome grant, the demo requests
        assert home.addon_state(db, db_params) == "installed"

        assert start() is None  # a restart
        assert demo_footprint(db) == first
        assert "demo data is loaded only by the install" in capsys.readouterr().out

        assert start(update=True) == UPDATE  # --update after changing the addon: data, not demo, again
        assert demo_footprint(db) == first
