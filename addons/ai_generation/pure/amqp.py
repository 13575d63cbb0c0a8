"""Publishing AIGenerationJobRequested v1 to RabbitMQ with publisher confirms (pika, no Odoo).

The topology is declared idempotently on every connection, with exactly the arguments the worker
declares: RabbitMQ refuses a declare whose arguments differ from the existing queue's.
"""

import json
import logging

import pika
from pika.exceptions import AMQPError

_logger = logging.getLogger(__name__)
# pika logs every refused connection at ERROR from several modules; the outage is reported once, as a
# WARNING, by the caller (the request stays in the outbox), so pika's own connection noise is muted.
for _name in (
    "pika.adapters.utils.io_services_utils",
    "pika.adapters.utils.connection_workflow",
    "pika.adapters.blocking_connection",
):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

EXCHANGE = "ai.generation"
EXCHANGE_TYPE = "direct"
ROUTING_KEY = "job.requested"
QUEUE = "ai.generation.jobs"
DLQ = "ai.generation.jobs.dlq"
QUEUE_ARGUMENTS = {
    "x-queue-type": "quorum",
    "x-delivery-limit": 5,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": DLQ,
}
DLQ_ARGUMENTS = {"x-queue-type": "quorum"}
MESSAGE_TYPE = "AIGenerationJobRequested"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class PublishError(RuntimeError):
    """The broker could not be reached or did not confirm: the request stays in the outbox."""


def iso(dt):
    """UTC ISO 8601 with a Z (Odoo stores naive UTC datetimes)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_message(request_id, backend, model, task, prompt, params, attempt, deadline, created_at):
    return {
        "message_type": MESSAGE_TYPE,
        "version": 1,
        "generation_request_id": request_id,
        "backend": backend,
        "model": model,
        "task": task,
        "prompt": prompt,
        "params": params or {},
        "attempt": attempt,
        "deadline": iso(deadline),
        "created_at": iso(created_at),
    }


def connection_parameters(url, timeout=5.0):
    params = pika.URLParameters(url)
    # fail fast when the broker is down: the outbox cron tries again later
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.heartbeat = 30
    return params


def declare_topology(channel):
    channel.exchange_declare(exchange=EXCHANGE, exchange_type=EXCHANGE_TYPE, durable=True)
    channel.queue_declare(queue=DLQ, durable=True, arguments=DLQ_ARGUMENTS)
    channel.queue_declare(queue=QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key=ROUTING_KEY)


def publish_messages(url, messages, timeout=5.0):
    """Publish each message (a dict per job_requested.v1.json); the ids the broker confirmed.

    Stops at the first failure: the ids before it are confirmed, the rest stay for the next try.
    Raises PublishError when not even the connection could be made.
    """
    confirmed = []
    try:
        connection = pika.BlockingConnection(connection_parameters(url, timeout))
    except (AMQPError, OSError) as exc:
        raise PublishError(f"RabbitMQ unreachable: {exc.__class__.__name__}: {exc}") from exc
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        declare_topology(channel)
        for message in messages:
            request_id = message["generation_request_id"]
            properties = pika.BasicProperties(
                message_id=request_id,
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                type=MESSAGE_TYPE,
            )
            body = json.dumps(message, separators=(",", ":")).encode()
            try:
                # mandatory: an unroutable message is an error, not a silent loss
                channel.basic_publish(EXCHANGE, ROUTING_KEY, body, properties, mandatory=True)
            except (AMQPError, OSError) as exc:
                _logger.warning("publish of %s not confirmed: %s", request_id, exc.__class__.__name__)
                break
            confirmed.append(request_id)
    except (AMQPError, OSError) as exc:
        _logger.warning("RabbitMQ channel failed after %d confirms: %s", len(confirmed), exc)
    finally:
        try:
            if connection.is_open:
                connection.close()
        except (AMQPError, OSError):
            pass
    return confirmed
