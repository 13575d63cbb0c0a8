from datetime import UTC, datetime, timedelta

import pytest
import yaml
from aigen_pure import alerts
from aigen_pure.alerts import AlertRules, Failure, Outcome, evaluate

import aigen_contracts
from tests.support.alertmanager import (
    CONFIG_TEMPLATE,
    alertmanager,  # noqa: F401 (the real Alertmanager fixture)
)
from worker.alerting import AlertConfig, AlertMonitor
from worker.classification import Signal, classify

NOW = datetime(2026, 11, 24, 12, 0, 0)
KINDS = {"quota_exhausted": "immediate"}


def kind_of(error_type):
    return KINDS.get(error_type, "rate")


def failures(n, error_type="provider_unavailable", backend="external", minutes_ago=1):
    return [
        Failure(f"r{i}", backend, error_type, "system", NOW - timedelta(minutes=minutes_ago))
        for i in range(n)
    ]


def outcomes(*kinds, minutes_ago=1):
    """Outcomes of one backend, newest first: "succeeded", "system" or "user" (failure sides)."""
    at = NOW - timedelta(minutes=minutes_ago)
    return [Outcome(kind, None if kind == "succeeded" else f"{kind}_error", at) for kind in kinds]


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
        "source": "odoo",
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
    ok_in_between = {"internal": outcomes("system", "succeeded", "system")}
    assert evaluate(rules, [], ok_in_between, kind_of, NOW) == {}
    found = evaluate(rules, [], {"internal": outcomes("system", "system", "system")}, kind_of, NOW)
    assert names(found) == [(alerts.ALERT_CONSECUTIVE, "any")]
    assert next(iter(found.values())).labels["backend"] == "internal"


def test_a_user_side_failure_neither_counts_nor_breaks_a_backend_streak():
    rules = AlertRules(rate_threshold=100, consecutive_threshold=3)
    streak_then_user = {"external": outcomes("user", "system", "system", "system")}
    assert names(evaluate(rules, [], streak_then_user, kind_of, NOW)) == [(alerts.ALERT_CONSECUTIVE, "any")]
    users_inside = {"external": outcomes("system", "user", "system", "user", "user", "system")}
    assert names(evaluate(rules, [], users_inside, kind_of, NOW)) == [(alerts.ALERT_CONSECUTIVE, "any")]
    users_do_not_count = {"external": outcomes("user", "user", "system", "system")}
    assert evaluate(rules, [], users_do_not_count, kind_of, NOW) == {}


def test_a_streak_ends_once_its_newest_system_failure_left_the_window():
    rules = AlertRules(window_minutes=10, rate_threshold=100, consecutive_threshold=2)
    recent = {"external": outcomes("system", "system", minutes_ago=9)}
    assert names(evaluate(rules, [], recent, kind_of, NOW)) == [(alerts.ALERT_CONSECUTIVE, "any")]
    old = {"external": outcomes("system", "system", minutes_ago=11)}
    assert evaluate(rules, [], old, kind_of, NOW) == {}


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
    assert labels["source"] == alerts.SOURCE == "odoo"
    assert contract["sources"] == ["worker", "odoo", "n8n"]


def test_alertmanager_groups_the_sources_of_one_condition_together():
    contract = aigen_contracts.load("alerts.json")
    assert "source" in contract["labels"] and "source" not in contract["group_by"]
    assert set(contract["group_by"]) == set(contract["labels"]) - {"source", "severity"}
    test_config = yaml.safe_load(
        CONFIG_TEMPLATE.format(
            group_wait="1s", group_interval="1s", repeat_interval="1h", webhook_url="http://x"
        )
    )
    assert test_config["route"]["group_by"] == contract["group_by"]  # the loopback one tests rely on


# --- Odoo's resolve and the worker's firing alert in one real Alertmanager ----------


def _odoo_streak_alert():
    rules = AlertRules(rate_threshold=100, consecutive_threshold=3)
    found = evaluate(rules, [], {"external": outcomes("system", "system", "system")}, kind_of, NOW)
    (alert,) = found.values()
    return alert


@pytest.mark.slow
def test_odoo_resolving_its_alert_leaves_the_workers_same_alert_firing(alertmanager):  # noqa: F811
    monitor = AlertMonitor(
        AlertConfig(alertmanager_url=alertmanager.url, consecutive_threshold=3, rate_threshold=1000)
    )
    timeout = classify(Signal("timeout"))
    for i in range(3):
        monitor.record_failure("external", timeout, f"req-{i}")
    (worker_alert,) = monitor.tick()
    odoo_alert = _odoo_streak_alert()
    # the same condition: the labels differ only by who raised it (and which worker process)
    assert {k: v for k, v in worker_alert.labels.items() if k not in ("source", "instance")} == {
        k: v for k, v in odoo_alert.labels.items() if k != "source"
    }
    assert (worker_alert.labels["source"], odoo_alert.labels["source"]) == ("worker", "odoo")
    now = datetime.now(UTC).replace(tzinfo=None)
    alertmanager.post_alerts([alerts.to_alertmanager(odoo_alert, now, now + timedelta(minutes=5))])

    def sources_in_one_notification():
        for note in alertmanager.webhook.notifications:
            if (
                note["status"] == "firing"
                and note["commonLabels"].get("alertname") == alerts.ALERT_CONSECUTIVE
            ):
                yield sorted(a["labels"]["source"] for a in note["alerts"] if a["status"] == "firing")

    alertmanager.webhook.wait_for(status="firing", alertname=alerts.ALERT_CONSECUTIVE, source="odoo")
    alertmanager.webhook.wait_for(status="firing", alertname=alerts.ALERT_CONSECUTIVE, source="worker")
    assert ["odoo", "worker"] in list(sources_in_one_notification())  # one group, both sources

    # Odoo sees a success (or its window passes) and resolves its alert with endsAt = now
    ended = datetime.now(UTC).replace(tzinfo=None)
    alertmanager.post_alerts([alerts.to_alertmanager(odoo_alert, now, ended)])
    alertmanager.webhook.wait_for(status="resolved", alertname=alerts.ALERT_CONSECUTIVE, source="odoo")
    still = alertmanager.alerts(alertname=alerts.ALERT_CONSECUTIVE, backend="external")
    assert [(a["labels"]["source"], a["status"]["state"]) for a in still] == [("worker", "active")]
    assert alertmanager.webhook.alerts(status="resolved", source="worker") == []
