from datetime import datetime

import pytest
from aigen_pure import amqp, contracts

import aigen_contracts
from tests.support.odoo import free_port


def test_message_follows_the_schema():
    message = amqp.build_message(
        "3b241101-e2bb-4255-8caf-4136c566a962",
        "external",
        "gpt-test",
        "text",
        "hi",
        {"max_tokens": 3},
        1,
        datetime(2026, 11, 24, 12, 15),
        datetime(2026, 11, 24, 12, 0),
    )
    assert list(contracts.validator("job_requested.v1.json").iter_errors(message)) == []
    assert message["deadline"] == "2026-11-24T12:15:00Z"


def test_queue_arguments_match_the_worker():
    worker_topology = pytest.importorskip("worker.topology")
    assert amqp.QUEUE_ARGUMENTS == worker_topology.JOBS_QUEUE_ARGUMENTS
    assert (amqp.EXCHANGE, amqp.ROUTING_KEY, amqp.QUEUE, amqp.DLQ) == (
        worker_topology.EXCHANGE,
        worker_topology.ROUTING_KEY,
        worker_topology.JOBS_QUEUE,
        worker_topology.DLQ,
    )


def test_unreachable_broker_is_a_publish_error():
    with pytest.raises(amqp.PublishError, match="unreachable"):
        amqp.publish_messages(f"amqp://guest:guest@127.0.0.1:{free_port()}/x", [], timeout=2)


def test_addon_reads_the_repo_schemas():
    assert contracts.load("params.json") == aigen_contracts.load("params.json")
