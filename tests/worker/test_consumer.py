"""The worker on the real RabbitMQ: topology, acks, DLQ, 100+ in flight, parking, reconnect, stop.

A throwaway vhost per module; the AI is the scripted in-test backend, Odoo the validating fake.
"""

import json
import threading
import time

import pika
import pika.exceptions
import pytest

from tests.support.rabbit import BrokerProxy
from tests.worker.helpers import (
    SECRET,
    RunningWorker,
    ScriptedBackend,
    drain_queue,
    fail,
    job_message,
    publish,
    queue_depth,
    wait_until,
    worker_config,
)
from worker import topology
from worker.app import Worker
from worker.backends.base import GenerationOutput
from worker.consumer import delivery_count
from worker.parking import ParkedDrainer
from worker.reporting import Callback, OdooReporter, ReporterConfig

pytestmark = pytest.mark.slow


def start(vhost, odoo, backend, **overrides):
    backends = backend if isinstance(backend, dict) else {backend.name: backend}
    return RunningWorker(Worker(worker_config(vhost, odoo, **overrides), backends))


def terminal_ids(odoo, ids):
    return all(odoo.state(i) is not None and odoo.state(i).status in ("succeeded", "failed") for i in ids)


def test_the_topology_is_declared_exactly_as_designed(vhost, odoo, channel):
    with start(vhost, odoo, ScriptedBackend()):
        conn = vhost.connect()
        ch = conn.channel()
        ch.exchange_declare(topology.EXCHANGE, "direct", passive=True)
        # same arguments: accepted; other arguments: the broker refuses (what a mismatch with Odoo would do)
        ch.queue_declare(topology.JOBS_QUEUE, durable=True, arguments=topology.JOBS_QUEUE_ARGUMENTS)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_declare(
                topology.JOBS_QUEUE,
                durable=True,
                arguments={**topology.JOBS_QUEUE_ARGUMENTS, "x-delivery-limit": 6},
            )
        assert refused.value.reply_code == 406
        conn.close()
    assert topology.JOBS_QUEUE_ARGUMENTS == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 5,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "ai.generation.jobs.dlq",
    }


def test_jobs_are_processed_reported_and_acked(vhost, odoo, channel):
    messages = [job_message(f"job {i}") for i in range(20)]
    with start(vhost, odoo, ScriptedBackend()) as running:
        for message in messages:
            publish(channel, message)
        ids = [m["generation_request_id"] for m in messages]
        wait_until(lambda: terminal_ids(odoo, ids), 20, "all jobs terminal")
        wait_until(lambda: running.worker.consumer.in_flight == 0, 10, "all acked")
    assert queue_depth(vhost, topology.JOBS_QUEUE) == 0  # nothing came back unacked
    assert odoo.invalid == []
    for request_id in ids:
        assert [c.path for c in odoo.calls_for(request_id)] == [
            "/ai/generation/progress",
            "/ai/generation/result",
        ]


def test_bad_messages_go_to_the_dlq_with_their_reason_and_the_worker_goes_on(vhost, odoo, channel):
    good = job_message("a good one")
    with start(vhost, odoo, ScriptedBackend()):
        publish(channel, b"{this is not json")
        publish(channel, {**job_message(), "params": {"size": "1x1"}})
        publish(channel, good)
        wait_until(lambda: terminal_ids(odoo, [good["generation_request_id"]]), 20, "good job done")
        wait_until(lambda: queue_depth(vhost, topology.DLQ) == 2, 10, "two dead letters")
    dead = drain_queue(vhost, topology.DLQ)
    reasons = sorted(p.headers[topology.REJECT_REASON_HEADER] for p, _ in dead)
    assert reasons[0].startswith("not valid JSON") and reasons[1].startswith("schema: params/size")
    assert b"{this is not json" in [body for _, body in dead]  # the original body travels
    assert queue_depth(vhost, topology.JOBS_QUEUE) == 0


def test_one_process_keeps_more_than_100_jobs_in_flight(vhost, odoo, channel):
    gate = threading.Event()
    backend = ScriptedBackend(default=lambda job: gate.wait(30) and GenerationOutput("ok", None, {}))
    messages = [job_message(f"parallel {i}") for i in range(120)]
    with start(vhost, odoo, backend, max_in_flight=120):
        for message in messages:
            publish(channel, message)
        wait_until(lambda: backend.active >= 120, 30, "120 AI calls at once")
        gate.set()
        ids = [m["generation_request_id"] for m in messages]
        wait_until(lambda: terminal_ids(odoo, ids), 30, "all done")
    assert backend.max_active == 120


def test_odoo_down_parks_the_outcome_and_the_drainer_delivers_it_later(vhost, odoo, channel):
    backend = ScriptedBackend().on("user", fail(status=400, code="invalid_value"))
    messages = [job_message("works"), job_message("user error")]
    ids = [m["generation_request_id"] for m in messages]
    odoo.down()
    with start(vhost, odoo, backend, callback_patience=3, drain_interval=0.3) as running:
        for message in messages:
            publish(channel, message)
        # while the callbacks are retried the jobs stay unacked: nothing is settled before Odoo has it
        wait_until(lambda: len(backend.calls) == 2, 10, "AI called")
        assert running.worker.consumer.in_flight == 2  # delivered, not acked
        time.sleep(1)
        assert running.worker.consumer.in_flight == 2 and odoo.calls == []
        # parked, and the jobs acked: the job queue does not hold them back
        wait_until(lambda: len(backend.calls) == 2 and running.worker.consumer.in_flight == 0, 20, "parked")
        assert queue_depth(vhost, topology.JOBS_QUEUE) == 0
        assert odoo.calls == []
        odoo.up()
        wait_until(lambda: terminal_ids(odoo, ids), 20, "parked outcomes delivered")
        wait_until(lambda: odoo.state(ids[1]).user_message is not None, 10, "notify delivered")
    assert len(backend.calls) == 2  # the AI was not called again
    assert odoo.state(ids[0]).status == "succeeded" and odoo.state(ids[1]).error_type == "invalid_input"
    assert queue_depth(vhost, topology.PARKED_QUEUE) == 0 and odoo.invalid == []


def test_a_connection_closed_by_the_broker_is_survived_and_no_job_is_lost(vhost, odoo, channel):
    backend = ScriptedBackend(default=lambda job: time.sleep(0.5) or GenerationOutput("ok", None, {}))
    messages = [job_message(f"survivor {i}") for i in range(10)]
    ids = [m["generation_request_id"] for m in messages]
    with start(vhost, odoo, backend) as running:
        for message in messages:
            publish(channel, message)
        wait_until(lambda: backend.active >= 5, 10, "jobs in flight")
        name = running.worker.config.connection_name
        assert vhost.close_connections(name) >= 1
        wait_until(lambda: terminal_ids(odoo, ids), 30, "all jobs terminal after the reconnect")
        wait_until(lambda: running.worker.healthy(), 10, "reconnected")
        # and it consumes on the new connection
        late = job_message("after the reconnect")
        publish(channel, late)
        wait_until(lambda: terminal_ids(odoo, [late["generation_request_id"]]), 20, "late job")
    assert queue_depth(vhost, topology.JOBS_QUEUE) == 0
    for request_id in ids:  # redelivered jobs may run twice, but Odoo records one outcome
        results = [
            c for c in odoo.calls_for(request_id, "/ai/generation/result") if not c.answer["duplicate"]
        ]
        assert len(results) == 1


def test_a_graceful_stop_lets_in_flight_jobs_finish(vhost, odoo, channel):
    backend = ScriptedBackend(default=lambda job: time.sleep(1) or GenerationOutput("ok", None, {}))
    messages = [job_message(f"finish me {i}") for i in range(10)]
    with start(vhost, odoo, backend, shutdown_grace=10) as running:
        for message in messages:
            publish(channel, message)
        wait_until(lambda: backend.active == 10, 10, "all in flight")
        running.stop()
    assert terminal_ids(odoo, [m["generation_request_id"] for m in messages])
    assert queue_depth(vhost, topology.JOBS_QUEUE) == 0


def test_jobs_that_cannot_finish_within_the_grace_go_back_to_the_queue(vhost, odoo, channel):
    backend = ScriptedBackend().on("retry", fail(status=503))
    messages = [job_message(f"retry forever {i}") for i in range(5)]
    ids = [m["generation_request_id"] for m in messages]
    with start(
        vhost, odoo, backend, shutdown_grace=0.5, backoff_initial=30, backoff_max=30, max_attempts=5
    ) as running:
        for message in messages:
            publish(channel, message)
        wait_until(lambda: len(backend.calls) == 5, 10, "first attempts made")
        running.stop()
    assert not any(odoo.state(i).status in ("succeeded", "failed") for i in ids)
    assert queue_depth(vhost, topology.JOBS_QUEUE) == 5  # back in the queue, nothing lost
    with start(vhost, odoo, ScriptedBackend()):  # another worker picks them up
        wait_until(lambda: terminal_ids(odoo, ids), 20, "finished by the next worker")
    assert all(odoo.state(i).status == "succeeded" for i in ids)


def test_a_request_odoo_already_finished_is_acked_without_an_ai_call(vhost, odoo, channel):
    message = job_message("already cancelled")
    odoo.register(message["generation_request_id"], status="cancelled")
    backend = ScriptedBackend()
    with start(vhost, odoo, backend) as running:
        publish(channel, message)
        wait_until(lambda: odoo.calls_for(message["generation_request_id"]), 10, "progress asked")
        wait_until(lambda: running.worker.consumer.in_flight == 0, 10, "acked")
    assert backend.calls == [] and queue_depth(vhost, topology.JOBS_QUEUE) == 0


def test_a_job_odoo_does_not_know_goes_to_the_dlq_without_an_ai_call(vhost, odoo, channel):
    odoo.known_only = True  # Odoo does not know this request: 404
    message = job_message("unknown to odoo")
    backend = ScriptedBackend()
    with start(vhost, odoo, backend):
        publish(channel, message)
        wait_until(lambda: queue_depth(vhost, topology.DLQ) == 1, 20, "dead-lettered")
    ((props, body),) = drain_queue(vhost, topology.DLQ)
    assert "odoo refused the job's progress callback" in props.headers[topology.REJECT_REASON_HEADER]
    assert json.loads(body)["generation_request_id"] == message["generation_request_id"]
    assert backend.calls == []


def test_an_outcome_odoo_refuses_for_good_goes_to_the_dlq(vhost, odoo, channel):
    message = job_message("refused at the end")
    request_id = message["generation_request_id"]

    def forget_the_request(job):  # Odoo loses the request while the AI works (e.g. a restored database)
        odoo.known_only = True
        with odoo._lock:
            odoo.requests.pop(request_id, None)
        return GenerationOutput("late", None, {})

    with start(vhost, odoo, ScriptedBackend(default=forget_the_request)):
        publish(channel, message)
        wait_until(lambda: queue_depth(vhost, topology.DLQ) == 1, 20, "dead-lettered")
    ((props, body),) = drain_queue(vhost, topology.DLQ)
    assert "odoo refused the outcome (succeeded)" in props.headers[topology.REJECT_REASON_HEADER]
    assert json.loads(body)["generation_request_id"] == request_id


def test_a_parked_result_odoo_refuses_for_its_size_is_reported_as_a_free_failure(vhost, odoo, channel):
    message = job_message("parked huge answer")
    huge = GenerationOutput("x" * (128 * 1024), None, {"total_tokens": 3})
    odoo.down()
    backend = ScriptedBackend().on("huge", huge)
    monitor = RecordingMonitor()  # the alert monitor hears of it too (it has a rate alert)
    config = worker_config(vhost, odoo, callback_patience=0.3, drain_interval=0.2)
    with RunningWorker(Worker(config, {backend.name: backend}, monitor=monitor)):
        publish(channel, message)
        wait_until(lambda: queue_depth(vhost, topology.PARKED_QUEUE) == 1, 20, "parked")
        odoo.max_body_bytes = 64 * 1024  # Odoo comes back, and refuses the result for its size
        odoo.up()
        wait_until(lambda: terminal_ids(odoo, [message["generation_request_id"]]), 20, "reported")
    state = odoo.state(message["generation_request_id"])
    assert (state.status, state.error_type) == ("failed", "result_too_large")
    (notify,) = odoo.calls_for(message["generation_request_id"], "/notify/generation-error")
    assert "you were not charged" in notify.body["retry_suggestion"]
    assert queue_depth(vhost, topology.DLQ) == 0 and queue_depth(vhost, topology.PARKED_QUEUE) == 0
    assert odoo.invalid == []
    assert monitor.failures == [("external", "result_too_large", message["generation_request_id"])]


class RecordingMonitor:
    """What the worker tells its alert monitor (worker.alerting.AlertMonitor's methods)."""

    def __init__(self):
        self.failures = []
        self.successes = []

    def record_failure(self, backend, classification, request_id):
        self.failures.append((backend, classification.error_type, request_id))

    def record_success(self, backend):
        self.successes.append(backend)

    def start(self):
        pass

    def stop(self):
        pass


class RecordingMetrics:
    """What the worker counts (the worker.metrics module's functions): each job's outcome and error type."""

    def __init__(self):
        self.jobs = []

    def set_in_flight(self, n):
        pass

    def observe_job(self, outcome, backend, error_type, seconds):
        self.jobs.append((outcome, error_type))


def test_a_parked_outcome_odoo_refuses_for_good_moves_to_the_dlq(vhost, odoo, channel):
    message = job_message("parked then refused")
    odoo.down()
    with start(vhost, odoo, ScriptedBackend(), callback_patience=0.3, drain_interval=0.2):
        publish(channel, message)
        wait_until(lambda: queue_depth(vhost, topology.PARKED_QUEUE) == 1, 20, "parked")
        assert queue_depth(vhost, topology.DLQ) == 0
        odoo.known_only = True  # Odoo comes back without this request: 404 for good
        odoo.up()
        wait_until(lambda: queue_depth(vhost, topology.DLQ) == 1, 20, "moved to the DLQ")
    ((props, body),) = drain_queue(vhost, topology.DLQ)
    assert "parked outcome refused" in props.headers[topology.REJECT_REASON_HEADER]
    assert json.loads(body)["request_id"] == message["generation_request_id"]  # the outcome is kept
    assert queue_depth(vhost, topology.PARKED_QUEUE) == 0


def test_a_message_returned_too_often_is_dead_lettered_by_the_broker(vhost, channel):
    """The delivery limit of the topology: a message that keeps coming back ends in the DLQ."""
    from worker.consumer import Consumer, ConsumerConfig, Requeue

    deliveries = []

    def always_requeue(delivery):
        deliveries.append(delivery.delivery_count)
        return Requeue()

    consumer = Consumer(
        ConsumerConfig(vhost.url, max_in_flight=4, connection_name="limit-test"), always_requeue
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        publish(channel, job_message("poison"))
        wait_until(lambda: queue_depth(vhost, topology.DLQ) == 1, 20, "dead-lettered by the broker")
    finally:
        consumer.stop()
        thread.join(20)
    assert len(deliveries) == 6  # the first delivery and five returns (x-delivery-limit 5)
    assert queue_depth(vhost, topology.JOBS_QUEUE) == 0


def test_the_broker_going_away_and_coming_back_is_survived(vhost, odoo, channel):
    """Through a proxy: connections dropped, then refused for a while, then the broker is back."""
    backend = ScriptedBackend(default=lambda job: time.sleep(0.3) or GenerationOutput("ok", None, {}))
    proxy = BrokerProxy().start()
    before = [job_message(f"before the outage {i}") for i in range(5)]
    during = [job_message(f"during the outage {i}") for i in range(5)]
    try:
        with start(vhost, odoo, backend, amqp_url=proxy.url(vhost)) as running:
            for message in before:
                publish(channel, message)
            wait_until(lambda: backend.active >= 1, 10, "jobs in flight")
            proxy.cut()
            wait_until(lambda: not running.worker.healthy(), 10, "worker sees the outage")
            for message in during:  # published straight to the broker while the worker cannot reach it
                publish(channel, message)
            time.sleep(1.5)  # a few refused reconnects
            assert not running.worker.healthy()
            proxy.restore()
            ids = [m["generation_request_id"] for m in before + during]
            wait_until(lambda: terminal_ids(odoo, ids), 30, "every job done after the outage")
            assert running.worker.healthy()
    finally:
        proxy.cut()
    assert queue_depth(vhost, topology.JOBS_QUEUE) == 0


def test_a_result_odoo_refuses_for_its_size_is_reported_as_a_free_failure(vhost, odoo, channel):
    # a provider that writes more than Odoo reads (its 413 above twice ai_generation.max_result_bytes)
    odoo.max_body_bytes = 64 * 1024
    huge = GenerationOutput("x" * (128 * 1024), None, {"total_tokens": 3})
    message, small = job_message("huge answer"), job_message("small answer")
    with start(vhost, odoo, ScriptedBackend().on("huge", huge)) as running:
        publish(channel, message)
        publish(channel, small)
        ids = [message["generation_request_id"], small["generation_request_id"]]
        wait_until(lambda: terminal_ids(odoo, ids), 20, "both jobs terminal")
        wait_until(lambda: running.worker.consumer.in_flight == 0, 10, "both acked")
    state = odoo.state(message["generation_request_id"])
    assert (state.status, state.error_type) == ("failed", "result_too_large")
    failure = odoo.calls_for(message["generation_request_id"], "/ai/generation/failure")[0].body
    assert failure["is_system_error"] is True and failure["is_user_error"] is False
    notify = odoo.calls_for(message["generation_request_id"], "/notify/generation-error")[0].body
    assert "you were not charged" in notify["retry_suggestion"]
    assert [c.status for c in odoo.calls if c.path == "/ai/generation/result" and c.status == 413] == [413]
    assert odoo.state(small["generation_request_id"]).status == "succeeded"
    # nothing parked or dead-lettered: the outcome was settled, and Odoo was asked once
    assert queue_depth(vhost, topology.PARKED_QUEUE) == 0 and queue_depth(vhost, topology.DLQ) == 0
    assert odoo.invalid == []


def test_a_result_odoo_fails_for_its_size_counts_as_a_failure_not_a_success(vhost, odoo, channel):
    # under the body limit but over the size Odoo keeps: Odoo fails the request on the result itself
    odoo.max_result_bytes = 4 * 1024
    large = GenerationOutput("x" * (8 * 1024), None, {"total_tokens": 3})
    message, small = job_message("large answer"), job_message("small answer")
    monitor, metrics = RecordingMonitor(), RecordingMetrics()
    backends = {"external": ScriptedBackend().on("large", large)}
    with RunningWorker(Worker(worker_config(vhost, odoo), backends, monitor=monitor, metrics=metrics)):
        publish(channel, message)
        publish(channel, small)
        ids = [message["generation_request_id"], small["generation_request_id"]]
        wait_until(lambda: terminal_ids(odoo, ids), 20, "both jobs terminal")
        wait_until(lambda: len(metrics.jobs) == 2, 10, "both counted")
    state = odoo.state(message["generation_request_id"])
    assert (state.status, state.error_type) == ("failed", "result_too_large")
    # Odoo told the owner itself: the worker sends no failure of its own after the result
    assert [c.path for c in odoo.calls_for(message["generation_request_id"])] == [
        "/ai/generation/progress",
        "/ai/generation/result",
    ]
    assert sorted(metrics.jobs) == [("failed_system", "result_too_large"), ("succeeded", None)]
    assert monitor.failures == [("external", "result_too_large", message["generation_request_id"])]
    # only the small result is a success: the large one would otherwise end each streak it starts
    assert monitor.successes == ["external"]
    assert queue_depth(vhost, topology.PARKED_QUEUE) == 0 and queue_depth(vhost, topology.DLQ) == 0


def test_a_result_odoo_failed_whose_answer_was_lost_still_counts_as_a_failure(vhost, odoo, channel):
    # Odoo failed the request on the result, but its answer never came back (a timeout on a large
    # body): the worker's repeat of the same event is a duplicate, which must still say so
    odoo.max_result_bytes = 4 * 1024
    odoo.lose_next_answer.add("/ai/generation/result")
    message = job_message("large answer, answer lost")
    large = GenerationOutput("x" * (8 * 1024), None, {"total_tokens": 3})
    monitor, metrics = RecordingMonitor(), RecordingMetrics()
    backends = {"external": ScriptedBackend().on("large", large)}
    with RunningWorker(Worker(worker_config(vhost, odoo), backends, monitor=monitor, metrics=metrics)):
        publish(channel, message)
        wait_until(lambda: terminal_ids(odoo, [message["generation_request_id"]]), 20, "terminal")
        wait_until(lambda: metrics.jobs, 10, "counted")
    results = odoo.calls_for(message["generation_request_id"], "/ai/generation/result")
    assert [call.answer["duplicate"] for call in results] == [False, True]  # the lost one, the repeat
    assert metrics.jobs == [("failed_system", "result_too_large")]
    assert monitor.failures == [("external", "result_too_large", message["generation_request_id"])]
    assert monitor.successes == []


def test_a_parked_result_is_a_success_for_the_alert_monitor_when_parked_and_not_again(vhost, odoo, channel):
    # Odoo being down is no failure of the backend's: a success it cannot take yet still ends the
    # backend's streak (else a retried 503 per job would build one), and is not told again when drained
    message = job_message("parked answer")
    odoo.down()
    monitor = RecordingMonitor()
    config = worker_config(vhost, odoo, callback_patience=0.3, drain_interval=0.2)
    with RunningWorker(Worker(config, {"external": ScriptedBackend()}, monitor=monitor)) as running:
        publish(channel, message)
        wait_until(lambda: queue_depth(vhost, topology.PARKED_QUEUE) == 1, 20, "parked")
        assert monitor.successes == ["external"]
        odoo.up()
        wait_until(lambda: terminal_ids(odoo, [message["generation_request_id"]]), 20, "drained")
        wait_until(lambda: running.worker.drainer.delivered == 1, 10, "acked")
    assert odoo.state(message["generation_request_id"]).status == "succeeded"
    assert monitor.successes == ["external"] and monitor.failures == []


def test_a_parked_result_odoo_fails_for_its_size_is_heard_by_the_alert_monitor(vhost, odoo, channel):
    message = job_message("parked large answer")
    large = GenerationOutput("x" * (8 * 1024), None, {"total_tokens": 3})
    odoo.down()
    monitor = RecordingMonitor()
    config = worker_config(vhost, odoo, callback_patience=0.3, drain_interval=0.2)
    with RunningWorker(Worker(config, {"external": ScriptedBackend().on("large", large)}, monitor=monitor)):
        publish(channel, message)
        wait_until(lambda: queue_depth(vhost, topology.PARKED_QUEUE) == 1, 20, "parked")
        odoo.max_result_bytes = 4 * 1024  # Odoo comes back, and fails the request on the result
        odoo.up()
        wait_until(lambda: terminal_ids(odoo, [message["generation_request_id"]]), 20, "reported")
        wait_until(lambda: monitor.failures, 10, "heard by the monitor")
    state = odoo.state(message["generation_request_id"])
    assert (state.status, state.error_type) == ("failed", "result_too_large")
    assert odoo.calls_for(message["generation_request_id"], "/ai/generation/failure") == []
    assert monitor.failures == [("external", "result_too_large", message["generation_request_id"])]
    assert queue_depth(vhost, topology.DLQ) == 0 and queue_depth(vhost, topology.PARKED_QUEUE) == 0


def test_a_parked_result_odoo_failed_and_delivered_twice_is_one_failure(odoo):
    # the broker dropped between the drainer's delivery and its ack: the same parked outcome comes
    # again, and Odoo's answer (a duplicate) still says this event failed the request
    odoo.max_result_bytes = 4 * 1024
    message = job_message("parked large answer, redelivered")
    result = Callback(
        "/ai/generation/result",
        {
            "generation_request_id": message["generation_request_id"],
            "event_id": "evt-parked-large-1",
            "output": "x" * 8192,
            "usage": {},
            "backend": "external",
            "attempt": 1,
            "occurred_at": "2026-12-02T12:00:00+00:00",
        },
    )
    monitor = RecordingMonitor()
    reporter = OdooReporter(ReporterConfig(odoo.url, SECRET, timeout=5, patience=0))
    drainer = ParkedDrainer("amqp://unused", reporter, monitor=monitor)
    try:
        drainer._deliver([result])
        drainer._deliver([result])
    finally:
        reporter.close()
    answers = [c.answer for c in odoo.calls_for(message["generation_request_id"], "/ai/generation/result")]
    assert [(a["duplicate"], a["failed_by_this_event"]) for a in answers] == [(False, True), (True, True)]
    assert monitor.failures == [("external", "result_too_large", message["generation_request_id"])]


@pytest.mark.parametrize("value", ["abc", 1.5, [1], {"a": 1}, True, -3])
def test_a_delivery_count_header_that_is_no_count_reads_as_none(value):
    assert delivery_count({"x-delivery-count": value}) == 0
    assert delivery_count({"x-delivery-count": 4}) == 4 and delivery_count(None) == 0


def test_a_message_with_a_hostile_delivery_count_neither_stops_the_worker_nor_blocks_the_queue(
    vhost, odoo, channel
):
    # anyone who may publish sets headers: a string there raised in pika's callback and ended the run
    hostile, fine = job_message("hostile header"), job_message("after it")
    with start(vhost, odoo, ScriptedBackend()) as running:
        publish(channel, hostile, headers={"x-delivery-count": "abc"})
        publish(channel, fine)
        ids = [hostile["generation_request_id"], fine["generation_request_id"]]
        wait_until(lambda: terminal_ids(odoo, ids), 20, "both settled")
        assert running.thread.is_alive()


class FakeChannel:
    """What the drainer uses of a pika channel: parked messages to get, and what it did with them."""

    def __init__(self, *bodies: bytes):
        self.bodies = list(bodies)
        self.acked, self.nacked, self.published = [], [], []

    def basic_get(self, queue, auto_ack=False):
        if not self.bodies:
            return None, None, None
        return type("Method", (), {"delivery_tag": len(self.bodies)})(), None, self.bodies.pop(0)

    def basic_ack(self, tag):
        self.acked.append(tag)

    def basic_nack(self, tag, requeue=True):
        self.nacked.append(tag)

    def basic_publish(self, exchange, routing_key, body, properties=None):
        self.published.append((routing_key, body, properties))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100000,  # a RecursionError killed the drainer thread: every parked outcome stalled
        # a path with a space was a transport error, "Odoo unavailable": requeued at the head forever
        json.dumps({"callbacks": [{"path": "/ai/generation/result x", "body": {}}]}).encode(),
        json.dumps({"callbacks": [{"path": "/web/session/destroy", "body": {}}]}).encode(),
        json.dumps({"callbacks": [{"path": "/ai/generation/result", "body": "not an object"}]}).encode(),
    ],
    ids=["nested too deep", "a path with a space", "another path of Odoo's", "a body that is no object"],
)
def test_a_parked_message_that_is_no_outcome_goes_to_the_dlq(odoo, body):
    reporter = OdooReporter(ReporterConfig(odoo.url, SECRET, timeout=5, patience=0))
    channel = FakeChannel(body)
    try:
        ParkedDrainer("amqp://unused", reporter)._drain_once(channel, 1.0)
    finally:
        reporter.close()
    assert [routing_key for routing_key, _, _ in channel.published] == [topology.DLQ]
    assert channel.acked and not channel.nacked
    assert odoo.calls == []  # nothing of it reached Odoo
