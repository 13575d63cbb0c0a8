"""One delivery, start to disposition: parse, process, report; what to tell the broker afterwards.

Kept apart from the pika code so it can be read (and tested) as plain logic: the consumer only acts on
the Disposition returned here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from worker.consumer import Ack, DeadLetter, Delivery, Disposition, Park, Requeue
from worker.job import InvalidJob, parse_job
from worker.parking import parked_payload
from worker.processing import ALREADY_TERMINAL, INTERRUPTED, REFUSED, SUCCEEDED, Processor, failed_by_odoo
from worker.reporting import CallbackRejected, OdooReporter, OdooUnavailable

log = logging.getLogger(__name__)

#: observe(outcome, backend, error_type, seconds); outcome as in worker.metrics.observe_job
Observe = Callable[[str, str, str | None, float], None]


def _backend_hint(body: bytes) -> str:
    try:
        value = json.loads(body).get("backend")
    except (ValueError, AttributeError):
        return "unknown"
    return value if value in ("external", "internal") else "unknown"


class JobPipeline:
    def __init__(self, processor: Processor, reporter: OdooReporter, observe: Observe | None = None):
        self.processor = processor
        self.reporter = reporter
        self.observe = observe or (lambda *_: None)

    def __call__(self, delivery: Delivery) -> Disposition:
        started = time.monotonic()
        try:
            job = parse_job(delivery.body)
        except InvalidJob as exc:
            log.error(
                "invalid job message; dead-lettered",
                extra={"request_id": exc.request_id, "reason": exc.reason, "body": delivery.body[:2000]},
            )
            self.observe("dead_lettered", _backend_hint(delivery.body), None, time.monotonic() - started)
            return DeadLetter(exc.reason)

        log.info(
            "job received",
            extra={
                "request_id": job.request_id,
                "backend": job.backend,
                "model": job.model,
                "task": job.task,
                "redelivered": delivery.redelivered,
                "delivery_count": delivery.delivery_count,
            },
        )
        outcome = self.processor.run(job)
        if outcome.kind == INTERRUPTED:
            return Requeue()
        if outcome.kind == ALREADY_TERMINAL:
            return Ack()
        if outcome.kind == REFUSED:
            self.observe("dead_lettered", outcome.backend, None, time.monotonic() - started)
            return DeadLetter(f"odoo refused the job's progress callback: {outcome.reason}")
        try:
            try:
                answers = self.reporter.deliver(outcome.callbacks)
                if outcome.kind == SUCCEEDED and failed_by_odoo(answers[0]):
                    outcome = self.processor.result_failed_by_odoo(job, outcome, answers[0])
                elif outcome.kind == SUCCEEDED:
                    self.processor.result_taken(outcome)
            except CallbackRejected as exc:
                if not (exc.status == 413 and outcome.kind == SUCCEEDED):
                    raise
                log.error(
                    "odoo refused the result as too large; reporting a failure instead",
                    extra={"request_id": job.request_id, "error": str(exc)},
                )
                outcome = self.processor.result_refused_as_too_large(job, outcome)
                self.reporter.deliver(outcome.callbacks)
        except OdooUnavailable as exc:
            if outcome.kind == SUCCEEDED:
                self.processor.result_taken(outcome)
            log.error(
                "odoo unavailable; outcome parked",
                extra={"request_id": job.request_id, "outcome": outcome.kind, "error": str(exc)},
            )
            self.observe("parked", outcome.backend, outcome.error_type, time.monotonic() - started)
            return Park(parked_payload(outcome, str(exc)))
        except CallbackRejected as exc:
            log.error(
                "odoo refused the outcome; dead-lettered",
                extra={"request_id": job.request_id, "outcome": outcome.kind, "error": str(exc)},
            )
            self.observe("dead_lettered", outcome.backend, outcome.error_type, time.monotonic() - started)
            return DeadLetter(f"odoo refused the outcome ({outcome.kind}): {exc}")
        self.observe(outcome.kind, outcome.backend, outcome.error_type, time.monotonic() - started)
        log.info(
            "job settled",
            extra={
                "request_id": job.request_id,
                "outcome": outcome.kind,
                "backend": outcome.backend,
                "error_type": outcome.error_type,
                "attempt": outcome.attempts,
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        return Ack()
