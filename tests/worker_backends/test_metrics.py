"""worker.metrics: counters and histograms by outcome, the in-flight gauge, /metrics and /healthz."""

import pytest
import requests
from prometheus_client import REGISTRY

from worker import metrics


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_observe_job_counts_by_outcome_backend_and_error_type():
    labels = {"outcome": "failed_user", "backend": "internal", "error_type": "model_rejected_input"}
    count_before = value("aigen_worker_jobs_total", **labels)
    histogram_labels = {"outcome": "failed_user", "backend": "internal"}
    observed_before = value("aigen_worker_job_duration_seconds_count", **histogram_labels)
    fast_before = value("aigen_worker_job_duration_seconds_bucket", le="0.5", **histogram_labels)
    metrics.observe_job("failed_user", "internal", "model_rejected_input", 0.3)
    metrics.observe_job("failed_user", "internal", "model_rejected_input", 7.0)
    assert value("aigen_worker_jobs_total", **labels) == count_before + 2
    assert value("aigen_worker_job_duration_seconds_count", **histogram_labels) == observed_before + 2
    assert value("aigen_worker_job_duration_seconds_bucket", le="0.5", **histogram_labels) == fast_before + 1


def test_success_has_an_empty_error_type():
    before = value("aigen_worker_jobs_total", outcome="succeeded", backend="external", error_type="")
    metrics.observe_job("succeeded", "external", None, 1.0)
    assert (
        value("aigen_worker_jobs_total", outcome="succeeded", backend="external", error_type="") == before + 1
    )


def test_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="unknown outcome"):
        metrics.observe_job("maybe", "external", None, 1.0)


def test_in_flight_gauge():
    metrics.set_in_flight(7)
    assert value("aigen_worker_jobs_in_flight") == 7
    metrics.set_in_flight(0)
    assert value("aigen_worker_jobs_in_flight") == 0


def test_endpoint_serves_metrics_and_health():
    healthy = [True]
    server = metrics.serve(0, health=lambda: healthy[0])
    try:
        metrics.observe_job("parked", "external", "rate_limited", 2.0)
        page = requests.get(f"{server.url}/metrics", timeout=5)
        assert page.status_code == 200
        assert page.headers["Content-Type"].startswith("text/plain")
        assert (
            'aigen_worker_jobs_total{backend="external",error_type="rate_limited",outcome="parked"}'
            in page.text
        )
        assert "aigen_worker_jobs_in_flight" in page.text
        assert requests.get(f"{server.url}/healthz", timeout=5).text == "ok\n"
        healthy[0] = False
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 503
        assert requests.get(f"{server.url}/nope", timeout=5).status_code == 404
    finally:
        server.stop()


def test_a_failing_health_check_answers_503():
    def broken():
        raise RuntimeError("no broker")

    server = metrics.serve(0, health=broken)
    try:
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 503
    finally:
        server.stop()
