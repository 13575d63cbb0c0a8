"""Failure classification: a failure becomes a Signal, the Signal meets schemas/error_taxonomy.json.

The taxonomy is data shared with the n8n workflows, so the rule semantics here stay deliberately plain
(and identical to the JavaScript side): rules are tried in order, the first match wins, no match is
"unknown". Inside a rule's ``when`` every key must match (AND); each key lists allowed values (OR):

- ``kind``, ``status``, ``reason``, ``exit_code``: the signal's field is one of the listed values;
- ``code``: signal.code OR signal.type is one of the listed values (OpenAI puts insufficient_quota in either);
- ``status_range`` [lo, hi]: lo <= signal.status <= hi (inclusive);
- ``message_contains``: one of the strings is a case-insensitive substring of signal.message.

A missing signal field never matches a key that names it.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import aigen_contracts

SIGNAL_KINDS = ("http", "timeout", "connection", "deadline", "k8s", "other")
_MESSAGE_LIMIT = 500


@dataclass(frozen=True)
class Signal:
    """A failure normalised for the taxonomy's rules."""

    kind: str  # http | timeout | connection | deadline | k8s | other
    status: int | None = None
    code: str | None = None
    type: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    message: str | None = None
    retry_after: float | None = None
    provider_request_id: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signal:
        """A Signal from a plain dict (e.g. a shared test vector); unknown keys are refused."""
        names = {f.name for f in fields(cls)}
        extra = set(data) - names
        if extra:
            raise ValueError(f"unknown signal fields: {sorted(extra)}")
        return cls(**data)


@dataclass(frozen=True)
class Classification:
    error_type: str
    side: str  # "system" | "user"
    retryable: bool
    max_attempts: int | None  # None = the configured default
    alert: str  # "rate" | "immediate"
    user_message: str
    retry_suggestion: str | None
    specific_guidance: str | None
    error_code: str  # e.g. "http_503", "content_policy_violation", "OOMKilled"
    retry_after: float | None

    @property
    def is_user_error(self) -> bool:
        return self.side == "user"


# --- the rules ---------------------------------------------------------------------------------------


def _in(value: Any, allowed: list) -> bool:
    return value is not None and value in allowed


def _status_in_range(value: int | None, bounds: list) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


def _message_contains(message: str | None, needles: list) -> bool:
    if not message:
        return False
    text = message.lower()
    return any(needle.lower() in text for needle in needles)


# One predicate per key a rule may use; a rule with any other key is refused when the taxonomy loads.
_MATCHERS = {
    "kind": lambda s, v: _in(s.kind, v),
    "status": lambda s, v: _in(s.status, v),
    "status_range": lambda s, v: _status_in_range(s.status, v),
    "code": lambda s, v: _in(s.code, v) or _in(s.type, v),
    "reason": lambda s, v: _in(s.reason, v),
    "exit_code": lambda s, v: _in(s.exit_code, v),
    "message_contains": lambda s, v: _message_contains(s.message, v),
}


def rule_matches(when: Mapping[str, list], signal: Signal) -> bool:
    return all(_MATCHERS[key](signal, allowed) for key, allowed in when.items())


class Taxonomy:
    """The loaded taxonomy document with its rules checked once."""

    def __init__(self, document: Mapping[str, Any]):
        self.document = document
        self.messages = document["messages"]
        self.error_types = document["error_types"]
        self.rules = document["rules"]
        for rule in self.rules:
            unsupported = set(rule["when"]) - set(_MATCHERS)
            if unsupported:
                raise ValueError(f"taxonomy rule uses unsupported keys {sorted(unsupported)}: {rule}")
            if rule["error_type"] not in self.error_types:
                raise ValueError(f"taxonomy rule names an unknown error_type: {rule}")
        if "unknown" not in self.error_types:
            raise ValueError("taxonomy lacks the 'unknown' error_type")

    def error_type_for(self, signal: Signal) -> str:
        for rule in self.rules:
            if rule_matches(rule["when"], signal):
                return rule["error_type"]
        return "unknown"

    def classify(self, signal: Signal) -> Classification:
        return self.classification_of(self.error_type_for(signal), signal)

    def classification_of(self, error_type: str, signal: Signal) -> Classification:
        """The verdict for a failure whose error type is already known (Odoo named it): its row's
        terms; an error type this taxonomy does not have is "unknown"."""
        if error_type not in self.error_types:
            error_type = "unknown"
        row = self.error_types[error_type]
        side = row["side"]
        return Classification(
            error_type=error_type,
            side=side,
            retryable=bool(row["retryable"]),
            max_attempts=row.get("max_attempts"),
            alert=row.get("alert", "rate"),
            user_message=self.messages[side],
            retry_suggestion=row.get("retry_suggestion") if side == "system" else None,
            specific_guidance=row.get("specific_guidance") if side == "user" else None,
            error_code=error_code(signal),
            retry_after=signal.retry_after if row.get("honour_retry_after") else None,
        )


_taxonomy: Taxonomy | None = None


def taxonomy() -> Taxonomy:
    global _taxonomy
    if _taxonomy is None:
        _taxonomy = Taxonomy(aigen_contracts.load("error_taxonomy.json"))
    return _taxonomy


def classify(signal: Signal) -> Classification:
    """The taxonomy's verdict on ``signal``."""
    return taxonomy().classify(signal)


def classify_exception(exc: BaseException) -> Classification:
    return classify(signal_from_exception(exc))


def error_code(signal: Signal) -> str:
    """The short code Odoo records: the provider's code, the Kubernetes reason, or http_<status>/<kind>."""
    if signal.code:
        return signal.code[:128]
    if signal.reason:
        return signal.reason[:128]
    if signal.status is not None:
        return f"http_{signal.status}"
    return signal.kind


# --- exceptions to signals -----------------------------------------------------------------------------


def _short(text: object) -> str:
    return str(text)[:_MESSAGE_LIMIT]


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date) or retry-after-ms, else None."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if lowered.get("retry-after-ms"):
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _openai_signal(exc: BaseException) -> Signal | None:
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency
        return None
    if isinstance(exc, openai.APITimeoutError):
        return Signal(kind="timeout", message=_short(exc))
    if isinstance(exc, openai.APIConnectionError):
        return Signal(kind="connection", message=_short(exc.__cause__ or exc))
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, Mapping) else {}
        message = body.get("message") if isinstance(body.get("message"), str) else exc.message
        return Signal(
            kind="http",
            status=exc.status_code,
            code=exc.code or None,
            type=exc.type or None,
            message=_short(message),
            retry_after=parse_retry_after(exc.response.headers),
            # the callback takes 256 characters (schemas/callback_failure.json): a proxy's longer id got
            # the failure refused by Odoo, and the outcome dead-lettered
            provider_request_id=exc.request_id[:256] if isinstance(exc.request_id, str) else None,
        )
    return None


def _httpx_signal(exc: BaseException) -> Signal | None:
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        if isinstance(exc, module.TimeoutException):
            return Signal(kind="timeout", message=_short(exc))
        if isinstance(exc, module.HTTPStatusError):
            return Signal(
                kind="http",
                status=exc.response.status_code,
                message=_short(exc),
                retry_after=parse_retry_after(exc.response.headers),
            )
        if isinstance(exc, module.TransportError):
            return Signal(kind="connection", message=_short(exc))
    return None


def _requests_signal(exc: BaseException) -> Signal | None:
    try:
        import requests
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, requests.Timeout):
        return Signal(kind="timeout", message=_short(exc))
    if isinstance(exc, requests.ConnectionError):
        return Signal(kind="connection", message=_short(exc))
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return Signal(
            kind="http",
            status=exc.response.status_code,
            message=_short(exc),
            retry_after=parse_retry_after(exc.response.headers),
        )
    return None


def _urllib3_signal(exc: BaseException) -> Signal | None:
    try:
        import urllib3.exceptions as u3
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, u3.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    # NewConnectionError subclasses ConnectTimeoutError for history's sake: a refusal is not a timeout.
    if isinstance(exc, u3.NewConnectionError):
        return Signal(kind="connection", message=_short(exc))
    if isinstance(exc, u3.TimeoutError):
        return Signal(kind="timeout", message=_short(exc))
    if isinstance(exc, u3.HTTPError):  # NewConnectionError, ProtocolError, SSLError ...
        return Signal(kind="connection", message=_short(exc))
    return None


def _kubernetes_signal(exc: BaseException) -> Signal | None:
    try:
        from kubernetes.client.exceptions import ApiException
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(exc, ApiException):
        return None
    status = exc.status or None
    message = f"Kubernetes API {exc.status} {exc.reason}"
    # A 4xx about our own Job manifest (400/409/413/422) is never the user's fault: keep it system-side.
    if status in (400, 409, 413, 422):
        return Signal(kind="other", status=status, message=message)
    headers = dict(exc.headers) if exc.headers else None
    return Signal(kind="http", status=status, message=message, retry_after=parse_retry_after(headers))


def signal_from_exception(exc: BaseException) -> Signal:
    """Normalise any exception a backend may raise; unrecognised ones become kind "other"."""
    carried = getattr(exc, "signal", None)
    if isinstance(carried, Signal):  # BackendFailure and friends carry their own
        return carried
    for convert in (_openai_signal, _kubernetes_signal, _httpx_signal, _requests_signal, _urllib3_signal):
        signal = convert(exc)
        if signal is not None:
            return signal
    if isinstance(exc, TimeoutError):
        return Signal(kind="timeout", message=_short(exc))
    if isinstance(exc, ConnectionError):
        return Signal(kind="connection", message=_short(exc))
    return Signal(kind="other", message=_short(f"{type(exc).__name__}: {exc}"))
