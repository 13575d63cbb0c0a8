"""Parsing AIGenerationJobRequested: the schema decides, and the reason is one line a person reads."""

import json

import pytest

from tests.worker.helpers import job_message
from worker.job import InvalidJob, parse_job


def test_a_valid_message_becomes_a_job_with_aware_datetimes():
    message = job_message("a prompt", params={"max_tokens": 10, "temperature": 0.5})
    job = parse_job(json.dumps(message).encode())
    assert job.request_id == message["generation_request_id"]
    assert job.params == {"max_tokens": 10, "temperature": 0.5}
    assert job.deadline.tzinfo is not None and job.attempt == 1
    assert "a prompt" not in repr(job)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "schema: (message)"),
        (json.dumps({**job_message(), "backend": "gpu"}), "schema: backend"),
        (json.dumps({**job_message(), "params": {"size": "9x9"}}), "schema: params/size"),
        (json.dumps({**job_message(), "params": {"colour": "red"}}), "Additional properties"),
        (json.dumps({k: v for k, v in job_message().items() if k != "deadline"}), "'deadline' is a required"),
        (json.dumps({**job_message(), "version": 2}), "schema: version"),
        # the schema's format check (with rfc3339-validator installed) or the parser refuses these
        (json.dumps({**job_message(), "deadline": "2026-01-01T00:00:00"}), "deadline"),
        (json.dumps({**job_message(), "deadline": "soon"}), "deadline"),
    ],
)
def test_invalid_messages_raise_invalid_job_with_a_reason(body, reason):
    with pytest.raises(InvalidJob) as caught:
        parse_job(body)
    assert reason in caught.value.reason


def test_the_request_id_is_kept_when_it_can_be_read():
    message = {**job_message(), "task": "video"}
    with pytest.raises(InvalidJob) as caught:
        parse_job(json.dumps(message))
    assert caught.value.request_id == message["generation_request_id"]


def test_a_reason_never_quotes_the_prompt():
    message = {**job_message(), "prompt": ""}
    with pytest.raises(InvalidJob) as caught:
        parse_job(json.dumps(message))
    assert caught.value.reason == "schema: prompt: invalid value"


@pytest.mark.parametrize(
    "body",
    [b"[" * 100000, b'{"attempt": ' + b"9" * 5000 + b"}"],
    ids=["nested too deep", "an integer of 5000 digits"],
)
def test_a_body_json_cannot_hold_is_an_invalid_job_not_an_exception(body):
    # a RecursionError or ValueError escaped: the message was requeued five times, then dead-lettered
    # by the broker with no reason
    with pytest.raises(InvalidJob) as caught:
        parse_job(body)
    assert caught.value.reason.startswith("not a job")


def test_a_reason_never_quotes_the_system_prompt():
    message = job_message()
    message["params"] = {"system": "my secret instructions " * 1000}  # over its maxLength
    with pytest.raises(InvalidJob) as caught:
        parse_job(json.dumps(message))
    assert caught.value.reason == "schema: params/system: invalid value"
    assert "secret" not in caught.value.reason


def test_params_nested_just_below_jsons_limit_is_an_invalid_job_in_a_worker_thread():
    # json.loads takes it, the schema's walk then ran out of stack in the consumer's pool threads
    from concurrent.futures import ThreadPoolExecutor

    def outcome(depth):
        message = json.dumps({**job_message(), "params": {}}).replace(
            '"params": {}', '"params": ' + "[" * depth + "]" * depth
        )
        try:
            parse_job(message)
        except InvalidJob:
            return "invalid"
        except RecursionError:
            return "escaped"
        return "parsed"

    with ThreadPoolExecutor(1) as pool:
        outcomes = set(pool.map(outcome, range(900, 1000, 2)))
    assert outcomes == {"invalid"}
