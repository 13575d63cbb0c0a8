"""Writes made in a transaction of its own (models/transactions.py) reach the database on a real server.

Odoo's commit flushes only the environments still alive; a callback whose last change is an ORM write
and whose answer holds no record (a retry's attempt number, a notify's message) lost it before.
"""

import pytest
import requests

from tests.odoo.setup_scripts import SETUP
from tests.support.odoo import OdooServer, free_port, json_lines, psql, require_odoo, throwaway_database

pytestmark = [pytest.mark.odoo, pytest.mark.slow]

SECRET = "w" * 32


def test_the_last_orm_write_of_a_callback_is_committed():
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_own") as db:
        setup = SETUP.format(
            amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", secret=SECRET, price=3, credits=30
        )
        api_key = json_lines(odoo.shell(db, setup))[-1]["api_key"]
        with OdooServer(odoo, db) as server:
            created = requests.post(
                f"{server.url}/api/v1/generations",
                json={"backend": "external", "model": "gpt-test", "prompt": "a poem"},
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=60,
            )
            assert created.status_code == 202, created.text
            rid = created.json()["request_id"]

            def callback(kind, **payload):
                response = requests.post(
                    f"{server.url}/ai/generation/{kind}"
                    if kind != "notify"
                    else f"{server.url}/notify/generation-error",
                    json={"generation_request_id": rid, **payload},
                    headers={"Authorization": f"Bearer {SECRET}"},
                    timeout=60,
                )
                assert response.status_code == 200, response.text

            callback("progress", event_id="evt-progress-1", state="running", attempt=1)
            callback(
                "progress", event_id="evt-progress-2", state="running", attempt=2
            )  # a retry: attempt only
            assert psql(db, f"SELECT state, attempt FROM ai_generation_request WHERE uuid = '{rid}'") == [
                ["running", "2"]
            ]
            callback(
                "failure",
                event_id="evt-failure-3",
                error_type="provider_unavailable",
                is_system_error=True,
                is_user_error=False,
                error_code="http_503",
                detail="down",
                backend="external",
                attempt=2,
                occurred_at="2026-12-01T10:00:00Z",
            )
            callback(
                "notify",
                user_message="AI processing failed. Please try again or adjust your parameters.",
                retry_suggestion="Try again in five minutes.",
            )
        assert psql(db, f"SELECT retry_suggestion FROM ai_generation_request WHERE uuid = '{rid}'") == [
            ["Try again in five minutes."]
        ]


WRITE_AND_FORGET = """
import json
from odoo.addons.ai_generation.models.transactions import run_in_own_transaction
from odoo.addons.ai_generation.pure.validation import GenerationInput
user = env["res.users"].search([("login", "=", "ai_alice")])
gen = GenerationInput("external", "gpt-test", "text", "a poem", {})
_status, body, _ = env["ai.generation.request"]._api_create(user, gen)
env.cr.commit()
request_id = env["ai.generation.request"].search([("uuid", "=", body["request_id"])]).id


def write_attempt(own_env):
    own_env["ai.generation.request"].browse(request_id)._write_protected({"attempt": 7})
    # returns nothing that refers to own_env: only the explicit flush keeps the write


run_in_own_transaction(env, write_attempt)
print(json.dumps({"uuid": body["request_id"]}))
"""


def run_script(script, query):
    """``script`` in odoo-bin shell on a prepared database (it prints {"uuid": ...}); ``query``'s rows
    for that request (``{uuid}`` in it)."""
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_own") as db:
        setup = SETUP.format(
            amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", secret=SECRET, price=3, credits=30
        )
        odoo.shell(db, setup)
        rid = json_lines(odoo.shell(db, script))[-1]["uuid"]
        return psql(db, query.format(uuid=rid))


def test_a_func_that_returns_nothing_still_commits_its_orm_writes():
    query = "SELECT attempt FROM ai_generation_request WHERE uuid = '{uuid}'"
    assert run_script(WRITE_AND_FORGET, query) == [["7"]]


HOOK_FAILS_AFTER_COMMIT = """
import json
from odoo.addons.ai_generation.models.transactions import run_in_own_transaction
from odoo.addons.ai_generation.pure.validation import GenerationInput
user = env["res.users"].search([("login", "=", "ai_alice")])
gen = GenerationInput("external", "gpt-test", "text", "a poem", {})


def create_then_a_hook_fails(own_env):
    _status, body, _ = own_env["ai.generation.request"]._api_create(user.with_env(own_env), gen)

    def broken_hook():
        raise RuntimeError("the bus has no free connection")

    own_env.cr.postcommit.add(broken_hook)
    return body


body = run_in_own_transaction(env, create_then_a_hook_fails)  # no exception: the work is committed
print(json.dumps({"uuid": body["request_id"]}))
"""


def test_a_post_commit_hook_failing_does_not_turn_committed_work_into_an_error():
    query = "SELECT state, price FROM ai_generation_request WHERE uuid = '{uuid}'"
    assert run_script(HOOK_FAILS_AFTER_COMMIT, query) == [["queued", "3"]]


# Shell scripts about isolation levels start with this; each prints {"levels": [...]}
LEVELS_PRELUDE = """
import json
from odoo.addons.ai_generation.models.transactions import run_in_own_transaction


def level(cr):
    cr.execute("SELECT current_setting('transaction_isolation')")
    return cr.fetchone()[0]
"""

ISOLATION_LEVELS = (
    LEVELS_PRELUDE
    + """

def fails(own_env):
    seen.append(level(own_env.cr))
    raise RuntimeError("the func fails")


seen = [level(env.cr)]
seen.append(run_in_own_transaction(env, lambda own_env: level(own_env.cr)))
seen.append(level(env.cr))  # the caller's next transaction
env.cr.commit()
try:
    run_in_own_transaction(env, fails)
except RuntimeError:
    pass
seen.append(level(env.cr))
print(json.dumps({"levels": seen}))
"""
)


def levels_seen(script):
    """The levels a LEVELS_PRELUDE script printed, run in odoo-bin shell on a fresh database."""
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_own") as db:
        return json_lines(odoo.shell(db, script))[-1]["levels"]


def test_the_own_transaction_is_read_committed_and_the_callers_next_one_repeatable_read():
    assert levels_seen(ISOLATION_LEVELS) == [
        "repeatable read",
        "read committed",
        "repeatable read",
        "read committed",
        "repeatable read",
    ]


REFUSED_COMMIT = """
import json
from odoo.addons.ai_generation.models.transactions import run_in_own_transaction

env.cr.execute("CREATE TABLE aigen_deferred_probe (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
env.cr.commit()


def twice(own_env):
    own_env.cr.execute("INSERT INTO aigen_deferred_probe VALUES (1), (1)")  # refused at COMMIT only


try:
    run_in_own_transaction(env, twice)
    outcome = "returned"
except Exception as exc:
    outcome = type(exc).__name__
env.cr.rollback()
env.cr.execute("SELECT count(*) FROM aigen_deferred_probe")
rows = env.cr.fetchone()[0]
env.cr.execute("DROP TABLE aigen_deferred_probe")
env.cr.commit()
print(json.dumps({"outcome": outcome, "rows": rows}))
"""


def test_a_commit_the_server_refuses_is_an_error_not_committed_work():
    # psycopg2 leaves the connection idle after a refused COMMIT, as after a committed one: the
    # refusal was taken for a failing post-commit hook, and the caller answered as if money had moved
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_own") as db:
        answer = json_lines(odoo.shell(db, REFUSED_COMMIT))[-1]
    assert answer == {"outcome": "UniqueViolation", "rows": 0}


HOOK_OPENS_A_TRANSACTION = (
    LEVELS_PRELUDE
    + """

def write_then_hook_reads(own_env):
    own_env.cr.postcommit.add(lambda: seen.append(level(own_env.cr)))  # a hook that runs SQL


seen = []
run_in_own_transaction(env, write_then_hook_reads)
env.cr.commit()  # ends the transaction the hook opened
seen.append(level(env.cr))
env.cr.postcommit.add(lambda: level(env.cr))  # the caller's hook opens a transaction before the own one
try:
    run_in_own_transaction(env, lambda own_env: level(own_env.cr))
    seen.append("returned")
except Exception as exc:
    seen.append(type(exc).__name__)
seen.append(run_in_own_transaction(env, lambda own_env: level(own_env.cr)))
seen.append(level(env.cr))
print(json.dumps({"levels": seen}))
"""
)


def test_hooks_that_run_sql_leave_the_cursor_at_the_callers_level():
    # a hook after the own commit runs at the caller's level again; a caller's hook that opened a
    # transaction makes the next own transaction refuse (rolled back), and the one after runs as usual
    assert levels_seen(HOOK_OPENS_A_TRANSACTION) == [
        "repeatable read",
        "repeatable read",
        "ProgrammingError",
        "read committed",
        "repeatable read",
    ]
