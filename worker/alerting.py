"""Alerts over the worker's own failures, posted to Prometheus Alertmanager (API v2).

Rules (DESIGN.md § Alerts), per (backend, error_type) unless said otherwise:
- AIGenerationHighErrorRate (warning): at least ``rate_threshold`` errors within ``window_seconds``;
- AIGenerationPersistentErrors (critical): errors going on for longer than ``persistent_seconds``
  (an episode: errors with no gap of ``quiet_seconds`` or more);
- AIGenerationConsecutiveFailures (critical, per backend): ``consecutive_threshold`` system-side failures
  in a row; only a success (or ``quiet_seconds`` without a system-side failure) ends the row: a user-side
  failure neither counts nor breaks it, a user's error is not a system recovery;
- AIGenerationImmediateError (critical): the first error of a type whose taxonomy ``alert`` is
  "immediate" (provider_auth, quota_exhausted).
Names and labels are the shared contract schemas/alerts.json (the per-backend alert carries
error_type="any"; every alert carries source="worker"): this worker alone ends the alerts it raised, and
Alertmanager groups them with what Odoo and n8n raise for the same condition (group_by without source).
Every alert also carries this process's ``instance`` label (``<hostname>:<pid>`` unless set): without it
two workers on one queue would post the same label set, and one worker's resolve (endsAt now) would end
the alert another worker still sees firing.
An active alert stays active until its errors stop: it resolves after ``quiet_seconds`` without a
matching error (the consecutive one also at the backend's next success), so it does not flap while the
errors go on just under a threshold. Active alerts are re-sent every ``resend_seconds`` with an endsAt
ahead (so they expire if this worker dies), and resolved with endsAt = now. Nothing is sent per request.

``AlertDetector`` is the pure part (state and transitions, time passed in); ``AlertMonitor`` wraps it
with a lock, a background loop and the HTTP posts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests

from worker import metrics
from worker.classification import Classification

log = logging.getLogger(__name__)

HIGH_ERROR_RATE = "AIGenerationHighErrorRate"
PERSISTENT_ERRORS = "AIGenerationPersistentErrors"
CONSECUTIVE_FAILURES = "AIGenerationConsecutiveFailures"
IMMEDIATE_ERROR = "AIGenerationImmediateError"
SOURCE = "worker"  # schemas/alerts.json "sources": who raised (and alone resolves) the alert


@dataclass
class AlertConfig:
    alertmanager_url: str | None = None  # e.g. http://127.0.0.1:9093; None disables alerting
    window_seconds: float = 300.0
    rate_threshold: int = 10  # N errors of one (backend, error_type) within the window
    persistent_seconds: float = 600.0  # T
    consecutive_threshold: int = 5  # K system-side failures in a row per backend
    resend_seconds: float = 60.0
    eval_interval_seconds: float = 5.0
    quiet_seconds: float = 300.0  # without a matching error for this long, an alert resolves
    sample_size: int = 5
    request_timeout: float = 5.0
    service: str = "ai_generation"  # schemas/alerts.json: shared with Odoo and n8n for dedup
    generator_url: str | None = None  # shown as the alert's source link in Alertmanager
    instance: str = ""  # the instance label; empty: <hostname>:<pid>, unique per running worker
    extra_labels: dict[str, str] = field(default_factory=dict)  # e.g. {"region": "eu"}

    @property
    def instance_label(self) -> str:
        # an instance label given in extra_labels (as documented before this field) still wins
        return self.extra_labels.get("instance") or self.instance or default_instance()

    @property
    def alerts_url(self) -> str | None:
        if not self.alertmanager_url:
            return None
        base = self.alertmanager_url.rstrip("/")
        return base if base.endswith("/api/v2/alerts") else f"{base}/api/v2/alerts"


def default_instance() -> str:
    """This process, as the instance label: a host runs several workers, a container's pid is 1."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Notice:
    """One alert to post: ``ends_at`` None while firing (the monitor sets it ahead), set when resolved."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float  # the detector's clock
    resolved: bool

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.labels.items()))


@dataclass
class _Series:
    """The errors of one (backend, error_type)."""

    times: deque = field(default_factory=deque)  # (t, request_id) within the window
    episode_start: float = 0.0
    last: float = 0.0
    samples: deque = field(default_factory=deque)
    immediate: bool = False
    total: int = 0  # in this episode


@dataclass
class _Streak:
    """System-side failures of one backend with no success in between (user-side ones are skipped)."""

    first: float
    count: int = 0
    types: Counter = field(default_factory=Counter)
    samples: deque = field(default_factory=deque)
    last: float = 0.0


@dataclass
class _Active:
    notice: Notice
    last_sent: float | None = None


class AlertDetector:
    """Pure alert logic: feed failures and successes with their time, ask what is due to send."""

    def __init__(self, config: AlertConfig):
        self.config = config
        self._series: dict[tuple[str, str], _Series] = {}
        self._streaks: dict[str, _Streak] = {}
        self._active: dict[tuple, _Active] = {}  # by (alertname, backend, error_type)
        self._resolved: dict[tuple, Notice] = {}  # resolved notices not yet delivered
        self._instance = config.instance_label  # read once: the pid of the process that alerts

    # input ----------
    def record_failure(
        self, backend: str, error_type: str, side: str, alert: str, request_id: str, now: float
    ) -> bool:
        """Count one failure; True when it may start an alert that is not active yet: only then is an
        evaluation due before the next periodic one."""
        config = self.config
        series = self._series.get((backend, error_type))
        if series is None or now - series.last >= config.quiet_seconds:
            series = self._series[(backend, error_type)] = _Series(episode_start=now)
        series.times.append((now, request_id))
        series.last = now
        series.total += 1
        series.immediate = series.immediate or alert == "immediate"
        _remember(series.samples, request_id, config.sample_size)
        if side == "user":  # a user's error is not a system recovery: the streak neither grows nor ends
            return self._may_start(series, backend, error_type)
        streak = self._streaks.get(backend)
        if streak is None or now - streak.last >= config.quiet_seconds:  # a pause ended the last one
            streak = self._streaks[backend] = _Streak(first=now)
        streak.count += 1
        streak.types[error_type] += 1
        streak.last = now
        _remember(streak.samples, request_id, config.sample_size)
        return self._may_start(series, backend, error_type) or (
            streak.count >= config.consecutive_threshold
            and (CONSECUTIVE_FAILURES, backend, "any") not in self._active
        )

    def _may_start(self, series: _Series, backend: str, error_type: str) -> bool:
        # an over-estimate (the window is trimmed by evaluate): a needless evaluation, never a late alert
        config, active = self.config, self._active
        return (
            (
                len(series.times) >= config.rate_threshold
                and (HIGH_ERROR_RATE, backend, error_type) not in active
            )
            or (
                series.last - series.episode_start >= config.persistent_seconds
                and (PERSISTENT_ERRORS, backend, error_type) not in active
            )
            or (series.immediate and (IMMEDIATE_ERROR, backend, error_type) not in active)
        )

    def record_success(self, backend: str, now: float) -> None:
        self._streaks.pop(backend, None)

    # output ----------
    def evaluate(self, now: float) -> list[Notice]:
        """Update which alerts hold; return what must be posted now (new, due for re-send, resolved)."""
        holding = self._holding(now)
        for key, notice in holding.items():
            if key in self._active:
                # keep the first startsAt and the label set; refresh counts and samples
                active = self._active[key]
                active.notice = Notice(
                    active.notice.labels, notice.annotations, active.notice.starts_at, False
                )
            else:
                self._active[key] = _Active(notice)
                self._resolved.pop(key, None)  # it came back before its resolution went out
        for key in list(self._active):
            if key not in holding and self._finished(key, now):
                ended = self._active.pop(key).notice
                self._resolved[key] = Notice(ended.labels, ended.annotations, ended.starts_at, True)
        self._forget_quiet(now)
        due = [
            a.notice
            for a in self._active.values()
            if a.last_sent is None or now - a.last_sent >= self.config.resend_seconds
        ]
        return due + list(self._resolved.values())

    def sent(self, notices: list[Notice], now: float) -> None:
        """The notices reached Alertmanager: schedule the next re-send, forget delivered resolutions."""
        for notice in notices:
            key = _key_of(notice.labels)
            if notice.resolved:
                if self._resolved.get(key) is notice:
                    del self._resolved[key]
            elif key in self._active:
                self._active[key].last_sent = now

    def active(self) -> list[Notice]:
        return [a.notice for a in self._active.values()]

    # rules ----------
    def _holding(self, now: float) -> dict[tuple, Notice]:
        config = self.config
        holding: dict[tuple, Notice] = {}
        for (backend, error_type), series in self._series.items():
            while series.times and now - series.times[0][0] > config.window_seconds:
                series.times.popleft()
            if now - series.last >= config.quiet_seconds:
                continue
            notes = {
                "count": str(len(series.times)),
                "window_seconds": f"{config.window_seconds:g}",
                "episode_errors": str(series.total),
                "episode_seconds": f"{series.last - series.episode_start:.0f}",
                "sample_request_ids": ",".join(series.samples),
            }
            if len(series.times) >= config.rate_threshold:
                summary = (
                    f"{len(series.times)} {error_type} errors on the {backend} backend"
                    f" in {config.window_seconds:g}s"
                )
                self._hold(holding, HIGH_ERROR_RATE, backend, error_type, "warning", summary, notes, now)
            if series.last - series.episode_start >= config.persistent_seconds:
                summary = f"{error_type} errors on the {backend} backend for {notes['episode_seconds']}s"
                self._hold(holding, PERSISTENT_ERRORS, backend, error_type, "critical", summary, notes, now)
            if series.immediate:
                summary = f"{error_type} on the {backend} backend: needs attention now"
                self._hold(holding, IMMEDIATE_ERROR, backend, error_type, "critical", summary, notes, now)
        for backend, streak in self._streaks.items():
            if streak.count < config.consecutive_threshold or now - streak.last >= config.quiet_seconds:
                continue
            # per backend: a fixed error_type label keeps it one alert, also across sources
            error_type = "any"
            notes = {
                "consecutive_failures": str(streak.count),
                "error_types": ",".join(f"{t}={n}" for t, n in streak.types.most_common()),
                "sample_request_ids": ",".join(streak.samples),
            }
            summary = f"{streak.count} failures in a row on the {backend} backend"
            self._hold(holding, CONSECUTIVE_FAILURES, backend, error_type, "critical", summary, notes, now)
        return holding

    def _hold(self, holding, alertname, backend, error_type, severity, summary, notes, now) -> None:
        labels = {
            **self.config.extra_labels,
            "instance": self._instance,
            "alertname": alertname,
            "service": self.config.service,
            "backend": backend,
            "error_type": error_type,
            "severity": severity,
            "source": SOURCE,
        }
        holding[(alertname, backend, error_type)] = Notice(labels, {"summary": summary, **notes}, now, False)

    def _finished(self, key: tuple, now: float) -> bool:
        alertname, backend, error_type = key
        if alertname == CONSECUTIVE_FAILURES:
            streak = self._streaks.get(backend)
            # a streak that began after the alert did is a new one: the alert's own streak went quiet
            started = self._active[key].notice.starts_at
            return streak is None or streak.first > started or now - streak.last >= self.config.quiet_seconds
        series = self._series.get((backend, error_type))
        return series is None or now - series.last >= self.config.quiet_seconds

    def _forget_quiet(self, now: float) -> None:
        quiet = self.config.quiet_seconds
        for pair in [p for p, s in self._series.items() if now - s.last >= quiet]:
            del self._series[pair]
        for backend in [b for b, s in self._streaks.items() if now - s.last >= quiet]:
            del self._streaks[backend]


def _key_of(labels: dict[str, str]) -> tuple:
    return (labels["alertname"], labels["backend"], labels["error_type"])


def _remember(samples: deque, request_id: str, size: int) -> None:
    if request_id in samples:
        samples.remove(request_id)
    samples.appendleft(request_id)
    while len(samples) > size:
        samples.pop()


# --- the monitor: lock, loop, HTTP ----------


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertMonitor:
    """Thread-safe front of the detector; ``start()`` runs the evaluate / post loop in a daemon thread."""

    def __init__(
        self,
        config: AlertConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ):
        self.config = config
        self.detector = AlertDetector(config)
        self._clock = clock
        self._wall = wall_clock
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._post_failed_at: float | None = None

    @property
    def enabled(self) -> bool:
        return self.config.alerts_url is not None

    def record_failure(self, backend: str, classification: Classification, request_id: str) -> None:
        with self._lock:
            due = self.detector.record_failure(
                backend,
                classification.error_type,
                classification.side,
                classification.alert,
                request_id,
                self._clock(),
            )
        # a new alert goes out now, not at the next tick; waking the loop on every failure cost a
        # thread switch and an evaluation per failed job
        if due:
            self._wake.set()

    def record_success(self, backend: str) -> None:
        with self._lock:
            self.detector.record_success(backend, self._clock())

    def tick(self) -> list[Notice]:
        """Evaluate once and post what is due; returns the notices delivered (used by the loop and tests)."""
        with self._lock:
            now = self._clock()
            due = self.detector.evaluate(now)
            active = self.detector.active()
        self._export(active)
        if not due or not self.enabled:
            return []
        if (
            self._post_failed_at is not None
            and now - self._post_failed_at < self.config.eval_interval_seconds
        ):
            return []  # Alertmanager just failed: wait for the next tick, not the next failed request
        if self.post(due, now):
            self._post_failed_at = None
            with self._lock:
                self.detector.sent(due, now)
            return due
        self._post_failed_at = now
        return []

    def post(self, notices: list[Notice], now: float) -> bool:
        wall_now = self._wall()
        ahead = max(3 * self.config.resend_seconds, 3 * self.config.eval_interval_seconds)
        body = []
        for notice in notices:
            item = {
                "labels": notice.labels,
                "annotations": notice.annotations,
                "startsAt": _iso(wall_now - (now - notice.starts_at)),
                "endsAt": _iso(wall_now if notice.resolved else wall_now + ahead),
            }
            if self.config.generator_url:
                item["generatorURL"] = self.config.generator_url
            body.append(item)
        try:
            response = self._session.post(
                self.config.alerts_url, json=body, timeout=self.config.request_timeout
            )
            response.raise_for_status()
        except requests.RequestException as exc:
            metrics.ALERT_POSTS.labels(result="error").inc()
            log.warning("posting %d alert(s) to Alertmanager failed: %s", len(body), exc)
            return False
        metrics.ALERT_POSTS.labels(result="ok").inc()
        log.info(
            "alerts posted: %s",
            ", ".join(
                f"{n.labels['alertname']}[{n.labels['backend']}/{n.labels['error_type']}]"
                f"{' resolved' if n.resolved else ''}"
                for n in notices
            ),
        )
        return True

    def _export(self, active: list[Notice]) -> None:
        counts = Counter(n.labels["alertname"] for n in active)
        for name in (
            HIGH_ERROR_RATE,
            PERSISTENT_ERRORS,
            CONSECUTIVE_FAILURES,
            IMMEDIATE_ERROR,
        ):
            metrics.ALERTS_ACTIVE.labels(alertname=name).set(counts.get(name, 0))

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="alert-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop after one last evaluation (so pending resolutions are not lost when possible)."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(self.config.request_timeout + 5)
        self._thread = None

    def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # the loop must survive anything; the next tick retries
                log.exception("alert evaluation failed")
            if self._stopping.is_set():
                return
            self._wake.wait(self.config.eval_interval_seconds)
            self._wake.clear()
