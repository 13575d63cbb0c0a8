"""A long-lived AMQP connection for publishing jobs with publisher confirms (pika, no Odoo).

One connection serves many publishes: it is opened on the first one, with confirms enabled and the
topology declared once, and kept. A connection the broker dropped is noticed (on the next publish or
while heartbeats are served) and opened again; after a failed attempt to connect, the next one waits
for a growing backoff, so an outage costs one connection attempt per backoff, not one per request.

pika connections are not thread-safe: a Publisher belongs to the one thread that uses it.
"""

import json
import logging
import os
import random
import time

import pika
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from pika.exceptions import AMQPError, NackError, UnroutableError

from . import topology

_logger = logging.getLogger(__name__)
# pika logs every refused connection at ERROR from several modules; the outage is reported once, as a
# WARNING, by the caller (the request stays in the outbox), so pika's own connection noise is muted.
for _name in (
    "pika.adapters.utils.io_services_utils",
    "pika.adapters.utils.connection_workflow",
    "pika.adapters.blocking_connection",
):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

DEFAULT_TIMEOUT = 5.0
DEFAULT_HEARTBEAT = 30
MIN_BACKOFF = 0.5
MAX_BACKOFF = 10.0


class PublishError(RuntimeError):
    """The broker could not be reached or did not confirm: the request stays in the outbox."""


def connection_parameters(url, timeout=DEFAULT_TIMEOUT, heartbeat=DEFAULT_HEARTBEAT, name=None):
    params = pika.URLParameters(url)
    # fail fast when the broker is down: the caller's backoff (or the outbox cron) tries again later
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.heartbeat = heartbeat
    if name:
        params.client_properties = {"connection_name": name}
    return params


class Publisher:
    """Publishes job messages over one kept connection; ``publish`` returns the ids the broker confirmed."""

    def __init__(
        self,
        url=None,
        *,
        timeout=DEFAULT_TIMEOUT,
        heartbeat=DEFAULT_HEARTBEAT,
        name=None,
        min_backoff=MIN_BACKOFF,
        max_backoff=MAX_BACKOFF,
    ):
        self.url = url
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.name = name or f"ai_generation publisher pid={os.getpid()}"
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self.connections_opened = 0  # how many times a connection was set up (tests and logs read it)
        self._connection = None
        self._channel = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""

    # ------------------------------------------------------------------ connection
    @property
    def is_connected(self):
        return self._channel is not None and self._channel.is_open and self._connection.is_open

    def use(self, url):
        """Publish to ``url`` from now on; a new URL closes the old connection and forgets its backoff."""
        if url != self.url:
            self.close()
            self.url = url
            self._failures, self._retry_at = 0, 0.0

    def retry_in(self):
        """Seconds until the next connection attempt is allowed (0 when connected or not backing off)."""
        if self.is_connected:
            return 0.0
        return max(0.0, self._retry_at - time.monotonic())

    def _connect(self):
        if self.is_connected:
            return self._channel
        self._drop()
        wait = self.retry_in()
        if wait > 0:
            raise PublishError(f"RabbitMQ unreachable: {self._last_error}; next try in {wait:.1f} s")
        if not self.url:
            raise PublishError("RabbitMQ unreachable: no AMQP URL is set")
        connection = None
        try:
            connection = pika.BlockingConnection(
                connection_parameters(self.url, self.timeout, self.heartbeat, self.name)
            )
            channel = connection.channel()
            channel.confirm_delivery()
            topology.declare(channel)
        # a broker that accepts TCP but never answers ends in AMQPConnectorStackTimeout, not an AMQPError
        except (AMQPError, AMQPConnectorException, OSError) as exc:
            self._close_quietly(connection)
            self._failures += 1
            backoff = min(self.max_backoff, self.min_backoff * 2 ** (self._failures - 1))
            self._retry_at = time.monotonic() + backoff * random.uniform(0.8, 1.2)
            self._last_error = f"{exc.__class__.__name__}: {exc}"[:200]
            raise PublishError(f"RabbitMQ unreachable: {self._last_error}") from exc
        self._connection, self._channel = connection, channel
        self._failures, self._retry_at = 0, 0.0
        self.connections_opened += 1
        _logger.debug("%s: connection %d open", self.name, self.connections_opened)
        return channel

    def _drop(self):
        connection, self._connection, self._channel = self._connection, None, None
        self._close_quietly(connection)

    @staticmethod
    def _close_quietly(connection):
        try:
            if connection is not None and connection.is_open:
                connection.close()
        except (AMQPError, OSError) as exc:  # closing a broken connection: nothing left to save
            _logger.debug("closing the broker connection failed: %s", exc)

    def close(self):
        self._drop()

    def serve_heartbeats(self):
        """Let the idle connection answer heartbeats (and notice that the broker dropped it)."""
        if self._connection is None:
            return
        try:
            self._connection.process_data_events(time_limit=0)
        except (AMQPError, OSError) as exc:
            _logger.info("%s: connection lost while idle (%s); the next publish reconnects", self.name, exc)
            self._drop()

    # ------------------------------------------------------------------ publishing
    def publish(self, messages):
        """Publish each message (a dict per job_requested.v1.json); the ids the broker confirmed, in order.

        Stops at the first message not confirmed: the ones before it are confirmed, the rest stay for the
        next try. A connection that was kept from an earlier call and turns out dead is opened again once.
        Raises PublishError when not even the connection could be made.
        """
        messages = list(messages)
        confirmed = []
        if not messages:
            return confirmed
        kept = self.is_connected
        channel = self._connect()
        index = 0
        while index < len(messages):
            message = messages[index]
            request_id = message["generation_request_id"]
            properties = pika.BasicProperties(
                message_id=request_id,
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                type=message["message_type"],
            )
            body = json.dumps(message, separators=(",", ":")).encode()
            try:
                # mandatory: an unroutable message is an error, not a silent loss
                channel.basic_publish(
                    topology.EXCHANGE, topology.ROUTING_KEY, body, properties, mandatory=True
                )
            except (UnroutableError, NackError) as exc:
                _logger.warning("publish of %s not confirmed: %s", request_id, exc.__class__.__name__)
                break
            except (AMQPError, OSError) as exc:
                self._drop()
                if not kept:
                    _logger.warning(
                        "RabbitMQ connection failed after %d confirms: %s",
                        len(confirmed),
                        exc.__class__.__name__,
                    )
                    break
                # the kept connection died since its last use (broker restart, idle cut): open a new one
                kept = False
                _logger.info("%s: kept connection lost (%s); reconnecting", self.name, exc.__class__.__name__)
                try:
                    channel = self._connect()
                except PublishError:
                    if confirmed:
                        break
                    raise
                continue
            confirmed.append(request_id)
            index += 1
        return confirmed
