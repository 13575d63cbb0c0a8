"""Every taxonomy row end to end: RabbitMQ -> worker -> fake AI (OpenAI API / Kubernetes API) -> fake Odoo.

All scenarios are published at once to one running worker (with the real openai and kubernetes clients
against loopback fakes) and then checked one by one: the failure callback's error_type and side, the
notify callback's message and retry_suggestion / specific_guidance, the result on success, one progress
callback per attempt, and every body valid against the callback schemas (the fake Odoo refuses others).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass

import pytest

import aigen_contracts
from tests.support import fake_k8s as k8s
from tests.support import fake_openai as ai
from tests.support.fake_odoo import FakeOdoo
from tests.support.fake_openai import FakeOpenAI
from tests.worker.helpers import SECRET, RunningWorker, job_message, publish, wait_until, worker_config
from worker import topology
from worker.app import Worker
from worker.backends.kubernetes_backend import KubernetesBackend, KubernetesConfig
from worker.backends.openai_backend import OpenAIBackend, OpenAIConfig

pytestmark = pytest.mark.slow

TAXONOMY = aigen_contracts.load("error_taxonomy.json")
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Scenario:
    name: str
    backend: str  # external | internal
    script: tuple  # fake_openai replies, or one fake_k8s outcome
    error_type: str | None  # None: success
    attempts: int
    task: str = "text"


def _s(name, backend, script, error_type, attempts, task="text"):
    return Scenario(
        name, backend, script if isinstance(script, tuple) else (script,), error_type, attempts, task
    )


SCENARIOS = [
    _s("text-ok", "external", ai.text("hello"), None, 1),
    _s("image-ok", "external", ai.image("https://img.example/1.png"), None, 1, task="image"),
    _s("flaky-then-ok", "external", (ai.unavailable(), ai.text("second time")), None, 2),
    _s("rate-limited-then-ok", "external", (ai.rate_limited(0.3), ai.text("ok")), None, 2),
    _s("http-500", "external", ai.server_error(500), "provider_unavailable", MAX_ATTEMPTS),
    _s("http-503", "external", ai.unavailable(), "provider_unavailable", MAX_ATTEMPTS),
    _s("slow", "external", ai.slow(5), "provider_timeout", MAX_ATTEMPTS),
    _s("http-408", "external", ai.error(408, "Request timeout", type=None), "provider_timeout", MAX_ATTEMPTS),
    _s("dropped", "external", ai.disconnect(), "provider_connection", MAX_ATTEMPTS),
    _s("rate-limited", "external", ai.rate_limited(0.2), "rate_limited", MAX_ATTEMPTS),
    _s("quota", "external", ai.insufficient_quota(), "quota_exhausted", 1),
    _s("auth-401", "external", ai.unauthorized(), "provider_auth", 1),
    _s("model-404", "external", ai.model_not_found(), "provider_auth", 1),
    _s("bad-size", "external", ai.invalid_value("size"), "invalid_input", 1, task="image"),
    _s("http-422", "external", ai.error(422, "Unprocessable", code=None), "invalid_input", 1),
    _s("policy", "external", ai.content_policy_violation(), "content_policy", 1),
    _s("invalid-prompt", "external", ai.invalid_prompt(), "content_policy", 1),
    _s("too-long", "external", ai.context_length_exceeded(), "context_length_exceeded", 1),
    _s("teapot", "external", ai.error(418, "I'm a teapot", type=None), "unknown", 2),
    # more than Odoo reads (FakeOdoo.max_body_bytes below): a free failure instead of the result
    _s("too-large", "external", ai.text("x" * (2 * 1024 * 1024)), "result_too_large", 1),
    _s("pod-ok", "internal", k8s.succeeded(output="from the cluster"), None, 1),
    _s("pod-deadline", "internal", k8s.deadline_exceeded(), "model_timeout", MAX_ATTEMPTS),
    _s("pod-oom", "internal", k8s.oom_killed(), "pod_error", 2),
    _s("pod-evicted", "internal", k8s.evicted(), "pod_error", 2),
    _s("pod-image", "internal", k8s.image_pull_backoff(), "pod_error", 2),
    _s("pod-unschedulable", "internal", k8s.unschedulable(), "pod_error", 2),
    _s("pod-crash", "internal", k8s.crashed(), "pod_error", 2),
    _s("pod-bad-input", "internal", k8s.user_input_exit(), "model_rejected_input", 1),
]


def test_the_scenarios_cover_every_taxonomy_row():
    assert {s.error_type for s in SCENARIOS} - {None} == set(TAXONOMY["error_types"])


@pytest.fixture(scope="module")
def ran(vhost):
    """Publish every scenario, run one worker until all are terminal; {name: (request_id, odoo, fakes)}."""
    with FakeOdoo(SECRET) as odoo, FakeOpenAI() as openai_api, k8s.FakeKubernetes(auto=True) as cluster:
        odoo.max_body_bytes = 1024 * 1024  # Odoo's 413 above twice ai_generation.max_result_bytes
        ids = {}
        messages = []
        for scenario in SCENARIOS:
            marker = f"[{scenario.name}]"
            if scenario.backend == "external":
                openai_api.on(marker, *scenario.script)
            else:
                cluster.on(marker, scenario.script[0])
            message = job_message(
                f"Please do this {marker}",
                backend=scenario.backend,
                task=scenario.task,
                model="gpt-test" if scenario.backend == "external" else "local-model",
            )
            ids[scenario.name] = message["generation_request_id"]
            messages.append(message)
        backends = {
            "external": OpenAIBackend(
                OpenAIConfig(base_url=openai_api.base_url, api_key="sk-test", timeout=30, connect_timeout=2)
            ),
            "internal": KubernetesBackend(
                KubernetesConfig(
                    host=cluster.host,
                    token=cluster.token,
                    poll_interval=0.05,
                    pending_grace_seconds=0.3,
                    image="registry.example/model:1",
                )
            ),
        }
        config = worker_config(
            vhost,
            odoo,
            request_timeout=1.0,
            max_attempts=MAX_ATTEMPTS,
            backoff_initial=0.05,
            backoff_max=0.1,
            backoff_jitter=0.02,
        )
        conn = vhost.connect()
        channel = conn.channel()
        topology.declare(channel)
        channel.queue_purge(topology.JOBS_QUEUE)
        channel.confirm_delivery()
        started = time.monotonic()
        with RunningWorker(Worker(config, backends)):
            for message in messages:
                publish(channel, message)
            wait_until(
                lambda: all(
                    (s := odoo.state(i)) is not None and s.status in ("succeeded", "failed")
                    for i in ids.values()
                ),
                60,
                "every scenario terminal",
            )
            # the notify comes right after the failure: let it land
            wait_until(
                lambda: all(
                    odoo.state(ids[s.name]).user_message for s in SCENARIOS if s.error_type is not None
                ),
                10,
                "every notify",
            )
        conn.close()
        yield {"ids": ids, "odoo": odoo, "openai": openai_api, "seconds": time.monotonic() - started}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_end_to_end(ran, scenario):
    odoo, request_id = ran["odoo"], ran["ids"][scenario.name]
    assert odoo.invalid == [], [(c.path, c.answer) for c in odoo.invalid]
    progress = odoo.calls_for(request_id, "/ai/generation/progress")
    assert [c.body["attempt"] for c in progress] == list(range(1, scenario.attempts + 1))
    assert all(c.body["backend"] == scenario.backend for c in progress)
    state = odoo.state(request_id)
    if scenario.error_type is None:
        assert state.status == "succeeded"
        (result,) = odoo.calls_for(request_id, "/ai/generation/result")
        assert result.body["attempt"] == scenario.attempts and result.body["backend"] == scenario.backend
        assert result.body.get("output") or result.body.get("output_url")
        assert odoo.calls_for(request_id, "/ai/generation/failure") == []
        return
    row = TAXONOMY["error_types"][scenario.error_type]
    assert state.status == "failed"
    (failure,) = odoo.calls_for(request_id, "/ai/generation/failure")
    body = failure.body
    assert body["error_type"] == scenario.error_type
    assert body["is_user_error"] is (row["side"] == "user") and body["is_system_error"] is (
        row["side"] == "system"
    )
    assert body["attempt"] == scenario.attempts and body["backend"] == scenario.backend
    assert "Please do this" not in body["detail"]
    (notify,) = odoo.calls_for(request_id, "/notify/generation-error")
    assert notify.body["user_message"] == TAXONOMY["messages"][row["side"]]
    if row["side"] == "user":
        assert notify.body["specific_guidance"] == row["specific_guidance"]
        assert "retry_suggestion" not in notify.body
    else:
        assert notify.body["retry_suggestion"] == row["retry_suggestion"]
        assert "specific_guidance" not in notify.body
    assert notify.at >= failure.at  # failure first, then the user is told


def test_http_errors_carry_the_provider_status_and_request_id(ran):
    odoo = ran["odoo"]
    (failure,) = odoo.calls_for(ran["ids"]["quota"], "/ai/generation/failure")
    assert failure.body["provider_status"] == 429 and failure.body["error_code"] == "insufficient_quota"
    assert (failure.body["provider_request_id"] or "").startswith("req_fake")


def test_retry_after_was_honoured_through_the_queue(ran):
    requests = [r for r in ran["openai"].requests if "[rate-limited]" in r.prompt]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(requests)]
    assert len(requests) == MAX_ATTEMPTS and all(gap >= 0.2 for gap in gaps)  # backoff alone: ~0.05-0.1 s


def test_the_sdk_does_not_retry_on_its_own(ran):
    requests = [r for r in ran["openai"].requests if "[quota]" in r.prompt]
    assert len(requests) == 1
    assert json.loads(json.dumps(requests[0].body))["model"] == "gpt-test"
