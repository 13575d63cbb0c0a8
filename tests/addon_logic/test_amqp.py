import re
from datetime import datetime
from pathlib import Path

from aigen_pure import amqp, contracts

import aigen_contracts


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


def test_addon_reads_the_repo_schemas():
    assert contracts.load("params.json") == aigen_contracts.load("params.json")


def test_pure_holds_no_broker_io():
    """The Odoo-free package builds the message; publishing (pika) lives in the broker package."""
    pure_dir = Path(amqp.__file__).parent
    importing_pika = [
        p.name for p in pure_dir.glob("*.py") if re.search(r"^\s*(import|from) pika", p.read_text(), re.M)
    ]
    assert importing_pika == []
    assert not hasattr(amqp, "publish_messages")
