"""The external backend against the fake OpenAI API, with the real openai client."""

import json
import ssl
import threading

import openai
import pytest

from tests.support import fake_openai as fo
from tests.worker_backends.jobs import make_job
from worker.backends.base import BackendFailure
from worker.backends.openai_backend import OpenAIBackend, OpenAIConfig
from worker.classification import classify, signal_from_exception


@pytest.fixture
def backend(fake_openai):
    return OpenAIBackend(OpenAIConfig(base_url=fake_openai.base_url, api_key="sk-worker", timeout=5))


def test_text_generation_sends_prompt_params_and_key(backend, fake_openai):
    fake_openai.on("haiku", fo.text("Queues wait in silence"))
    job = make_job(params={"system": "Be brief.", "max_tokens": 50, "temperature": 0.2, "seed": 7})
    result = backend.generate(job, timeout=5)
    assert result.output == "Queues wait in silence"
    assert result.output_url is None
    assert result.usage["total_tokens"] == result.usage["prompt_tokens"] + result.usage["completion_tokens"]
    (request,) = fake_openai.requests
    assert request.authorization == "Bearer sk-worker"
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": job.prompt},
    ]
    assert (request.body["max_tokens"], request.body["temperature"], request.body["seed"]) == (50, 0.2, 7)


def test_max_tokens_parameter_name_is_configurable(fake_openai):
    config = OpenAIConfig(
        base_url=fake_openai.base_url, api_key="k", max_tokens_param="max_completion_tokens"
    )
    OpenAIBackend(config).generate(make_job(params={"max_tokens": 9}), timeout=5)
    body = fake_openai.requests[0].body
    assert body["max_completion_tokens"] == 9
    assert "max_tokens" not in body


def test_image_generation_with_url(backend, fake_openai):
    fake_openai.enqueue(fo.image("https://cdn.example/a.png"))
    result = backend.generate(make_job(task="image", params={"size": "512x512", "quality": "hd"}), timeout=5)
    assert result.output_url == "https://cdn.example/a.png"
    assert result.output is None
    assert result.usage["images"] == 1
    body = fake_openai.requests[0].body
    assert (body["size"], body["quality"], body["model"]) == ("512x512", "hd", "img-test")


def test_image_b64_becomes_a_data_url_and_several_images_a_list(fake_openai):
    config = OpenAIConfig(base_url=fake_openai.base_url, api_key="k", image_response_format="b64_json")
    result = OpenAIBackend(config).generate(make_job(task="image", params={"n": 2}), timeout=5)
    assert result.output_url == "data:image/png;base64," + fo.TINY_PNG_B64
    assert json.loads(result.output) == [result.output_url] * 2
    assert fake_openai.requests[0].body["response_format"] == "b64_json"


def test_sdk_retries_are_off(backend, fake_openai):
    fake_openai.enqueue(fo.unavailable(), fo.text("second"))
    with pytest.raises(openai.InternalServerError):
        backend.generate(make_job(), timeout=5)
    assert len(fake_openai.requests) == 1


def test_timeout_is_the_smaller_of_job_budget_and_config(backend, fake_openai):
    fake_openai.enqueue(fo.slow(3))
    with pytest.raises(openai.APITimeoutError) as caught:
        backend.generate(make_job(), timeout=0.3)
    assert classify(signal_from_exception(caught.value)).error_type == "provider_timeout"


def test_no_time_left_is_a_deadline_failure(backend, fake_openai):
    with pytest.raises(BackendFailure) as caught:
        backend.generate(make_job(), timeout=0)
    assert classify(signal_from_exception(caught.value)).error_type == "model_timeout"
    assert fake_openai.requests == []


@pytest.mark.parametrize(
    ("task", "reply", "error_type"),
    [
        ("text", fo.context_length_exceeded(), "context_length_exceeded"),
        ("image", fo.content_policy_violation(), "content_policy"),
        ("image", fo.invalid_value("size"), "invalid_input"),
        ("text", fo.insufficient_quota(), "quota_exhausted"),
        ("text", fo.rate_limited(4), "rate_limited"),
        ("image", fo.model_not_found(), "provider_auth"),
        ("text", fo.server_error(504), "provider_unavailable"),
    ],
)
def test_provider_errors_propagate_for_classification(backend, fake_openai, task, reply, error_type):
    fake_openai.enqueue(reply)
    with pytest.raises(openai.APIStatusError) as caught:
        backend.generate(make_job(task=task), timeout=5)
    assert classify(signal_from_exception(caught.value)).error_type == error_type


def test_content_filter_finish_is_a_content_policy_failure(backend, fake_openai):
    body = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-test",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "content_filter"}
        ],
    }
    fake_openai.enqueue(fo.Reply(body=body, kind="raw"))
    with pytest.raises(BackendFailure) as caught:
        backend.generate(make_job(), timeout=5)
    result = classify(signal_from_exception(caught.value))
    assert (result.error_type, result.side) == ("content_policy", "user")


def test_unsupported_task_is_unknown(backend):
    with pytest.raises(BackendFailure) as caught:
        backend.generate(make_job(task="video"), timeout=5)
    assert classify(signal_from_exception(caught.value)).error_type == "unknown"


def test_api_key_stays_out_of_the_config_repr():
    assert "sk-secret" not in repr(OpenAIConfig(api_key="sk-secret"))


def test_each_job_thread_keeps_a_client_of_its_own(backend, fake_openai):
    # one client shared by 100 job threads made them queue on its connection pool's lock
    seen = {}

    def run(name):
        first = backend.client
        backend.generate(make_job(), timeout=5)
        seen[name] = (first, backend.client)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(first is again for first, again in seen.values())  # kept for the thread's later jobs
    assert len({id(first) for first, _ in seen.values()}) == 3
    assert len(fake_openai.requests) == 3


def test_a_given_client_serves_every_thread(fake_openai):
    client = fake_openai.client(timeout=5)
    backend = OpenAIBackend(OpenAIConfig(base_url=fake_openai.base_url), client=client)
    other = []
    thread = threading.Thread(target=lambda: other.append(backend.client))
    thread.start()
    thread.join()
    assert backend.client is client and other == [client]


def test_the_thread_clients_load_the_ca_store_once(fake_openai, monkeypatch):
    # a client of its own per job thread, but one TLS context: ~20 ms and ~0.9 MB a load otherwise
    loads = []
    load = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(
        ssl.SSLContext, "load_verify_locations", lambda *a, **k: (loads.append(1), load(*a, **k))
    )
    backend = OpenAIBackend(OpenAIConfig(base_url=fake_openai.base_url, api_key="k"))
    clients = []
    threads = [threading.Thread(target=lambda: clients.append(backend.client)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in clients}) == 3 and len(loads) == 1
