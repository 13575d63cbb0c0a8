"""The bus's wake-up on a real threaded odoo-bin: no new PostgreSQL connection per message.

Odoo's bus sends ``NOTIFY imbus`` after each transaction that posted a message, over a new connection
to the ``postgres`` database each time (opened under the pool's one lock, which every request thread
of the process waits for). The addon sends it from one kept connection per process
(models/bus_bus.py, pure/bus_notifier.py). Here a LISTEN connection checks that every accepted request
still wakes its owner's channel, and Odoo's own DEBUG lines that no cursor on ``postgres`` was opened.
"""

import json
import select
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest
import requests

from tests.odoo.setup_scripts import setup_without_broker
from tests.support.odoo import (
    DB_HOST,
    OdooServer,
    json_lines,
    psql,
    require_odoo,
    throwaway_database,
)

pytestmark = [pytest.mark.odoo, pytest.mark.slow]

POSTS = 12
POSTGRES_CURSOR = "create cursor to {'database': 'postgres'"


def test_accepted_requests_wake_the_owner_without_a_connection_each():
    odoo = require_odoo()
    with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_busn") as db:
        setup = setup_without_broker(price=1, credits=100)
        made = json_lines(odoo.shell(db, setup))[-1]
        partner = int(psql(db, f"SELECT partner_id FROM res_users WHERE id = {made['user_id']}")[0][0])
        listen = psycopg2.connect(host=DB_HOST, user="postgres", dbname="postgres")
        listen.autocommit = True
        listen.cursor().execute("LISTEN imbus")
        try:
            with OdooServer(odoo, db, ["--log-handler=odoo.sql_db:DEBUG"]) as server:

                def post(i):
                    return requests.post(
                        f"{server.url}/api/v1/generations",
                        json={"backend": "external", "model": "gpt-test", "prompt": f"bus {i}"},
                        headers={"Authorization": f"Bearer {made['api_key']}"},
                        timeout=60,
                    ).status_code

                mark = len(server.log())
                with ThreadPoolExecutor(4) as pool:
                    statuses = list(pool.map(post, range(POSTS)))
                woken = []
                deadline = time.monotonic() + 10
                while [db, "res.partner", partner] not in woken and time.monotonic() < deadline:
                    if select.select([listen], [], [], 0.1)[0]:
                        listen.poll()
                        while listen.notifies:
                            woken += json.loads(listen.notifies.pop(0).payload)
                log = server.log()[mark:]
        finally:
            listen.close()
        assert statuses == [202] * POSTS
        assert [db, "res.partner", partner] in woken, woken
        channel = json.dumps([db, "res.partner", partner], separators=(",", ":"))  # as bus.bus stores it
        rows = psql(db, f"SELECT count(*) FROM bus_bus WHERE channel = '{channel}'")
        assert int(rows[0][0]) >= POSTS  # one message per accepted request, for the owner's tabs
        # Odoo's own hook opened one cursor on the postgres database per accepted request
        opened = [line for line in log.splitlines() if POSTGRES_CURSOR in line]
        assert opened == [], opened[:3]
