"""The installed command as operators run it: a real ``aigen-worker`` process, SIGTERM, metrics, health.

The process runs with the real openai client against the loopback fake AI, on a throwaway vhost.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.support import fake_openai as ai
from tests.worker.helpers import (
    RunningWorker,
    ScriptedBackend,
    get,
    job_message,
    log_lines,
    metrics_url,
    publish,
    queue_depth,
    spawn,
    wait_until,
    worker_config,
)
from worker import topology
from worker.app import Worker

pytestmark = pytest.mark.slow


def test_sigterm_lets_in_flight_jobs_finish_and_exits_cleanly(vhost, odoo, fake_openai, channel, tmp_path):
    fake_openai.default = ai.text("slow but fine", delay=1.5)
    log_path = tmp_path / "worker.log"
    process, log_file = spawn(vhost, odoo, fake_openai, log_path, AIGEN_SHUTDOWN_GRACE="20")
    try:
        url = wait_until(lambda: metrics_url(log_path), 20, "metrics served")
        wait_until(lambda: get(url + "/healthz")[0] == 200, 20, "healthy")
        messages = [job_message(f"in flight {i}") for i in range(30)]
        for message in messages:
            publish(channel, message)
        wait_until(lambda: fake_openai.in_flight >= 30, 20, "30 AI calls in flight")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        log_file.close()
    ids = [m["generation_request_id"] for m in messages]
    assert all(odoo.state(i).status == "succeeded" for i in ids)
    assert queue_depth(vhost, topology.JOBS_QUEUE) == 0
    assert any(r.get("message") == "signal received; stopping gracefully" for r in log_lines(log_path))


def test_sigterm_past_the_grace_returns_unfinished_jobs_to_the_queue(
    vhost, odoo, fake_openai, channel, tmp_path
):
    fake_openai.default = ai.text("too slow", delay=30)
    log_path = tmp_path / "worker.log"
    process, log_file = spawn(vhost, odoo, fake_openai, log_path, AIGEN_SHUTDOWN_GRACE="0.5")
    messages = [job_message(f"unfinished {i}") for i in range(10)]
    try:
        wait_until(lambda: metrics_url(log_path), 20, "started")
        for message in messages:
            publish(channel, message)
        wait_until(lambda: fake_openai.in_flight >= 10, 20, "in flight")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert time.monotonic() - started < 15  # it did not wait for the 30 s answers
    finally:
        if process.poll() is None:
            process.kill()
        log_file.close()
    ids = [m["generation_request_id"] for m in messages]
    wait_until(lambda: queue_depth(vhost, topology.JOBS_QUEUE) == 10, 10, "all back in the queue")
    with RunningWorker(Worker(worker_config(vhost, odoo), {"external": ScriptedBackend()})):
        wait_until(lambda: all(odoo.state(i).status == "succeeded" for i in ids), 30, "finished elsewhere")


def test_metrics_count_outcomes_and_health_follows_the_broker(vhost, odoo, fake_openai, channel, tmp_path):
    fake_openai.on("[bad]", ai.content_policy_violation())
    log_path = tmp_path / "worker.log"
    process, log_file = spawn(vhost, odoo, fake_openai, log_path)
    try:
        url = wait_until(lambda: metrics_url(log_path), 20, "metrics served")
        good, bad = job_message("fine"), job_message("nope [bad]")
        publish(channel, good)
        publish(channel, bad)
        publish(channel, b"not json")
        wait_until(
            lambda: (
                all(odoo.state(m["generation_request_id"]) for m in (good, bad))
                and odoo.state(bad["generation_request_id"]).user_message
            ),
            20,
            "both reported",
        )

        def counted():
            text = get(url + "/metrics")[1]
            return (
                'outcome="succeeded"' in text
                and 'error_type="content_policy",outcome="failed_user"'
                in text.replace('backend="external",', "")
                and 'outcome="dead_lettered"' in text
                and text
            )

        text = wait_until(counted, 10, "metrics counted")
        assert "aigen_worker_job_duration_seconds_bucket" in text and "aigen_worker_jobs_in_flight" in text
        assert get(url + "/healthz")[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log_file.close()
