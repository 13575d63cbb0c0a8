"""Point 4: publish after commit, outbox while RabbitMQ is unreachable, nothing for a rollback.

A real Odoo server on a committed database and the real broker, in a throwaway vhost.
"""

import json

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import aigen_contracts
from tests.odoo.setup_scripts import ROLLED_BACK_REQUEST, SETUP
from tests.support.odoo import OdooServer, free_port, json_lines, psql, require_odoo, throwaway_database
from tests.support.rabbit import throwaway_vhost

pytestmark = [pytest.mark.odoo, pytest.mark.slow]

QUEUE = "ai.generation.jobs"
BODY = {"backend": "external", "model": "gpt-test", "prompt": "a haiku", "params": {"max_tokens": 20}}


def state_of(db, request_id):
    return psql(db, f"SELECT state, dispatch_state FROM ai_generation_request WHERE uuid = '{request_id}'")


def drain(vhost):
    """Every message now in the jobs queue: [(properties, body)]."""
    connection = vhost.connect()
    try:
        channel = connection.channel()
        messages = []
        while True:
            method, properties, body = channel.basic_get(QUEUE, auto_ack=True)
            if method is None:
                return messages
            messages.append((properties, json.loads(body)))
    finally:
        connection.close()


def test_outbox_publishes_once_the_broker_is_back_and_never_a_rolled_back_request():
    odoo = require_odoo()
    # the same repo files the addon validates against
    registry = Registry().with_resources(
        (aigen_contracts.load(n)["$id"], Resource.from_contents(aigen_contracts.load(n)))
        for n in aigen_contracts.SCHEMA_FILES
    )
    job_schema = Draft202012Validator(aigen_contracts.load("job_requested.v1.json"), registry=registry)

    with (
        throwaway_vhost("aigen-odoo-outbox") as vhost,
        throwaway_database(odoo, ["ai_generation"], "aigen_outbox") as db,
    ):
        wrong_url = f"amqp://guest:guest@127.0.0.1:{free_port()}/{vhost.url.rsplit('/', 1)[1]}"
        setup = SETUP.format(amqp_url=wrong_url, secret="s" * 32, price=1, credits=10)
        api_key = json_lines(odoo.shell(db, setup))[-1]["api_key"]
        auth = {"Authorization": f"Bearer {api_key}"}
        with OdooServer(odoo, db) as server:
            # 1. broker unreachable: still 202, the request waits in the outbox
            response = requests.post(f"{server.url}/api/v1/generations", json=BODY, headers=auth, timeout=60)
            assert response.status_code == 202, response.text
            waiting = response.json()["request_id"]
            row = psql(
                db, f"SELECT state, dispatch_state FROM ai_generation_request WHERE uuid = '{waiting}'"
            )
            assert row == [["queued", "pending"]]

            # 2. broker back (right URL): the outbox cron publishes it
            server.set_param("ai_generation.amqp_url", vhost.url)
            server.run_cron("ai_generation.cron_dispatch_pending")
            row = psql(
                db, f"SELECT state, dispatch_state FROM ai_generation_request WHERE uuid = '{waiting}'"
            )
            assert row == [["dispatched", "sent"]]

            # 3. with the broker up, a new request is published right after its commit
            response = requests.post(f"{server.url}/api/v1/generations", json=BODY, headers=auth, timeout=60)
            direct = response.json()["request_id"]

            # 4. a request whose transaction rolls back is never published
            rolled_back = json_lines(odoo.shell(db, ROLLED_BACK_REQUEST))[-1]["created"]
            server.run_cron("ai_generation.cron_dispatch_pending")

        # a database with the addon's demo data also has a queued request, which the cron rightly publishes
        ours = (waiting, direct, rolled_back)
        messages = [m for m in drain(vhost) if m[1]["generation_request_id"] in ours]
        ids = [body["generation_request_id"] for _, body in messages]
        print(f"published: {ids}")
        assert sorted(ids) == sorted([waiting, direct])
        assert rolled_back not in ids
        assert psql(db, f"SELECT count(*) FROM ai_generation_request WHERE uuid = '{rolled_back}'") == [["0"]]
        for properties, body in messages:
            errors = [e.message for e in job_schema.iter_errors(body)]
            assert errors == [], errors
            assert properties.message_id == body["generation_request_id"]
            assert properties.delivery_mode == 2
            assert properties.content_type == "application/json"
            assert body["prompt"] == "a haiku"
