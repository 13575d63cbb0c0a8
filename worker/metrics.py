"""Prometheus metrics of the worker and its /metrics + /healthz endpoint (prometheus-client does the format).

Metric names (docker/prometheus rules and dashboards use them):
- ``aigen_worker_jobs_total{outcome, backend, error_type}``: finished jobs; error_type "" on success;
- ``aigen_worker_job_duration_seconds{outcome, backend}``: histogram from pick-up to outcome;
- ``aigen_worker_jobs_in_flight``: jobs being processed now;
- ``aigen_worker_alerts_active{alertname}`` and ``aigen_worker_alert_posts_total{result}``: the alert loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

log = logging.getLogger(__name__)

OUTCOMES = ("succeeded", "failed_system", "failed_user", "parked", "dead_lettered")
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

JOBS = Counter("aigen_worker_jobs", "Finished generation jobs", ["outcome", "backend", "error_type"])
DURATION = Histogram(
    "aigen_worker_job_duration_seconds",
    "Seconds from picking a job up to its outcome",
    ["outcome", "backend"],
    buckets=DURATION_BUCKETS,
)
IN_FLIGHT = Gauge("aigen_worker_jobs_in_flight", "Jobs being processed now")
ALERTS_ACTIVE = Gauge("aigen_worker_alerts_active", "Alerts this worker holds active", ["alertname"])
ALERT_POSTS = Counter("aigen_worker_alert_posts", "Posts to Alertmanager", ["result"])


def observe_job(outcome: str, backend: str, error_type: str | None, seconds: float) -> None:
    """Count one finished job; ``outcome`` is one of OUTCOMES."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
    JOBS.labels(outcome=outcome, backend=backend, error_type=error_type or "").inc()
    DURATION.labels(outcome=outcome, backend=backend).observe(max(0.0, seconds))


def set_in_flight(n: int) -> None:
    IN_FLIGHT.set(n)


class MetricsServer:
    """The running endpoint: ``port``, ``url``, ``stop()``."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread):
        self._httpd = httpd
        self._thread = thread

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    # ``shutdown`` reads naturally for callers used to http.server
    shutdown = stop


def serve(
    port: int,
    host: str = "127.0.0.1",
    health: Callable[[], bool] = lambda: True,
    registry: CollectorRegistry = REGISTRY,
) -> MetricsServer:
    """Serve /metrics (Prometheus text) and /healthz (200 "ok" / 503) in a daemon thread; port 0 picks one."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # scrapes every few seconds would flood the log
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/health"):
                try:
                    healthy = bool(health())
                except Exception:
                    log.exception("health check raised")
                    healthy = False
                self._send(200 if healthy else 503, b"ok\n" if healthy else b"unhealthy\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics", daemon=True
    )
    thread.start()
    return MetricsServer(httpd, thread)
