"""Log lines are JSON with context fields; prompts and other user content only appear at DEBUG."""

import io
import json
import logging
import threading
import time

from tests.worker.helpers import SECRET, ScriptedBackend, fail, fast_processing, job_message
from worker.logs import configure
from worker.processing import Processor
from worker.reporting import OdooReporter, ReporterConfig


def lines(stream, handler):
    handler.flush()  # lines are written by the handler's own thread: wait for those logged so far
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_context_and_redaction_above_debug():
    stream = io.StringIO()
    handler = configure("DEBUG", stream)
    log = logging.getLogger("worker.test")
    log.warning("failed", extra={"request_id": "r-1", "attempt": 2, "prompt": "secret words"})
    log.debug("detail", extra={"prompt": "secret words"})
    warning, debug = lines(stream, handler)
    assert warning["level"] == "WARNING" and warning["request_id"] == "r-1" and warning["attempt"] == 2
    assert warning["prompt"] == "[redacted 12]"
    assert debug["prompt"] == "secret words"


def test_a_failing_job_logs_its_context_and_never_its_prompt_at_info(odoo):
    from worker.job import parse_job

    stream = io.StringIO()
    handler = configure("INFO", stream)
    prompt = "tell me the launch codes"
    job = parse_job(json.dumps(job_message(prompt)))
    backend = ScriptedBackend().on(
        "launch", fail(status=503, provider_request_id="req_abc", message=f"overloaded on '{prompt}'")
    )
    reporter = OdooReporter(ReporterConfig(odoo.url, SECRET))
    Processor({"external": backend}, reporter, fast_processing(max_attempts=2)).run(job)
    records = lines(stream, handler)
    assert prompt not in stream.getvalue()  # not even where the provider quoted it back
    failed = [r for r in records if r["message"] == "attempt failed"]
    assert [r["attempt"] for r in failed] == [1, 2]
    assert failed[0]["error_type"] == "provider_unavailable" and failed[0]["provider_status"] == 503
    assert failed[0]["provider_request_id"] == "req_abc" and failed[0]["backend"] == "external"
    assert failed[0]["request_id"] == job.request_id
    final = next(r for r in records if r["message"] == "job failed")
    assert final["error_type"] == "provider_unavailable" and final["attempt"] == 2
    assert all(r.get("prompt") in (None,) for r in records)  # no DEBUG line at INFO


class HeldStream(io.StringIO):
    """A stream whose writes wait until ``release`` is set: a slow terminal, a full pipe."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def write(self, text):
        self.release.wait(5)
        return super().write(text)


def test_a_log_call_does_not_wait_for_a_slow_stream_and_lines_keep_their_order():
    stream = HeldStream()
    handler = configure("INFO", stream)
    log = logging.getLogger("worker.test")
    started = time.monotonic()
    for n in range(5):
        log.info("line", extra={"n": n})
    assert time.monotonic() - started < 1.0  # the writes are held: only the writer thread waits for them
    assert stream.getvalue() == ""
    stream.release.set()
    assert [r["n"] for r in lines(stream, handler)] == list(range(5))


def test_closing_the_handler_writes_what_was_logged_before():
    stream = io.StringIO()
    handler = configure("INFO", stream)
    logging.getLogger("worker.test").error("last words", extra={"request_id": "r-9"})
    handler.close()  # what logging.shutdown() does at exit
    assert json.loads(stream.getvalue())["request_id"] == "r-9"


def test_an_ai_call_adds_no_line_of_the_http_client_at_info(fake_openai):
    from worker.backends.openai_backend import OpenAIBackend, OpenAIConfig
    from worker.job import parse_job

    stream = io.StringIO()
    handler = configure("INFO", stream)
    backend = OpenAIBackend(OpenAIConfig(base_url=fake_openai.base_url, api_key="sk-test"))
    backend.generate(parse_job(json.dumps(job_message())), timeout=5)
    assert lines(stream, handler) == []  # httpx2 logs "HTTP Request: POST ..." at INFO otherwise
