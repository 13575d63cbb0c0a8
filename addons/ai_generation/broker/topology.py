"""Where AIGenerationJobRequested v1 goes: the exchange, the queue and its dead-letter queue.

Declared with exactly the arguments the worker declares (worker/topology.py): RabbitMQ refuses a declare
whose arguments differ from the existing queue's.
"""

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


def declare(channel):
    """Idempotent: the same declares on every new connection."""
    channel.exchange_declare(exchange=EXCHANGE, exchange_type=EXCHANGE_TYPE, durable=True)
    channel.queue_declare(queue=DLQ, durable=True, arguments=DLQ_ARGUMENTS)
    channel.queue_declare(queue=QUEUE, durable=True, arguments=QUEUE_ARGUMENTS)
    channel.queue_bind(queue=QUEUE, exchange=EXCHANGE, routing_key=ROUTING_KEY)
