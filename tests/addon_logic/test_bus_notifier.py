"""The bus's NOTIFY over one kept connection (addons/ai_generation/pure/bus_notifier.py), against the
real PostgreSQL: a LISTEN connection receives what the notifier sends, from many threads at once, after
its connection was killed, and after the database refused it for a while."""

import json
import logging
import os
import select
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psycopg2
import pytest
from aigen_pure import bus_notifier as notifier_module
from aigen_pure.bus_notifier import BusNotifier

from tests.support.polling import wait_until

DSN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


def _postgres_or_skip():
    try:
        psycopg2.connect(connect_timeout=3, **DSN).close()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")


@pytest.fixture
def channel():
    _postgres_or_skip()
    return f"aigen_test_{uuid.uuid4().hex[:10]}"


class Listener:
    def __init__(self, channel):
        self.connection = psycopg2.connect(**DSN)
        self.connection.autocommit = True
        self.connection.cursor().execute(f"LISTEN {channel}")
        self.received = []

    def channels(self):
        """Every channel named in the payloads received so far (each payload is a JSON list)."""
        if select.select([self.connection], [], [], 0.05)[0]:
            self.connection.poll()
            while self.connection.notifies:
                self.received.append(self.connection.notifies.pop(0).payload)
        return {channel for payload in self.received for channel in json.loads(payload)}

    def close(self):
        self.connection.close()


class CountingConnect:
    """connect() that counts the connections made and can be told to fail."""

    def __init__(self):
        self.made, self.failing, self.connections = 0, False, []

    def __call__(self):
        if self.failing:
            raise psycopg2.OperationalError("the test refuses connections")
        self.made += 1
        connection = psycopg2.connect(**DSN)
        connection.autocommit = True
        self.connections.append(connection)
        return connection


def notifier_for(channel, connect):
    def payloads(channels):
        return [json.dumps(channels)]

    def notify(cursor, payload):
        cursor.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    return BusNotifier(connect, payloads, notify)


def test_many_threads_wake_every_channel_over_one_connection(channel):
    listener, connect = Listener(channel), CountingConnect()
    notifier = notifier_for(channel, connect)
    try:
        names = [f"partner-{i}" for i in range(200)]

        def post(part):
            for name in part:
                assert notifier.submit([name])

        threads = [threading.Thread(target=post, args=(names[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert notifier.wait_idle(10)
        wait_until(lambda: listener.channels() == set(names), 10, "every channel woken")
        assert connect.made == 1  # one kept connection, not one per notification
        assert notifier.sent <= len(names) and notifier.failed == 0
    finally:
        listener.close()


def test_a_killed_connection_is_replaced_and_nothing_is_lost(channel):
    listener, connect = Listener(channel), CountingConnect()
    notifier = notifier_for(channel, connect)
    try:
        notifier.submit(["before"])
        wait_until(lambda: "before" in listener.channels(), 10, "first wake-up")
        pid = connect.connections[0].get_backend_pid()
        admin = psycopg2.connect(**DSN)
        admin.autocommit = True
        admin.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
        admin.close()
        notifier.submit(["after"])
        wait_until(lambda: "after" in listener.channels(), 10, "wake-up after the kill")
        assert connect.made == 2 and notifier.failed == 0
    finally:
        listener.close()


def test_a_database_that_refuses_is_logged_and_the_next_wake_up_gets_through(channel, caplog):
    listener, connect = Listener(channel), CountingConnect()
    notifier = notifier_for(channel, connect)
    try:
        connect.failing = True
        with caplog.at_level(logging.WARNING):
            notifier.submit(["lost"])
            assert notifier.wait_idle(10)
        assert notifier.failed == 1
        assert any(
            "not sent" in r.getMessage() and "OperationalError" in r.getMessage() for r in caplog.records
        )
        connect.failing = False
        notifier.submit(["later"])
        wait_until(lambda: "later" in listener.channels(), 10, "wake-up once the database answers")
    finally:
        listener.close()


def test_a_forked_child_starts_its_own_notifier(channel):
    connect = CountingConnect()
    parent = notifier_module.bus_notifier(connect, lambda c: [json.dumps(c)], lambda cur, p: None)
    assert notifier_module.bus_notifier(connect, None, None) is parent  # one per process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new notifier of its own, with a live thread
        try:
            child = notifier_module.bus_notifier(connect, lambda c: [], lambda cur, p: None)
            os.write(write, f"{child is not parent} {child.pid} {child.alive}".encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 200).decode()
    os.waitpid(pid, 0)
    assert answer == f"True {pid} True"
    assert parent.alive


EXIT_SCRIPT = r"""
import importlib.util, sys, time
from pathlib import Path
pure = Path(sys.argv[1])
spec = importlib.util.spec_from_file_location("aigen_pure", pure / "__init__.py",
                                              submodule_search_locations=[str(pure)])
module = importlib.util.module_from_spec(spec)
sys.modules["aigen_pure"] = module
spec.loader.exec_module(module)
from aigen_pure.bus_notifier import bus_notifier

class Connection:
    def cursor(self):
        return self
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False
    def close(self):
        pass

def notify(cursor, payload):
    time.sleep(0.3)  # a NOTIFY's round trip, made long
    with open(sys.argv[2], "a") as out:
        out.write(payload + "\n")

assert bus_notifier(Connection, lambda channels: [",".join(channels)], notify).submit(["last"])
sys.exit(0)  # a prefork worker leaves like this after its last request (limit_request, memory limits)
"""


def test_what_was_handed_over_is_sent_before_the_process_exits(tmp_path):
    # Odoo's own hook sends the NOTIFY before the request returns; handed to a daemon thread, the last
    # request's wake-up must not die with a worker that exits right after it (recycled worker, shutdown)
    pure = Path(notifier_module.__file__).resolve().parent
    sent = tmp_path / "sent"
    subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(pure), str(sent)], check=True, timeout=60)
    assert sent.exists() and sent.read_text().split() == ["last"]


def test_a_hand_over_that_cannot_be_sent_does_not_stop_the_thread(channel, caplog):
    listener, connect = Listener(channel), CountingConnect()

    def payloads(channels):
        if "poison" in channels:
            raise ValueError("cannot encode this channel")
        return [json.dumps(channels)]

    def notify(cursor, payload):
        cursor.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    notifier = BusNotifier(connect, payloads, notify)
    try:
        with caplog.at_level(logging.ERROR):
            notifier.submit(["poison"])
            assert notifier.wait_idle(10)
        assert notifier.failed == 1 and notifier.alive
        notifier.submit(["healthy"])
        wait_until(lambda: "healthy" in listener.channels(), 10, "a wake-up after the failed one")
    finally:
        listener.close()
