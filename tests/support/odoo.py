"""A real Odoo 18.0 for tests: find it, make throwaway databases, serve them, run the addon's suite.

Odoo lives outside the repo at ``$AIGEN_ODOO_HOME`` (default ``/opt/odoo-18.0``) laid out as
``src/odoo-bin`` + ``venv/bin/python``. Without it, :func:`require_odoo` skips the test with the reason.
Databases belong to the role ``odoo``/``odoo`` on 127.0.0.1 (``AIGEN_ODOO_DB_USER``/``_PASSWORD``); a
template with base, web, bus and base_setup installed is built once and copied (``createdb -T``).

Typical use::

    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"]) as db:
        setup = odoo.shell(db, "print(env.user.login)")
        with OdooServer(odoo, db) as server:
            requests.get(server.url + "/web/health")
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import uuid
import xmlrpc.client
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
ADDONS_DIR = REPO / "addons"
DEFAULT_ODOO_HOME = "/opt/odoo-18.0"
DB_HOST = "127.0.0.1"
DB_USER = os.environ.get("AIGEN_ODOO_DB_USER", "odoo")
DB_PASSWORD = os.environ.get("AIGEN_ODOO_DB_PASSWORD", "odoo")
TEMPLATE_MODULES = ("base", "web", "bus", "base_setup")
ADMIN_LOGIN = ADMIN_PASSWORD = "admin"
RESULT_RE = re.compile(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests")


def free_port() -> int:
    """A loopback port free right now (bound to 0, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_env() -> dict:
    return {**os.environ, "PGPASSWORD": DB_PASSWORD}


def _pg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*args, "-h", DB_HOST, "-U", DB_USER], capture_output=True, text=True, env=_pg_env(), check=False
    )


def psql(db: str, sql: str) -> list[list[str]]:
    """Rows of ``sql`` run on ``db`` (values as text)."""
    done = subprocess.run(
        ["psql", "-h", DB_HOST, "-U", DB_USER, "-d", db, "-tAX", "-F", "\t", "-c", sql],
        capture_output=True,
        text=True,
        env=_pg_env(),
        check=True,
    )
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def database_exists(name: str) -> bool:
    return bool(psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))


def drop_database(name: str) -> None:
    _pg("dropdb", "--if-exists", "--force", name)


@dataclass(frozen=True)
class OdooInstallation:
    """An Odoo 18.0 source tree with its virtualenv."""

    home: Path

    @property
    def python(self) -> Path:
        return self.home / "venv" / "bin" / "python"

    @property
    def odoo_bin(self) -> Path:
        return self.home / "src" / "odoo-bin"

    @property
    def addons_path(self) -> str:
        return f"{self.home / 'src' / 'addons'},{ADDONS_DIR}"

    def command(self, db: str, *args: str, subcommand: str | None = None) -> list[str]:
        """An odoo-bin command line on ``db`` with the repo's addons and the test database role."""
        return [
            str(self.python),
            str(self.odoo_bin),
            *([subcommand] if subcommand else []),
            f"--addons-path={self.addons_path}",
            f"--db_host={DB_HOST}",
            f"--db_user={DB_USER}",
            f"--db_password={DB_PASSWORD}",
            # -d alone serves that one database; a --db-filter would make Odoo list the server's
            # databases on every request without a session
            "-d",
            db,
            *args,
        ]

    def run(self, db: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(db, *args), capture_output=True, text=True, timeout=timeout, check=False
        )

    def install(self, db: str, modules: Sequence[str]) -> None:
        done = self.run(db, "-i", ",".join(modules), "--stop-after-init", "--no-http", "--log-level=warn")
        if done.returncode != 0 or "Traceback" in done.stderr:
            raise RuntimeError(f"installing {modules} on {db} failed:\n{done.stderr[-4000:]}")

    def shell(self, db: str, code: str, timeout: float = 300) -> str:
        """Run ``code`` in ``odoo-bin shell`` (``env`` is the superuser environment); its stdout.

        The shell commits at the end unless the code rolls back.
        """
        done = subprocess.run(
            self.command(db, "--no-http", "--log-level=warn", subcommand="shell"),
            input=code,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0 or "Traceback" in done.stderr:
            raise RuntimeError(f"odoo shell failed on {db}:\n{done.stderr[-4000:]}")
        return done.stdout


@dataclass(frozen=True)
class OdooWithAddons(OdooInstallation):
    """The same Odoo with the addon taken from another folder: a copy of the tree (a bench measures
    one version while the tree changes), or an earlier version (the upgrade test)."""

    addons_dir: Path

    @property
    def addons_path(self) -> str:
        return f"{self.home / 'src' / 'addons'},{self.addons_dir}"


def find_odoo() -> OdooInstallation | None:
    odoo = OdooInstallation(Path(os.environ.get("AIGEN_ODOO_HOME", DEFAULT_ODOO_HOME)))
    if odoo.python.is_file() and odoo.odoo_bin.is_file():
        return odoo
    return None


def require_odoo() -> OdooInstallation:
    """The Odoo installation, or skip the calling test with the reason."""
    odoo = find_odoo()
    if odoo is None:
        home = os.environ.get("AIGEN_ODOO_HOME", DEFAULT_ODOO_HOME)
        pytest.skip(f"no Odoo 18.0 at {home} (set AIGEN_ODOO_HOME to src/odoo-bin + venv/bin/python)")
    if _pg("psql", "-d", "postgres", "-c", "select 1").returncode != 0:
        pytest.skip(f"PostgreSQL on {DB_HOST} refuses the role {DB_USER}")
    return odoo


def template_database(odoo: OdooInstallation, modules: Sequence[str] = TEMPLATE_MODULES) -> str:
    """A database with ``modules`` installed, built once per Odoo tree and module set, then reused."""
    tag = uuid.uuid5(uuid.NAMESPACE_URL, f"{odoo.home}|{','.join(sorted(modules))}").hex[:10]
    name = f"aigen_tpl_{tag}"
    lock_path = Path(tempfile.gettempdir()) / f"{name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs build it once
        if not database_exists(name):
            building = f"{name}_building_{uuid.uuid4().hex[:6]}"
            try:
                odoo.install(building, modules)
                done = _pg("psql", "-d", "postgres", "-c", f'ALTER DATABASE "{building}" RENAME TO "{name}"')
                if done.returncode != 0:
                    raise RuntimeError(done.stderr)
            finally:
                drop_database(building)
    return name


def create_database(odoo: OdooInstallation, modules: Sequence[str] = (), prefix: str = "aigen_t") -> str:
    """A new database copied from the template, with ``modules`` installed on top."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    done = _pg("createdb", "-T", template_database(odoo), name)
    if done.returncode != 0:
        raise RuntimeError(f"createdb {name} failed: {done.stderr}")
    if modules:
        try:
            odoo.install(name, modules)
        except Exception:
            drop_database(name)
            raise
    return name


@contextmanager
def throwaway_database(
    odoo: OdooInstallation, modules: Sequence[str] = (), prefix: str = "aigen_t"
) -> Iterator[str]:
    name = create_database(odoo, modules, prefix)
    try:
        yield name
    finally:
        drop_database(name)


def parse_test_counts(log: str) -> dict | None:
    """{"failed", "errors", "tests"} from Odoo's last "N failed, M error(s) of K tests" line."""
    found = RESULT_RE.findall(log)
    if not found:
        return None
    failed, errors, tests = (int(x) for x in found[-1])
    return {"failed": failed, "errors": errors, "tests": tests}


def run_addon_tests(
    odoo: OdooInstallation, db: str, module: str, tags: str | None = None
) -> tuple[dict | None, str]:
    """Install ``module`` on ``db`` with its tests; (counts or None, full log)."""
    done = odoo.run(
        db,
        "-i",
        module,
        "--test-enable",
        f"--test-tags={tags or '/' + module}",
        "--stop-after-init",
        f"--http-port={free_port()}",
        "--log-level=test",
        timeout=900,
    )
    log = done.stdout + done.stderr
    return parse_test_counts(log), log


class OdooServer:
    """``odoo-bin`` serving one database on a free loopback port (threaded, cron off)."""

    def __init__(self, odoo: OdooInstallation, db: str, extra_args: Sequence[str] = ()):
        self.odoo, self.db = odoo, db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.gettempdir()) / f"aigen-odoo-{db}-{self.port}.log"

    def start(self, timeout: float = 120) -> OdooServer:
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.odoo.command(
                self.db,
                "--http-interface=127.0.0.1",
                f"--http-port={self.port}",
                "--max-cron-threads=0",
                "--log-level=info",
                *self.extra_args,
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Odoo exited early:\n{self.log()[-4000:]}")
            try:
                if requests.get(f"{self.url}/web/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"Odoo not ready in {timeout}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> OdooServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def rpc(self, model: str, method: str, *args, **kwargs):
        """``execute_kw`` as the admin (XML-RPC): Odoo's own caches see the change, unlike raw SQL."""
        common = xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/common")
        uid = common.authenticate(self.db, ADMIN_LOGIN, ADMIN_PASSWORD, {})
        models = xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc/2/object", allow_none=True)
        return models.execute_kw(self.db, uid, ADMIN_PASSWORD, model, method, list(args), kwargs)

    def set_param(self, key: str, value: str) -> None:
        self.rpc("ir.config_parameter", "set_param", key, value)

    def run_cron(self, xmlid: str) -> None:
        """Run the scheduled action ``xmlid`` now, in the server."""
        module, name = xmlid.split(".")
        cron_id = self.rpc("ir.model.data", "check_object_reference", module, name)[1]
        self.rpc("ir.cron", "method_direct_trigger", [cron_id])


def json_lines(output: str) -> list:
    """The JSON values printed one per line by a shell script (other lines ignored)."""
    values = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(("{", "[")):
            values.append(json.loads(line))
    return values
