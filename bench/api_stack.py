"""The parts bench/api_load.py runs against: a database with the addon and bench users, Odoo in its two
modes, the real worker (``aigen-worker``) and the queue it consumes.

Everything comes from the tests' support code (tests/support/odoo.py, rabbit.py, fake_openai.py), so the
bench and the tests start the same things the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pika
import requests

from tests.support.odoo import (
    ADDONS_DIR,
    REPO,
    OdooInstallation,
    OdooServer,
    OdooWithAddons,
    free_port,
    json_lines,
    psql,
)
from tests.support.rabbit import Vhost
from worker import topology

MODEL, PRICE = "bench-model", 1
CREDITS = 10**9  # no phase may run out: a 402 would be a cheaper answer than the 202 measured
RATE_LIMIT = 10**7  # the limit is checked on every create (its query runs) but never reached
# (created, terminal) above an id; (last id, requests not published yet): the addon's terminal states
COUNTS_SQL = (
    "SELECT count(*), count(*) FILTER (WHERE state IN ('succeeded', 'failed', 'cancelled'))"
    " FROM ai_generation_request WHERE id > {after:d}"
)
UNPUBLISHED_SQL = (
    "SELECT COALESCE(max(id), 0), count(*) FILTER (WHERE dispatch_state = 'pending'"
    " AND state NOT IN ('succeeded', 'failed', 'cancelled')) FROM ai_generation_request"
)

# Run by `odoo-bin shell` on the bench database (as tests/odoo/setup_scripts.py SETUP does for one user).
# The worker secret goes through set_param, which stores it the way the addon wants it kept.
SETUP = """
import json
from odoo.tests.common import new_test_user
params = env["ir.config_parameter"]
params.set_param("ai_generation.amqp_url", {amqp_url!r})
params.set_param("ai_generation.rate_limit_per_minute", {rate_limit!r})
params.set_param("ai_generation.dispatch_grace_seconds", "0")
params.set_param("ai_generation.worker_secret", {secret!r})
env["ai.generation.price"].create({{"backend": "external", "model_name": {model!r}, "credits": {price}}})
keys = []
for i in range({users}):
    user = new_test_user(env, login=f"bench_user_{{i}}", groups="base.group_user")
    env["ai.credit.account"]._open_for_user(user)._grant({credits}, "bench")
    keys.append(env["res.users.apikeys"].with_user(user).sudo()._generate(None, "bench", None))
env.cr.commit()
print(json.dumps({{"api_keys": keys}}))
"""


def snapshot_addons(odoo: OdooInstallation, into: Path) -> OdooWithAddons:
    """Odoo serving a copy of the repo's addons (and the schemas they read) taken now, so that every
    phase and both modes measure the same code even while the working tree changes under the run."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ADDONS_DIR, into / "addons", ignore=ignore)
    shutil.copytree(REPO / "schemas", into / "schemas", ignore=ignore)  # found as ../../schemas
    return OdooWithAddons(odoo.home, into / "addons")


def prepare_database(odoo: OdooInstallation, db: str, amqp_url: str, secret: str, users: int) -> list[str]:
    """Settings, a price and ``users`` users with credits; their API keys."""
    script = SETUP.format(
        amqp_url=amqp_url,
        rate_limit=str(RATE_LIMIT),
        secret=secret,
        model=MODEL,
        price=PRICE,
        users=users,
        credits=CREDITS,
    )
    return json_lines(odoo.shell(db, script))[-1]["api_keys"]


def odoo_args(mode: str) -> list[str]:
    """odoo-bin arguments of a mode: threaded (one process) or prefork as docker/compose.yaml runs it
    (--workers with the gevent process on its own port for the websocket; crons off in both)."""
    if mode == "threaded":
        return []
    if mode == "prefork":
        return ["--workers=2", f"--gevent-port={free_port()}"]
    raise ValueError(mode)


# Asks Odoo's python which of gevent's requirements pkg_resources cannot find (see gevent_metadata_shim).
_GEVENT_PROBE = """
import importlib.metadata, json, pkg_resources
missing = {}
for req in pkg_resources.get_distribution("gevent").requires():
    try:
        pkg_resources.get_distribution(req.name)
    except pkg_resources.DistributionNotFound:
        missing[req.name] = importlib.metadata.version(req.name)
print(json.dumps(missing))
"""


def gevent_metadata_shim(odoo: OdooInstallation, into: Path) -> list[str]:
    """Make the prefork server's gevent process start where an old pkg_resources misses installed packages.

    gevent's monkey-patching loads its plugins through pkg_resources, which requires gevent's
    dependencies by name; setuptools < 70 does not find a wheel installed as ``zope_interface-*.dist-info``
    (underscored, as pip writes it today), so the gevent process dies at start and the prefork master
    respawns it about once a second, each time importing Odoo: most of a core gone from the figures.
    A ``NAME-VERSION.dist-info/METADATA`` for each missing one, on PYTHONPATH, is all pkg_resources needs
    (the code is installed). Returns the names it covered (none where the installation is sound).
    """
    done = subprocess.run(
        [str(odoo.python), "-c", _GEVENT_PROBE], capture_output=True, text=True, check=False
    )
    missing = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else {}
    for name, version in missing.items():
        info = into / f"{name}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return sorted(missing)


def start_odoo(odoo: OdooInstallation, db: str, mode: str, python_path: Path | None = None) -> OdooServer:
    """A started Odoo in ``mode``; ``python_path`` goes first on its PYTHONPATH (the gevent shim)."""
    saved = os.environ.get("PYTHONPATH")
    if python_path is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(python_path), saved) if p)
    try:
        return OdooServer(odoo, db, odoo_args(mode)).start()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and its live descendants."""
    parents, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        cpu[pid] = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])  # self + reaped
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(cpu.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


# /proc/stat's busy columns: user, nice, system, (idle, iowait skipped), irq, softirq, steal
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)
# the shared services every request also costs, by the command name of their processes
SERVICES = {"postgres": ("postgres",), "rabbitmq": ("beam.smp", "erl_child_setup", "epmd")}


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine has been busy so far (every process, the kernel's too)."""
    columns = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(columns[i]) for i in _BUSY_COLUMNS) / os.sysconf("SC_CLK_TCK")


def command_cpu_seconds(names: tuple[str, ...]) -> float:
    """CPU seconds used so far by the processes named ``names`` (their command), and by the children
    they reaped: a PostgreSQL backend's time moves to the postmaster when it exits."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue  # gone meanwhile
        if head.split("(", 1)[1] in names:
            fields = tail.split()
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def max_request_id(db: str) -> int:
    return int(psql(db, "SELECT COALESCE(max(id), 0) FROM ai_generation_request")[0][0])


def request_counts(db: str, after_id: int) -> tuple[int, int]:
    """(created, terminal) among the requests with an id above ``after_id``."""
    row = psql(db, COUNTS_SQL.format(after=int(after_id)))[0]
    return int(row[0]), int(row[1])


def wait_terminal(
    db: str, after_id: int, expected: int | None, timeout: float, stall: float = 5
) -> tuple[int, int]:
    """Wait until every request above ``after_id`` (at least ``expected`` of them) is terminal, at most
    ``timeout`` seconds, and no longer than ``stall`` seconds without one more finishing."""
    deadline = time.monotonic() + timeout
    last, moved = None, time.monotonic()
    while True:
        created, terminal = request_counts(db, after_id)
        if terminal >= created and (expected is None or created >= expected):
            return created, terminal
        now = time.monotonic()
        if (created, terminal) != last:
            last, moved = (created, terminal), now
        if now > deadline or now - moved > stall:
            return created, terminal
        time.sleep(0.25)


def settle(db: str, timeout: float = 15) -> None:
    """Wait until the requests still in Odoo when a load phase ended are created and published.

    wrk stops with requests in flight; they commit (and publish their job) a little later, and must not
    leak into the next phase's queue.
    """
    deadline = time.monotonic() + timeout
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        row = psql(db, UNPUBLISHED_SQL)[0]
        if row != last:
            last, quiet_since = row, time.monotonic()
        elif row[1] == "0" and time.monotonic() - quiet_since >= 1.0:
            return
        time.sleep(0.2)


def post_batch(url: str, keys: list[str], count: int, threads: int = 16) -> list[int]:
    """``count`` generation requests, ``threads`` at a time, keys round-robin; their statuses."""
    from concurrent.futures import ThreadPoolExecutor

    sessions = [requests.Session() for _ in keys]

    def post(i: int) -> int:
        session = sessions[i % len(keys)]
        return session.post(
            f"{url}/api/v1/generations",
            json={"backend": "external", "model": MODEL, "task": "text", "prompt": f"batch {i}"},
            headers={"Authorization": f"Bearer {keys[i % len(keys)]}"},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(post, range(count)))


class Queue:
    """The jobs queue of the bench's vhost (declared as the worker and the addon declare it)."""

    def __init__(self, vhost: Vhost):
        self.connection = vhost.connect()
        self.channel = self.connection.channel()
        topology.declare(self.channel)

    def _info(self) -> pika.frame.Method:
        return self.channel.queue_declare(topology.JOBS_QUEUE, passive=True)

    def depth(self) -> int:
        return self._info().method.message_count

    def consumers(self) -> int:
        return self._info().method.consumer_count

    def wait_consumers(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.consumers() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} consumer(s) did not appear on {topology.JOBS_QUEUE}")
            time.sleep(0.1)

    def take_all(self, count: int, timeout: float = 30) -> list[tuple[pika.BasicProperties, bytes]]:
        """Take ``count`` jobs off the queue (acknowledged: the bench holds them now)."""
        taken, deadline = [], time.monotonic() + timeout
        while len(taken) < count:
            method, properties, body = self.channel.basic_get(topology.JOBS_QUEUE, auto_ack=True)
            if method is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(taken)} of {count} jobs reached {topology.JOBS_QUEUE}")
                time.sleep(0.05)
                continue
            taken.append((properties, body))
        return taken

    def publish_all(self, jobs: list[tuple[pika.BasicProperties, bytes]]) -> None:
        """Put jobs taken by take_all back, unchanged, as the addon published them (confirmed)."""
        channel = self.connection.channel()
        channel.confirm_delivery()
        for properties, body in jobs:
            channel.basic_publish(topology.EXCHANGE, topology.ROUTING_KEY, body, properties)
        channel.close()

    def purge(self) -> int:
        """Drop the jobs no worker took (the POST-only phases leave them): no later phase runs them."""
        return self.channel.queue_purge(topology.JOBS_QUEUE).method.message_count

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


class Worker:
    """One ``aigen-worker`` process, configured as tests/e2e/stack.py does, calling Odoo directly."""

    def __init__(
        self,
        amqp_url: str,
        odoo_url: str,
        secret: str,
        ai_url: str,
        name: str,
        log_dir: Path | None = None,
        **extra: str,
    ):
        self.metrics_port = free_port()
        self.env = {
            **os.environ,
            "AIGEN_AMQP_URL": amqp_url,
            "AIGEN_ODOO_URL": odoo_url,
            "AIGEN_WORKER_SECRET": secret,
            "AIGEN_OPENAI_BASE_URL": ai_url,
            "AIGEN_OPENAI_API_KEY": "sk-bench",
            "AIGEN_METRICS_PORT": str(self.metrics_port),
            "AIGEN_MAX_ATTEMPTS": "3",
            "AIGEN_BACKOFF_INITIAL": "0.05",
            "AIGEN_BACKOFF_MAX": "0.2",
            "AIGEN_BACKOFF_JITTER": "0",
            "AIGEN_CALLBACK_PATIENCE": "2",
            "AIGEN_DRAIN_INTERVAL": "0.5",
            "AIGEN_SHUTDOWN_GRACE": "2",
            "AIGEN_LOG_LEVEL": "INFO",
            "AIGEN_CONNECTION_NAME": f"aigen-bench-{name}",
            **extra,
        }
        # closed in stop; kept in log_dir when there is one
        if log_dir:
            self.log = open(log_dir / f"worker-{name}.log", "w+")  # noqa: SIM115
        else:
            self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        command = [str(Path(sys.executable).with_name("aigen-worker"))]
        if not Path(command[0]).exists():
            command = [sys.executable, "-m", "worker"]
        self.process = subprocess.Popen(command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 30) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.tail()}")
            try:
                url = f"http://127.0.0.1:{self.metrics_port}/healthz"
                if requests.get(url, timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the worker was not healthy within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        self.log.seek(0)
        return self.log.read()[-chars:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
