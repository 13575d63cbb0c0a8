"""worker.classification: the shared vectors, every taxonomy row, the rule semantics, exception mapping."""

import pytest
import requests
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

import aigen_contracts
from worker.backends.base import BackendFailure
from worker.classification import (
    Signal,
    Taxonomy,
    classify,
    parse_retry_after,
    rule_matches,
    signal_from_exception,
)

TAXONOMY = aigen_contracts.load("error_taxonomy.json")
VECTORS = aigen_contracts.load("error_vectors.json")["vectors"]
SYSTEM_MESSAGE = "AI processing failed. Please try again or adjust your parameters."
USER_MESSAGE = "Invalid input detected. Please review your prompt/parameters."


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: str(v["signal"]))
def test_shared_vector(vector):
    result = classify(Signal.from_dict(vector["signal"]))
    assert (result.error_type, result.side) == (vector["error_type"], vector["side"])


# One representative signal per taxonomy row, with what the worker must then do.
ROWS = {
    "provider_unavailable": (Signal("http", status=503), "http_503", True, None),
    "provider_timeout": (Signal("timeout"), "timeout", True, None),
    "provider_connection": (Signal("connection"), "connection", True, None),
    "rate_limited": (
        Signal("http", status=429, code="rate_limit_exceeded"),
        "rate_limit_exceeded",
        True,
        None,
    ),
    "quota_exhausted": (
        Signal("http", status=429, code="insufficient_quota"),
        "insufficient_quota",
        False,
        None,
    ),
    "provider_auth": (Signal("http", status=401, code="invalid_api_key"), "invalid_api_key", False, None),
    "invalid_input": (Signal("http", status=400, code="invalid_value"), "invalid_value", False, None),
    "content_policy": (
        Signal("http", status=400, code="content_policy_violation"),
        "content_policy_violation",
        False,
        None,
    ),
    "context_length_exceeded": (
        Signal("http", status=400, code="context_length_exceeded"),
        "context_length_exceeded",
        False,
        None,
    ),
    "model_timeout": (Signal("k8s", reason="DeadlineExceeded"), "DeadlineExceeded", True, None),
    "pod_error": (Signal("k8s", reason="OOMKilled", exit_code=137), "OOMKilled", True, 2),
    "model_rejected_input": (
        Signal("k8s", reason="PodFailurePolicy", exit_code=42),
        "PodFailurePolicy",
        False,
        None,
    ),
    "result_too_large": (Signal("result_too_large"), "result_too_large", False, None),
    "unknown": (Signal("other", message="ValueError: odd"), "other", True, 2),
}


def test_rows_cover_the_whole_taxonomy():
    assert set(ROWS) == set(TAXONOMY["error_types"])


@pytest.mark.parametrize("error_type", sorted(ROWS))
def test_taxonomy_row(error_type):
    signal, code, retryable, max_attempts = ROWS[error_type]
    row = TAXONOMY["error_types"][error_type]
    result = classify(signal)
    assert result.error_type == error_type
    assert result.side == row["side"]
    assert result.retryable is retryable
    assert result.max_attempts == max_attempts
    assert result.alert == row["alert"]
    assert result.error_code == code
    if row["side"] == "system":
        assert result.user_message == SYSTEM_MESSAGE
        assert result.retry_suggestion == row["retry_suggestion"]
        assert result.specific_guidance is None
    else:
        assert result.user_message == USER_MESSAGE
        assert result.specific_guidance == row["specific_guidance"]
        assert result.retry_suggestion is None


def test_immediate_alerts_are_quota_and_auth():
    immediate = {name for name, row in TAXONOMY["error_types"].items() if row["alert"] == "immediate"}
    assert immediate == {"quota_exhausted", "provider_auth"}


def test_retry_after_is_kept_only_where_the_taxonomy_honours_it():
    assert classify(Signal("http", status=429, retry_after=7.0)).retry_after == 7.0
    assert classify(Signal("http", status=503, retry_after=7.0)).retry_after is None


# --- rule semantics (the same the n8n side implements) ----------------------------------------------------


def test_first_match_wins():
    # context_length_exceeded sits above the generic 400 rule
    assert classify(Signal("http", status=400, code="context_length_exceeded")).error_type == (
        "context_length_exceeded"
    )


def test_code_matches_signal_type_too():
    assert rule_matches({"code": ["insufficient_quota"]}, Signal("http", type="insufficient_quota"))
    assert not rule_matches({"code": ["insufficient_quota"]}, Signal("http", type="rate_limit"))


def test_message_contains_is_case_insensitive_substring():
    assert rule_matches(
        {"message_contains": ["request too large"]}, Signal("http", message="Request TOO Large!")
    )
    assert not rule_matches(
        {"message_contains": ["request too large"]}, Signal("http", message="request large")
    )
    assert not rule_matches({"message_contains": ["x"]}, Signal("http"))


@pytest.mark.parametrize(("status", "expected"), [(499, False), (500, True), (599, True), (600, False)])
def test_status_range_is_inclusive(status, expected):
    assert rule_matches({"status_range": [500, 599]}, Signal("http", status=status)) is expected


def test_all_keys_must_match_and_missing_fields_never_match():
    when = {"kind": ["http"], "status": [429], "code": ["insufficient_quota"]}
    assert rule_matches(when, Signal("http", status=429, code="insufficient_quota"))
    assert not rule_matches(when, Signal("http", status=429))
    assert not rule_matches(when, Signal("k8s", status=429, code="insufficient_quota"))
    assert not rule_matches({"status_range": [500, 599]}, Signal("http"))


def test_no_match_is_unknown():
    assert classify(Signal("http", status=302)).error_type == "unknown"


def test_taxonomy_refuses_rules_it_cannot_interpret():
    document = {**TAXONOMY, "rules": [{"when": {"header": ["x"]}, "error_type": "unknown"}]}
    with pytest.raises(ValueError, match="unsupported keys"):
        Taxonomy(document)


def test_signal_from_dict_refuses_unknown_fields():
    with pytest.raises(ValueError, match="unknown signal fields"):
        Signal.from_dict({"kind": "http", "statuz": 500})


# --- exceptions to signals (SDK exceptions from the real client: see test_openai_backend.py) -------------


def test_backend_failure_carries_its_signal():
    signal = Signal("k8s", reason="Evicted", message="node pressure")
    assert signal_from_exception(BackendFailure(signal, "pod evicted")) is signal


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.ReadTimeout("slow"), "timeout"),
        (requests.ConnectionError("refused"), "connection"),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), "timeout"),
        (urllib3.exceptions.NewConnectionError(None, "refused"), "connection"),
        (
            urllib3.exceptions.MaxRetryError(None, "/", urllib3.exceptions.ProtocolError("reset")),
            "connection",
        ),
        (TimeoutError("t"), "timeout"),
        (ConnectionRefusedError("r"), "connection"),
        (ValueError("odd"), "other"),
    ],
)
def test_transport_exceptions(exc, kind):
    assert signal_from_exception(exc).kind == kind


def test_requests_http_error_keeps_status_and_retry_after():
    response = requests.Response()
    response.status_code = 503
    response.headers["Retry-After"] = "3"
    signal = signal_from_exception(requests.HTTPError("503", response=response))
    assert (signal.kind, signal.status, signal.retry_after) == ("http", 503, 3.0)


def test_other_exception_names_its_type():
    assert signal_from_exception(KeyError("x")).message == "KeyError: 'x'"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (500, "provider_unavailable"),
        (401, "provider_auth"),
        (403, "provider_auth"),
        (422, "unknown"),
        (409, "unknown"),
    ],
)
def test_kubernetes_api_errors_are_never_blamed_on_the_user(status, error_type):
    result = classify(signal_from_exception(ApiException(status=status, reason="x")))
    assert result.error_type == error_type
    assert result.side == "system"


def test_parse_retry_after_forms():
    assert parse_retry_after({"Retry-After": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"Retry-After": "Thu, 01 Jan 2026 00:00:10 GMT"}, now=1767225600.0) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
