"""The whole system on loopback for the end-to-end test, started from the same parts ./run-stack uses.

Real: Odoo 18.0 with the addon (a throwaway database), nginx as the gateway, RabbitMQ (a throwaway
vhost), the worker as a separate process (aigen-worker), Debian's Alertmanager with a webhook receiver.
Fake: only the AI provider (tests/support/fake_openai.py), which is outside the system.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devstack import alertmanager, gateway
from devstack.odoo import CONFIGURE_SCRIPT, OdooHome, write_config
from devstack.ports import free_port, wait_http

PRICE = 7
START_CREDITS = 100
USER_LOGIN, USER_PASSWORD = "e2e-user", "e2e-password-1"
MODEL = "e2e-model"

# Run by `odoo shell` after docker/odoo/configure.py: what an admin does before users arrive.
SETUP_SCRIPT = f"""
user = env["res.users"].sudo().create({{
    "name": "E2E User", "login": {USER_LOGIN!r}, "password": {USER_PASSWORD!r},
    "groups_id": [(6, 0, [env.ref("base.group_user").id])],
}})
price = {{"backend": "external", "model_name": {MODEL!r}, "credits": {PRICE}}}
env["ai.generation.price"].sudo().create(price)
env["ai.credit.account"].sudo()._open_for_user(user)._grant({START_CREDITS}, "e2e: starting credits")
user.company_id.sudo().write({{
    "ai_invalid_free_warnings": 1, "ai_invalid_window_hours": 24, "ai_invalid_charge_mode": "full",
}})
env["ir.config_parameter"].sudo().set_param("ai_generation.rate_limit_per_minute", 1000)
env.cr.commit()
print("E2E-SETUP-DONE", user.id)
"""


class WebhookReceiver:
    """Where Alertmanager delivers: records every webhook body with the time it arrived."""

    def __init__(self):
        self.received: list[tuple[float, dict]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with receiver._cond:
                    receiver.received.append((time.time(), body))
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def wait_for(self, predicate, timeout: float):
        """(arrival time, alert) of the first alert in any delivery matching ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, body in self.received:
                    for alert in body.get("alerts", []):
                        if predicate(alert):
                            return at, alert
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching alert at the webhook; got {self.received[-3:]}")
                self._cond.wait(left)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


ALERTMANAGER_CONFIG = """\
route:
  receiver: webhook
  group_by: [alertname, backend, error_type]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


def psql(*args: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qtA", *args], check=True, capture_output=True
    )


class Stack:
    def __init__(self, home: OdooHome, vhost_url: str, fake_openai, tmp: Path, log):
        self.home, self.amqp_url, self.fake, self.tmp, self.log = home, vhost_url, fake_openai, tmp, log
        self.db = f"aigen_e2e_{uuid.uuid4().hex[:10]}"
        self.secret = secrets.token_urlsafe(32)
        self.odoo_port = free_port()
        self.webhook = WebhookReceiver()
        self.procs: dict[str, subprocess.Popen] = {}
        self.gateway = None
        self.worker_env: dict[str, str] = {}

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        logfile = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the process' life)
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.tmp / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def start_alertmanager(self) -> None:
        config = self.tmp / "alertmanager.yml"
        config.write_text(ALERTMANAGER_CONFIG.format(url=self.webhook.url))
        self.am_port = free_port()
        proc = self._spawn("alertmanager", alertmanager.cmd(self.am_port, self.tmp / "am-data", config))
        self.alertmanager_url = f"http://127.0.0.1:{self.am_port}"
        wait_http(f"{self.alertmanager_url}/-/ready", 30, ok=lambda s: s == 200, proc=proc)

    def prepare_odoo(self) -> None:
        """A database with the addon, its settings and a user with credits (odoo-bin, then odoo shell)."""
        self.conf = write_config(
            self.tmp / "odoo.conf",
            self.home,
            db=self.db,
            http_port=self.odoo_port,
            data_dir=self.tmp / "odoo-data",
            db_params={},
        )
        started = time.monotonic()
        install = subprocess.run(
            self.home.cmd("-c", str(self.conf), "-d", self.db, "-i", "ai_generation", "--stop-after-init"),
            capture_output=True,
            text=True,
            check=False,
        )
        if install.returncode != 0:
            raise RuntimeError(
                f"installing the addon failed:\n{install.stdout[-3000:]}{install.stderr[-3000:]}"
            )
        env = {
            "AIGEN_AMQP_URL": self.amqp_url,
            "AIGEN_WORKER_SECRET": self.secret,
            "AIGEN_ALERTMANAGER_URL": "",
        }
        shell = subprocess.run(
            self.home.cmd("shell", "-c", str(self.conf), "-d", self.db, "--no-http"),
            input=CONFIGURE_SCRIPT.read_text() + SETUP_SCRIPT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        if "E2E-SETUP-DONE" not in shell.stdout:
            raise RuntimeError(
                f"setting up the database failed:\n{shell.stdout[-3000:]}{shell.stderr[-3000:]}"
            )
        self.log(f"odoo database {self.db} ready in {time.monotonic() - started:.1f} s")

    def shell(self, code: str, done_marker: str) -> str:
        """Run ``code`` in ``odoo shell`` on the stack's database (the code commits and prints
        ``done_marker`` when it worked); its stdout."""
        shell = subprocess.run(
            self.home.cmd("shell", "-c", str(self.conf), "-d", self.db, "--no-http"),
            input=code,
            capture_output=True,
            text=True,
            check=False,
        )
        if done_marker not in shell.stdout:
            raise RuntimeError(f"odoo shell failed:\n{shell.stdout[-3000:]}{shell.stderr[-3000:]}")
        return shell.stdout

    def start_odoo(self) -> None:
        proc = self._spawn("odoo", self.home.cmd("-c", str(self.conf), "-d", self.db))
        wait_http(f"http://127.0.0.1:{self.odoo_port}/web/health", 120, ok=lambda s: s == 200, proc=proc)

    def stop_odoo(self) -> None:
        self._stop("odoo", signal.SIGINT)

    def start_gateway(self) -> None:
        # the worker reports through the gateway too, so the callback paths are opened to loopback only
        self.gateway = gateway.Gateway(
            odoo=f"127.0.0.1:{self.odoo_port}", callback_allow="127.0.0.1", rate="100r/s", burst=200
        ).start()
        self.url = self.gateway.url

    def start_worker(self, **extra: str) -> subprocess.Popen:
        self.metrics_port = free_port()
        self.worker_env = {
            "AIGEN_AMQP_URL": self.amqp_url,
            "AIGEN_ODOO_URL": self.url,
            "AIGEN_WORKER_SECRET": self.secret,
            "AIGEN_OPENAI_BASE_URL": self.fake.base_url,
            "AIGEN_OPENAI_API_KEY": "sk-e2e",
            "AIGEN_METRICS_PORT": str(self.metrics_port),
            "AIGEN_MAX_ATTEMPTS": "3",
            "AIGEN_BACKOFF_INITIAL": "0.05",
            "AIGEN_BACKOFF_MAX": "0.2",
            "AIGEN_BACKOFF_JITTER": "0",
            "AIGEN_CALLBACK_PATIENCE": "2",  # then the outcome is parked until Odoo answers again
            "AIGEN_DRAIN_INTERVAL": "0.5",
            "AIGEN_SHUTDOWN_GRACE": "2",
            "AIGEN_LOG_LEVEL": "INFO",
            **extra,
        }
        worker_bin = str(Path(sys.executable).with_name("aigen-worker"))
        proc = self._spawn("worker", [worker_bin], self.worker_env)
        wait_http(f"http://127.0.0.1:{self.metrics_port}/healthz", 30, ok=lambda s: s == 200, proc=proc)
        return proc

    def kill_worker(self) -> None:
        self.procs["worker"].send_signal(signal.SIGKILL)
        self.procs["worker"].wait(10)

    def _stop(self, name: str, sig=signal.SIGTERM, timeout: float = 20) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        self._stop("worker")
        if self.gateway is not None:
            self.gateway.stop()
        self._stop("odoo", signal.SIGINT)
        self._stop("alertmanager")
        self.webhook.stop()
        with contextlib.suppress(subprocess.CalledProcessError):
            psql("-c", f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        shutil.rmtree(self.tmp / "odoo-data", ignore_errors=True)


def new_tmp() -> Path:
    path = Path(tempfile.mkdtemp(prefix="aigen-e2e-"))
    path.chmod(0o755)
    return path
