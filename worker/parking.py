"""Outcomes Odoo could not take in time wait in a durable queue; a drainer delivers them later.

Parking is how "never ack before Odoo has it" and "never block the queue on a dead Odoo" fit
together: the computed callbacks (with their event ids) are published, with publisher confirms, to
``ai.generation.outcomes.parked`` and only then the job is acked. The drainer replays exactly those
bodies once Odoo answers; the AI call is never repeated and a repeat delivery is a harmless duplicate.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import threading
import time
from typing import Any

import pika
import pika.exceptions

from worker import topology
from worker.classification import classify
from worker.consumer import connection_parameters
from worker.processing import (
    TOO_LARGE_SIGNAL,
    FailureSink,
    Outcome,
    failed_by_odoo,
    odoo_failure_verdict,
    too_large_failure_of,
)
from worker.reporting import (
    FAILURE,
    NOTIFY,
    PROGRESS,
    RESULT,
    Callback,
    CallbackRejected,
    OdooReporter,
    OdooUnavailable,
    now_iso,
)

log = logging.getLogger(__name__)

_FAILURES_REMEMBERED = 1024
CALLBACK_PATHS = frozenset({PROGRESS, RESULT, FAILURE, NOTIFY})


def parked_payload(outcome: Outcome, reason: str) -> dict[str, Any]:
    return {
        "request_id": outcome.request_id,
        "outcome": outcome.kind,
        "backend": outcome.backend,
        "error_type": outcome.error_type,
        "callbacks": [cb.to_json() for cb in outcome.callbacks],
        "parked_at": now_iso(),
        "reason": reason[:500],
    }


def callbacks_of(payload: dict[str, Any]) -> list[Callback]:
    """The parked callbacks; ValueError for one that is not a callback of the worker's (anyone who may
    publish to the vhost can park a message: a path with a space was a transport error, requeued forever)."""
    callbacks = [Callback(item["path"], item["body"]) for item in payload["callbacks"]]
    for callback in callbacks:
        if callback.path not in CALLBACK_PATHS or not isinstance(callback.body, dict):
            raise ValueError(f"not a callback of the worker's: {str(callback.path)[:100]!r}")
    return callbacks


class ParkedDrainer:
    """A thread with its own connection: takes one parked outcome at a time and delivers it."""

    def __init__(
        self,
        amqp_url: str,
        reporter: OdooReporter,
        *,
        interval: float = 5.0,
        max_interval: float = 60.0,
        stop: threading.Event | None = None,
        connection_name: str = "aigen-worker-drainer",
        monitor=None,  # the alert monitor (worker.processing.FailureSink's methods): failures it reports
    ):
        self.amqp_url = amqp_url
        self.reporter = reporter
        self.interval = interval
        self.max_interval = max_interval
        self.stop_event = stop or threading.Event()
        self.connection_name = connection_name
        self.monitor = monitor or FailureSink()
        self.delivered = 0
        # result events whose failure the monitor was told: a parked outcome redelivered after the broker
        # dropped before its ack is answered "failed by this event" again, and is one failure, not two
        self._failures_told: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._thread = threading.Thread(target=self._run, name="parked-drainer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        wait = self.interval
        conn = channel = None
        while not self.stop_event.is_set():
            try:
                if conn is None or not conn.is_open:
                    conn, channel = self._connect()
                wait = self._drain_once(channel, wait)
                self._pause(conn, wait)
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("parked drainer lost the broker", extra={"error": f"{type(exc).__name__}: {exc}"})
                conn = None
                wait = min(self.max_interval, wait * 2)
                self.stop_event.wait(wait)
        if conn is not None and conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                conn.close()

    def _connect(self):
        params = connection_parameters(
            self.amqp_url, heartbeat=30, client_properties={"connection_name": self.connection_name}
        )
        conn = pika.BlockingConnection(params)
        channel = conn.channel()
        topology.declare(channel)
        channel.confirm_delivery()
        return conn, channel

    def _pause(self, conn, seconds: float) -> None:
        """Wait ``seconds`` while keeping the connection's heartbeats going; ends early on stop."""
        ends = time.monotonic() + seconds
        while not self.stop_event.is_set() and (left := ends - time.monotonic()) > 0:
            conn.process_data_events(time_limit=min(1.0, left))

    def _deliver(self, callbacks: list[Callback]) -> None:
        try:
            answers = self.reporter.deliver(callbacks, patience=0)
        except CallbackRejected as exc:
            # as JobPipeline does: a result refused for its size is reported as the free failure
            result = next((cb for cb in callbacks if cb.path == RESULT), None)
            if exc.status != 413 or exc.path != RESULT or result is None:
                raise
            request_id = result.body.get("generation_request_id")
            log.error(
                "parked result refused as too large; reporting a failure instead",
                extra={"request_id": request_id, "error": str(exc)},
            )
            self.reporter.deliver(list(too_large_failure_of(result)), patience=0)
            self.monitor.record_failure(result.body["backend"], classify(TOO_LARGE_SIGNAL), request_id)
            return
        result_answers = [a for cb, a in zip(callbacks, answers, strict=True) if cb.path == RESULT]
        if not result_answers or not failed_by_odoo(result_answers[0]):
            return  # its success was told when it was parked (Processor.result_taken)
        result = next(cb for cb in callbacks if cb.path == RESULT)
        request_id = result.body.get("generation_request_id")
        log.error("odoo failed the request on its parked result", extra={"request_id": request_id})
        if self._told_before(result.body.get("event_id")):
            return
        verdict = odoo_failure_verdict(result_answers[0])
        self.monitor.record_failure(result.body["backend"], verdict, request_id)

    def _told_before(self, event_id: str | None) -> bool:
        if event_id is None:
            return False
        if event_id in self._failures_told:
            return True
        self._failures_told[event_id] = None
        if len(self._failures_told) > _FAILURES_REMEMBERED:
            self._failures_told.popitem(last=False)
        return False

    def _drain_once(self, channel, wait: float) -> float:
        """Deliver parked outcomes until the queue is empty or Odoo fails; returns the next pause."""
        while not self.stop_event.is_set():
            method, _properties, body = channel.basic_get(topology.PARKED_QUEUE, auto_ack=False)
            if method is None:
                return self.interval
            try:
                payload = json.loads(body)
                self._deliver(callbacks_of(payload))
            except OdooUnavailable as exc:
                channel.basic_nack(method.delivery_tag, requeue=True)
                log.info("odoo still unavailable; parked outcomes wait", extra={"error": str(exc)})
                return min(self.max_interval, max(self.interval, wait * 2))
            except (CallbackRejected, ValueError, KeyError, TypeError, RecursionError) as exc:
                # cannot ever be delivered: keep it, with the reason, where people look
                headers = {topology.REJECT_REASON_HEADER: f"parked outcome refused: {exc}"[:1000]}
                channel.basic_publish(
                    "",
                    topology.DLQ,
                    body,
                    pika.BasicProperties(
                        content_type="application/json",
                        headers=headers,
                        delivery_mode=pika.DeliveryMode.Persistent,
                    ),
                )
                channel.basic_ack(method.delivery_tag)
                log.error("parked outcome refused by odoo; moved to the DLQ", extra={"error": str(exc)})
                continue
            channel.basic_ack(method.delivery_tag)
            self.delivered += 1
            log.info(
                "parked outcome delivered",
                extra={"request_id": payload.get("request_id"), "outcome": payload.get("outcome")},
            )
        return self.interval
