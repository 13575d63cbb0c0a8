"""Debian's prometheus-alertmanager on loopback with a webhook receiver that records what it is sent.

Stop-gap for the n8n tier until the shared tests/support/alertmanager.py lands (then use that one).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from tests.n8n.harness import free_port

CONFIG = """
route:
  receiver: hook
  group_by: [alertname, service, backend, error_type]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


class LocalAlertmanager:
    def __init__(self):
        self.notifications: list[dict] = []
        self._lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="aigen-am-")
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        owner = self

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with owner._lock:
                    owner.notifications.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self._hook.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalAlertmanager:
        binary = shutil.which("prometheus-alertmanager")
        if binary is None:
            raise RuntimeError("prometheus-alertmanager is not installed (scripts/provision installs it)")
        folder = Path(self._dir.name)
        (folder / "am.yml").write_text(CONFIG.format(url=f"http://127.0.0.1:{self._hook.server_address[1]}/"))
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'am.yml'}",
                f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                f"--web.external-url={self.url}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ends = time.monotonic() + 30
        while time.monotonic() < ends:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError("alertmanager did not become ready")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        self._hook.shutdown()
        self._hook.server_close()
        self._dir.cleanup()

    def alerts_received(self) -> list[dict]:
        """Every alert of every webhook notification so far (firing and resolved)."""
        with self._lock:
            return [alert for n in self.notifications for alert in n.get("alerts", [])]

    def wait_for_alert(self, timeout: float = 30.0, **labels: str) -> dict:
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            for alert in self.alerts_received():
                if all(alert["labels"].get(k) == v for k, v in labels.items()):
                    return alert
            time.sleep(0.1)
        raise AssertionError(f"no alert with {labels} within {timeout}s; got {self.alerts_received()}")
