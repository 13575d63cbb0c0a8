"""Debian's prometheus-alertmanager on loopback, with a webhook receiver that records what it delivers.

``Alertmanager`` starts the real binary (free port, no cluster gossip, temporary storage, a config whose
one route groups by alertname/service/backend/error_type with group_wait 1s and short intervals) and
points it at a ``WebhookReceiver`` in the test process. Tests then assert on the notifications
Alertmanager itself sends (firing, then resolved), not only on what was posted to it.

Library use::

    with Alertmanager() as am:                      # raises AlertmanagerUnavailable without the binary
        post alerts to am.url + "/api/v2/alerts"    # (or am.post_alerts([...]))
        note = am.webhook.wait_for(status="resolved", alertname="X", timeout=15)

pytest: the ``alertmanager`` fixture (started, fresh per test; skipped with the reason when the
binary is absent). ``AIGEN_ALERTMANAGER_BIN`` overrides the binary's path.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

CONFIG_TEMPLATE = """\
global:
  resolve_timeout: 5m
route:
  receiver: webhook
  group_by: [alertname, service, backend, error_type]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: {repeat_interval}
receivers:
  - name: webhook
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
"""


class AlertmanagerUnavailable(RuntimeError):
    """The binary is missing or did not become ready."""


def binary() -> str | None:
    return (
        os.environ.get("AIGEN_ALERTMANAGER_BIN")
        or shutil.which("prometheus-alertmanager")
        or shutil.which("alertmanager")
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebhookReceiver:
    """A loopback HTTP server that records every webhook notification (the parsed JSON body)."""

    def __init__(self):
        self.notifications: list[dict] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._cond:
                    receiver.notifications.append(body)
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._started = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:  # shutdown() of a server that never served would wait forever
            self._server.shutdown()
            self._started = False
        self._server.server_close()

    def alerts(self, *, status: str | None = None, **labels: str) -> list[dict]:
        """Every delivered alert (flattened out of the notifications) matching ``status`` and ``labels``."""
        with self._cond:
            found = []
            for note in self.notifications:
                for alert in note.get("alerts", []):
                    if status and alert.get("status") != status:
                        continue
                    if all(alert.get("labels", {}).get(k) == v for k, v in labels.items()):
                        found.append(alert)
            return found

    def wait_for(self, *, status: str | None = None, timeout: float = 15.0, **labels: str) -> dict:
        """The first delivered alert matching; waits up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self.alerts(status=status, **labels)
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {status or ''} alert {labels} delivered within {timeout}s")
                self._cond.wait(remaining)


class Alertmanager:
    """The real Alertmanager on a free loopback port, wired to a WebhookReceiver."""

    def __init__(
        self,
        *,
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        ready_timeout: float = 15.0,
    ):
        self.settings = {
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        }
        self.ready_timeout = ready_timeout
        self.webhook = WebhookReceiver()
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        path = binary()
        if not path:
            raise AlertmanagerUnavailable("prometheus-alertmanager is not installed (apt-get install it)")
        self.webhook.start()
        self._tmp = tempfile.TemporaryDirectory(prefix="aigen-am-")
        tmp = Path(self._tmp.name)
        config = tmp / "alertmanager.yml"
        config.write_text(CONFIG_TEMPLATE.format(webhook_url=self.webhook.url, **self.settings))
        for _attempt in range(3):  # another process may grab the free port first
            self.port = free_port()
            self._log = open(tmp / "alertmanager.log", "wb")  # noqa: SIM115 - closed in stop()
            self._process = subprocess.Popen(
                [
                    path,
                    f"--config.file={config}",
                    f"--storage.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    f"--web.external-url=http://127.0.0.1:{self.port}",
                    "--cluster.listen-address=",  # a single instance: no gossip port
                ],
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            if self._wait_ready():
                return self
            self._terminate()
        log_text = (tmp / "alertmanager.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise AlertmanagerUnavailable(f"Alertmanager did not become ready:\n{log_text}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def _terminate(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None
            self._log.close()

    def stop(self) -> None:
        self._terminate()
        self.webhook.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Alertmanager:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # the API, for assertions
    def post_alerts(self, alerts: list[dict]) -> None:
        requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()

    def alerts(self, **filters: str) -> list[dict]:
        """GET /api/v2/alerts (active alerts as Alertmanager holds them), filtered by label equality."""
        query = [("filter", f'{k}="{v}"') for k, v in filters.items()]
        response = requests.get(f"{self.url}/api/v2/alerts", params=query, timeout=5)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def alertmanager():
    """A started Alertmanager with its webhook receiver; skips when the binary is absent."""
    if not binary():
        pytest.skip("prometheus-alertmanager is not installed; the alert delivery test needs the real one")
    with Alertmanager() as am:
        yield am
