"""The fake OpenAI server, driven by the real openai client: wire format, script, recording, concurrency.

Each provider error the fake can play is raised by the real SDK and classified into its taxonomy row.
"""

import base64
import dataclasses
import threading
import time

import openai
import pytest

from tests.support import fake_openai as fo
from worker.classification import classify, signal_from_exception


def chat(client, prompt="hello", model="gpt-test"):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])


def test_text_success_has_the_openai_shape(fake_openai):
    fake_openai.on("[greet]", fo.text("Hi there"))
    result = chat(fake_openai.client(), "please [greet]")
    assert result.choices[0].message.content == "Hi there"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.model == "gpt-test"


def test_image_success_with_url_and_b64(fake_openai):
    client = fake_openai.client()
    fake_openai.enqueue(fo.image("https://images.example/cat.png"), fo.image())
    first = client.images.generate(model="img-test", prompt="a cat")
    second = client.images.generate(model="img-test", prompt="a cat")
    assert first.data[0].url == "https://images.example/cat.png"
    assert base64.b64decode(second.data[0].b64_json).startswith(b"\x89PNG")


def test_default_image_answer_follows_response_format(fake_openai):
    client = fake_openai.client()
    assert client.images.generate(model="m", prompt="p").data[0].url.startswith("http://127.0.0.1:")
    answer = client.images.generate(model="m", prompt="p", response_format="b64_json", n=2)
    assert [d.b64_json for d in answer.data] == [fo.TINY_PNG_B64] * 2


def test_records_requests_with_authorization(fake_openai):
    chat(fake_openai.client(api_key="sk-abc"), "the prompt")
    (request,) = fake_openai.requests_to(fo.CHAT_PATH)
    assert request.authorization == "Bearer sk-abc"
    assert request.prompt == "the prompt"
    assert request.model == "gpt-test"
    assert request.body["messages"][0]["role"] == "user"


def test_wrong_api_key_gets_401(fake_openai):
    fake_openai.api_key = "sk-right"
    with pytest.raises(openai.AuthenticationError):
        chat(fake_openai.client(api_key="sk-wrong"))
    assert chat(fake_openai.client(api_key="sk-right")).choices[0].message.content


def test_marker_replies_in_order_then_the_last_repeats(fake_openai):
    fake_openai.on("[flaky]", fo.unavailable(), fo.text("ok"))
    client = fake_openai.client()
    with pytest.raises(openai.InternalServerError):
        chat(client, "[flaky]")
    assert chat(client, "[flaky]").choices[0].message.content == "ok"
    assert chat(client, "[flaky]").choices[0].message.content == "ok"


def test_marker_without_repeat_falls_through_to_queue_then_default(fake_openai):
    fake_openai.on("[once]", fo.text("marker"), repeat_last=False)
    fake_openai.enqueue(fo.text("queued"))
    client = fake_openai.client()
    assert chat(client, "[once]").choices[0].message.content == "marker"
    assert chat(client, "[once]").choices[0].message.content == "queued"
    assert chat(client, "[once]").choices[0].message.content.startswith("Fake completion")


def test_reset_forgets_script_and_requests(fake_openai):
    fake_openai.on("x", fo.server_error())
    chat(fake_openai.client(), "y")
    fake_openai.reset()
    assert fake_openai.requests == []
    assert chat(fake_openai.client(), "x").choices


# Every error the fake plays, raised by the real SDK, lands in its taxonomy row.
SDK_CASES = [
    ("chat", fo.invalid_value("max_tokens"), openai.BadRequestError, "invalid_input", "invalid_value"),
    (
        "image",
        fo.content_policy_violation(),
        openai.BadRequestError,
        "content_policy",
        "content_policy_violation",
    ),
    ("chat", fo.invalid_prompt(), openai.BadRequestError, "content_policy", "invalid_prompt"),
    (
        "chat",
        fo.context_length_exceeded(),
        openai.BadRequestError,
        "context_length_exceeded",
        "context_length_exceeded",
    ),
    ("chat", fo.unauthorized(), openai.AuthenticationError, "provider_auth", "invalid_api_key"),
    (
        "chat",
        fo.error(403, "Forbidden", code=None),
        openai.PermissionDeniedError,
        "provider_auth",
        "http_403",
    ),
    ("image", fo.model_not_found(), openai.NotFoundError, "provider_auth", "model_not_found"),
    ("chat", fo.rate_limited(2), openai.RateLimitError, "rate_limited", "rate_limit_exceeded"),
    ("chat", fo.insufficient_quota(), openai.RateLimitError, "quota_exhausted", "insufficient_quota"),
    (
        "chat",
        fo.error(429, "Request too large for gpt-4o on tokens per min", type="tokens", code=None),
        openai.RateLimitError,
        "context_length_exceeded",
        "http_429",
    ),
    (
        "chat",
        fo.error(422, "Unprocessable", code=None),
        openai.UnprocessableEntityError,
        "invalid_input",
        "http_422",
    ),
    (
        "chat",
        fo.error(408, "Request timeout", code=None),
        openai.APIStatusError,
        "provider_timeout",
        "http_408",
    ),
    ("chat", fo.server_error(), openai.InternalServerError, "provider_unavailable", "http_500"),
    ("image", fo.server_error(502), openai.InternalServerError, "provider_unavailable", "http_502"),
    ("chat", fo.unavailable(), openai.InternalServerError, "provider_unavailable", "http_503"),
    ("chat", fo.error(418, "teapot", code=None), openai.APIStatusError, "unknown", "http_418"),
    ("chat", fo.slow(3), openai.APITimeoutError, "provider_timeout", "timeout"),
    ("chat", fo.disconnect(), openai.APIConnectionError, "provider_connection", "connection"),
]


@pytest.mark.parametrize(
    ("task", "reply", "exc_type", "error_type", "error_code"),
    SDK_CASES,
    ids=[c[3] + "-" + c[4] for c in SDK_CASES],
)
def test_sdk_exception_is_classified(fake_openai, task, reply, exc_type, error_type, error_code):
    fake_openai.enqueue(reply)
    client = fake_openai.client(timeout=0.5)
    with pytest.raises(exc_type) as caught:
        if task == "chat":
            chat(client)
        else:
            client.images.generate(model="img", prompt="p")
    result = classify(signal_from_exception(caught.value))
    assert (result.error_type, result.error_code) == (error_type, error_code)


def test_rate_limit_carries_retry_after_and_request_id(fake_openai):
    fake_openai.enqueue(fo.rate_limited(retry_after=7))
    with pytest.raises(openai.RateLimitError) as caught:
        chat(fake_openai.client())
    signal = signal_from_exception(caught.value)
    assert signal.retry_after == 7.0
    assert signal.provider_request_id.startswith("req_fake")
    assert signal.message.startswith("Rate limit reached")
    assert classify(signal).retry_after == 7.0


def test_connection_refused_is_provider_connection():
    with fo.FakeOpenAI() as fake:
        client = fake.client(timeout=1)
    with pytest.raises(openai.APIConnectionError) as caught:  # the server is gone: nothing listens
        chat(client)
    assert classify(signal_from_exception(caught.value)).error_type == "provider_connection"


def test_requests_are_answered_concurrently_not_one_by_one():
    concurrency = 120
    with fo.FakeOpenAI(latency=0.05) as fake:
        fake.hold()
        client = fake.client(timeout=30)
        errors, threads = [], []

        def call():
            try:
                chat(client)
            except Exception as exc:  # collected for the assertion below
                errors.append(exc)

        for _ in range(concurrency):
            threads.append(threading.Thread(target=call))
            threads[-1].start()
        all_in_flight = fake.wait_in_flight(concurrency, timeout=20)
        fake.release()
        for thread in threads:
            thread.join()
    assert all_in_flight, f"only {fake.max_in_flight} of {concurrency} requests were in flight at once"
    assert errors == []
    assert len(fake.requests) == concurrency


def test_latency_delays_every_answer():
    with fo.FakeOpenAI(latency=0.3) as fake:
        started = time.monotonic()
        chat(fake.client())
        assert time.monotonic() - started >= 0.3


def test_unknown_path_and_bad_json_get_openai_errors(fake_openai):
    client = fake_openai.client()
    with pytest.raises(openai.NotFoundError):
        client.post("/embeddings-nope", cast_to=object, body={})
    import requests

    answer = requests.post(fake_openai.base_url + "/chat/completions", data=b"{not json", timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("We could not parse")


def test_a_request_id_longer_than_the_callback_takes_is_cut(fake_openai):
    # a proxy's id of 300 characters made Odoo refuse the failure (maxLength 256): dead-lettered
    fake_openai.enqueue(dataclasses.replace(fo.unavailable(), headers={"x-request-id": "r" * 300}))
    with pytest.raises(openai.InternalServerError) as caught:
        chat(fake_openai.client())
    signal = signal_from_exception(caught.value)
    assert signal.provider_request_id and len(signal.provider_request_id) == 256
