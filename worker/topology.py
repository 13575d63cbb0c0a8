"""The RabbitMQ names and queue arguments of DESIGN, declared identically by Odoo and the worker.

RabbitMQ refuses a re-declaration with other arguments (PRECONDITION_FAILED), so these values are a
contract with the Odoo addon: change them on both sides or not at all.
"""

from __future__ import annotations

EXCHANGE = "ai.generation"
ROUTING_KEY = "job.requested"
JOBS_QUEUE = "ai.generation.jobs"
DLQ = "ai.generation.jobs.dlq"
PARKED_QUEUE = "ai.generation.outcomes.parked"  # outcomes Odoo could not take yet (worker-only)

JOBS_QUEUE_ARGUMENTS = {
    "x-queue-type": "quorum",
    "x-delivery-limit": 5,
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": DLQ,
}
QUORUM = {"x-queue-type": "quorum"}

#: header carrying why the worker dead-lettered a message itself
REJECT_REASON_HEADER = "x-aigen-reject-reason"


def declare(channel) -> None:
    """Declare exchange, job queue, binding, DLQ and the parked-outcomes queue (idempotent)."""
    channel.exchange_declare(EXCHANGE, exchange_type="direct", durable=True)
    channel.queue_declare(DLQ, durable=True, arguments=QUORUM)
    channel.queue_declare(JOBS_QUEUE, durable=True, arguments=JOBS_QUEUE_ARGUMENTS)
    channel.queue_bind(JOBS_QUEUE, EXCHANGE, routing_key=ROUTING_KEY)
    channel.queue_declare(PARKED_QUEUE, durable=True, arguments=QUORUM)
