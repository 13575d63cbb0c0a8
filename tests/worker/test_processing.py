"""The attempt loop: retries, backoff, Retry-After, caps, deadline, fallback, progress per attempt.

Real classification, a real reporter talking HTTP to the fake Odoo (which validates every body);
the AI is an in-test scripted backend.
"""

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest

from tests.worker.helpers import SECRET, ScriptedBackend, fail, fast_processing, job_message
from worker.backends.base import GenerationOutput
from worker.backoff import Backoff
from worker.job import Job, parse_job
from worker.processing import (
    ALREADY_TERMINAL,
    FAILED_SYSTEM,
    FAILED_USER,
    INTERRUPTED,
    REFUSED,
    SUCCEEDED,
    Processor,
    failed_by_odoo,
    odoo_failure_verdict,
)
from worker.reporting import OdooReporter, ReporterConfig


def make_job(prompt="hello there", **overrides) -> Job:
    return parse_job(__import__("json").dumps(job_message(prompt, **overrides)))


@pytest.fixture
def reporter(odoo):
    rep = OdooReporter(ReporterConfig(odoo.url, SECRET, timeout=5, patience=2, backoff_initial=0.01))
    yield rep
    rep.close()


def run(backends, reporter, job, **config):
    if not isinstance(backends, dict):
        backends = {backends.name: backends}
    return Processor(backends, reporter, fast_processing(**config)).run(job)


def deliver_and_check(odoo, reporter, outcome):
    reporter.deliver(outcome.callbacks)
    assert odoo.invalid == [], [c.answer for c in odoo.invalid]


def test_success_reports_progress_then_result(odoo, reporter):
    job = make_job()
    outcome = run(ScriptedBackend(), reporter, job)
    assert outcome.kind == SUCCEEDED and outcome.attempts == 1
    deliver_and_check(odoo, reporter, outcome)
    paths = [c.path for c in odoo.calls_for(job.request_id)]
    assert paths == ["/ai/generation/progress", "/ai/generation/result"]
    result = odoo.calls_for(job.request_id, "/ai/generation/result")[0].body
    assert result["output"] == "done" and result["usage"] == {"total_tokens": 3}
    assert odoo.state(job.request_id).status == "succeeded"


def test_retryable_errors_are_retried_with_a_progress_callback_per_attempt(odoo, reporter):
    backend = ScriptedBackend().on(
        "flaky", fail(status=503), fail(status=502), GenerationOutput("ok", None, {})
    )
    job = make_job("flaky prompt")
    outcome = run(backend, reporter, job)
    assert outcome.kind == SUCCEEDED and outcome.attempts == 3
    deliver_and_check(odoo, reporter, outcome)
    progress = odoo.calls_for(job.request_id, "/ai/generation/progress")
    assert [c.body["attempt"] for c in progress] == [1, 2, 3]
    assert len({c.body["event_id"] for c in progress}) == 3
    assert odoo.calls_for(job.request_id, "/ai/generation/result")[0].body["attempt"] == 3


def test_attempts_are_capped_by_config(odoo, reporter):
    backend = ScriptedBackend().on("down", fail(status=500))
    job = make_job("down again")
    outcome = run(backend, reporter, job, max_attempts=4)
    assert outcome.kind == FAILED_SYSTEM and outcome.attempts == 4
    assert len(backend.calls_for(job.request_id)) == 4
    deliver_and_check(odoo, reporter, outcome)
    failure = odoo.calls_for(job.request_id, "/ai/generation/failure")[0].body
    assert failure["error_type"] == "provider_unavailable" and failure["attempt"] == 4
    assert failure["is_system_error"] is True and failure["provider_status"] == 500


def test_taxonomy_cap_wins_over_config_for_pod_errors(odoo, reporter):
    backend = ScriptedBackend("internal").on("oom", fail("k8s", reason="OOMKilled", exit_code=137))
    job = make_job("oom please", backend="internal")
    outcome = run(backend, reporter, job, max_attempts=5)
    assert outcome.kind == FAILED_SYSTEM and outcome.attempts == 2  # "yes (once)"
    assert outcome.error_type == "pod_error"


def test_user_errors_are_not_retried_and_get_specific_guidance(odoo, reporter):
    backend = ScriptedBackend().on("bad", fail(status=400, code="content_policy_violation"))
    job = make_job("bad prompt here")
    outcome = run(backend, reporter, job)
    assert outcome.kind == FAILED_USER and outcome.attempts == 1
    deliver_and_check(odoo, reporter, outcome)
    notify = odoo.calls_for(job.request_id, "/notify/generation-error")[0].body
    assert notify["user_message"] == "Invalid input detected. Please review your prompt/parameters."
    assert "content policy" in notify["specific_guidance"] and "retry_suggestion" not in notify
    failure = odoo.calls_for(job.request_id, "/ai/generation/failure")[0].body
    assert failure["is_user_error"] is True and failure["error_code"] == "content_policy_violation"


def test_retry_after_is_honoured(odoo, reporter):
    backend = ScriptedBackend().on(
        "busy", fail(status=429, retry_after=0.4), GenerationOutput("ok", None, {})
    )
    job = make_job("busy provider")
    outcome = run(backend, reporter, job)
    assert outcome.kind == SUCCEEDED
    first, second = backend.calls_for(job.request_id)
    assert second[3] - first[3] >= 0.4  # the backoff alone would be ~0.02 s


def test_quota_exhausted_is_not_retried(odoo, reporter):
    backend = ScriptedBackend().on("quota", fail(status=429, code="insufficient_quota"))
    job = make_job("quota gone")
    outcome = run(backend, reporter, job)
    assert outcome.error_type == "quota_exhausted" and outcome.attempts == 1


def test_a_job_past_its_deadline_fails_as_model_timeout_without_an_ai_call(odoo, reporter):
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    job = make_job(deadline=past)
    backend = ScriptedBackend()
    outcome = run(backend, reporter, job)
    assert outcome.error_type == "model_timeout" and backend.calls == []
    deliver_and_check(odoo, reporter, outcome)


def test_the_deadline_bounds_each_attempt_and_the_retries(odoo, reporter):
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    backend = ScriptedBackend().on("slow", fail(status=503))
    job = make_job("slow one", deadline=soon)
    outcome = run(backend, reporter, job, backoff=Backoff(5, 5, 0))  # next try would pass the deadline
    assert outcome.kind == FAILED_SYSTEM and outcome.attempts == 1
    assert outcome.error_type == "provider_unavailable"  # the real cause, not the deadline
    assert backend.calls[0][2] <= 1.5  # the attempt's timeout was cut to the time left


def test_a_timeout_cut_by_the_deadline_is_a_model_timeout(odoo, reporter):
    soon = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()

    def times_out(job):
        import time

        time.sleep(0.4)
        return fail("timeout", message="Request timed out.")

    backend = ScriptedBackend().on("hang", times_out)
    outcome = run(backend, reporter, make_job("hang forever", deadline=soon))
    assert outcome.error_type == "model_timeout"


def test_system_failures_fall_back_to_the_other_backend_with_its_model(odoo, reporter):
    external = ScriptedBackend("external").on("x", fail(status=401, code="invalid_api_key"))
    internal = ScriptedBackend("internal", default=GenerationOutput("from k8s", None, {}))
    job = make_job("x marks")
    outcome = run(
        {"external": external, "internal": internal},
        reporter,
        job,
        fallback_models={"internal": "llama-local"},
    )
    assert outcome.kind == SUCCEEDED and outcome.backend == "internal" and outcome.attempts == 2
    assert internal.calls[0][1] == "llama-local"
    deliver_and_check(odoo, reporter, outcome)
    result = odoo.calls_for(job.request_id, "/ai/generation/result")[0].body
    assert result["backend"] == "internal" and result["output"] == "from k8s"


def test_user_errors_never_fall_back(odoo, reporter):
    external = ScriptedBackend("external").on("x", fail(status=400, code="invalid_value"))
    internal = ScriptedBackend("internal")
    outcome = run(
        {"external": external, "internal": internal},
        reporter,
        make_job("x marks"),
        fallback_models={"internal": "llama-local"},
    )
    assert outcome.kind == FAILED_USER and internal.calls == []


def test_fallback_happens_once(odoo, reporter):
    external = ScriptedBackend("external").on("x", fail(status=503))
    internal = ScriptedBackend("internal").on("x", fail("k8s", reason="Evicted"))
    outcome = run(
        {"external": external, "internal": internal},
        reporter,
        make_job("x marks"),
        fallback_models={"internal": "m", "external": "gpt"},
        max_attempts=2,
    )
    assert outcome.kind == FAILED_SYSTEM and outcome.backend == "internal"
    assert len(external.calls) == 2 and len(internal.calls) == 2 and outcome.attempts == 4


def test_a_backend_this_worker_does_not_run_is_a_system_failure(odoo, reporter):
    outcome = run({"external": ScriptedBackend()}, reporter, make_job(backend="internal"))
    assert outcome.kind == FAILED_SYSTEM and outcome.error_type == "unknown"


def test_a_request_already_terminal_in_odoo_is_skipped(odoo, reporter):
    job = make_job()
    odoo.register(job.request_id, status="cancelled")
    backend = ScriptedBackend()
    outcome = run(backend, reporter, job)
    assert outcome.kind == ALREADY_TERMINAL and backend.calls == []


def test_progress_failing_does_not_stop_the_job(odoo, reporter):
    odoo.down()
    outcome = run(ScriptedBackend(), reporter, make_job())
    assert outcome.kind == SUCCEEDED


def test_stopping_during_a_backoff_interrupts_the_job(odoo, reporter):
    stop = threading.Event()
    backend = ScriptedBackend().on("retry", fail(status=503))
    processor = Processor(
        {"external": backend}, reporter, fast_processing(backoff=Backoff(30, 30, 0)), stop=stop
    )
    threading.Timer(0.3, stop.set).start()
    outcome = processor.run(make_job("retry me"))
    assert outcome.kind == INTERRUPTED and len(backend.calls) == 1


def test_the_failure_detail_never_carries_the_prompt(odoo, reporter):
    prompt = "my very private prompt text"
    backend = ScriptedBackend().on("private", fail(status=400, message=f"Bad request: '{prompt}' is invalid"))
    outcome = run(backend, reporter, make_job(prompt))
    failure = outcome.callbacks[0].body
    assert prompt not in failure["detail"] and "[prompt]" in failure["detail"]


def test_every_outcome_body_passes_the_callback_schemas(odoo, reporter):
    cases = {
        "ok": GenerationOutput("text", None, {"prompt_tokens": 1}),
        "img": GenerationOutput(None, "data:image/png;base64,AAAA", {"images": 1}),
        "user": fail(status=422),
        "sys": fail("connection", message="refused"),
    }
    backend = ScriptedBackend()
    for marker, step in cases.items():
        backend.on(marker, step)
    for marker in cases:
        outcome = run(backend, reporter, make_job(f"{marker} case"), max_attempts=1)
        deliver_and_check(odoo, reporter, outcome)
    assert len(odoo.calls) >= 4 + 2 * 2


def test_the_job_dataclass_is_not_changed_by_fallback(odoo, reporter):
    job = make_job("x")
    external = ScriptedBackend("external").on("x", fail(status=503))
    internal = ScriptedBackend("internal")
    run(
        {"external": external, "internal": internal},
        reporter,
        job,
        fallback_models={"internal": "m"},
        max_attempts=1,
    )
    assert job.backend == "external" and dataclasses.is_dataclass(job)


def test_a_request_odoo_does_not_know_is_refused_before_any_ai_call(odoo, reporter):
    odoo.known_only = True
    backend = ScriptedBackend()
    outcome = run(backend, reporter, make_job())
    assert outcome.kind == REFUSED and "404" in outcome.reason and backend.calls == []


@pytest.mark.parametrize(
    ("answer", "failed"),
    [
        ({"status": "failed", "duplicate": False, "error_type": "result_too_large"}, True),
        # a repeat whose first answer was lost: Odoo says this event failed the request
        ({"status": "failed", "duplicate": True, "failed_by_this_event": True}, True),
        # failed by something else first (the deadline reaper): the result came too late
        ({"status": "failed", "duplicate": True, "failed_by_this_event": False}, False),
        ({"status": "failed", "duplicate": True}, False),  # an Odoo that does not say
        ({"status": "succeeded", "duplicate": False}, False),
        ({"status": "succeeded", "duplicate": True}, False),
        (None, False),
    ],
)
def test_whether_odoo_failed_the_request_on_a_result(answer, failed):
    assert failed_by_odoo(answer) is failed


def test_the_verdict_on_a_result_odoo_failed_is_the_taxonomy_row_of_its_error_type():
    # every error type Odoo may name, not only the one that has a signal rule (result_too_large)
    verdict = odoo_failure_verdict({"status": "failed", "error_type": "model_timeout"})
    assert (verdict.error_type, verdict.side) == ("model_timeout", "system")
    user = odoo_failure_verdict({"status": "failed", "error_type": "content_policy"})
    assert (user.error_type, user.side, user.retry_suggestion) == ("content_policy", "user", None)
    assert user.specific_guidance
    assert odoo_failure_verdict({"status": "failed", "error_type": "no such type"}).error_type == "unknown"
    assert odoo_failure_verdict({"status": "failed"}).error_type == "result_too_large"


def test_a_quote_of_a_long_prompt_cut_short_is_not_passed_on(odoo, reporter):
    # the signal keeps 500 characters of the provider's message: a quote of a 600-character prompt
    # came through as its first 480 characters, which replacing the whole prompt never found
    prompt = "my very private prompt about project X, " * 15
    message = f"Invalid prompt: '{prompt}'"[:500]
    backend = ScriptedBackend().on("private", fail(status=400, message=message))
    outcome = run(backend, reporter, make_job(prompt))
    failure = outcome.callbacks[0].body
    assert "project X" not in failure["detail"] and failure["detail"].endswith("'[prompt]")
