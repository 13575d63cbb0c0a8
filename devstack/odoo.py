"""Odoo 18.0 from a source tree outside the repo ($AIGEN_ODOO_HOME), set up for the ai_generation addon."""

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_HOME = "/opt/odoo-18.0"  # documented default of AIGEN_ODOO_HOME
CONFIGURE_SCRIPT = REPO / "docker" / "odoo" / "configure.py"


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
        "dbfilter": f"^{db}$",
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
