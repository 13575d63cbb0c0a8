"""Odoo 18.0 from a source tree outside the repo ($AIGEN_ODOO_HOME), set up for the ai_generation addon."""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_HOME = "/opt/odoo-18.0"  # documented default of AIGEN_ODOO_HOME
CONFIGURE_SCRIPT = REPO / "docker" / "odoo" / "configure.py"
ADDON = "ai_generation"

# Run by Odoo's own Python (psycopg2 is there): the addon's state in ir_module_module as JSON, null when the
# database or Odoo's tables do not exist yet. A server that refuses the connection is an error, not "new".
STATE_SCRIPT = """
import json, sys, psycopg2
db, module = sys.argv[1:3]
with psycopg2.connect(dbname="postgres") as conn, conn.cursor() as cr:
    cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
    exists = cr.fetchone() is not None
conn.close()
state = None
if exists:
    with psycopg2.connect(dbname=db) as conn, conn.cursor() as cr:
        cr.execute("SELECT to_regclass('ir_module_module') IS NOT NULL")
        if cr.fetchone()[0]:
            cr.execute("SELECT state FROM ir_module_module WHERE name = %s", (module,))
            row = cr.fetchone()
            state = row[0] if row else "uninstalled"
    conn.close()
print(json.dumps(state))
"""


@dataclass(frozen=True)
class OdooHome:
    """``src/`` (Odoo 18.0 source with odoo-bin) and ``venv/`` (its requirements installed)."""

    root: Path

    @classmethod
    def from_env(cls) -> "OdooHome":
        return cls(Path(os.environ.get("AIGEN_ODOO_HOME", DEFAULT_HOME)))

    @property
    def odoo_bin(self) -> Path:
        return self.root / "src" / "odoo-bin"

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    def problem(self) -> str | None:
        """Why this is not a usable Odoo, or None."""
        if not self.odoo_bin.is_file():
            return f"no Odoo source at {self.root}/src (set AIGEN_ODOO_HOME; see README 'Run without Docker')"
        if not os.access(self.python, os.X_OK):
            return f"no virtualenv at {self.root}/venv with Odoo's requirements (see README)"
        return None

    def addons_path(self) -> str:
        return ",".join(
            str(p)
            for p in (self.root / "src" / "addons", self.root / "src" / "odoo" / "addons", REPO / "addons")
        )

    def cmd(self, *args: str) -> list[str]:
        return [str(self.python), str(self.odoo_bin), *args]

    def addon_state(self, db: str, db_params: dict, module: str = ADDON) -> str | None:
        """The state of ``module`` in ``db`` ("installed", "uninstalled", ...), or None when ``db`` is new."""
        env = {
            **os.environ,
            "PGHOST": str(db_params.get("host", "127.0.0.1")),
            "PGPORT": str(db_params.get("port", 5432)),
            "PGUSER": str(db_params.get("user", "odoo")),
            "PGPASSWORD": str(db_params.get("password", "odoo")),
        }
        done = subprocess.run(  # noqa: S603 (our own script and arguments)
            [str(self.python), "-c", STATE_SCRIPT, db, module],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"cannot read the state of {module} in database {db!r}: {last}")
        return json.loads(done.stdout)


def setup_step(state: str | None, update: bool, module: str = ADDON) -> str | None:
    """The odoo-bin option that brings the addon in the database up to date, or None: nothing to do.

    --init only while the addon is not installed. On an installed module Odoo's init mode loads the data
    files again including demo ones, and a demo <function> runs in init mode whatever its noupdate: every
    start with --demo granted the demo credits and made the demo requests once more. --update skips it.
    """
    if state in (None, "uninstalled", "to install"):
        return f"--init={module}"
    if update or state == "to upgrade":
        return f"--update={module}"
    return None


def write_config(
    path: Path,
    home: OdooHome,
    *,
    db: str,
    http_port: int,
    data_dir: Path,
    db_params: dict,
    demo: bool = False,
) -> Path:
    """An odoo.conf for one database served on loopback behind the gateway."""
    options = {
        "db_host": db_params.get("host", "127.0.0.1"),
        "db_port": db_params.get("port", 5432),
        "db_user": db_params.get("user", "odoo"),
        "db_password": db_params.get("password", "odoo"),
        # the one database this server serves: with db_name and no dbfilter Odoo takes the list from the
        # config instead of asking PostgreSQL for it on every request without a session
        "db_name": db,
        "list_db": "False",
        "addons_path": home.addons_path(),
        "data_dir": data_dir,
        "http_interface": "127.0.0.1",
        "http_port": http_port,
        "proxy_mode": "True",
        # threaded: one process serves HTTP and the websocket on the same port
        "workers": 0,
        "max_cron_threads": 1,
    }
    if not demo:
        options["without_demo"] = "all"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[options]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()))
    path.chmod(0o600)  # it holds the database password
    return path
