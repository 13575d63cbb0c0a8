"""Which alerts hold, from the failures Odoo recorded across all workers (DESIGN.md § Alerts).

Rules, evaluated over the failures of the last ``window_minutes``:
- high frequency: at least ``rate_threshold`` failures of one (backend, error_type);
- immediate: any failure of an error type whose taxonomy row says ``alert: immediate``;
- persistent: the last ``consecutive_threshold`` outcomes of a backend were all system-side failures,
  the newest of them within the window. User-side failures are skipped: a user's error is not a system
  recovery, so it neither counts nor breaks the row; only a success (or the window passing) ends it.
Names and labels follow the repo's schemas/alerts.json (checked by tests/addon_logic). Every alert carries
source="odoo": Odoo ends only its own alerts, never the same condition a worker or n8n is still firing;
Alertmanager groups the sources' alerts into one notification (group_by without source).
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

SERVICE = "ai_generation"
ALERT_RATE = "AIGenerationHighErrorRate"
ALERT_IMMEDIATE = "AIGenerationImmediateError"
ALERT_CONSECUTIVE = "AIGenerationConsecutiveFailures"  # per backend: error_type label "any"
SOURCE = "odoo"  # schemas/alerts.json "sources"
SUCCEEDED, SYSTEM, USER = "succeeded", "system", "user"  # Outcome.kind


@dataclass(frozen=True)
class AlertRules:
    window_minutes: int = 10
    rate_threshold: int = 5
    consecutive_threshold: int = 5


@dataclass(frozen=True)
class Failure:
    request_id: str
    backend: str
    error_type: str
    side: str
    at: object  # datetime


@dataclass(frozen=True)
class Outcome:
    """How one finished request of a backend ended: ``kind`` is SUCCEEDED or the failure's side."""

    kind: str
    error_type: str | None
    at: object  # datetime


@dataclass
class Alert:
    labels: dict
    annotations: dict = field(default_factory=dict)

    @property
    def key(self):
        return tuple(sorted(self.labels.items()))


def _labels(alertname, backend, error_type, severity):
    return {
        "alertname": alertname,
        "service": SERVICE,
        "backend": backend,
        "error_type": error_type,
        "severity": severity,
        "source": SOURCE,
    }


def evaluate(rules, failures, recent_outcomes, alert_kind_of, now):
    """The alerts that hold now, keyed by their label tuple.

    ``failures``: Failure records (any age; older than the window are ignored).
    ``recent_outcomes``: {backend: [Outcome, ...] newest first}, at least the latest
    ``consecutive_threshold`` that are not user-side failures (those may be left out).
    ``alert_kind_of``: error_type → "rate" | "immediate" (the taxonomy's ``alert`` field).
    """
    since = now - timedelta(minutes=rules.window_minutes)
    in_window = [f for f in failures if f.at >= since]
    by_pair = defaultdict(list)
    for f in in_window:
        by_pair[(f.backend, f.error_type)].append(f)

    alerts = {}
    for (backend, error_type), items in sorted(by_pair.items()):
        samples = ", ".join(f.request_id for f in sorted(items, key=lambda f: f.at, reverse=True)[:5])
        note = {
            "count": str(len(items)),
            "window_minutes": str(rules.window_minutes),
            "sample_request_ids": samples,
        }
        if alert_kind_of(error_type) == "immediate":
            alert = Alert(_labels(ALERT_IMMEDIATE, backend, error_type, "critical"), dict(note))
            alert.annotations["summary"] = f"{error_type} on the {backend} backend needs attention now"
            alerts[alert.key] = alert
        if len(items) >= rules.rate_threshold:
            alert = Alert(_labels(ALERT_RATE, backend, error_type, "warning"), dict(note))
            alert.annotations["summary"] = (
                f"{len(items)} {error_type} failures on the {backend} backend in {rules.window_minutes} min"
            )
            alerts[alert.key] = alert

    k = rules.consecutive_threshold
    for backend, outcomes in sorted(recent_outcomes.items()):
        last = [o for o in outcomes if o.kind != USER][:k]
        streak = k > 0 and len(last) == k and all(o.kind == SYSTEM for o in last)
        if streak and last[0].at >= since:  # its newest failure is recent: the streak still holds
            kinds = Counter(o.error_type for o in last)
            alert = Alert(_labels(ALERT_CONSECUTIVE, backend, "any", "critical"))
            alert.annotations = {
                "summary": f"{k} system-side failures in a row on the {backend} backend"
                " (user-side failures do not break the row)",
                "count": str(k),
                "error_types": ", ".join(sorted(kinds)),
            }
            alerts[alert.key] = alert
    return alerts


def to_alertmanager(alert, starts_at, ends_at, generator_url=""):
    """One element of the JSON list Alertmanager's ``POST /api/v2/alerts`` takes."""
    body = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": starts_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "endsAt": ends_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    if generator_url:
        body["generatorURL"] = generator_url
    return body
