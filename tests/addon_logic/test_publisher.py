"""The addon's broker package (addons/ai_generation/broker) against the real RabbitMQ, without Odoo.

One kept connection for many publishes, a new one when the broker drops it, a backoff while it is down,
heartbeats served while idle, and a background thread that never makes the caller wait, restarted in a
forked child as Odoo's prefork workers are.
"""

import contextlib
import importlib.util
import os
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aigen_pure import amqp

from tests.support.odoo import free_port
from tests.support.polling import wait_until
from tests.support.rabbit import BrokerProxy, drain, hung_broker, throwaway_vhost

BROKER_DIR = Path(__file__).resolve().parents[2] / "addons" / "ai_generation" / "broker"


def _load_broker():
    """The broker package under another name, as conftest.py loads pure/ (it imports nothing of Odoo)."""
    if "aigen_broker" in sys.modules:
        return sys.modules["aigen_broker"]
    spec = importlib.util.spec_from_file_location(
        "aigen_broker", BROKER_DIR / "__init__.py", submodule_search_locations=[str(BROKER_DIR)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["aigen_broker"] = module
    spec.loader.exec_module(module)
    return module


broker = _load_broker()
from aigen_broker import background  # noqa: E402 (registered by _load_broker above)


@pytest.fixture(scope="module")
def vhost():
    with throwaway_vhost("aigen-publisher") as vhost:
        yield vhost


def job(prompt="a haiku"):
    now = datetime(2026, 11, 24, 12, 0)
    return amqp.build_message(
        str(uuid.uuid4()), "external", "gpt-test", "text", prompt, {}, 1, now + timedelta(minutes=15), now
    )


def unique_name(label):
    return f"aigen-test-{label}-{uuid.uuid4().hex[:8]}"


def test_one_connection_serves_many_publishes(vhost):
    name = unique_name("many")
    publisher = broker.Publisher(vhost.url, name=name)
    sent = [job(f"prompt {i}") for i in range(20)]
    try:
        for message in sent:
            assert publisher.publish([message]) == [message["generation_request_id"]]
        assert publisher.connections_opened == 1
        assert len(vhost.connection_pids(name)) == 1  # as the broker sees it
    finally:
        publisher.close()
    received = drain(vhost)
    assert [body for _, body in received] == sent
    for properties, body in received:
        assert properties.message_id == body["generation_request_id"]
        assert (properties.delivery_mode, properties.content_type) == (2, "application/json")
        assert properties.type == amqp.MESSAGE_TYPE
    assert wait_until(lambda: not vhost.connection_pids(name), timeout=10)


def test_a_connection_the_broker_closed_is_opened_again(vhost):
    name = unique_name("closed")
    publisher = broker.Publisher(vhost.url, name=name)
    first, second = job(), job()
    try:
        assert publisher.publish([first]) == [first["generation_request_id"]]
        assert vhost.close_connections(name) == 1
        assert publisher.publish([second]) == [second["generation_request_id"]]
        assert publisher.connections_opened == 2
    finally:
        publisher.close()
    assert [body for _, body in drain(vhost)] == [first, second]


def test_serving_heartbeats_keeps_an_idle_connection_that_the_broker_would_close(vhost):
    served_name, idle_name = unique_name("served"), unique_name("idle")
    # 2 s, not 1: on a loaded machine a 1 s heartbeat was missed by the served connection too
    served = broker.Publisher(vhost.url, heartbeat=2, name=served_name)
    idle = broker.Publisher(vhost.url, heartbeat=2, name=idle_name)
    try:
        served.publish([job()])
        idle.publish([job()])
        served_pids = vhost.connection_pids(served_name)
        assert len(served_pids) == 1 and len(vhost.connection_pids(idle_name)) == 1
        started = time.monotonic()
        while time.monotonic() - started < 10:  # a few heartbeat timeouts
            served.serve_heartbeats()
            time.sleep(0.3)
        assert vhost.connection_pids(served_name) == served_pids
        assert vhost.connection_pids(idle_name) == []  # the control: the broker dropped the silent one
        served.publish([job()])
        assert served.connections_opened == 1
    finally:
        served.close()
        idle.close()
        drain(vhost)  # also when it failed: the next test counts what the queue holds


def test_a_cut_broker_is_tried_again_after_a_backoff_and_used_once_back(vhost):
    drain(vhost)  # what an earlier test left, whatever happened to it
    proxy = BrokerProxy().start()
    name = unique_name("cut")
    publisher = broker.Publisher(proxy.url(vhost), name=name, min_backoff=0.5, max_backoff=2)
    try:
        assert publisher.publish([job()])
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(broker.PublishError, match="unreachable"):
            publisher.publish([job()])  # the kept connection is dead and a new one is refused
        assert time.monotonic() - started < 2
        assert publisher.retry_in() > 0
        with pytest.raises(broker.PublishError, match="next try in"):
            publisher.publish([job()])  # within the backoff: not even a connection attempt
        proxy.restore()
        time.sleep(publisher.retry_in())
        back = job()
        assert publisher.publish([back]) == [back["generation_request_id"]]
        assert publisher.connections_opened == 2
    finally:
        publisher.close()
        proxy.cut()
    bodies = [body for _, body in drain(vhost)]
    assert bodies[-1] == back and len(bodies) == 2


def test_unreachable_broker_is_a_publish_error():
    publisher = broker.Publisher(f"amqp://guest:guest@127.0.0.1:{free_port()}/x", timeout=2)
    assert publisher.publish([]) == []  # nothing to publish: no connection tried
    with pytest.raises(broker.PublishError, match="unreachable"):
        publisher.publish([job()])


def test_queue_arguments_match_the_worker():
    worker_topology = pytest.importorskip("worker.topology")
    topology = broker.topology
    assert topology.QUEUE_ARGUMENTS == worker_topology.JOBS_QUEUE_ARGUMENTS
    assert (topology.EXCHANGE, topology.ROUTING_KEY, topology.QUEUE, topology.DLQ) == (
        worker_topology.EXCHANGE,
        worker_topology.ROUTING_KEY,
        worker_topology.JOBS_QUEUE,
        worker_topology.DLQ,
    )


# ---------------------------------------------------------------------------------- the background thread
def publish_all(results):
    def handler(publisher, messages):
        try:
            results.append(publisher.publish(messages))
        except broker.PublishError as exc:
            results.append(exc)

    return handler


def test_the_thread_publishes_everything_submitted_over_one_connection(vhost):
    name = unique_name("thread")
    results = []
    thread = broker.BackgroundPublisher(
        publish_all(results), publisher=broker.Publisher(vhost.url, name=name)
    )
    sent = [job(f"prompt {i}") for i in range(30)]
    try:
        for message in sent:
            assert thread.submit(message)
        assert thread.wait_idle(30)
        assert sorted(i for batch in results for i in batch) == sorted(
            m["generation_request_id"] for m in sent
        )
        assert thread.publisher.connections_opened == 1
        assert len(vhost.connection_pids(name)) == 1
    finally:
        thread.stop()
    assert sorted(b["generation_request_id"] for _, b in drain(vhost)) == sorted(
        m["generation_request_id"] for m in sent
    )
    assert wait_until(lambda: not vhost.connection_pids(name), timeout=10)  # stop() closed it


def test_submit_returns_at_once_while_the_broker_hangs_and_a_full_queue_refuses():
    results = []
    with hung_broker() as url:
        thread = broker.BackgroundPublisher(
            publish_all(results), publisher=broker.Publisher(url, timeout=2), maxsize=3
        )
        try:
            assert thread.submit(job())
            wait_until(lambda: thread._queue.qsize() == 0, timeout=5)  # the thread is now connecting
            timings, accepted = [], []
            for _ in range(10):
                started = time.monotonic()
                accepted.append(thread.submit(job()))
                timings.append(time.monotonic() - started)
            print(f"submit max={max(timings) * 1000:.2f} ms")
            assert max(timings) < 0.05  # connecting to the hung broker takes 2 s, in the thread
            assert accepted == [True] * 3 + [False] * 7  # the queue holds 3; the rest is the cron's
            assert thread.dropped == 7
            assert thread.wait_idle(30)
        finally:
            thread.stop()
    assert results and all(isinstance(r, broker.PublishError) for r in results)


def test_a_forked_child_starts_its_own_thread():
    seen = []

    def handler(publisher, items):
        seen.extend(items)

    parent = background.background_publisher(handler, publisher=broker.Publisher(None))
    try:
        assert background.background_publisher(handler) is parent
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            ok = False
            with contextlib.suppress(BaseException):
                child = background.background_publisher(handler, publisher=broker.Publisher(None))
                ok = (
                    child is not parent
                    and child.pid == os.getpid()
                    and child.alive
                    and child.submit("from the child")
                    and child.wait_idle(10)
                    and seen == ["from the child"]
                )
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert background.background_publisher(handler) is parent and parent.alive
        assert parent.submit("from the parent") and parent.wait_idle(10)
        assert seen == ["from the parent"]
    finally:
        parent.stop()
        background._instance = None
