"""Point 4: publish after commit, outbox while RabbitMQ is unreachable, nothing for a rollback.

A real Odoo server on a committed database and the real broker, in a throwaway vhost.
"""

import json
import re
import time

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import aigen_contracts
from tests.odoo.setup_scripts import ROLLED_BACK_REQUEST, SETUP
from tests.support.odoo import OdooServer, free_port, json_lines, psql, require_odoo, throwaway_database
from tests.support.polling import wait_until
from tests.support.rabbit import drain, hung_broker, throwaway_vhost

pytestmark = [pytest.mark.odoo, pytest.mark.slow]

QUEUE = "ai.generation.jobs"
BODY = {"backend": "external", "model": "gpt-test", "prompt": "a haiku", "params": {"max_tokens": 20}}


def state_of(db, request_id):
    return psql(db, f"SELECT state, dispatch_state FROM ai_generation_request WHERE uuid = '{request_id}'")


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


# ------------------------------------------------------------------------ issue 8: off the request path
def error_lines(log):
    return [line for line in log.splitlines() if re.match(r"^\S+ \S+ \d+ (ERROR|CRITICAL) ", line)]


def test_the_202_never_waits_for_the_broker_and_one_kept_connection_per_worker_publishes():
    """Prefork (--workers 2, as docker/compose.yaml runs Odoo), crons off: each worker's publishing thread
    does the broker I/O after the commit; the POST answers at once even when the broker hangs."""
    odoo = require_odoo()
    with (
        hung_broker() as hung_url,
        throwaway_vhost("aigen-odoo-publisher") as vhost,
        throwaway_database(odoo, ["ai_generation"], "aigen_publisher") as db,
    ):
        setup = SETUP.format(amqp_url=hung_url, secret="s" * 32, price=1, credits=100)
        api_key = json_lines(odoo.shell(db, setup))[-1]["api_key"]
        auth = {"Authorization": f"Bearer {api_key}"}
        with OdooServer(odoo, db, ["--workers=2", f"--gevent-port={free_port()}"]) as server:
            for _ in range(4):  # both workers warm
                requests.get(f"{server.url}/api/v1/credits", headers=auth, timeout=60)

            # 1. a broker that hangs: the 202s do not wait for it
            timings, stuck = [], []
            for _ in range(6):
                started = time.monotonic()
                response = requests.post(
                    f"{server.url}/api/v1/generations", json=BODY, headers=auth, timeout=60
                )
                timings.append(time.monotonic() - started)
                assert response.status_code == 202, response.text
                stuck.append(response.json()["request_id"])
            print(
                f"POST with a hung broker: max={max(timings):.3f}s timings={[round(t, 3) for t in timings]}"
            )
            assert max(timings) < 1.5  # connecting to the hung broker takes 5 s (in the threads)

            # 2. the broker back: published right after the commit, with no cron, over kept connections
            server.set_param("ai_generation.amqp_url", vhost.url)
            published = []
            for _ in range(5):
                response = requests.post(
                    f"{server.url}/api/v1/generations", json=BODY, headers=auth, timeout=60
                )
                assert response.status_code == 202, response.text
                published.append(response.json()["request_id"])
            for request_id in published:
                wait_until(lambda r=request_id: state_of(db, r) == [["dispatched", "sent"]], timeout=60)
            connections = vhost.connection_pids("ai_generation publisher")
            assert 1 <= len(connections) <= 2  # one per worker that published, kept open
            for _ in range(5):
                response = requests.post(
                    f"{server.url}/api/v1/generations", json=BODY, headers=auth, timeout=60
                )
                published.append(response.json()["request_id"])
            for request_id in published:
                wait_until(lambda r=request_id: state_of(db, r) == [["dispatched", "sent"]], timeout=60)
            after = vhost.connection_pids("ai_generation publisher")
            assert set(connections) <= set(after) and len(after) <= 2  # the same connections, kept
            log = server.log()

        # the hung broker's requests either wait in the outbox for the cron, tried by the threads, or
        # (when a thread reached them after the broker came back) were published, once
        ids = [body["generation_request_id"] for _, body in drain(vhost)]
        for request_id in stuck:
            if state_of(db, request_id) == [["queued", "pending"]]:
                assert request_id not in ids
                [[error]] = psql(
                    db, f"SELECT dispatch_error FROM ai_generation_request WHERE uuid = '{request_id}'"
                )
                assert "unreachable" in error or "not confirmed" in error, error
            else:
                assert state_of(db, request_id) == [["dispatched", "sent"]]
                assert ids.count(request_id) == 1
        assert sorted(set(ids) - set(stuck)) == sorted(published)
        assert len(ids) == len(set(ids))  # each once
        assert error_lines(log) == []


CRON_SCRIPT = """
import json, logging
from odoo.addons.ai_generation import broker
from odoo.addons.ai_generation.models import ai_generation_request as module
from odoo.addons.ai_generation.pure.validation import GenerationInput

logged = []
class Collect(logging.Handler):
    def emit(self, record):
        logged.append([record.levelname, record.getMessage()])
logger = logging.getLogger(module.__name__)
logger.addHandler(Collect())
logger.propagate = False  # the tracebacks go to the list, not to stderr

params = env["ir.config_parameter"]
params.set_param("ai_generation.amqp_url", {closed_url!r})
env.cr.commit()
user = env["res.users"].search([("login", "=", "ai_alice")])
Request = env["ai.generation.request"]
uuids = []
for i in range(6):
    gen = GenerationInput("external", "gpt-test", "text", f"job {{i}}", {{}})
    status, body, _ = Request._api_create(user, gen)
    env.cr.commit()  # after the commit: handed to this process's publishing thread (broker refused)
    uuids.append(body["request_id"])
assert broker.background._instance.wait_idle(30)
params.set_param("ai_generation.amqp_url", {amqp_url!r})
env.cr.commit()

# one record whose message cannot be built, one batch whose publishing blows up
broken = uuids[1]
job_message = module.AiGenerationRequest._job_message
def maybe_broken(self):
    if self.uuid == broken:
        raise ValueError("a broken record")
    return job_message(self)
publish = broker.Publisher.publish
calls = []
def second_call_fails(self, messages):
    calls.append(1)
    if len(calls) == 2:
        raise RuntimeError("publishing blew up")
    return publish(self, messages)
module.AiGenerationRequest._job_message = maybe_broken
broker.Publisher.publish = second_call_fails

cron = env.ref("ai_generation.cron_dispatch_pending")
cron, progress = cron._add_progress()
env.cr.commit()
in_cron = Request.with_context(ir_cron_progress_id=progress.id)
first = in_cron._cron_dispatch_pending(min_age_seconds=0, batch_size=2)
first_run = {{"published": first.mapped("uuid"), "done": progress.done, "remaining": progress.remaining}}
env.cr.commit()

module.AiGenerationRequest._job_message = job_message
broker.Publisher.publish = publish
second = Request._cron_dispatch_pending(min_age_seconds=0, batch_size=2)
env.cr.commit()
print(json.dumps({{"uuids": uuids, "first": first_run, "second": second.mapped("uuid"), "logged": logged}}))
"""


def test_the_cron_publishes_batch_by_batch_and_a_bad_record_or_batch_never_blocks_the_others():
    odoo = require_odoo()
    with (
        throwaway_vhost("aigen-odoo-outbox-cron") as vhost,
        throwaway_database(odoo, ["ai_generation"], "aigen_outbox_cron") as db,
    ):
        closed_url = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
        odoo.shell(db, SETUP.format(amqp_url=closed_url, secret="s" * 32, price=1, credits=100))
        out = json_lines(odoo.shell(db, CRON_SCRIPT.format(closed_url=closed_url, amqp_url=vhost.url)))[-1]
        uuids, logged = out["uuids"], out["logged"]
        print(json.dumps(out["first"]), out["second"])
        # batches of 2: [0, 1 broken] [2, 3 blew up] [4, 5]
        assert sorted(out["first"]["published"]) == sorted([uuids[0], uuids[4], uuids[5]])
        assert (out["first"]["done"], out["first"]["remaining"]) == (3, 0)
        assert sorted(out["second"]) == sorted([uuids[1], uuids[2], uuids[3]])  # the next run takes them
        assert any(level == "ERROR" and uuids[1] in message for level, message in logged)
        assert any(level == "ERROR" and "2 request(s) skipped" in message for level, message in logged)
        for request_id in uuids:
            assert state_of(db, request_id) == [["dispatched", "sent"]]
        ids = [body["generation_request_id"] for _, body in drain(vhost)]
        assert sorted(ids) == sorted(uuids)  # each exactly once
