"""Builders shared by the worker tests: job messages, a scripted in-test backend, quick configs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pika

from tests.support.polling import wait_until
from worker import topology
from worker.backends.base import BackendFailure, GenerationOutput
from worker.backoff import Backoff
from worker.classification import Signal
from worker.processing import ProcessingConfig

SECRET = "test-worker-secret"


def job_message(prompt: str = "Write a haiku about queues.", **overrides: Any) -> dict:
    now = datetime.now(UTC)
    message = {
        "message_type": "AIGenerationJobRequested",
        "version": 1,
        "generation_request_id": str(uuid.uuid4()),
        "backend": "external",
        "model": "gpt-test",
        "task": "text",
        "prompt": prompt,
        "params": {},
        "attempt": 1,
        "deadline": (now + timedelta(minutes=5)).isoformat(),
        "created_at": now.isoformat(),
    }
    message.update(overrides)
    return message


def publish(channel, message: dict | bytes, **props: Any) -> None:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    message_id = message.get("generation_request_id") if isinstance(message, dict) else None
    channel.basic_publish(
        topology.EXCHANGE,
        topology.ROUTING_KEY,
        body,
        pika.BasicProperties(
            content_type="application/json",
            message_id=message_id,
            type="AIGenerationJobRequested",
            delivery_mode=pika.DeliveryMode.Persistent,
            **props,
        ),
        mandatory=True,
    )


def fast_processing(**overrides: Any) -> ProcessingConfig:
    values: dict[str, Any] = {
        "max_attempts": 3,
        "backoff": Backoff(0.01, 0.05, 0.01),
        "request_timeout": 10.0,
    }
    values.update(overrides)
    return ProcessingConfig(**values)


def fail(kind: str = "http", **fields: Any) -> BackendFailure:
    return BackendFailure(Signal(kind=kind, **fields), "scripted failure")


class ScriptedBackend:
    """An in-test double of the AI (Backend protocol): each prompt marker gets its own list of steps.

    A step is an exception (raised), a GenerationOutput (returned), a float (sleep that long, then go on
    to the next step) or a callable (called with the job, its result used as a step). The last step
    repeats. Unmatched prompts get ``default``.
    """

    def __init__(self, name: str = "external", default: Any = None):
        self.name = name
        self.default = default if default is not None else GenerationOutput("done", None, {"total_tokens": 3})
        self.scripts: dict[str, list] = {}
        self.calls: list[tuple[str, str, float, float]] = []  # (request_id, model, timeout, at)
        self._positions: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def on(self, marker: str, *steps: Any) -> ScriptedBackend:
        self.scripts[marker] = list(steps)
        return self

    def calls_for(self, request_id: str) -> list[tuple[str, str, float, float]]:
        with self._lock:
            return [c for c in self.calls if c[0] == request_id]

    def _next(self, job) -> Any:
        with self._lock:
            self.calls.append((job.request_id, job.model, 0.0, time.monotonic()))
            for marker, steps in self.scripts.items():
                if marker in job.prompt:
                    key = (job.request_id, marker)
                    index = self._positions.get(key, 0)
                    self._positions[key] = index + 1
                    return steps[min(index, len(steps) - 1)]
            return self.default

    def generate(self, job, *, timeout: float) -> GenerationOutput:
        step = self._next(job)
        with self._lock:
            rid, model, _, at = self.calls[-1]
            self.calls[-1] = (rid, model, timeout, at)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            while True:
                if callable(step) and not isinstance(step, type):
                    step = step(job)
                    continue
                if isinstance(step, int | float):
                    time.sleep(step)
                    step = self.default
                    continue
                if isinstance(step, BaseException):
                    raise step
                return step
        finally:
            with self._lock:
                self.active -= 1


def worker_config(vhost, odoo, **overrides: Any):
    """A WorkerConfig for tests: fast retries and reconnects, no metrics server, a unique name."""
    from worker.config import WorkerConfig

    values: dict[str, Any] = {
        "amqp_url": vhost.url,
        "odoo_url": odoo.url,
        "worker_secret": SECRET,
        "max_in_flight": 128,
        "heartbeat": 10,
        "reconnect_initial": 0.2,
        "reconnect_max": 1.0,
        "shutdown_grace": 5.0,
        "callback_timeout": 5.0,
        "callback_patience": 1.0,
        "drain_interval": 0.2,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "backoff_jitter": 0.01,
        "request_timeout": 10.0,
        "metrics_port": -1,
        "connection_name": f"test-worker-{uuid.uuid4().hex[:8]}",
    }
    values.update(overrides)
    return WorkerConfig(**values)


class RunningWorker:
    """A worker.app.Worker run in a thread for the duration of a ``with`` block."""

    def __init__(self, worker):
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, name="worker-main", daemon=True)

    def __enter__(self) -> RunningWorker:
        self.thread.start()
        wait_until(lambda: self.worker.healthy(), 20, "worker connected")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"

    def __exit__(self, *exc) -> None:
        if self.thread.is_alive():
            self.stop()


def queue_depth(vhost, queue: str) -> int:
    """Ready messages in ``queue`` (a passive declare on a connection of its own)."""
    conn = vhost.connect()
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def drain_queue(vhost, queue: str) -> list[tuple[Any, bytes]]:
    """Take every ready message from ``queue``: [(properties, body)]."""
    conn = vhost.connect()
    taken = []
    try:
        channel = conn.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((properties, body))
    finally:
        conn.close()


# -- the worker as a process (python -m worker) -------------------------------------------------------


def spawn(vhost, odoo, fake_openai, log_path, **env):
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AIGEN_AMQP_URL": vhost.url,
        "AIGEN_ODOO_URL": odoo.url,
        "AIGEN_WORKER_SECRET": SECRET,
        "AIGEN_OPENAI_BASE_URL": fake_openai.base_url,
        "AIGEN_OPENAI_API_KEY": "sk-test",
        "AIGEN_METRICS_PORT": "0",
        "AIGEN_CONNECTION_NAME": f"test-process-{os.getpid()}",
        "AIGEN_RECONNECT_INITIAL": "0.2",
        **env,
    }
    log_file = open(log_path, "w")  # noqa: SIM115 - handed to the child, closed by the test
    process = subprocess.Popen(
        [sys.executable, "-m", "worker"], env=environment, stdout=log_file, stderr=log_file
    )
    return process, log_file


def log_lines(log_path):
    lines = []
    for line in log_path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"message": line})
    return lines


def metrics_url(log_path):
    return next((r["metrics_url"] for r in log_lines(log_path) if "metrics_url" in r), None)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback test server
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextlib.contextmanager
def clean_channel(vhost):
    """A publishing channel on a clean topology (every queue of the vhost purged)."""
    conn = vhost.connect()
    ch = conn.channel()
    topology.declare(ch)
    for queue in (topology.JOBS_QUEUE, topology.DLQ, topology.PARKED_QUEUE):
        ch.queue_purge(queue)
    ch.confirm_delivery()
    try:
        yield ch
    finally:
        if conn.is_open:  # a test may have had the broker close it
            conn.close()
