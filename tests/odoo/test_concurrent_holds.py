"""Point 3: parallel requests never overdraw. A real Odoo server, real HTTP, real threads.

HttpCase cannot show this: it serialises requests on one test cursor. Here 20 threads post at once
to a threaded odoo-bin on a committed database, for a user whose credits cover exactly 5 requests.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import requests

from tests.odoo.setup_scripts import setup_without_broker
from tests.support.odoo import (
    DB_HOST,
    DB_PASSWORD,
    DB_USER,
    OdooServer,
    json_lines,
    psql,
    require_odoo,
    throwaway_database,
)

pytestmark = [pytest.mark.odoo, pytest.mark.slow]

PRICE, COVERED, PARALLEL = 3, 5, 20


def test_parallel_requests_hold_exactly_what_the_credits_cover():
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_conc") as db:
        # the broker URL points nowhere: dispatch is not what this test is about
        setup = setup_without_broker(PRICE, PRICE * COVERED)
        api_key = json_lines(odoo.shell(db, setup))[-1]["api_key"]
        with OdooServer(odoo, db) as server:
            start = threading.Barrier(PARALLEL)

            def post(i):
                start.wait()
                response = requests.post(
                    f"{server.url}/api/v1/generations",
                    json={"backend": "external", "model": "gpt-test", "prompt": f"poem {i}"},
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=120,
                )
                return response.status_code, response.json()

            with ThreadPoolExecutor(PARALLEL) as pool:
                answers = list(pool.map(post, range(PARALLEL)))
            credits = requests.get(
                f"{server.url}/api/v1/credits", headers={"Authorization": f"Bearer {api_key}"}, timeout=30
            ).json()
            log = server.log()
        retries = log.count("tries left")
        errors = [line for line in log.splitlines() if " ERROR " in line]
        statuses = sorted(status for status, _ in answers)
        print(f"statuses={statuses} serialization_retries={retries} error_lines={len(errors)}")
        # one user's creates wait for each other (READ COMMITTED, advisory lock) instead of failing
        assert retries == 0 and "could not serialize" not in log, log[-3000:]
        assert errors == []
        assert statuses.count(202) == COVERED, answers
        assert statuses.count(402) == PARALLEL - COVERED, answers
        assert all(
            body["error"]["code"] == "insufficient_credits" for status, body in answers if status == 402
        )
        assert (credits["balance"], credits["held"], credits["available"]) == (
            PRICE * COVERED,
            PRICE * COVERED,
            0,
        )
        accepted = {body["request_id"] for status, body in answers if status == 202}
        # the test user's rows only: a database with the addon's demo data holds other users' requests
        mine = "user_id = (SELECT id FROM res_users WHERE login = 'ai_alice')"
        rows = psql(db, f"SELECT uuid FROM ai_generation_request WHERE {mine}")
        assert {r[0] for r in rows} == accepted
        holds = psql(
            db, f"SELECT count(*), sum(hold_amount) FROM ai_credit_ledger_line WHERE kind = 'hold' AND {mine}"
        )
        assert holds == [[str(COVERED), str(PRICE * COVERED)]]
        mismatched = psql(
            db,
            "SELECT a.id FROM ai_credit_account a LEFT JOIN ai_credit_ledger_line l ON l.account_id = a.id"
            " GROUP BY a.id HAVING a.balance != COALESCE(SUM(l.amount), 0)"
            " OR a.held != COALESCE(SUM(l.hold_amount), 0)",
        )
        assert mismatched == []


def test_parallel_callbacks_on_one_account_settle_without_serialization_failures():
    """Progress and outcomes of one user's requests at once all touch that user's account row."""
    count, secret = 10, "s" * 32
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_conc") as db:
        setup = setup_without_broker(PRICE, PRICE * count, secret)
        api_key = json_lines(odoo.shell(db, setup))[-1]["api_key"]
        auth = {"Authorization": f"Bearer {api_key}"}
        with OdooServer(odoo, db) as server:
            ids = []
            for i in range(count):
                response = requests.post(
                    f"{server.url}/api/v1/generations",
                    json={"backend": "external", "model": "gpt-test", "prompt": f"poem {i}"},
                    headers=auth,
                    timeout=60,
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["request_id"])
            calls = [("progress", rid, {"state": "running", "attempt": 1}) for rid in ids]
            # half succeed, half fail on the system side: captures and releases of one account at once
            calls += [("result", rid, {"output": "ok"}) for rid in ids[::2]]
            calls += [
                (
                    "failure",
                    rid,
                    {
                        "error_type": "provider_unavailable",
                        "is_system_error": True,
                        "is_user_error": False,
                        "error_code": "http_503",
                        "detail": "down",
                        "backend": "external",
                        "attempt": 1,
                        "occurred_at": "2026-12-01T10:00:00Z",
                    },
                )
                for rid in ids[1::2]
            ]
            start = threading.Barrier(len(calls))

            def call(spec):
                kind, rid, payload = spec
                start.wait()
                response = requests.post(
                    f"{server.url}/ai/generation/{kind}",
                    json={"generation_request_id": rid, "event_id": f"evt-{kind}-{rid}", **payload},
                    headers={"Authorization": f"Bearer {secret}"},
                    timeout=120,
                )
                return kind, response.status_code

            with ThreadPoolExecutor(len(calls)) as pool:
                answers = list(pool.map(call, calls))
            credits = requests.get(f"{server.url}/api/v1/credits", headers=auth, timeout=30).json()
            log = server.log()
        # a progress that arrives after the outcome is a duplicate (200): nothing is refused
        assert all(status == 200 for _kind, status in answers), answers
        assert "tries left" not in log and "could not serialize" not in log, log[-3000:]
        assert [line for line in log.splitlines() if " ERROR " in line] == []
        paid = PRICE * len(ids[::2])
        assert (credits["balance"], credits["held"]) == (PRICE * count - paid, 0)
        mine = "user_id = (SELECT id FROM res_users WHERE login = 'ai_alice')"
        states = psql(db, f"SELECT state, count(*) FROM ai_generation_request WHERE {mine} GROUP BY state")
        assert dict(states) == {"failed": str(len(ids[1::2])), "succeeded": str(len(ids[::2]))}


RATE_LIMIT = 4


def test_parallel_requests_with_one_key_create_once_and_the_rate_limit_is_exact():
    """The checks a create makes under the user's lock (models/ai_generation_request.py,
    CREATES_LOCK_SQL) read what the previous holder committed: one Idempotency-Key sent by 12
    clients at once creates one request, and 12 distinct requests meet the rate limit exactly."""
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_conc") as db:
        api_key = json_lines(odoo.shell(db, setup_without_broker(PRICE, PRICE * 100)))[-1]["api_key"]
        psql(
            db,
            f"UPDATE ir_config_parameter SET value = '{RATE_LIMIT}'"
            " WHERE key = 'ai_generation.rate_limit_per_minute'",
        )
        with OdooServer(odoo, db) as server:

            def parallel(headers_of, prompt_of, count=12):
                start = threading.Barrier(count)

                def post(i):
                    start.wait()
                    response = requests.post(
                        f"{server.url}/api/v1/generations",
                        json={"backend": "external", "model": "gpt-test", "prompt": prompt_of(i)},
                        headers={"Authorization": f"Bearer {api_key}", **headers_of(i)},
                        timeout=120,
                    )
                    return response.status_code, response.headers.get("Idempotent-Replayed"), response.json()

                with ThreadPoolExecutor(count) as pool:
                    return list(pool.map(post, range(count)))

            same_key = parallel(lambda i: {"Idempotency-Key": "launch-1"}, lambda i: "one poem")
            distinct = parallel(lambda i: {}, lambda i: f"poem {i}")
            log = server.log()
        assert {status for status, _replayed, _body in same_key} == {202}
        assert sorted(replayed or "no" for _status, replayed, _body in same_key) == ["no"] + ["true"] * 11
        assert len({body["request_id"] for _status, _replayed, body in same_key}) == 1
        # the key's request used one of the minute's RATE_LIMIT creates
        statuses = sorted(status for status, _replayed, _body in distinct)
        assert statuses == [202] * (RATE_LIMIT - 1) + [429] * (12 - RATE_LIMIT + 1), distinct
        mine = "user_id = (SELECT id FROM res_users WHERE login = 'ai_alice')"
        assert psql(db, f"SELECT count(*) FROM ai_generation_request WHERE {mine}") == [[str(RATE_LIMIT)]]
        assert log.count("tries left") == 0 and " ERROR " not in log, log[-3000:]


USER_LOCK_KEY = 0x41494745  # models/ai_generation_request.py: the key of a user's create lock
LOCK_WAIT = 3  # seconds a create waits for the user's lock below


def test_the_rate_limit_window_ends_once_the_lock_is_held():
    """A create that waited for its user's lock counts the minute before it got it, not before it
    arrived: a request 58 s old when the create arrives is 61 s old once the lock is free. And the
    request it creates is dated when it got the lock, as later creates count it."""
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_conc") as db:
        api_key = json_lines(odoo.shell(db, setup_without_broker(PRICE, PRICE * 100)))[-1]["api_key"]
        psql(
            db, "UPDATE ir_config_parameter SET value = '1' WHERE key = 'ai_generation.rate_limit_per_minute'"
        )
        with OdooServer(odoo, db) as server:

            def post():
                return requests.post(
                    f"{server.url}/api/v1/generations",
                    json={"backend": "external", "model": "gpt-test", "prompt": "a poem"},
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=120,
                )

            assert post().status_code == 202
            assert post().status_code == 429  # the limit of one a minute holds
            mine = "user_id = (SELECT id FROM res_users WHERE login = 'ai_alice')"
            aged = "create_date = create_date - interval '58 seconds'"
            psql(db, f"UPDATE ai_generation_request SET {aged} WHERE {mine}")
            lock = (
                f"SELECT pg_advisory_xact_lock({USER_LOCK_KEY}, id) FROM res_users WHERE login = 'ai_alice'"
            )
            holder = psycopg2.connect(dbname=db, host=DB_HOST, user=DB_USER, password=DB_PASSWORD)
            try:
                holder.cursor().execute(lock)
                with ThreadPoolExecutor(1) as pool:
                    waiting = pool.submit(post)
                    time.sleep(LOCK_WAIT)
                    assert not waiting.done()  # it waits for the lock
                    clock = holder.cursor()
                    clock.execute("SELECT (clock_timestamp() AT TIME ZONE 'UTC')::text")
                    freed_at = clock.fetchone()[0]
                    holder.commit()  # the lock is free
                    answer = waiting.result()
            finally:
                holder.close()
            assert answer.status_code == 202, answer.text
            request_id = answer.json()["request_id"]
            created = psql(
                db,
                f"SELECT create_date >= '{freed_at}' FROM ai_generation_request WHERE uuid = '{request_id}'",
            )
        assert created == [["t"]], (freed_at, created)


def test_an_event_id_another_request_takes_meanwhile_is_a_conflict_not_an_error():
    """Two callbacks of two requests with one event_id at once lock each their own request, so neither
    sees the other's event: the unique index decides. The second waits for the first, then gets the
    JSON 409 of a reused event_id with nothing it did kept (it was an HTML 400 and an ERROR line)."""
    secret = "s" * 32
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_conc") as db:
        api_key = json_lines(odoo.shell(db, setup_without_broker(PRICE, PRICE * 2, secret)))[-1]["api_key"]
        with OdooServer(odoo, db) as server:
            uuids = []
            for i in range(2):
                response = requests.post(
                    f"{server.url}/api/v1/generations",
                    json={"backend": "external", "model": "gpt-test", "prompt": f"poem {i}"},
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=60,
                )
                assert response.status_code == 202, response.text
                uuids.append(response.json()["request_id"])
            first_id = psql(db, f"SELECT id FROM ai_generation_request WHERE uuid = '{uuids[0]}'")[0][0]
            # the first request's progress callback, as far as its event row: not committed yet
            holder = psycopg2.connect(dbname=db, host=DB_HOST, user=DB_USER, password=DB_PASSWORD)
            try:
                holder.cursor().execute(
                    "INSERT INTO ai_generation_event (event_id, request_id, kind, state_after, create_uid,"
                    " write_uid, create_date, write_date) VALUES ('evt-shared', %s, 'progress', 'running',"
                    " 1, 1, now(), now())",
                    (first_id,),
                )
                with ThreadPoolExecutor(1) as pool:
                    second = pool.submit(
                        requests.post,
                        f"{server.url}/ai/generation/progress",
                        json={
                            "generation_request_id": uuids[1],
                            "event_id": "evt-shared",
                            "state": "running",
                            "attempt": 1,
                        },
                        headers={"Authorization": f"Bearer {secret}"},
                        timeout=120,
                    )
                    time.sleep(LOCK_WAIT)
                    assert not second.done()  # it waits on the unique index for the first
                    holder.commit()
                    answer = second.result()
            finally:
                holder.close()
            log = server.log()
        assert answer.headers["Content-Type"].startswith("application/json"), answer.text[:300]
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "conflict")
        assert "another request" in answer.json()["error"]["message"]
        # the second request's move to running was rolled back with the refused event
        assert psql(db, f"SELECT state FROM ai_generation_request WHERE uuid = '{uuids[1]}'") == [["queued"]]
        assert [line for line in log.splitlines() if " ERROR " in line] == []
