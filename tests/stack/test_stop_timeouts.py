"""Stopping the stack leaves the worker its shutdown grace (worker/config.py AIGEN_SHUTDOWN_GRACE).

On SIGTERM the worker lets in-flight jobs finish for the grace, so their results still reach Odoo; a
supervisor that kills it sooner throws those results away and the provider is called again for them.
./run-stack (devstack/run.py) and docker compose must both wait longer than the grace.
"""

import re
import sys
import time

import pytest

from devstack import procs, run
from tests.stack.test_compose import SERVICES, env_of, expand
from worker.config import load

DEFAULT_GRACE = load(environ={}).worker.shutdown_grace  # the worker's own default, read as it reads it


def seconds(duration: str) -> float:
    """A compose duration ("45s", "1m30s", "2m") in seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert parts and duration, f"unexpected duration {duration!r}"
    return int(parts.group(1) or 0) * 60 + float(parts.group(2) or 0)


def test_run_stack_waits_past_the_default_grace(monkeypatch):
    monkeypatch.delenv("AIGEN_SHUTDOWN_GRACE", raising=False)
    child = run.worker_child({"AIGEN_METRICS_PORT": "1"})
    assert child.stop_timeout > DEFAULT_GRACE
    assert child.stop_timeout == DEFAULT_GRACE + run.WORKER_STOP_MARGIN


@pytest.mark.parametrize("where", ["environment", "worker env"])
def test_run_stack_follows_a_grace_set_for_the_worker(monkeypatch, where):
    monkeypatch.delenv("AIGEN_SHUTDOWN_GRACE", raising=False)
    worker_env = {}
    if where == "environment":  # every AIGEN_* setting of the caller passes through to the worker
        monkeypatch.setenv("AIGEN_SHUTDOWN_GRACE", "90")
    else:
        worker_env["AIGEN_SHUTDOWN_GRACE"] = "90"
    assert run.worker_child(worker_env).stop_timeout == 90 + run.WORKER_STOP_MARGIN


def test_compose_waits_past_the_workers_grace():
    env = {name: expand(value) for name, value in env_of("worker").items()}
    grace_period = SERVICES["worker"].get("stop_grace_period")
    assert grace_period, "docker's default (10 s) is shorter than the worker's grace"
    assert seconds(grace_period) >= run.worker_stop_timeout(env)


# A child that takes a while to stop cleanly: it exits 0 only if it is given the time.
SLOW_TO_STOP = """
import signal, sys, time
def stop(*_):
    time.sleep(1.0)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(("stop_timeout", "clean"), [(10, True), (0.3, False)])
def test_a_child_gets_its_stop_timeout_before_it_is_killed(stop_timeout, clean):
    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    child = procs.Child("slow", [sys.executable, "-c", SLOW_TO_STOP], stop_timeout=stop_timeout, out=Out())
    child.start()
    deadline = time.monotonic() + 10
    while not any("ready" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    code = child.stop()
    assert (code == 0) is clean, code
