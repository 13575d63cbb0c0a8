"""Log lines are JSON with context fields; prompts and other user content only appear at DEBUG."""

import io
import json
import logging

from tests.worker.helpers import SECRET, ScriptedBackend, fail, fast_processing, job_message
from worker.logs import configure
from worker.processing import Processor
from worker.reporting import OdooReporter, ReporterConfig


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_context_and_redaction_above_debug():
    stream = io.StringIO()
    configure("DEBUG", stream)
    log = logging.getLogger("worker.test")
    log.warning("failed", extra={"request_id": "r-1", "attempt": 2, "prompt": "secret words"})
    log.debug("detail", extra={"prompt": "secret words"})
    warning, debug = lines(stream)
    assert warning["level"] == "WARNING" and warning["request_id"] == "r-1" and warning["attempt"] == 2
    assert warning["prompt"] == "[redacted 12]"
    assert debug["prompt"] == "secret words"


def test_a_failing_job_logs_its_context_and_never_its_prompt_at_info(odoo):
    from worker.job import parse_job

    stream = io.StringIO()
    configure("INFO", stream)
    prompt = "tell me the launch codes"
    job = parse_job(json.dumps(job_message(prompt)))
    backend = ScriptedBackend().on(
        "launch", fail(status=503, provider_request_id="req_abc", message=f"overloaded on '{prompt}'")
    )
    reporter = OdooReporter(ReporterConfig(odoo.url, SECRET))
    Processor({"external": backend}, reporter, fast_processing(max_attempts=2)).run(job)
    records = lines(stream)
    assert prompt not in stream.getvalue()  # not even where the provider quoted it back
    failed = [r for r in records if r["message"] == "attempt failed"]
    assert [r["attempt"] for r in failed] == [1, 2]
    assert failed[0]["error_type"] == "provider_unavailable" and failed[0]["provider_status"] == 503
    assert failed[0]["provider_request_id"] == "req_abc" and failed[0]["backend"] == "external"
    assert failed[0]["request_id"] == job.request_id
    final = next(r for r in records if r["message"] == "job failed")
    assert final["error_type"] == "provider_unavailable" and final["attempt"] == 2
    assert all(r.get("prompt") in (None,) for r in records)  # no DEBUG line at INFO
