"""When a recorded failure wakes the alert loop: only when it may start an alert (or end a streak one)."""

from worker.alerting import AlertConfig, AlertDetector, AlertMonitor
from worker.classification import Signal, classify

CONFIG = AlertConfig(
    window_seconds=60,
    rate_threshold=3,
    persistent_seconds=1000,
    consecutive_threshold=1000,
    resend_seconds=30,
    quiet_seconds=50,
)


def record(detector, now, error_type="provider_unavailable", side="system", alert="rate", backend="external"):
    return detector.record_failure(backend, error_type, side, alert, f"req-{now:g}", now)


def test_rate_alert_wakes_when_reached_and_not_again_while_active():
    detector = AlertDetector(CONFIG)
    assert [record(detector, t) for t in (1, 2)] == [False, False]
    assert record(detector, 3) is True  # the threshold: evaluate now
    detector.evaluate(3)
    assert [record(detector, t) for t in (4, 5)] == [False, False]  # already active: the tick suffices


def test_rate_alert_wakes_again_once_resolved():
    detector = AlertDetector(CONFIG)
    for t in (1, 2, 3):
        record(detector, t)
    detector.evaluate(3)
    detector.evaluate(60)  # quiet for 57 s: resolved, no longer active
    assert [record(detector, t) for t in (61, 62)] == [False, False]
    assert record(detector, 63) is True


def test_immediate_error_wakes_on_its_first_occurrence():
    detector = AlertDetector(CONFIG)
    assert record(detector, 1, error_type="provider_auth", alert="immediate") is True
    detector.evaluate(1)
    assert record(detector, 2, error_type="provider_auth", alert="immediate") is False


def test_streak_alert_wakes_when_reached_and_not_for_a_user_error():
    detector = AlertDetector(
        AlertConfig(**{**CONFIG.__dict__, "consecutive_threshold": 2, "rate_threshold": 99})
    )
    assert record(detector, 1) is False
    assert record(detector, 2) is True
    detector.evaluate(2)
    assert record(detector, 3) is False
    # a user's error neither ends the active streak alert nor starts one: nothing is due
    assert record(detector, 4, error_type="invalid_input", side="user") is False
    assert [n for n in detector.evaluate(4) if n.resolved] == []


def test_user_errors_do_not_start_a_streak_alert():
    detector = AlertDetector(
        AlertConfig(**{**CONFIG.__dict__, "consecutive_threshold": 2, "rate_threshold": 99})
    )
    assert [record(detector, t, error_type="invalid_input", side="user") for t in (1, 2, 3)] == [False] * 3
    assert record(detector, 4) is False  # the first system failure of the row
    assert record(detector, 5) is True


def test_monitor_wakes_its_loop_only_for_a_possible_new_alert():
    monitor = AlertMonitor(AlertConfig(alertmanager_url=None, rate_threshold=2))
    timeout = classify(Signal("timeout"))
    monitor.record_failure("external", timeout, "r1")
    assert not monitor._wake.is_set()
    monitor.record_failure("external", timeout, "r2")
    assert monitor._wake.is_set()
