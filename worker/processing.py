"""One job, start to outcome: attempts on a backend, classified failures, backoff, fallback, deadline.

The result is an Outcome holding the callbacks Odoo must get (result; or failure then notify). The
callbacks are computed here and sent by the caller, so an outcome can be parked and replayed later
without repeating the AI call.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from worker.backends.base import Backend, GenerationOutput
from worker.backoff import Backoff
from worker.classification import Classification, Signal, classify, signal_from_exception, taxonomy
from worker.job import Job
from worker.reporting import (
    FAILURE,
    NOTIFY,
    PROGRESS,
    RESULT,
    Callback,
    CallbackRejected,
    is_terminal,
    new_event_id,
    now_iso,
)
from worker.sanitize import checked_output, clean_text

log = logging.getLogger(__name__)

SUCCEEDED = "succeeded"
FAILED_SYSTEM = "failed_system"
FAILED_USER = "failed_user"
ALREADY_TERMINAL = "already_terminal"  # Odoo says the request is finished: nothing to do
INTERRUPTED = "interrupted"  # the worker is stopping: the job goes back to the queue untouched
REFUSED = "refused"  # Odoo refused the progress callback for good (unknown request): no AI call

_DETAIL_LIMIT = 2000


@dataclass(frozen=True)
class ProcessingConfig:
    max_attempts: int = 3  # per backend, unless the taxonomy row sets its own (pod_error, unknown: 2)
    backoff: Backoff = field(default_factory=Backoff)
    request_timeout: float = 120.0  # bound of one attempt; the job's deadline bounds it further
    # backend name -> model to use there when the job's own backend fails on the system side
    fallback_models: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    kind: str  # one of the constants above
    request_id: str
    backend: str  # the backend that produced the outcome (the fallback one if it was used)
    attempts: int
    callbacks: tuple[Callback, ...] = ()
    classification: Classification | None = None
    reason: str | None = None  # why, for REFUSED

    @property
    def error_type(self) -> str | None:
        return self.classification.error_type if self.classification else None


class FailureSink:
    """What the alert monitor offers (worker.alerting.AlertMonitor); a no-op when alerts are off."""

    def record_failure(self, backend: str, classification: Classification, request_id: str) -> None:
        pass

    def record_success(self, backend: str) -> None:
        pass


class Processor:
    def __init__(
        self,
        backends: Mapping[str, Backend],
        reporter,  # worker.reporting.OdooReporter (its progress() and nothing else is used here)
        config: ProcessingConfig,
        *,
        monitor: FailureSink | None = None,
        stop: threading.Event | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.backends = backends
        self.reporter = reporter
        self.config = config
        self.monitor = monitor or FailureSink()
        self.stop = stop or threading.Event()  # set when in-flight work must give up (end of grace)
        self.now = now

    def _remaining(self, job: Job) -> float:
        return (job.deadline - self.now()).total_seconds()

    def run(self, job: Job) -> Outcome:
        ctx = {"request_id": job.request_id}
        if self._remaining(job) <= 0:
            signal = Signal(kind="deadline", message="the job's deadline passed before the worker started it")
            return self._failed(job, job.backend, 1, signal, classify(signal))

        backend_name, attempt, on_backend = job.backend, 0, 0
        current_job, fell_back = job, False
        while True:
            attempt += 1
            on_backend += 1
            ctx.update(backend=backend_name, attempt=attempt)
            try:
                answer = self.reporter.progress(self._progress(job, backend_name, attempt))
            except CallbackRejected as exc:
                log.error("odoo refused the progress callback; no AI call", extra={**ctx, "error": str(exc)})
                return Outcome(REFUSED, job.request_id, backend_name, attempt - 1, reason=str(exc))
            if is_terminal(answer):
                log.info("request already terminal in Odoo; skipping", extra=ctx)
                return Outcome(ALREADY_TERMINAL, job.request_id, backend_name, attempt - 1)
            tried = self._attempt(job, current_job, backend_name, ctx)
            if isinstance(tried, GenerationOutput):
                return self._succeeded(job, backend_name, attempt, tried)
            signal, verdict = tried
            cap = verdict.max_attempts or self.config.max_attempts
            if verdict.retryable and on_backend < cap:
                delay = self.config.backoff.delay(on_backend, verdict.retry_after)
                if delay < self._remaining(job):
                    if self.stop.wait(delay):
                        return Outcome(INTERRUPTED, job.request_id, backend_name, attempt)
                    continue
                log.info("no time left for another attempt before the deadline", extra=ctx)
            fallback = None if fell_back else self._fallback_for(backend_name, verdict)
            if fallback is not None and self._remaining(job) > 0:
                log.info("falling back to the other backend", extra={**ctx, "fallback": fallback[0]})
                backend_name, model = fallback
                current_job = dataclasses.replace(job, backend=backend_name, model=model)
                on_backend, fell_back = 0, True
                continue
            return self._failed(job, backend_name, attempt, signal, verdict)

    def _attempt(
        self, job: Job, current_job: Job, backend_name: str, ctx: dict
    ) -> GenerationOutput | tuple[Signal, Classification]:
        """One AI call: its output, or the failure as (signal, classification), recorded and logged."""
        remaining = self._remaining(job)
        backend = self.backends.get(backend_name)
        started = time.monotonic()
        try:
            if remaining <= 0:
                raise _DeadlineReached
            if backend is None:
                raise _BackendMissing(backend_name)
            log.debug("attempt", extra={**ctx, "prompt": job.prompt, "params": job.params})
            # checked here, inside the attempt: an answer Odoo's contract refuses is a failure of the
            # provider's, retried and reported like any, not a result Odoo answers 400 (dead-lettered)
            output = checked_output(
                backend.generate(current_job, timeout=min(self.config.request_timeout, remaining))
            )
        except Exception as exc:
            signal = self._signal(exc, job)
            verdict = classify(signal)
            self.monitor.record_failure(backend_name, verdict, job.request_id)
            log.warning(
                "attempt failed",
                extra={
                    **ctx,
                    "error_type": verdict.error_type,
                    "error_code": verdict.error_code,
                    "side": verdict.side,
                    "retryable": verdict.retryable,
                    "provider_status": signal.status,
                    "provider_request_id": signal.provider_request_id,
                    "error": _without_prompt(signal.message, job),
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
            return signal, verdict
        log.info("attempt succeeded", extra={**ctx, "seconds": round(time.monotonic() - started, 3)})
        return output

    # -- helpers ---------------------------------------------------------------------------------------

    def _signal(self, exc: BaseException, job: Job) -> Signal:
        if isinstance(exc, _DeadlineReached):
            return Signal(kind="deadline", message="the job's deadline passed")
        if isinstance(exc, _BackendMissing):
            return Signal(kind="other", message=f"backend {exc.args[0]!r} is not enabled on this worker")
        signal = signal_from_exception(exc)
        # a client timeout cut short by the job's deadline is the worker deadline (model_timeout)
        if signal.kind == "timeout" and self._remaining(job) <= 0:
            return dataclasses.replace(signal, kind="deadline")
        return signal

    def _fallback_for(self, backend_name: str, verdict: Classification) -> tuple[str, str] | None:
        """(backend, model) to try next, once, for a system-side failure; never for a user error."""
        if verdict.side != "system":
            return None
        for other, model in self.config.fallback_models.items():
            if other != backend_name and other in self.backends:
                return other, model
        return None

    @staticmethod
    def _progress(job: Job, backend: str, attempt: int) -> Callback:
        body = {
            "generation_request_id": job.request_id,
            "event_id": new_event_id("progress"),
            "state": "running",
            "attempt": attempt,
            "backend": backend,
            "occurred_at": now_iso(),
        }
        if attempt > 1:
            body["detail"] = f"attempt {attempt}"
        return Callback(PROGRESS, body)

    def _succeeded(self, job: Job, backend: str, attempt: int, output: GenerationOutput) -> Outcome:
        # ``output`` went through checked_output in _attempt: its values are the contract's
        body = {
            "generation_request_id": job.request_id,
            "event_id": new_event_id("result"),
            "usage": dict(output.usage),
            "backend": backend,
            "attempt": attempt,
            "occurred_at": now_iso(),
        }
        if output.output is not None:
            body["output"] = output.output
        if output.output_url:
            body["output_url"] = output.output_url
        if "output" not in body and "output_url" not in body:
            body["output"] = ""
        return Outcome(SUCCEEDED, job.request_id, backend, attempt, (Callback(RESULT, body),))

    def result_refused_as_too_large(self, job: Job, succeeded: Outcome) -> Outcome:
        """The failure to report instead of a result Odoo refused for its size (413): the provider wrote
        more than Odoo keeps (ai_generation.max_result_bytes), which is not the user's fault."""
        signal, verdict = TOO_LARGE_SIGNAL, classify(TOO_LARGE_SIGNAL)
        self.monitor.record_failure(succeeded.backend, verdict, job.request_id)
        return self._failed(job, succeeded.backend, succeeded.attempts, signal, verdict)

    def result_taken(self, succeeded: Outcome) -> None:
        """The AI's success, for the alert monitor (it ends the backend's streak): told once Odoo took
        the result without failing the request on it, or once the result is parked. Not when the AI
        answers, since Odoo may fail the request on the result; not when a parked one is drained
        later, since Odoo being down is no failure of the backend's and a success drained hours later
        must not end a streak that is building now."""
        self.monitor.record_success(succeeded.backend)

    def result_failed_by_odoo(self, job: Job, succeeded: Outcome, answer: dict) -> Outcome:
        """What a result became when Odoo failed the request on it instead of keeping it (a result over
        ai_generation.max_result_bytes that its body limit let through): Odoo already told the owner,
        so no callback is left to send, but the alert monitor and the metrics count the failure."""
        verdict = odoo_failure_verdict(answer)
        self.monitor.record_failure(succeeded.backend, verdict, job.request_id)
        log.error(
            "odoo failed the request on its result",
            extra={
                "request_id": job.request_id,
                "backend": succeeded.backend,
                "error_type": verdict.error_type,
            },
        )
        kind = FAILED_USER if verdict.side == "user" else FAILED_SYSTEM
        return Outcome(kind, job.request_id, succeeded.backend, succeeded.attempts, (), verdict)

    def _failed(
        self, job: Job, backend: str, attempt: int, signal: Signal, verdict: Classification
    ) -> Outcome:
        cause = signal.message or signal.kind
        detail = _without_prompt(
            f"{verdict.error_type} on {backend} after {attempt} attempt(s): {cause}", job
        )
        callbacks = failure_callbacks(job.request_id, backend, attempt, signal, verdict, detail)
        kind = FAILED_USER if verdict.side == "user" else FAILED_SYSTEM
        log.error(
            "job failed",
            extra={
                "request_id": job.request_id,
                "backend": backend,
                "attempt": attempt,
                "error_type": verdict.error_type,
                "error_code": verdict.error_code,
                "side": verdict.side,
                "provider_status": signal.status,
                "provider_request_id": signal.provider_request_id,
            },
        )
        return Outcome(kind, job.request_id, backend, attempt, callbacks, verdict)


TOO_LARGE_SIGNAL = Signal(kind="result_too_large", message="odoo refused the result as too large (413)")


def failed_by_odoo(answer: dict | None) -> bool:
    """Whether Odoo's answer to a result callback says it failed the request on that result rather
    than keeping it. ``failed_by_this_event`` says so for a repeat whose first answer was lost too; an
    Odoo without it said so only by a first answer (failed, not a duplicate)."""
    if not answer or answer.get("status") != "failed":
        return False
    return bool(answer.get("failed_by_this_event", not answer.get("duplicate")))


def odoo_failure_verdict(answer: dict) -> Classification:
    """The taxonomy's row for the error type Odoo failed the request with (schemas/callback_response.json);
    an Odoo that did not name it did so for one reason only."""
    error_type = answer.get("error_type") or TOO_LARGE_SIGNAL.kind
    signal = Signal(kind=error_type, message="odoo failed the request on its result")
    return taxonomy().classification_of(error_type, signal)


def failure_callbacks(
    request_id: str, backend: str, attempt: int, signal: Signal, verdict: Classification, detail: str
) -> tuple[Callback, Callback]:
    """A failure's two callbacks: the failure itself, then the words the owner reads (notify)."""
    failure = {
        "generation_request_id": request_id,
        "event_id": new_event_id("failure"),
        "error_type": verdict.error_type,
        "is_system_error": verdict.side == "system",
        "is_user_error": verdict.side == "user",
        # both carry the provider's words (its error code, its message): cleaned, then cut to the schema
        "error_code": clean_text(verdict.error_code)[:128],
        "detail": clean_text(detail)[:_DETAIL_LIMIT],
        "backend": backend,
        "attempt": attempt,
        "occurred_at": now_iso(),
        "provider_status": signal.status,
        "provider_request_id": signal.provider_request_id,
    }
    notify = {
        "generation_request_id": request_id,
        "event_id": new_event_id("notify"),
        "error_type": verdict.error_type,
        "user_message": verdict.user_message,
    }
    if verdict.side == "user":
        notify["specific_guidance"] = verdict.specific_guidance
    else:
        notify["retry_suggestion"] = verdict.retry_suggestion
    return Callback(FAILURE, failure), Callback(NOTIFY, notify)


def too_large_failure_of(result: Callback) -> tuple[Callback, Callback]:
    """The failure callbacks that replace a result callback Odoo refused for its size (413), from the
    result's own body: a parked outcome has no job to build them from."""
    body = result.body
    verdict = classify(TOO_LARGE_SIGNAL)
    backend, attempt = body["backend"], body["attempt"]
    detail = f"{verdict.error_type} on {backend} after {attempt} attempt(s): {TOO_LARGE_SIGNAL.message}"
    return failure_callbacks(
        body["generation_request_id"], backend, attempt, TOO_LARGE_SIGNAL, verdict, detail
    )


def _without_prompt(text: str | None, job: Job) -> str | None:
    """A provider may quote the prompt back in its error message: never pass it on (logs, Odoo)."""
    prompt = job.prompt
    if not text or not prompt or len(prompt) < 8:
        return text
    text = text.replace(prompt, "[prompt]")
    # the message is cut short (classification keeps 500 characters): a quote of a long prompt ends it
    # as the prompt's beginning, which the replace above does not see
    for size in range(min(len(text), len(prompt) - 1), _QUOTE_MIN - 1, -1):
        if prompt.startswith(text[-size:]):
            return text[:-size] + "[prompt]"
    return text


_QUOTE_MIN = 16  # a shorter common tail is as likely the provider's own words


class _DeadlineReached(Exception):
    pass


class _BackendMissing(Exception):
    pass
