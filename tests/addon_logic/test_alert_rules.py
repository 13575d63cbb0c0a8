from datetime import datetime, timedelta

from aigen_pure import alerts
from aigen_pure.alerts import AlertRules, Failure, evaluate

import aigen_contracts

NOW = datetime(2026, 11, 24, 12, 0, 0)
KINDS = {"quota_exhausted": "immediate"}


def kind_of(error_type):
    return KINDS.get(error_type, "rate")


def failures(n, error_type="provider_unavailable", backend="external", minutes_ago=1):
    return [
        Failure(f"r{i}", backend, error_type, "system", NOW - timedelta(minutes=minutes_ago))
        for i in range(n)
    ]


def names(found):
    return sorted((a.labels["alertname"], a.labels["error_type"]) for a in found.values())


def test_rate_threshold_per_backend_and_type():
    rules = AlertRules(window_minutes=10, rate_threshold=3, consecutive_threshold=0)
    assert evaluate(rules, failures(2), {}, kind_of, NOW) == {}
    found = evaluate(rules, failures(3), {}, kind_of, NOW)
    assert names(found) == [(alerts.ALERT_RATE, "provider_unavailable")]
    alert = next(iter(found.values()))
    assert alert.labels == {
        "alertname": alerts.ALERT_RATE,
        "service": "ai_generation",
        "backend": "external",
        "error_type": "provider_unavailable",
        "severity": "warning",
    }
    assert alert.annotations["count"] == "3"


def test_old_failures_do_not_count():
    rules = AlertRules(window_minutes=10, rate_threshold=3, consecutive_threshold=0)
    assert evaluate(rules, failures(5, minutes_ago=11), {}, kind_of, NOW) == {}


def test_immediate_types_alert_at_once():
    rules = AlertRules(rate_threshold=100, consecutive_threshold=0)
    found = evaluate(rules, failures(1, "quota_exhausted"), {}, kind_of, NOW)
    assert names(found) == [(alerts.ALERT_IMMEDIATE, "quota_exhausted")]


def test_consecutive_system_failures_of_a_backend():
    rules = AlertRules(rate_threshold=100, consecutive_threshold=3)
    ok_in_between = {"internal": [(False, "pod_error"), (True, None), (False, "pod_error")]}
    assert evaluate(rules, [], ok_in_between, kind_of, NOW) == {}
    in_a_row = {"internal": [(False, "pod_error"), (False, "model_timeout"), (False, "pod_error")]}
    found = evaluate(rules, [], in_a_row, kind_of, NOW)
    assert names(found) == [(alerts.ALERT_CONSECUTIVE, "any")]


def test_alertmanager_body():
    alert = alerts.Alert({"alertname": "X"}, {"count": "1"})
    body = alerts.to_alertmanager(alert, NOW, NOW + timedelta(minutes=5))
    assert body == {
        "labels": {"alertname": "X"},
        "annotations": {"count": "1"},
        "startsAt": "2026-11-24T12:00:00.000000Z",
        "endsAt": "2026-11-24T12:05:00.000000Z",
    }


def test_names_and_labels_follow_the_shared_alert_contract():
    contract = aigen_contracts.load("alerts.json")
    assert contract["service"] == alerts.SERVICE
    for name in (alerts.ALERT_RATE, alerts.ALERT_IMMEDIATE, alerts.ALERT_CONSECUTIVE):
        assert name in contract["alerts"], name
    labels = alerts._labels(alerts.ALERT_RATE, "external", "unknown", "warning")
    assert sorted(labels) == sorted(contract["labels"])
