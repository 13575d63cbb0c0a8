"""The RabbitMQ side: consume jobs with pika, many in flight, ack only once the outcome is settled.

pika's BlockingConnection belongs to one thread (the one that calls ``run``). Jobs run in a thread
pool; when one is done its thread hands the ack/nack/publish back to the connection thread with
``add_callback_threadsafe``. prefetch = the in-flight limit = the pool size, so the broker never
gives the process more than it can run at once and nothing waits in a local queue.

A delivery tag belongs to its channel: after a reconnect the broker redelivers whatever was unacked,
so a job that finishes on a connection that is gone is simply not acked (Odoo's idempotent callbacks
make the second run harmless, and a request already terminal is skipped).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

from worker import topology
from worker.backoff import Backoff

log = logging.getLogger(__name__)


def delivery_count(headers) -> int:
    """The broker's x-delivery-count, 0 when absent or not a count. Anyone who may publish to the queue
    sets headers: a string or a float there raised in pika's callback and stopped the worker."""
    value = headers.get("x-delivery-count") if isinstance(headers, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, value)


# -- what a handled message asks the consumer to do -----------------------------------------------------


@dataclass(frozen=True)
class Ack:
    pass


@dataclass(frozen=True)
class Requeue:
    pass


@dataclass(frozen=True)
class DeadLetter:
    reason: str


@dataclass(frozen=True)
class Park:
    payload: dict[str, Any] = field(hash=False)


Disposition = Ack | Requeue | DeadLetter | Park


@dataclass(frozen=True)
class Delivery:
    body: bytes
    properties: pika.BasicProperties
    redelivered: bool
    delivery_count: int  # x-delivery-count of the quorum queue (0 on the first delivery)


Handler = Callable[[Delivery], Disposition]
Settled = Callable[[Delivery, Disposition, float], None]  # called after ack/publish, with seconds taken


@dataclass(frozen=True)
class ConsumerConfig:
    amqp_url: str
    max_in_flight: int = 128
    heartbeat: int = 30
    blocked_connection_timeout: float = 60.0
    reconnect_initial: float = 1.0
    reconnect_max: float = 30.0
    shutdown_grace: float = 30.0
    connection_name: str = "aigen-worker"


_CONNECTION_ERRORS = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.ChannelWrongStateError,
    ConnectionError,
    OSError,
)


def connection_parameters(url: str, **overrides) -> pika.URLParameters:
    params = pika.URLParameters(url)
    for name, value in overrides.items():
        setattr(params, name, value)
    return params


class Consumer:
    def __init__(
        self,
        config: ConsumerConfig,
        handler: Handler,
        *,
        on_settled: Settled | None = None,
        on_in_flight: Callable[[int], None] | None = None,
        abort: threading.Event | None = None,
    ):
        self.config = config
        self.handler = handler
        self.on_settled = on_settled or (lambda *_: None)
        self.on_in_flight = on_in_flight or (lambda _n: None)
        self.abort = abort or threading.Event()  # set at the end of the grace period: work gives up
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=config.max_in_flight, thread_name_prefix="job")
        self._in_flight: dict[int, Future] = {}
        self._generation = 0  # bumps on every connection: stale delivery tags are recognised
        self._connected = threading.Event()
        self._conn: pika.BlockingConnection | None = None

    # -- public ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask for a graceful stop (safe from a signal handler or another thread)."""
        self._stopping.set()

    @property
    def healthy(self) -> bool:
        return self._connected.is_set() and not self._stopping.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def run(self) -> None:
        """Consume until stop(); reconnects with backoff when the broker goes away."""
        failures = 0
        reconnect = Backoff(
            self.config.reconnect_initial, self.config.reconnect_max, self.config.reconnect_initial
        )
        try:
            while not self._stopping.is_set():
                generation = self._generation
                try:
                    self._run_connection()
                except _CONNECTION_ERRORS as exc:
                    self._connected.clear()
                    self._forget_in_flight()
                    # a connection that was up starts a new outage: back to the shortest delay
                    failures = 1 if self._generation != generation else failures + 1
                    delay = reconnect.delay(failures)
                    log.warning(
                        "broker connection lost; reconnecting",
                        extra={"error": f"{type(exc).__name__}: {exc}", "retry_in": round(delay, 2)},
                    )
                    self._stopping.wait(delay)
        finally:
            self._connected.clear()
            self.abort.set()
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one connection --------------------------------------------------------------------------------

    def _run_connection(self) -> None:
        cfg = self.config
        params = connection_parameters(
            cfg.amqp_url,
            heartbeat=cfg.heartbeat,
            blocked_connection_timeout=cfg.blocked_connection_timeout,
            client_properties={"connection_name": cfg.connection_name},
        )
        conn = pika.BlockingConnection(params)
        self._generation += 1
        generation = self._generation
        try:
            channel = conn.channel()
            topology.declare(channel)
            channel.basic_qos(prefetch_count=cfg.max_in_flight)
            publisher = conn.channel()  # own channel with confirms: a parked outcome is never lost
            publisher.confirm_delivery()
            self._conn, self._channel, self._publisher = conn, channel, publisher
            tag = channel.basic_consume(
                topology.JOBS_QUEUE, functools.partial(self._on_message, generation), auto_ack=False
            )
            self._connected.set()
            log.info("consuming", extra={"queue": topology.JOBS_QUEUE, "prefetch": cfg.max_in_flight})
            while not self._stopping.is_set():
                conn.process_data_events(time_limit=0.5)
            self._drain(conn, channel, tag)
        finally:
            self._connected.clear()
            if conn.is_open:
                with contextlib.suppress(*_CONNECTION_ERRORS):
                    conn.close()

    def _drain(self, conn, channel, consumer_tag: str) -> None:
        """Graceful stop: no new deliveries, let in-flight jobs finish, return the rest to the queue."""
        channel.basic_cancel(consumer_tag)
        grace_ends = time.monotonic() + self.config.shutdown_grace
        log.info("stopping: waiting for in-flight jobs", extra={"in_flight": len(self._in_flight)})
        while self._in_flight and time.monotonic() < grace_ends:
            conn.process_data_events(time_limit=0.2)
        self.abort.set()  # retry waits end now; anything still running will be redelivered
        for delivery_tag in list(self._in_flight):
            channel.basic_nack(delivery_tag, requeue=True)
        if self._in_flight:
            log.warning("returned unfinished jobs to the queue", extra={"count": len(self._in_flight)})
        self._in_flight.clear()
        self.on_in_flight(0)

    def _forget_in_flight(self) -> None:
        # their tags died with the channel; the broker requeues those messages by itself
        self._in_flight.clear()
        self.on_in_flight(0)

    # -- per message (connection thread) ---------------------------------------------------------------
    # what runs here must not raise: an exception leaves pika's callback and ends the worker's run

    def _on_message(self, generation: int, channel, method, properties, body: bytes) -> None:
        delivery = Delivery(
            body=body,
            properties=properties,
            redelivered=bool(method.redelivered),
            delivery_count=delivery_count(properties.headers),
        )
        future = self._pool.submit(self._work, generation, method.delivery_tag, delivery)
        self._in_flight[method.delivery_tag] = future
        self.on_in_flight(len(self._in_flight))

    # -- per message (pool thread) ---------------------------------------------------------------------

    def _work(self, generation: int, delivery_tag: int, delivery: Delivery) -> None:
        started = time.monotonic()
        try:
            disposition = self.handler(delivery)
        except Exception:  # a bug must not kill the worker: the broker's delivery limit bounds the retries
            log.exception("handler failed; returning the message to the queue")
            disposition = Requeue()
        settle = functools.partial(self._settle, generation, delivery_tag, delivery, disposition, started)
        conn = self._conn
        try:
            if conn is None or generation != self._generation:
                raise pika.exceptions.ConnectionWrongStateError("connection replaced")
            conn.add_callback_threadsafe(settle)
        except (pika.exceptions.ConnectionWrongStateError, *_CONNECTION_ERRORS):
            log.info("connection gone before the ack; the broker will redeliver", extra={"tag": delivery_tag})

    # -- settle (connection thread) --------------------------------------------------------------------

    def _settle(self, generation, delivery_tag, delivery: Delivery, disposition, started: float) -> None:
        if generation != self._generation or delivery_tag not in self._in_flight:
            return  # stale tag (reconnected) or already nacked at the end of the grace period
        channel = self._channel
        match disposition:
            case Ack():
                channel.basic_ack(delivery_tag)
            case Requeue():
                channel.basic_nack(delivery_tag, requeue=True)
            case DeadLetter(reason=reason):
                if self._publish_dead_letter(delivery, reason):
                    channel.basic_ack(delivery_tag)
                else:
                    channel.basic_nack(delivery_tag, requeue=True)
            case Park(payload=payload):
                if self._publish(
                    topology.PARKED_QUEUE, json.dumps(payload).encode(), _parked_properties(payload)
                ):
                    channel.basic_ack(delivery_tag)
                else:
                    channel.basic_nack(delivery_tag, requeue=True)
        del self._in_flight[delivery_tag]
        self.on_in_flight(len(self._in_flight))
        self.on_settled(delivery, disposition, time.monotonic() - started)

    def _publish_dead_letter(self, delivery: Delivery, reason: str) -> bool:
        props = delivery.properties
        headers = dict(props.headers or {})
        headers[topology.REJECT_REASON_HEADER] = reason[:1000]
        properties = pika.BasicProperties(
            content_type=props.content_type,
            message_id=props.message_id,
            type=props.type,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers=headers,
        )
        return self._publish(topology.DLQ, delivery.body, properties)

    def _publish(self, queue: str, body: bytes, properties: pika.BasicProperties) -> bool:
        try:
            self._publisher.basic_publish("", queue, body, properties, mandatory=True)
            return True
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            log.error("broker refused a publish", extra={"queue": queue, "error": str(exc)})
            return False


def _parked_properties(payload: dict) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json",
        message_id=str(payload.get("request_id", "")),
        type="AIGenerationOutcomeParked",
        delivery_mode=pika.DeliveryMode.Persistent,
    )
