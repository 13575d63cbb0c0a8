"""worker.sanitize: what a provider answered, made into values Odoo's callbacks take.

Plain Python first, each body checked against the addon's own strict parser and the callback schemas,
the two gates a body passes in Odoo (addons/ai_generation/controllers/callbacks.py); then the Processor
with an in-test backend and the fake Odoo, to show every backend's output goes through it.
"""

import json

import pytest

from tests.support.fake_odoo import SCHEMAS, _strict_json
from tests.worker.helpers import SECRET, ScriptedBackend, fast_processing, job_message
from worker.backends.base import BackendFailure, GenerationOutput
from worker.backends.kubernetes_backend import parse_result
from worker.backends.openai_backend import _usage
from worker.classification import Signal, classify, signal_from_exception
from worker.job import Job, parse_job, validator_for
from worker.processing import FAILED_SYSTEM, SUCCEEDED, ProcessingConfig, Processor, failure_callbacks
from worker.reporting import OdooReporter, ReporterConfig
from worker.sanitize import MAX_SAFE_INTEGER, checked_output, clean_text, content_text, usage_counts

REQUEST_ID = "0a1b2c3d-0000-4000-8000-000000000001"
NASTY = "a\x00b\ud800c\udfffd"


def odoo_takes(path: str, body: dict) -> None:
    """Raises unless Odoo would take ``body`` on ``path``: encoded as the reporter does, then read by
    the strict parser, then checked against the schema."""
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    parsed = _strict_json().parse_json_object(raw)
    validator_for(SCHEMAS[path]).validate(parsed)


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("plain", "plain"),
        ("", ""),
        ("été 日本 😀", "été 日本 😀"),
        ("nul\x00here", "nul\ufffdhere"),
        ("lone \ud800 high", "lone \ufffd high"),
        ("lone \udfff low", "lone \ufffd low"),
        ("split pair \ud83d\ude00", "split pair 😀"),
        (NASTY, "a\ufffdb\ufffdc\ufffdd"),
    ],
)
def test_clean_text(text, cleaned):
    assert clean_text(text) == cleaned
    assert not _strict_json().database_refuses(clean_text(text))


def test_clean_text_keeps_a_clean_string_itself():
    text = "x" * 1000
    assert clean_text(text) is text


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("hi", "hi"),
        ("", ""),
        (None, ""),
        ([{"type": "text", "text": "hi"}], "hi"),
        (
            [{"type": "text", "text": "hi "}, {"type": "image_url", "image_url": {}}, {"text": "there"}],
            "hi there",
        ),
        ([{"type": "output_text", "text": "a"}, "b"], "ab"),
        (42, None),
        (4.2, None),
        (True, None),
        ({"text": "hi"}, None),
        ([], None),
        ([{"type": "image_url", "image_url": {"url": "x"}}], None),
        ([{"type": "text", "text": 42}], None),
    ],
)
def test_content_text(content, text):
    assert content_text(content) == text


def test_usage_keeps_only_integers_odoo_takes():
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 0,
        "total_tokens": MAX_SAFE_INTEGER,
        "huge": 2**60,
        "just_over": MAX_SAFE_INTEGER + 1,
        "negative": -1,
        "flag": True,
        "ratio": 0.5,
        "text": "12",
        "details": {"cached_tokens": 1},
        "bad\x00key": 1,
        "bad\ud800key": 1,
        "": 1,
    }
    assert usage_counts(usage) == {
        "prompt_tokens": 3,
        "completion_tokens": 0,
        "total_tokens": MAX_SAFE_INTEGER,
    }
    assert usage_counts(None) == usage_counts([1, 2]) == usage_counts("x") == {}


def test_the_openai_backends_usage_drops_what_odoo_refuses():
    from openai.types import CompletionUsage

    usage = CompletionUsage.construct(prompt_tokens=2**60, completion_tokens=2, total_tokens=2**60 + 2)
    assert _usage(usage) == {"completion_tokens": 2}
    assert _usage({"total_tokens": 2**60, "prompt_tokens": 1}) == {"prompt_tokens": 1}


def test_checked_output_cleans_text_url_and_usage():
    output = checked_output(GenerationOutput(NASTY, f"https://x/{NASTY}", {"total_tokens": 2**60, "ok": 1}))
    assert output == GenerationOutput("a\ufffdb\ufffdc\ufffdd", "https://x/a\ufffdb\ufffdc\ufffdd", {"ok": 1})


@pytest.mark.parametrize(
    ("output", "kept"),
    [
        (GenerationOutput("text", 123, {}), GenerationOutput("text", None, {})),
        (GenerationOutput("text", "", {}), GenerationOutput("text", None, {})),
        (GenerationOutput(None, "https://x/y.png", {}), GenerationOutput(None, "https://x/y.png", {})),
    ],
)
def test_checked_output_keeps_output_url_only_when_a_string(output, kept):
    assert checked_output(output) == kept


@pytest.mark.parametrize(
    "output",
    [
        GenerationOutput(42, None, {}),
        GenerationOutput([{"type": "text", "text": "hi"}], None, {}),
        GenerationOutput(None, 123, {}),
        GenerationOutput(None, ["https://x/y.png"], {}),
        "just a string",
    ],
)
def test_output_that_is_no_text_is_a_provider_failure_the_user_is_not_charged_for(output):
    with pytest.raises(BackendFailure) as caught:
        checked_output(output)
    verdict = classify(signal_from_exception(caught.value))
    assert (verdict.error_type, verdict.side) == ("unknown", "system")
    assert "had no text" in caught.value.signal.message


@pytest.mark.parametrize(
    ("log", "output", "output_url"),
    [
        ('{"output": "hi", "output_url": 123}', "hi", None),
        ('{"output": "hi", "output_url": ["https://x"]}', "hi", None),
        ('{"output": 5, "output_url": "https://x/y.png"}', None, "https://x/y.png"),
    ],
)
def test_parse_result_takes_each_field_only_when_a_string(log, output, output_url):
    result = parse_result(log)
    assert (result.output, result.output_url) == (output, output_url)


def test_parse_result_drops_usage_odoo_refuses():
    result = parse_result(
        '{"output": "hi", "usage": {"total_tokens": 1152921504606846976, "prompt_tokens": 2}}'
    )
    assert result.usage == {"prompt_tokens": 2}


def test_parse_result_refuses_a_non_string_output_url_alone():
    with pytest.raises(BackendFailure):
        parse_result('{"output_url": 123}')


def _job() -> Job:
    return parse_job(json.dumps(job_message("p", generation_request_id=REQUEST_ID)))


def test_a_result_body_from_a_nasty_output_is_one_odoo_takes():
    output = checked_output(GenerationOutput(NASTY, None, {"total_tokens": 2**60, "prompt_tokens": 4}))
    outcome = Processor({}, None, ProcessingConfig())._succeeded(_job(), "external", 1, output)
    (result,) = outcome.callbacks
    odoo_takes(result.path, result.body)
    assert result.body["output"] == "a\ufffdb\ufffdc\ufffdd"
    assert result.body["usage"] == {"prompt_tokens": 4}


@pytest.mark.parametrize(
    "signal",
    [
        Signal(kind="http", status=503, code=f"code{NASTY}", message=f"upstream said {NASTY}"),
        Signal(kind="k8s", reason=f"Reason{NASTY}" * 40, message=NASTY * 1000),
        Signal(kind="other", message="\ud800" * 5000),
    ],
)
def test_failure_bodies_carrying_the_providers_words_are_ones_odoo_takes(signal):
    verdict = classify(signal)
    detail = f"{verdict.error_type} on external after 1 attempt(s): {signal.message}"
    failure, notify = failure_callbacks(REQUEST_ID, "external", 1, signal, verdict, detail)
    odoo_takes(failure.path, failure.body)
    odoo_takes(notify.path, notify.body)
    assert "\ufffd" in failure.body["detail"]
    assert len(failure.body["error_code"]) <= 128 and len(failure.body["detail"]) <= 2000


@pytest.fixture
def reporter(odoo):
    rep = OdooReporter(ReporterConfig(odoo.url, SECRET, timeout=5, patience=2, backoff_initial=0.01))
    yield rep
    rep.close()


def test_any_backends_output_is_checked_before_it_becomes_a_result(odoo, reporter):
    backend = ScriptedBackend(
        default=GenerationOutput(NASTY, 123, {"total_tokens": 2**60, "prompt_tokens": 1})
    )
    job = _job()
    outcome = Processor({"external": backend}, reporter, fast_processing()).run(job)
    assert outcome.kind == SUCCEEDED
    reporter.deliver(outcome.callbacks)
    assert odoo.invalid == [], [c.answer for c in odoo.invalid]
    (result,) = odoo.calls_for(job.request_id, "/ai/generation/result")
    assert "output_url" not in result.body
    assert (result.body["output"], result.body["usage"]) == ("a\ufffdb\ufffdc\ufffdd", {"prompt_tokens": 1})


def test_a_backends_output_that_is_no_text_is_a_classified_failure_with_its_notify(odoo, reporter):
    backend = ScriptedBackend(default=GenerationOutput(42, None, {}))
    job = _job()
    outcome = Processor({"external": backend}, reporter, fast_processing()).run(job)
    assert (outcome.kind, outcome.error_type, outcome.attempts) == (FAILED_SYSTEM, "unknown", 2)
    reporter.deliver(outcome.callbacks)
    assert odoo.invalid == [], [c.answer for c in odoo.invalid]
    assert [c.path for c in odoo.calls_for(job.request_id) if c.path != "/ai/generation/progress"] == [
        "/ai/generation/failure",
        "/notify/generation-error",
    ]
    assert odoo.state(job.request_id).status == "failed"
