"""Point 3: parallel requests never overdraw. A real Odoo server, real HTTP, real threads.

HttpCase cannot show this: it serialises requests on one test cursor. Here 20 threads post at once
to a threaded odoo-bin on a committed database, for a user whose credits cover exactly 5 requests.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.odoo.setup_scripts import SETUP
from tests.support.odoo import OdooServer, free_port, json_lines, psql, require_odoo, throwaway_database

pytestmark = [pytest.mark.odoo, pytest.mark.slow]

PRICE, COVERED, PARALLEL = 3, 5, 20


def test_parallel_requests_hold_exactly_what_the_credits_cover():
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_conc") as db:
        # the broker URL points nowhere: dispatch is not what this test is about
        setup = SETUP.format(
            amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F",
            secret="s" * 32,
            price=PRICE,
            credits=PRICE * COVERED,
        )
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
            retries = server.log().count("tries left")
        statuses = sorted(status for status, _ in answers)
        print(f"statuses={statuses} serialization_retries={retries}")
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
