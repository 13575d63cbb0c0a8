"""Alerts end to end: failing jobs through RabbitMQ -> the worker process -> the real Alertmanager ->
its webhook receiver (the notification Alertmanager sends is checked, not only the POST to it).
"""

from __future__ import annotations

import signal

import pytest

from tests.support import fake_openai as ai
from tests.worker.helpers import job_message, metrics_url, publish, spawn, wait_until

pytestmark = pytest.mark.slow


def test_high_frequency_errors_fire_one_alert_that_resolves_when_quiet(
    vhost, odoo, fake_openai, alertmanager, channel, tmp_path
):
    fake_openai.on("[down]", ai.unavailable())
    fake_openai.on("[key]", ai.unauthorized())
    process, log_file = spawn(
        vhost,
        odoo,
        fake_openai,
        tmp_path / "worker.log",
        AIGEN_MAX_ATTEMPTS="1",
        AIGEN_ALERT_ALERTMANAGER_URL=alertmanager.url,
        AIGEN_ALERT_RATE_THRESHOLD="3",
        AIGEN_ALERT_WINDOW_SECONDS="60",
        AIGEN_ALERT_CONSECUTIVE_THRESHOLD="1000",
        AIGEN_ALERT_EVAL_INTERVAL_SECONDS="0.2",
        AIGEN_ALERT_RESEND_SECONDS="1",
        AIGEN_ALERT_QUIET_SECONDS="3",
    )
    try:
        wait_until(lambda: metrics_url(tmp_path / "worker.log"), 20, "worker started")
        failing = [job_message(f"provider down [down] {i}") for i in range(5)]
        for message in failing:
            publish(channel, message)
        labels = {"alertname": "AIGenerationHighErrorRate", "backend": "external"}
        firing = alertmanager.webhook.wait_for(
            status="firing", error_type="provider_unavailable", timeout=30, **labels
        )
        assert firing["labels"]["service"] and firing["labels"]["severity"]
        assert firing["labels"]["source"] == "worker"
        sample = firing["annotations"]
        assert any(m["generation_request_id"] in str(sample) for m in failing)
        # no alert per request: one alert (one fingerprint) for the five failures
        fingerprints = {
            a["fingerprint"] for a in alertmanager.webhook.alerts(error_type="provider_unavailable", **labels)
        }
        assert len(fingerprints) == 1

        publish(channel, job_message("bad key [key]"))
        immediate = alertmanager.webhook.wait_for(
            status="firing", error_type="provider_auth", backend="external", timeout=30
        )
        assert immediate["labels"]["alertname"] == "AIGenerationImmediateError"

        # the errors stop: the alert is resolved (endsAt now), and Alertmanager says so
        resolved = alertmanager.webhook.wait_for(
            status="resolved", error_type="provider_unavailable", timeout=30, **labels
        )
        assert resolved["fingerprint"] in fingerprints
        assert all(odoo.state(m["generation_request_id"]).status == "failed" for m in failing)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log_file.close()


def test_a_user_error_after_a_streak_of_system_failures_keeps_the_streak_alert_firing(
    vhost, odoo, fake_openai, alertmanager, channel, tmp_path
):
    fake_openai.on("[down]", ai.unavailable())
    fake_openai.on("[bad]", ai.invalid_value())
    process, log_file = spawn(
        vhost,
        odoo,
        fake_openai,
        tmp_path / "worker.log",
        AIGEN_MAX_ATTEMPTS="1",
        AIGEN_ALERT_ALERTMANAGER_URL=alertmanager.url,
        AIGEN_ALERT_RATE_THRESHOLD="1000",
        AIGEN_ALERT_CONSECUTIVE_THRESHOLD="3",
        AIGEN_ALERT_EVAL_INTERVAL_SECONDS="0.2",
        AIGEN_ALERT_RESEND_SECONDS="60",
        AIGEN_ALERT_QUIET_SECONDS="120",
    )
    streak = {"alertname": "AIGenerationConsecutiveFailures", "backend": "external", "source": "worker"}

    def run(message):
        publish(channel, message)
        return odoo.wait_terminal(message["generation_request_id"]).status

    try:
        wait_until(lambda: metrics_url(tmp_path / "worker.log"), 20, "worker started")
        assert [run(job_message(f"provider down [down] {i}")) for i in range(3)] == ["failed"] * 3
        alertmanager.webhook.wait_for(status="firing", timeout=30, **streak)

        assert run(job_message("a bad size [bad]")) == "failed"  # on the user side
        assert run(job_message("another bad size [bad]")) == "failed"
        # several evaluations (every 0.2 s) and Alertmanager group intervals (1 s) later: still firing
        with pytest.raises(TimeoutError):
            alertmanager.webhook.wait_for(status="resolved", timeout=3, **streak)
        assert [a["status"]["state"] for a in alertmanager.alerts(**streak)] == ["active"]

        assert run(job_message("a haiku")) == "succeeded"  # the backend recovered
        alertmanager.webhook.wait_for(status="resolved", timeout=30, **streak)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        log_file.close()
