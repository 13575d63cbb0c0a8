"""The n8n workflows in a real n8n: same queue in, same callbacks out, same alerts as the worker.

One n8n per module (imported, published and started once): jobs go to the real RabbitMQ (a throwaway
vhost, topology declared as the worker declares it), the provider is the loopback OpenAI fake, Odoo is
the loopback stand-in that validates every callback against schemas/callback_*.json, and alerts go to
a real Alertmanager whose webhook receiver records what it notifies. n8n runs as 2.x ships it
(N8N_BLOCK_ENV_ACCESS_IN_NODE=true) with the settings rendered into the workflows: a job whose
execution fails is redelivered, never acknowledged without its outcome in Odoo or in the DLQ.
"""

from __future__ import annotations

import contextlib
import json

import pika
import pytest

import aigen_contracts
from tests.n8n.harness import deploy, missing_reason
from tests.support import fake_openai
from tests.support.alertmanager import Alertmanager
from tests.support.fake_k8s import FakeKubernetes, oom_killed, succeeded, user_input_exit
from tests.support.fake_odoo import FakeOdoo
from tests.support.rabbit import rabbitmqctl, throwaway_vhost
from tests.worker.helpers import job_message
from worker import topology

pytestmark = [
    pytest.mark.n8n,
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_reason()), reason=str(missing_reason())),
]

TAXONOMY = aigen_contracts.load("error_taxonomy.json")
SECRET = "n8n-tier-worker-secret"
API_KEY = "sk-n8n-tier"
RATE_THRESHOLD = 3
CONSECUTIVE_THRESHOLD = 3
QUIET_SECONDS = 6  # an alert resolves this long after its errors stop (plus the 10 s tick)
ALERTS = aigen_contracts.load("alerts.json")


class RefusingOdoo(FakeOdoo):
    """Odoo that refuses some callbacks of some requests: the workflow's unhandled-error paths."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._refusals: dict[str, dict] = {}
        self.refused: list[tuple[str, str, int]] = []  # (request id, path, status) answered

    def refuse(self, request_id: str, paths=None, *, status: int = 503, times: int | None = None) -> None:
        """Answer ``status`` to the request's callbacks on ``paths`` (all when None), ``times`` times."""
        self._refusals[request_id] = {"paths": paths, "status": status, "left": times}

    def handle(self, path, authorization, raw):
        try:
            request_id = json.loads(raw).get("generation_request_id")
        except (ValueError, AttributeError):
            request_id = None
        with self._lock:
            refusal = self._refusals.get(request_id)
            refused = (
                refusal is not None
                and (refusal["paths"] is None or path in refusal["paths"])
                and refusal["left"] != 0
            )
            if refused:
                if refusal["left"] is not None:
                    refusal["left"] -= 1
                self.refused.append((request_id, path, refusal["status"]))
        if refused:
            return refusal["status"], {"error": {"code": "unavailable", "message": "refused by the test"}}
        return super().handle(path, authorization, raw)


def new_job(prompt: str, **overrides) -> dict:
    """A job as Odoo publishes it (the worker tests' builder), with a max_tokens the provider must see."""
    return job_message(prompt, **{"params": {"max_tokens": 64}, **overrides})


def request_id_of(body: bytes) -> str | None:
    try:
        return json.loads(body).get("generation_request_id")
    except (ValueError, AttributeError):
        return None


def sides(failure: dict) -> tuple:
    """(error_type, is_system_error, is_user_error) of a failure callback."""
    return failure["error_type"], failure["is_system_error"], failure["is_user_error"]


class Stack:
    def __init__(self, vhost, odoo, openai, alertmanager, n8n):
        self.vhost, self.odoo, self.openai, self.alertmanager, self.n8n = (
            vhost,
            odoo,
            openai,
            alertmanager,
            n8n,
        )
        self.connection = vhost.connect()
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        self.dead_letters: list[tuple] = []  # (properties, body) taken from the DLQ so far

    def publish(self, job: dict | bytes) -> None:
        body = job if isinstance(job, bytes) else json.dumps(job).encode()
        message_id = None if isinstance(job, bytes) else job["generation_request_id"]
        self.channel.basic_publish(
            topology.EXCHANGE,
            topology.ROUTING_KEY,
            body,
            pika.BasicProperties(message_id=message_id, delivery_mode=2, content_type="application/json"),
        )

    def queued(self) -> int:
        """Messages in the job queue, ready or delivered and not yet acknowledged."""
        out = rabbitmqctl(
            "list_queues", "-p", self.vhost.name, "name", "messages", "-q", "--no-table-headers"
        )
        counts = dict(line.split("\t") for line in out.splitlines() if "\t" in line)
        return int(counts[topology.JOBS_QUEUE])

    def dead_letters_of(self, job: dict) -> list[tuple]:
        """What reached the DLQ so far for ``job`` (drained into ``dead_letters``)."""
        with contextlib.suppress(AssertionError):
            self.dead_letter(lambda _p, _b: False, timeout=0.1)
        return [m for m in self.dead_letters if request_id_of(m[1]) == job["generation_request_id"]]

    def dead_letter(self, predicate, timeout: float = 60.0) -> tuple:
        """(properties, body) of the first DLQ message matching ``predicate(properties, body)``."""

        def drained_match():
            while True:
                method, properties, body = self.channel.basic_get(topology.DLQ, auto_ack=True)
                if method is None:
                    break
                self.dead_letters.append((properties, body))
            return next((m for m in self.dead_letters if predicate(*m)), None)

        return self.odoo.wait_for(drained_match, timeout)

    def outcome(self, job: dict, timeout: float = 60.0) -> dict:
        """The request's terminal state and its callbacks once the notify (failure) or result arrived."""
        request_id = job["generation_request_id"]
        self.odoo.wait_for(
            lambda: (
                self.odoo.calls_for(request_id, "/ai/generation/result")
                or self.odoo.calls_for(request_id, "/notify/generation-error")
            ),
            timeout,
        )
        calls = self.odoo.calls_for(request_id)
        return {
            "state": self.odoo.state(request_id),
            "paths": [c.path for c in calls],
            "by_path": {c.path: c.body for c in calls},
            "calls": calls,
        }


@pytest.fixture(scope="module")
def stack():
    with (
        throwaway_vhost("aigen-n8n") as vhost,
        RefusingOdoo(SECRET) as odoo,
        fake_openai.FakeOpenAI(api_key=API_KEY) as openai,
        FakeKubernetes(auto=True) as k8s,
    ):
        connection = vhost.connect()
        topology.declare(connection.channel())  # the quorum queue as Odoo and the worker declare it
        connection.close()
        alertmanager = Alertmanager().start()
        settings = {
            "odoo_url": odoo.url,
            "openai_base_url": openai.base_url,
            "alertmanager_url": alertmanager.url,
            "backoff_initial": 0.2,
            "backoff_jitter": 0.1,
            "alert_rate_threshold": RATE_THRESHOLD,
            "alert_consecutive_threshold": CONSECUTIVE_THRESHOLD,
            "alert_window_seconds": 120,
            "alert_quiet_seconds": QUIET_SECONDS,
            "k8s_host": k8s.host,
            "k8s_namespace": "aigen-test",
            "k8s_poll_interval": 0.2,
        }
        n8n = None
        try:
            n8n = deploy(vhost.name, settings, worker_secret=SECRET, openai_key=API_KEY, k8s_token=k8s.token)
            s = Stack(vhost, odoo, openai, alertmanager, n8n)
            s.k8s = k8s
            odoo.wait_for(
                lambda: s.channel.queue_declare(topology.JOBS_QUEUE, passive=True).method.consumer_count, 60
            )
            yield s
            s.connection.close()
        finally:
            if n8n is not None:
                n8n.close()
            alertmanager.stop()


@pytest.fixture
def stack_without_api(stack):
    """A second n8n (own vhost, the same fakes) without an n8n API URL: its error workflow reads nothing."""
    with throwaway_vhost("aigen-n8n-noapi") as vhost:
        connection = vhost.connect()
        topology.declare(connection.channel())
        connection.close()
        settings = {
            "odoo_url": stack.odoo.url,
            "openai_base_url": stack.openai.base_url,
            "alertmanager_url": stack.alertmanager.url,
        }
        n8n = deploy(vhost.name, settings, worker_secret=SECRET, openai_key=API_KEY, with_api_url=False)
        try:
            s = Stack(vhost, stack.odoo, stack.openai, stack.alertmanager, n8n)
            s.odoo.wait_for(
                lambda: s.channel.queue_declare(topology.JOBS_QUEUE, passive=True).method.consumer_count, 60
            )
            yield s
            s.connection.close()
        finally:
            n8n.close()


def test_success_reports_the_result(stack):
    job = new_job("write a haiku")
    stack.publish(job)
    out = stack.outcome(job)
    assert out["state"].status == "succeeded"
    assert out["paths"] == ["/ai/generation/progress", "/ai/generation/result"]
    result = out["by_path"]["/ai/generation/result"]
    assert result["output"] and result["attempt"] == 1 and result["backend"] == "external"
    assert result["usage"]["total_tokens"] > 0
    sent = [r for r in stack.openai.requests if "write a haiku" in r.prompt]
    assert (
        len(sent) == 1 and sent[0].authorization == f"Bearer {API_KEY}" and sent[0].body["max_tokens"] == 64
    )
    assert stack.odoo.invalid == []


def test_provider_503_is_retried_then_a_system_failure_with_a_retry_suggestion(stack):
    stack.openai.on("[down]", fake_openai.unavailable())
    job = new_job("draw nothing [down]")
    stack.publish(job)
    out = stack.outcome(job)
    failure = out["by_path"]["/ai/generation/failure"]
    assert sides(failure) == ("provider_unavailable", True, False)
    assert (
        failure["error_code"] == "http_503" and failure["provider_status"] == 503 and failure["attempt"] == 3
    )
    assert "[down]" not in failure["detail"] or "[prompt]" in failure["detail"]
    notify = out["by_path"]["/notify/generation-error"]
    assert notify["user_message"] == TAXONOMY["messages"]["system"]
    assert notify["retry_suggestion"] == TAXONOMY["error_types"]["provider_unavailable"]["retry_suggestion"]
    assert "specific_guidance" not in notify
    assert len([r for r in stack.openai.requests if "[down]" in r.prompt]) == 3  # max_attempts, with backoff
    assert out["paths"].index("/ai/generation/failure") < out["paths"].index("/notify/generation-error")
    assert out["state"].status == "failed" and stack.odoo.invalid == []


def test_invalid_input_is_a_user_failure_with_guidance_and_no_retry(stack):
    stack.openai.on("[badsize]", fake_openai.invalid_value())
    job = new_job("an image please [badsize]")
    stack.publish(job)
    out = stack.outcome(job)
    failure = out["by_path"]["/ai/generation/failure"]
    assert sides(failure) == ("invalid_input", False, True)
    notify = out["by_path"]["/notify/generation-error"]
    assert notify["user_message"] == TAXONOMY["messages"]["user"]
    assert notify["specific_guidance"] == TAXONOMY["error_types"]["invalid_input"]["specific_guidance"]
    assert "retry_suggestion" not in notify
    assert len([r for r in stack.openai.requests if "[badsize]" in r.prompt]) == 1
    assert stack.odoo.invalid == []


def test_a_burst_of_errors_raises_one_alert_at_alertmanager_resolved_when_they_stop(stack):
    stack.openai.on("[policy]", fake_openai.content_policy_violation())
    jobs = [new_job(f"burst {i} [policy]") for i in range(RATE_THRESHOLD)]
    for job in jobs:
        stack.publish(job)
    for job in jobs:
        assert stack.outcome(job)["by_path"]["/ai/generation/failure"]["error_type"] == "content_policy"
    labels = {"alertname": "AIGenerationHighErrorRate", "backend": "external", "error_type": "content_policy"}
    alert = stack.alertmanager.webhook.wait_for(status="firing", timeout=30, **labels)
    # exactly the shared label set (schemas/alerts.json): grouped with the worker's and Odoo's alerts for
    # the same condition, yet n8n's own (source), so only n8n ends it
    assert set(alert["labels"]) == set(ALERTS["labels"])
    assert alert["labels"]["service"] == ALERTS["service"] and alert["labels"]["severity"] == "warning"
    assert alert["labels"]["source"] == "n8n" and "n8n" in ALERTS["sources"]
    assert int(alert["annotations"]["count"]) >= RATE_THRESHOLD
    samples = set(alert["annotations"]["sample_request_ids"].split(","))
    assert samples and samples <= {j["generation_request_id"] for j in jobs}
    # no alert per request: one alert for the (backend, error_type), whatever the number of failures
    assert len({a["fingerprint"] for a in stack.alertmanager.webhook.alerts(**labels)}) == 1
    resolved = stack.alertmanager.webhook.wait_for(status="resolved", timeout=QUIET_SECONDS + 30, **labels)
    assert resolved["fingerprint"] == alert["fingerprint"]


def test_an_immediate_error_type_alerts_at_once(stack):
    stack.openai.on("[quota]", fake_openai.insufficient_quota())
    job = new_job("once [quota]")
    stack.publish(job)
    failure = stack.outcome(job)["by_path"]["/ai/generation/failure"]
    assert (failure["error_type"], failure["is_system_error"]) == ("quota_exhausted", True)
    alert = stack.alertmanager.webhook.wait_for(
        status="firing", timeout=30, alertname="AIGenerationImmediateError", error_type="quota_exhausted"
    )
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["sample_request_ids"] == job["generation_request_id"]


def test_an_unhandled_error_is_reported_as_a_system_failure_by_the_error_workflow(stack):
    job = new_job("fine answer, lost result")
    stack.odoo.refuse(job["generation_request_id"], {"/ai/generation/result"})
    stack.publish(job)
    out = stack.outcome(job, timeout=90)
    failure = out["by_path"]["/ai/generation/failure"]
    assert sides(failure) == ("unknown", True, False)
    assert failure["error_code"] == "n8n_workflow_error" and "Result callback" in failure["detail"]
    notify = out["by_path"]["/notify/generation-error"]
    assert notify["user_message"] == TAXONOMY["messages"]["system"]
    assert notify["retry_suggestion"] == TAXONOMY["error_types"]["unknown"]["retry_suggestion"]
    assert out["state"].status == "failed"  # never charged: a system failure
    alert = stack.alertmanager.webhook.wait_for(
        status="firing", timeout=30, alertname="AIGenerationWorkflowError"
    )
    assert set(alert["labels"]) == set(ALERTS["labels"]) and alert["labels"]["source"] == "n8n"
    assert job["generation_request_id"] in alert["annotations"]["sample_request_ids"]
    # the failed execution gave the message back; a redelivery found the request finished in Odoo and
    # was acknowledged: the queue is empty and nothing went to the DLQ
    stack.odoo.wait_for(lambda: stack.queued() == 0, 60)
    assert not stack.dead_letters_of(job)


def test_internal_backend_runs_a_kubernetes_job_and_reports_its_result(stack):
    job = new_job("a poem from the cluster", backend="internal")
    stack.publish(job)
    out = stack.outcome(job)
    assert out["state"].status == "succeeded"
    result = out["by_path"]["/ai/generation/result"]
    assert result["backend"] == "internal" and result["output"]
    created = [
        j
        for j in stack.k8s.created
        if j["metadata"]["labels"]["aigen/request-id"] == job["generation_request_id"]
    ]
    assert len(created) == 1
    spec = created[0]["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never" and spec["backoffLimit"] == 0
    assert any(d[1] == created[0]["metadata"]["name"] and d[2] == "Background" for d in stack.k8s.deleted)
    assert stack.odoo.invalid == []
    # the execution succeeded: acknowledged, not redelivered, and the result was sent once
    stack.odoo.wait_for(lambda: stack.queued() == 0, 30)
    assert len(stack.odoo.calls_for(job["generation_request_id"], "/ai/generation/result")) == 1


def test_a_kubernetes_result_odoo_would_refuse_is_cleaned_as_the_python_worker_cleans_it(stack):
    # the pod's last log line, as the model wrote it: a NUL, a lone surrogate, usage of 2**60; and a line
    # with an empty output_url only, a body with neither field before (Odoo's 400)
    nasty_line = json.dumps({"output": "a\x00b\ud800c", "usage": {"tokens": 2**60, "images": 1}})
    stack.k8s.on("[k8s-nasty]", lambda: succeeded(log=f"model done\n{nasty_line}\n"))
    stack.k8s.on("[k8s-empty-url]", lambda: succeeded(log='{"output_url": ""}\n'))
    nasty = new_job("a nasty pod [k8s-nasty]", backend="internal")
    empty = new_job("an empty url [k8s-empty-url]", backend="internal")
    for job in (nasty, empty):
        stack.publish(job)
    result = stack.outcome(nasty)["by_path"]["/ai/generation/result"]
    assert result["output"] == "a\ufffdb\ufffdc" and result["usage"] == {"images": 1}
    assert stack.outcome(empty)["by_path"]["/ai/generation/result"]["output"] == ""
    assert [
        c
        for c in stack.odoo.invalid
        if c.request_id in {nasty["generation_request_id"], empty["generation_request_id"]}
    ] == []


def test_internal_backend_failures_are_classified_like_the_worker(stack):
    stack.k8s.on("[oom]", oom_killed)
    stack.k8s.on("[reject]", user_input_exit)
    oom, rejected = (
        new_job("huge [oom]", backend="internal"),
        new_job("nonsense [reject]", backend="internal"),
    )
    stack.publish(oom)
    stack.publish(rejected)
    failure = stack.outcome(oom)["by_path"]["/ai/generation/failure"]
    # pod_error: system side, retried once (the taxonomy's max_attempts 2)
    assert (failure["error_type"], failure["is_system_error"], failure["error_code"], failure["attempt"]) == (
        "pod_error",
        True,
        "OOMKilled",
        2,
    )
    out = stack.outcome(rejected)
    failure = out["by_path"]["/ai/generation/failure"]
    assert (failure["error_type"], failure["is_user_error"], failure["attempt"]) == (
        "model_rejected_input",
        True,
        1,
    )
    notify = out["by_path"]["/notify/generation-error"]
    assert notify["specific_guidance"] == TAXONOMY["error_types"]["model_rejected_input"]["specific_guidance"]
    assert stack.odoo.invalid == []


def test_a_message_that_breaks_the_contract_goes_to_the_dead_letter_queue(stack):
    stack.publish(b'{"message_type": "AIGenerationJobRequested", "version": 1}')
    properties, _body = stack.dead_letter(lambda _p, b: b.startswith(b'{"message_type"'), timeout=30)
    assert "required property" in properties.headers[topology.REJECT_REASON_HEADER]


def test_the_workflow_reads_the_job_contract_as_the_python_worker_does(stack):
    # a key named like a property every JS object has passed additionalProperties: false; a model of
    # 128 characters with an emoji (129 UTF-16 units) was refused, though Odoo and Python take it
    inherited = {**new_job("a constructor key"), "constructor": 1}
    stack.publish(inherited)
    properties, _ = stack.dead_letter(lambda _p, b: request_id_of(b) == inherited["generation_request_id"])
    assert "additional property 'constructor'" in properties.headers[topology.REJECT_REASON_HEADER]
    secret = {**new_job("a long system prompt"), "params": {"system": "my secret instructions " * 400}}
    stack.publish(secret)
    properties, _ = stack.dead_letter(lambda _p, b: request_id_of(b) == secret["generation_request_id"])
    assert properties.headers[topology.REJECT_REASON_HEADER] == "schema: params/system: invalid value"
    emoji = {**new_job("an emoji in the model's name"), "model": "m" * 127 + "\U0001f600"}
    stack.publish(emoji)
    out = stack.outcome(emoji)
    assert out["state"].status in ("succeeded", "failed") and not stack.dead_letters_of(emoji)


def test_a_quote_of_a_long_prompt_cut_short_never_reaches_odoo(stack):
    # the provider's message is cut to 500 characters: a quote of a longer prompt ended it as the
    # prompt's beginning, which replacing the whole prompt never found (as the Python worker's test)
    prompt = "my very private prompt about project X, " * 15 + "[quote]"
    stack.openai.on("[quote]", fake_openai.error(400, f"Invalid prompt: '{prompt}'", code="invalid_value"))
    job = new_job(prompt)
    stack.publish(job)
    detail = stack.outcome(job)["by_path"]["/ai/generation/failure"]["detail"]
    assert "project X" not in detail and detail.endswith("[prompt]")


def test_provider_values_odoo_refuses_are_cleaned_as_the_python_worker_cleans_them(stack):
    # worker/sanitize.py's rules (cf99e40) in the workflow: a content list, a NUL, a lone surrogate, usage
    # of 2**60, and an error message whose 500-character cut splits a surrogate pair all got a 400
    from tests.worker.test_provider_answers import chat

    parts = new_job("content parts [n8n-parts]")
    nasty = new_job("a nasty answer [n8n-nasty]")
    split = new_job("an error cut in a pair [n8n-split]")
    stack.openai.on("[n8n-parts]", chat([{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]))
    stack.openai.on("[n8n-nasty]", chat("a\x00b\ud800c", {"prompt_tokens": 2**60, "completion_tokens": 2}))
    stack.openai.on(
        "[n8n-split]", fake_openai.error(400, "Invalid: " + "\U0001f600" * 400, code="invalid_value")
    )
    for job in (parts, nasty, split):
        stack.publish(job)
    assert stack.outcome(parts)["by_path"]["/ai/generation/result"]["output"] == "hi there"
    result = stack.outcome(nasty)["by_path"]["/ai/generation/result"]
    assert result["output"] == "a\ufffdb\ufffdc" and result["usage"] == {"completion_tokens": 2}
    failure = stack.outcome(split)["by_path"]["/ai/generation/failure"]
    assert failure["detail"].endswith("\ufffd")  # the lone half of the cut pair, replaced
    assert [
        c
        for c in stack.odoo.invalid
        if c.request_id in {j["generation_request_id"] for j in (parts, nasty, split)}
    ] == []


def test_an_error_body_without_an_error_object_is_read_as_the_openai_sdk_reads_it(stack):
    # an OpenAI-compatible server's {"message", "code"} at the top level: the Python worker (through the
    # SDK's body.get("error", body)) read a 429 "Request too large" as context_length_exceeded and a
    # top-level insufficient_quota as quota_exhausted; n8n read both as rate_limited (retried)
    from worker.classification import Signal, classify

    cases = {
        "[top-too-large]": {"message": "Request too large for gpt-test on tokens per min.", "type": "tokens"},
        "[top-quota]": {"message": "You exceeded your current quota.", "code": "insufficient_quota"},
    }
    jobs = {}
    for marker, body in cases.items():
        stack.openai.on(marker, fake_openai.Reply(status=429, body=body, kind="raw"))
        jobs[marker] = new_job(f"a top-level error {marker}")
        stack.publish(jobs[marker])
    for marker, body in cases.items():
        failure = stack.outcome(jobs[marker])["by_path"]["/ai/generation/failure"]
        python = classify(
            Signal(
                kind="http", status=429, code=body.get("code"), type=body.get("type"), message=body["message"]
            )
        )
        assert failure["error_type"] == python.error_type, marker
    assert {
        m: stack.outcome(j)["by_path"]["/ai/generation/failure"]["error_type"] for m, j in jobs.items()
    } == {
        "[top-too-large]": "context_length_exceeded",
        "[top-quota]": "quota_exhausted",
    }


def test_a_job_odoo_does_not_know_goes_to_the_dead_letter_queue_before_any_ai_call(stack):
    job = new_job("nobody asked for this")
    stack.odoo.refuse(job["generation_request_id"], {"/ai/generation/progress"}, status=404)
    stack.publish(job)
    properties, body = stack.dead_letter(lambda _p, b: request_id_of(b) == job["generation_request_id"])
    assert json.loads(body) == job
    reason = properties.headers[topology.REJECT_REASON_HEADER]
    assert reason.startswith("odoo refused the progress callback: /ai/generation/progress answered 404")
    assert not [r for r in stack.openai.requests if "nobody asked" in r.prompt]
    assert stack.odoo.calls_for(job["generation_request_id"]) == []  # only the refused progress call


def test_a_job_whose_outcome_odoo_refuses_is_redelivered_then_dead_lettered_never_lost(stack):
    # Odoo answers 503 to every callback of this request: neither the result nor the error workflow's
    # failure report gets through, so no execution may acknowledge the message
    job = new_job("an answer nobody can store")
    stack.odoo.refuse(job["generation_request_id"])
    stack.publish(job)
    properties, body = stack.dead_letter(
        lambda _p, b: request_id_of(b) == job["generation_request_id"], timeout=180
    )
    assert json.loads(body) == job
    # dead-lettered by the quorum queue's delivery limit (worker/topology.py), after redeliveries
    assert properties.headers["x-death"][0]["reason"] == "delivery_limit"
    deliveries = len([r for r in stack.openai.requests if "nobody can store" in r.prompt])
    limit = topology.JOBS_QUEUE_ARGUMENTS["x-delivery-limit"]
    assert deliveries == limit + 1  # the first delivery and `limit` redeliveries, one AI call each
    refused = [path for rid, path, _status in stack.odoo.refused if rid == job["generation_request_id"]]
    assert "/ai/generation/result" in refused and "/ai/generation/failure" in refused
    assert stack.odoo.state(job["generation_request_id"]) is None  # nothing got through
    stack.odoo.wait_for(lambda: stack.queued() == 0, 30)


def test_a_result_odoo_refuses_for_its_size_is_reported_as_a_free_failure(stack):
    # as the Python worker does: a 413 (a body over twice ai_generation.max_result_bytes) is no outcome
    # to retry forever, but the failure result_too_large; the AI is not asked again
    job = new_job("an answer too large to keep")
    stack.odoo.refuse(job["generation_request_id"], {"/ai/generation/result"}, status=413)
    stack.publish(job)
    out = stack.outcome(job)
    failure = out["by_path"]["/ai/generation/failure"]
    assert sides(failure) == ("result_too_large", True, False) and failure["attempt"] == 1
    notify = out["by_path"]["/notify/generation-error"]
    assert notify["retry_suggestion"] == TAXONOMY["error_types"]["result_too_large"]["retry_suggestion"]
    assert out["state"].status == "failed" and stack.odoo.invalid == []
    assert len([r for r in stack.openai.requests if "too large to keep" in r.prompt]) == 1
    stack.odoo.wait_for(lambda: stack.queued() == 0, 30)  # acknowledged: not redelivered


def test_a_result_odoo_fails_for_its_size_counts_toward_an_alert_as_a_failure(stack):
    # under Odoo's body limit but over the size it keeps: Odoo fails the request on the result itself,
    # and the alert workflow hears a failure, not a success (as the Python worker counts it). Every
    # other answer is lost: the node's retry gets a duplicate, which says it all the same
    stack.openai.on("[large]", fake_openai.text("x" * 8192))
    jobs = [new_job(f"large answer {i} [large]") for i in range(RATE_THRESHOLD)]
    stack.odoo.max_result_bytes = 4096
    try:
        for i, job in enumerate(jobs):
            lost = i % 2 == 1
            if lost:
                stack.odoo.lose_next_answer.add("/ai/generation/result")
            stack.publish(job)
            results = ["/ai/generation/result"] * (2 if lost else 1)
            rid = job["generation_request_id"]
            stack.odoo.wait_for(lambda: len(stack.odoo.calls_for(rid, results[0])) == len(results), 60)  # noqa: B023
            out = stack.outcome(job)
            assert (out["state"].status, out["state"].error_type) == ("failed", "result_too_large")
            assert out["paths"] == ["/ai/generation/progress", *results]
            # a success after each: no streak of system-side failures, whose alert a later test awaits
            fine = new_job(f"a small answer {i}")
            stack.publish(fine)
            assert stack.outcome(fine)["state"].status == "succeeded"
        labels = {
            "alertname": "AIGenerationHighErrorRate",
            "backend": "external",
            "error_type": "result_too_large",
        }
        alert = stack.alertmanager.webhook.wait_for(status="firing", timeout=30, **labels)
        # the latest failures are among its samples (an earlier test's 413 may be in the same series)
        samples = set(alert["annotations"]["sample_request_ids"].split(","))
        # the one whose answer was lost is among them: an earlier test's 413 and the two others would
        # raise the alert without it
        assert jobs[1]["generation_request_id"] in samples
    finally:
        stack.odoo.max_result_bytes = None
    stack.odoo.wait_for(lambda: stack.queued() == 0, 30)


def test_a_user_side_failure_does_not_break_a_system_side_streak(stack):
    stack.openai.on("[auth]", fake_openai.unauthorized())
    stack.openai.on("[userbad]", fake_openai.invalid_value())
    ok = new_job("start from a success")
    stack.publish(ok)
    assert stack.outcome(ok)["state"].status == "succeeded"
    jobs = []
    for i in range(CONSECUTIVE_THRESHOLD):
        system = new_job(f"streak {i} [auth]")
        stack.publish(system)
        assert sides(stack.outcome(system)["by_path"]["/ai/generation/failure"]) == (
            "provider_auth",
            True,
            False,
        )
        jobs.append(system)
        if i < CONSECUTIVE_THRESHOLD - 1:  # between the system failures, a user's own mistake
            user = new_job(f"between {i} [userbad]")
            stack.publish(user)
            assert sides(stack.outcome(user)["by_path"]["/ai/generation/failure"]) == (
                "invalid_input",
                False,
                True,
            )
    labels = {"alertname": "AIGenerationConsecutiveFailures", "backend": "external", "error_type": "any"}
    alert = stack.alertmanager.webhook.wait_for(status="firing", timeout=30, **labels)
    assert alert["labels"]["source"] == "n8n" and set(alert["labels"]) == set(ALERTS["labels"])
    assert alert["annotations"]["consecutive_failures"] == str(CONSECUTIVE_THRESHOLD)
    assert set(alert["annotations"]["sample_request_ids"].split(",")) == {
        j["generation_request_id"] for j in jobs
    }
    # a success ends the streak: the alert resolves (n8n's own, by its source label)
    done = new_job("back to normal")
    stack.publish(done)
    assert stack.outcome(done)["state"].status == "succeeded"
    resolved = stack.alertmanager.webhook.wait_for(status="resolved", timeout=30, **labels)
    assert resolved["fingerprint"] == alert["fingerprint"]


def test_without_the_n8n_api_a_failed_execution_is_redelivered_until_the_outcome_reaches_odoo(
    stack_without_api,
):
    # the first execution's result callback is refused (its three tries); the error workflow cannot
    # read that execution, so it cannot tell Odoo: the message must come back, not be acknowledged
    s = stack_without_api
    job = new_job("second time lucky")
    s.odoo.refuse(job["generation_request_id"], {"/ai/generation/result"}, times=3)
    s.publish(job)
    out = s.outcome(job, timeout=90)
    assert out["state"].status == "succeeded"
    assert out["paths"].count("/ai/generation/progress") == 2  # a second delivery did the job
    assert len([r for r in s.openai.requests if "second time lucky" in r.prompt]) == 2
    assert "/ai/generation/failure" not in out["paths"]
    s.odoo.wait_for(lambda: s.queued() == 0, 30)
    assert not s.dead_letters_of(job)
