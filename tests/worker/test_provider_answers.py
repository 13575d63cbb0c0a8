"""Provider answers Odoo's callback contract would refuse, end to end: RabbitMQ -> worker -> the real
openai client against the loopback fake AI -> the fake Odoo, strict like the real one (its JSON parser
refuses NUL, lone surrogates and integers beyond 2**53 - 1; the schemas check the types).

Each one must reach Odoo as a body it takes: a result made of what the answer holds, or a classified
failure with its notify. None may end in the DLQ (Odoo never told, the request left running).
"""

from __future__ import annotations

import json

import pytest

from tests.support import fake_openai as ai
from tests.support.fake_odoo import FakeOdoo
from tests.support.fake_openai import FakeOpenAI
from tests.worker.helpers import (
    SECRET,
    RunningWorker,
    clean_channel,
    drain_queue,
    job_message,
    publish,
    queue_depth,
    wait_until,
    worker_config,
)
from worker import topology
from worker.app import Worker
from worker.backends.openai_backend import OpenAIBackend, OpenAIConfig

pytestmark = pytest.mark.slow

NASTY = "a\x00b\ud800c\udfffd"  # the fake's json.dumps sends them as \u0000, \ud800, \udfff
CLEANED = "a\ufffdb\ufffdc\ufffdd"


def chat(content, usage=None) -> ai.Reply:
    """A chat.completion answer with ``content`` exactly as given (any JSON value)."""
    body = {
        "id": "chatcmpl-odd",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": usage or {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    return ai.Reply(body=body, kind="raw")


SCRIPTS = {
    "parts": chat([{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]),
    "nasty-content": chat(NASTY),
    "huge-usage": chat("ok", {"prompt_tokens": 2**60, "completion_tokens": 2, "total_tokens": 2**60 + 2}),
    "number": chat(42),
    "no-text-parts": chat([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]),
    "refusal-part": chat([{"type": "refusal", "refusal": "I can't help with that."}]),
    "nasty-error": ai.error(503, f"upstream broke: {NASTY}", type="server_error", code=f"overloaded{NASTY}"),
}
MAX_ATTEMPTS = 2


@pytest.fixture(scope="module")
def ran(vhost):
    with FakeOdoo(SECRET) as odoo, FakeOpenAI() as openai_api:
        ids = {}
        messages = []
        for name, reply in SCRIPTS.items():
            openai_api.on(f"[{name}]", reply)
            message = job_message(f"Please answer [{name}]")
            ids[name] = message["generation_request_id"]
            messages.append(message)
        backend = OpenAIBackend(OpenAIConfig(base_url=openai_api.base_url, api_key="sk-test", timeout=10))
        config = worker_config(vhost, odoo, max_attempts=MAX_ATTEMPTS)
        with clean_channel(vhost) as channel, RunningWorker(Worker(config, {"external": backend})):
            for message in messages:
                publish(channel, message)
            # each request told to Odoo, or refused by it (then dead-lettered): the tests say which
            wait_until(lambda: all(_settled(odoo, i) for i in ids.values()), 30, "every outcome reported")
            refused = {c.request_id for c in odoo.invalid}
            wait_until(lambda: queue_depth(vhost, topology.DLQ) >= len(refused), 10, "refusals dead-lettered")
            wait_until(lambda: queue_depth(vhost, topology.JOBS_QUEUE) == 0, 10, "every job acked")
        dead = drain_queue(vhost, topology.DLQ)
        yield {"ids": ids, "odoo": odoo, "dead": dead}


def _settled(odoo, request_id) -> bool:
    told = odoo.calls_for(request_id, "/ai/generation/result") or odoo.calls_for(
        request_id, "/notify/generation-error"
    )
    return bool(told) or any(c.request_id == request_id for c in odoo.invalid)


def _result(ran, name) -> dict:
    odoo, request_id = ran["odoo"], ran["ids"][name]
    assert _refused(ran, name) == []
    assert odoo.state(request_id).status == "succeeded"
    (result,) = odoo.calls_for(request_id, "/ai/generation/result")
    return result.body


def test_odoo_took_every_body_and_nothing_was_dead_lettered(ran):
    assert ran["odoo"].invalid == [], [(c.path, c.answer) for c in ran["odoo"].invalid]
    assert ran["dead"] == [], [json.loads(body)["generation_request_id"] for _props, body in ran["dead"]]


def _refused(ran, name):
    return [(c.path, c.answer) for c in ran["odoo"].invalid if c.request_id == ran["ids"][name]]


def test_a_list_of_content_parts_is_delivered_as_its_text(ran):
    assert _result(ran, "parts")["output"] == "hi there"


def test_nul_and_lone_surrogates_in_the_content_reach_odoo_cleaned(ran):
    assert _result(ran, "nasty-content")["output"] == CLEANED


def test_usage_beyond_what_odoo_reads_exactly_is_dropped(ran):
    body = _result(ran, "huge-usage")
    assert body["output"] == "ok" and body["usage"] == {"completion_tokens": 2}


@pytest.mark.parametrize("name", ["number", "no-text-parts"])
def test_content_without_text_is_a_classified_failure_the_user_is_told_of(ran, name):
    odoo, request_id = ran["odoo"], ran["ids"][name]
    assert _refused(ran, name) == []
    assert odoo.state(request_id).status == "failed"
    assert odoo.calls_for(request_id, "/ai/generation/result") == []
    (failure,) = odoo.calls_for(request_id, "/ai/generation/failure")
    assert failure.body["error_type"] == "unknown" and failure.body["is_system_error"] is True
    assert failure.body["attempt"] == MAX_ATTEMPTS  # the taxonomy's unknown row: one retry
    assert "the provider's answer had no text" in failure.body["detail"]
    (notify,) = odoo.calls_for(request_id, "/notify/generation-error")
    assert "you were not charged" in notify.body["retry_suggestion"]


def test_nul_and_lone_surrogates_in_a_provider_error_reach_odoo_cleaned(ran):
    odoo, request_id = ran["odoo"], ran["ids"]["nasty-error"]
    assert _refused(ran, "nasty-error") == []
    assert odoo.state(request_id).status == "failed"
    (failure,) = odoo.calls_for(request_id, "/ai/generation/failure")
    assert failure.body["error_type"] == "provider_unavailable"
    assert failure.body["error_code"] == f"overloaded{CLEANED}"
    assert f"upstream broke: {CLEANED}" in failure.body["detail"]
    assert len(odoo.calls_for(request_id, "/notify/generation-error")) == 1


def test_a_refusal_sent_as_a_content_part_is_the_content_policy_verdict(ran):
    # as the message's own refusal field: the user's side, with its guidance, not an unknown failure
    # retried and sent to the fallback backend
    odoo, request_id = ran["odoo"], ran["ids"]["refusal-part"]
    assert _refused(ran, "refusal-part") == []
    (failure,) = odoo.calls_for(request_id, "/ai/generation/failure")
    assert failure.body["error_type"] == "content_policy" and failure.body["is_user_error"] is True
    assert failure.body["attempt"] == 1
