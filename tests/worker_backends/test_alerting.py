"""Alert detection (pure, with a fake clock) and delivery through the real Alertmanager."""

import os
import socket

import pytest

import aigen_contracts
from worker import metrics
from worker.alerting import (
    CONSECUTIVE_FAILURES,
    HIGH_ERROR_RATE,
    IMMEDIATE_ERROR,
    PERSISTENT_ERRORS,
    AlertConfig,
    AlertDetector,
    AlertMonitor,
    default_instance,
)
from worker.classification import Signal, classify

CONFIG = AlertConfig(
    window_seconds=60,
    rate_threshold=3,
    persistent_seconds=100,
    consecutive_threshold=1000,  # off unless a test turns it on: system failures would also form a row
    resend_seconds=30,
    quiet_seconds=50,
)
ROW = AlertConfig(**{**CONFIG.__dict__, "consecutive_threshold": 4, "rate_threshold": 1000})


def fail(
    detector,
    now,
    backend="external",
    error_type="provider_unavailable",
    side="system",
    alert="rate",
    rid=None,
):
    detector.record_failure(backend, error_type, side, alert, rid or f"req-{now:g}", now)


def names(notices, resolved=False):
    return sorted(
        (n.labels["alertname"], n.labels["backend"], n.labels["error_type"])
        for n in notices
        if n.resolved is resolved
    )


def deliver(detector, now):
    due = detector.evaluate(now)
    detector.sent(due, now)
    return due


def test_rate_alert_needs_n_errors_within_the_window():
    detector = AlertDetector(CONFIG)
    fail(detector, 0)
    fail(detector, 10)
    assert deliver(detector, 10) == []
    fail(detector, 20)
    (notice,) = deliver(detector, 20)
    assert notice.labels == {
        "alertname": HIGH_ERROR_RATE,
        "service": "ai_generation",
        "backend": "external",
        "error_type": "provider_unavailable",
        "severity": "warning",
        "source": "worker",
        "instance": default_instance(),
    }
    assert notice.annotations["count"] == "3"
    assert notice.annotations["sample_request_ids"] == "req-20,req-10,req-0"
    assert notice.starts_at == 20


def test_errors_older_than_the_window_do_not_count():
    detector = AlertDetector(AlertConfig(**{**CONFIG.__dict__, "persistent_seconds": 1000}))
    for t in (0, 40, 80, 120):  # never 3 within 60 s
        fail(detector, t)
        assert deliver(detector, t) == []


def test_series_are_per_backend_and_error_type():
    detector = AlertDetector(CONFIG)
    fail(detector, 0, backend="external")
    fail(detector, 1, backend="internal")
    fail(detector, 2, error_type="provider_timeout")
    assert deliver(detector, 2) == []


def test_persistent_alert_after_errors_go_on_longer_than_t():
    detector = AlertDetector(AlertConfig(**{**CONFIG.__dict__, "rate_threshold": 100}))
    for t in range(0, 100, 40):  # 0, 40, 80: gaps under quiet_seconds
        fail(detector, t)
        assert deliver(detector, t) == []
    fail(detector, 120)
    assert names(deliver(detector, 120)) == [(PERSISTENT_ERRORS, "external", "provider_unavailable")]


def test_a_quiet_gap_starts_a_new_episode():
    detector = AlertDetector(AlertConfig(**{**CONFIG.__dict__, "rate_threshold": 100}))
    for t in (0, 45, 95, 145):  # gap 95→145 = quiet_seconds: the episode restarts at 145
        fail(detector, t)
    fail(detector, 190)
    assert deliver(detector, 190) == []


def test_consecutive_system_failures_fire_and_a_success_resolves():
    detector = AlertDetector(ROW)
    for t, error_type in enumerate(
        ["provider_timeout", "provider_unavailable", "provider_timeout", "unknown"]
    ):
        fail(detector, t, backend="internal", error_type=error_type)
    (notice,) = [n for n in deliver(detector, 4) if n.labels["alertname"] == CONSECUTIVE_FAILURES]
    assert (notice.labels["backend"], notice.labels["error_type"], notice.labels["severity"]) == (
        "internal",
        "any",
        "critical",
    )
    assert notice.annotations["consecutive_failures"] == "4"
    assert notice.annotations["error_types"] == "provider_timeout=2,provider_unavailable=1,unknown=1"
    detector.record_success("internal", 5)
    assert names(deliver(detector, 5), resolved=True) == [(CONSECUTIVE_FAILURES, "internal", "any")]


def test_user_side_failures_neither_count_nor_break_the_row():
    detector = AlertDetector(ROW)
    for t in range(3):
        fail(detector, t, error_type="provider_timeout")
    fail(detector, 3, error_type="invalid_input", side="user")  # the user's error: not in the row
    assert deliver(detector, 3) == []
    fail(detector, 4, error_type="provider_timeout")  # the 4th system failure in a row
    (notice,) = deliver(detector, 4)
    assert names([notice]) == [(CONSECUTIVE_FAILURES, "external", "any")]
    assert notice.annotations["consecutive_failures"] == "4"


@pytest.mark.parametrize(
    "error_type", ["invalid_input", "content_policy", "context_length_exceeded", "model_rejected_input"]
)
def test_a_user_side_failure_does_not_resolve_a_firing_streak(error_type):
    detector = AlertDetector(ROW)
    for t in range(4):
        fail(detector, t, backend="internal", error_type="pod_error")
    assert names(deliver(detector, 4)) == [(CONSECUTIVE_FAILURES, "internal", "any")]
    fail(detector, 5, backend="internal", error_type=error_type, side="user")
    assert deliver(detector, 6) == []  # neither resolved nor re-sent early
    assert names(detector.active()) == [(CONSECUTIVE_FAILURES, "internal", "any")]
    detector.record_success("internal", 7)  # only the backend's success (or quiet time) ends it
    assert names(deliver(detector, 7), resolved=True) == [(CONSECUTIVE_FAILURES, "internal", "any")]


def test_a_streak_ends_after_quiet_seconds_and_the_next_one_starts_from_zero():
    detector = AlertDetector(ROW)
    for t in range(4):
        fail(detector, t, error_type="provider_timeout")
    deliver(detector, 4)
    assert names(deliver(detector, 52), resolved=True) == []
    (resolved,) = deliver(detector, 53)  # 50 s (quiet_seconds) after the last system failure
    assert (resolved.resolved, resolved.labels["alertname"]) == (True, CONSECUTIVE_FAILURES)
    fail(detector, 200, error_type="provider_timeout")  # one failure after the pause: a new row of 1
    assert deliver(detector, 200) == []


@pytest.mark.parametrize(
    ("signal", "alertname"),
    [
        (Signal("http", status=401, code="invalid_api_key"), "AIGenerationImmediateError"),
        (Signal("http", status=404, code="model_not_found"), "AIGenerationImmediateError"),
        (Signal("http", status=429, code="insufficient_quota"), "AIGenerationImmediateError"),
    ],
)
def test_immediate_error_types_fire_on_the_first_error(signal, alertname):
    classification = classify(signal)
    detector = AlertDetector(CONFIG)
    detector.record_failure("external", classification.error_type, "system", classification.alert, "r1", 0)
    (notice,) = deliver(detector, 0)
    assert (notice.labels["alertname"], notice.labels["severity"]) == (alertname, "critical")
    assert notice.annotations["sample_request_ids"] == "r1"


def test_active_alerts_are_resent_every_resend_seconds_only():
    detector = AlertDetector(CONFIG)
    for t in (0, 1, 2):
        fail(detector, t)
    assert len(deliver(detector, 2)) == 1
    fail(detector, 10)
    assert deliver(detector, 10) == []  # still active, not due
    fail(detector, 31)
    (again,) = deliver(detector, 32)
    assert (again.resolved, again.starts_at, again.annotations["count"]) == (False, 2, "5")


def test_resolves_only_after_quiet_seconds_without_a_matching_error():
    detector = AlertDetector(CONFIG)
    for t in (0, 1, 2):
        fail(detector, t)
    deliver(detector, 2)
    fail(detector, 40)  # under the threshold now, but errors go on: stays active
    assert names(deliver(detector, 80), resolved=True) == []
    (resolved,) = deliver(detector, 90)
    assert (resolved.resolved, resolved.starts_at) == (True, 2)
    assert deliver(detector, 91) == []  # delivered once


def test_undelivered_resolution_is_retried_and_dropped_if_the_alert_returns():
    detector = AlertDetector(CONFIG)
    for t in (0, 1, 2):
        fail(detector, t)
    deliver(detector, 2)
    assert [n.resolved for n in detector.evaluate(60)] == [True]  # not marked sent: Alertmanager was down
    assert [n.resolved for n in detector.evaluate(61)] == [True]
    for t in (62, 63, 64):
        fail(detector, t)
    assert [n.resolved for n in detector.evaluate(64)] == [False]


def test_no_alert_per_request():
    detector = AlertDetector(AlertConfig(**{**CONFIG.__dict__, "consecutive_threshold": 4}))
    posts = 0
    for i in range(1000):  # one failure every 0.1 s for 100 s, evaluated after each
        now = i / 10
        fail(detector, now, rid=f"r{i}")
        posts += len(deliver(detector, now))
    # the rate alert, the consecutive one, the persistent one once T passed, plus re-sends every 30 s
    assert posts <= 3 + 2 * 4


# --- the monitor and its HTTP side ----------


def test_disabled_monitor_posts_nothing():
    monitor = AlertMonitor(AlertConfig(alertmanager_url=None, rate_threshold=1))
    monitor.record_failure("external", classify(Signal("timeout")), "r1")
    assert monitor.tick() == []
    assert [n.labels["alertname"] for n in monitor.detector.active()] == [HIGH_ERROR_RATE]


def test_alertmanager_down_is_survived_and_counted():
    clock = [0.0]
    monitor = AlertMonitor(
        AlertConfig(alertmanager_url="http://127.0.0.1:9", rate_threshold=1, request_timeout=1),
        clock=lambda: clock[0],
    )
    before = metrics.REGISTRY.get_sample_value("aigen_worker_alert_posts_total", {"result": "error"}) or 0
    monitor.record_failure("external", classify(Signal("timeout")), "r1")
    assert monitor.tick() == []
    assert monitor.tick() == []  # backs off until the next eval interval: no post per failure
    after = metrics.REGISTRY.get_sample_value("aigen_worker_alert_posts_total", {"result": "error"})
    assert after == before + 1
    assert len(monitor.detector.active()) == 1


@pytest.mark.slow
def test_alertmanager_delivers_firing_then_resolved(alertmanager):
    config = AlertConfig(
        alertmanager_url=alertmanager.url,
        rate_threshold=3,
        window_seconds=30,
        quiet_seconds=1.5,
        resend_seconds=30,
        eval_interval_seconds=0.2,
        generator_url="http://127.0.0.1/worker",
    )
    monitor = AlertMonitor(config)
    monitor.start()
    try:
        unavailable = classify(Signal("http", status=503))
        for i in range(3):
            monitor.record_failure("external", unavailable, f"req-{i}")
        monitor.record_failure("internal", classify(Signal("http", status=401)), "req-auth")
        firing = alertmanager.webhook.wait_for(status="firing", alertname=HIGH_ERROR_RATE)
        auth = alertmanager.webhook.wait_for(status="firing", alertname="AIGenerationImmediateError")
        resolved = alertmanager.webhook.wait_for(status="resolved", alertname=HIGH_ERROR_RATE, timeout=20)
        auth_resolved = alertmanager.webhook.wait_for(
            status="resolved", alertname="AIGenerationImmediateError", timeout=20
        )
    finally:
        monitor.stop()
    assert firing["labels"] == {
        "alertname": HIGH_ERROR_RATE,
        "service": "ai_generation",
        "backend": "external",
        "error_type": "provider_unavailable",
        "severity": "warning",
        "source": "worker",
        "instance": default_instance(),
    }
    assert firing["annotations"]["count"] == "3"
    assert set(firing["annotations"]["sample_request_ids"].split(",")) == {"req-0", "req-1", "req-2"}
    assert firing["generatorURL"] == "http://127.0.0.1/worker"
    assert (auth["labels"]["backend"], auth["labels"]["error_type"]) == ("internal", "provider_auth")
    assert resolved["labels"] == firing["labels"]
    assert resolved["startsAt"][:19] == firing["startsAt"][:19]
    assert auth_resolved["labels"]["severity"] == "critical"
    # one notification per alert and state: nothing per request
    assert len(alertmanager.webhook.alerts(alertname=HIGH_ERROR_RATE, status="firing")) == 1


def test_alert_names_and_labels_follow_the_shared_contract():
    contract = aigen_contracts.load("alerts.json")
    assert AlertConfig().service == contract["service"]
    for name in (HIGH_ERROR_RATE, PERSISTENT_ERRORS, CONSECUTIVE_FAILURES, IMMEDIATE_ERROR):
        assert name in contract["alerts"], name
    detector = AlertDetector(AlertConfig(**{**CONFIG.__dict__, "rate_threshold": 1}))
    fail(detector, 0)
    (notice,) = deliver(detector, 0)
    instance = contract["instance_label"]
    assert "worker" in instance["sources"]
    assert sorted(notice.labels) == sorted([*contract["labels"], instance["label"]])
    assert notice.labels["source"] == "worker" and "worker" in contract["sources"]
    assert instance["label"] not in contract["group_by"]  # one notification shows every instance


def test_the_instance_label_is_this_process_unless_set():
    host_pid = AlertDetector(AlertConfig(rate_threshold=1))
    named = AlertDetector(AlertConfig(rate_threshold=1, instance="worker-1"))
    # the way the docs said to set it before AIGEN_ALERT_INSTANCE: still honoured
    legacy = AlertDetector(AlertConfig(rate_threshold=1, extra_labels={"instance": "worker-2"}))
    seen = []
    for detector in (host_pid, named, legacy):
        fail(detector, 0)
        (notice,) = deliver(detector, 0)
        seen.append(notice.labels["instance"])
    assert seen == [f"{socket.gethostname()}:{os.getpid()}", "worker-1", "worker-2"]


def test_extra_labels_cannot_take_over_the_source_label():
    config = AlertConfig(**{**CONFIG.__dict__, "rate_threshold": 1, "extra_labels": {"source": "odoo"}})
    detector = AlertDetector(config)
    fail(detector, 0)
    (notice,) = deliver(detector, 0)
    assert notice.labels["source"] == "worker"


# --- the streak against the real Alertmanager ----------


def _timed_monitor(alertmanager, clock, **settings):
    config = AlertConfig(
        **{
            **ROW.__dict__,
            "alertmanager_url": alertmanager.url,
            "consecutive_threshold": 3,
            "quiet_seconds": 300,
            "resend_seconds": 60,
            **settings,
        }
    )
    return AlertMonitor(config, clock=lambda: clock[0])


def _states(alertmanager, **labels):
    return [a["status"]["state"] for a in alertmanager.alerts(**labels)]


@pytest.mark.slow
def test_a_user_error_after_a_system_streak_keeps_the_alert_firing_in_alertmanager(alertmanager):
    clock = [0.0]
    monitor = _timed_monitor(alertmanager, clock)
    timeout = classify(Signal("timeout"))
    for i in range(3):
        clock[0] += 1
        monitor.record_failure("external", timeout, f"req-{i}")
    assert names(monitor.tick()) == [(CONSECUTIVE_FAILURES, "external", "any")]
    alertmanager.webhook.wait_for(status="firing", alertname=CONSECUTIVE_FAILURES)
    streak = {"alertname": CONSECUTIVE_FAILURES, "backend": "external", "source": "worker"}
    assert _states(alertmanager, **streak) == ["active"]

    clock[0] += 1  # the next job fails on the user side: the provider is still down for everyone else
    user_error = classify(Signal("http", status=400))
    assert user_error.side == "user"
    monitor.record_failure("external", user_error, "req-user")
    clock[0] += 1
    assert monitor.tick() == []  # nothing to post: no resolution
    assert _states(alertmanager, **streak) == ["active"]
    assert alertmanager.webhook.alerts(status="resolved", alertname=CONSECUTIVE_FAILURES) == []

    monitor.record_success("external")  # a success is the recovery
    clock[0] += 1
    assert [n.resolved for n in monitor.tick()] == [True]
    alertmanager.webhook.wait_for(status="resolved", alertname=CONSECUTIVE_FAILURES)
    assert _states(alertmanager, **streak) == []


@pytest.mark.slow
def test_one_worker_resolving_leaves_another_workers_alert_firing(alertmanager, monkeypatch):
    # two workers on one queue, neither configured with an instance: the provider fails for both,
    # then one of them sees a success (a request that got through) while the other's jobs still fail
    clock = [0.0]
    first = _timed_monitor(alertmanager, clock)
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)  # the second worker process on this host
    second = AlertMonitor(first.config, clock=lambda: clock[0])
    monkeypatch.undo()
    timeout = classify(Signal("timeout"))
    for i in range(3):
        clock[0] += 1
        first.record_failure("external", timeout, f"req-a{i}")
        second.record_failure("external", timeout, f"req-b{i}")
    assert len(first.tick()) == len(second.tick()) == 1
    streak = {"alertname": CONSECUTIVE_FAILURES, "backend": "external", "source": "worker"}
    assert _states(alertmanager, **streak) == ["active", "active"]

    second.record_success("external")
    clock[0] += 1
    assert [n.resolved for n in second.tick()] == [True]
    still = alertmanager.alerts(**streak)
    assert [(a["labels"]["instance"], a["status"]["state"]) for a in still] == [
        (f"{socket.gethostname()}:{pid}", "active")
    ]
