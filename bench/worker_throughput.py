"""Worker throughput, from one run on the local RabbitMQ (a throwaway vhost), printed as name=value lines.

1. raw pika baseline: consume-and-ack of N small persistent messages (prefetch = the worker's in-flight
   limit), the ceiling for any consumer on this broker, and its CPU per message (this process);
2. success path at 100 in flight: the real ``aigen-worker`` process (openai SDK) against a loopback fake AI
   that answers every request after 1 s; the ideal is 100 jobs/s (100 in flight / 1 s);
3. failure path: the same worker against an instant 400 answer (progress + failure + notify callbacks per
   job), as a ratio to the raw pika figure of step 1.

The fakes (AI and Odoo) run in this process, the worker in its own; its peak RSS is read from /proc.
Job seconds are progress callback to outcome callback as Odoo sees them (the AI's share is 1 s).
Worker CPU per job is the process's user + system time over the phase, divided by its jobs (wall time
says little on a machine shared with other work); ``*_cpu_ratio_to_raw_pika_ack`` divides it by the raw
consumer's CPU per message of step 1, a figure that moves with the machine's speed and load as well.
Usage: python bench/worker_throughput.py [--jobs 1500] [--fail-jobs 2000] [--raw 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pika  # noqa: E402

from tests.support import fake_openai as ai  # noqa: E402
from tests.support.fake_odoo import FakeOdoo  # noqa: E402
from tests.support.rabbit import throwaway_vhost  # noqa: E402
from tests.worker.helpers import job_message  # noqa: E402
from worker import topology  # noqa: E402

IN_FLIGHT = 100
SECRET = "bench-worker-secret"  # noqa: S105 - a loopback-only test secret


def publish_many(channel, bodies: list[bytes], routing: tuple[str, str]) -> None:
    props = pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent)
    for body in bodies:
        channel.basic_publish(routing[0], routing[1], body, props)


def wait_depth(channel, queue: str, depth: int, timeout: float = 120) -> None:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if channel.queue_declare(queue, passive=True).method.message_count >= depth:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{queue} did not reach {depth} messages")


def raw_consume_ack(vhost, count: int) -> tuple[float, float]:
    """Messages per second of a bare pika consumer with manual acks (prefetch IN_FLIGHT), and its CPU
    seconds per message."""
    conn = vhost.connect()
    channel = conn.channel()
    queue = "bench.raw"
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    body = json.dumps(job_message("raw baseline")).encode()
    publish_many(channel, [body] * count, ("", queue))
    wait_depth(channel, queue, count)
    channel.basic_qos(prefetch_count=IN_FLIGHT)
    seen = 0
    started, cpu_started = time.monotonic(), time.process_time()

    def on_message(ch, method, _props, _body):
        nonlocal seen
        ch.basic_ack(method.delivery_tag)
        seen += 1
        if seen == count:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    channel.queue_delete(queue)
    conn.close()
    return count / elapsed, cpu / count


def start_worker(vhost, odoo: FakeOdoo, openai_api: ai.FakeOpenAI, log_file) -> subprocess.Popen:
    env = {
        **os.environ,
        "AIGEN_AMQP_URL": vhost.url,
        "AIGEN_ODOO_URL": odoo.url,
        "AIGEN_WORKER_SECRET": SECRET,
        "AIGEN_BACKENDS": "external",
        "AIGEN_OPENAI_BASE_URL": openai_api.base_url,
        "AIGEN_OPENAI_API_KEY": "sk-bench",
        "AIGEN_MAX_IN_FLIGHT": str(IN_FLIGHT),
        "AIGEN_METRICS_PORT": "-1",
        "AIGEN_LOG_LEVEL": "INFO",
        "AIGEN_CONNECTION_NAME": "bench-worker",
    }
    command = [str(Path(sys.executable).with_name("aigen-worker"))]
    if not Path(command[0]).exists():
        command = [sys.executable, "-m", "worker"]
    return subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file, cwd=REPO)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_phase(channel, odoo: FakeOdoo, messages: list[dict], timeout: float, name: str = "") -> float:
    """Publish, wait until Odoo has every outcome; jobs/s from the first progress to the last outcome."""
    ids = [m["generation_request_id"] for m in messages]
    publish_many(
        channel, [json.dumps(m).encode() for m in messages], (topology.EXCHANGE, topology.ROUTING_KEY)
    )
    ends = time.monotonic() + timeout
    pending = set(ids)
    while time.monotonic() < ends:
        pending = {
            i for i in pending if (s := odoo.state(i)) is None or s.status not in ("succeeded", "failed")
        }
        if not pending:
            break
        time.sleep(0.25)
    else:
        raise RuntimeError("the worker did not finish the phase in time")
    wanted = set(ids)
    with odoo._lock:
        calls = [c for c in odoo.calls if c.request_id in wanted]
    first = min(c.at for c in calls if c.path == "/ai/generation/progress")
    last = max(c.at for c in calls if c.path in ("/ai/generation/result", "/ai/generation/failure"))
    started = {c.request_id: c.at for c in calls if c.path == "/ai/generation/progress"}
    ended = {
        c.request_id: c.at for c in calls if c.path in ("/ai/generation/result", "/ai/generation/failure")
    }
    spans = sorted(ended[i] - started[i] for i in ids)
    if name:
        print(f"{name}_job_seconds_median={spans[len(spans) // 2]:.3f}", flush=True)
        print(f"{name}_job_seconds_p95={spans[int(len(spans) * 0.95)]:.3f}", flush=True)
    return len(ids) / (last - first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1500, help="success-path jobs (1 s each, 100 in flight)")
    parser.add_argument("--fail-jobs", type=int, default=2000, help="failure-path jobs (instant 400)")
    parser.add_argument("--raw", type=int, default=5000, help="messages for the raw pika baseline")
    args = parser.parse_args()

    with (
        throwaway_vhost("aigen-bench") as vhost,
        FakeOdoo(SECRET) as odoo,
        ai.FakeOpenAI() as openai_api,
        tempfile.TemporaryFile("w+") as log_file,
    ):
        odoo.validate = False  # the tests validate every body; here the fake must not be the bottleneck
        openai_api.default = ai.text("a completion", delay=1.0)
        openai_api.on("[fail]", ai.invalid_value("size"))
        openai_api.on("[warm]", ai.text("warm", delay=0.3))

        raw, raw_cpu = raw_consume_ack(vhost, args.raw)
        print(f"raw_pika_consume_ack_msgs_per_s={raw:.1f}", flush=True)
        print(f"raw_pika_consume_ack_cpu_ms_per_msg={raw_cpu * 1000:.3f}", flush=True)

        conn = vhost.connect()
        channel = conn.channel()
        topology.declare(channel)
        worker = start_worker(vhost, odoo, openai_api, log_file)
        try:
            # warm-up: open the worker's 100 keep-alive connections to the fake AI and to Odoo
            warm = [job_message("warm-up [warm]") for _ in range(IN_FLIGHT)]
            run_phase(channel, odoo, warm, 60)

            ok = [job_message(f"success {i}") for i in range(args.jobs)]
            cpu_before, own_before = cpu_seconds(worker.pid), time.process_time()
            rate = run_phase(channel, odoo, ok, args.jobs / 20 + 60, "success_path")
            worker_cpu = (cpu_seconds(worker.pid) - cpu_before) / args.jobs
            fakes_cpu = (time.process_time() - own_before) / args.jobs
            print(f"success_path_worker_cpu_ms_per_job={worker_cpu * 1000:.2f}", flush=True)
            print(f"success_path_worker_cpu_ratio_to_raw_pika_ack={worker_cpu / raw_cpu:.1f}", flush=True)
            print(f"success_path_fakes_cpu_ms_per_job={fakes_cpu * 1000:.2f}", flush=True)
            print(f"throughput_100_inflight_jobs_per_s={rate:.1f}", flush=True)
            print(f"throughput_ratio_to_ideal={rate / IN_FLIGHT:.3f}", flush=True)
            print(f"fake_ai_max_concurrent_requests={openai_api.max_in_flight}", flush=True)

            failing = [job_message(f"bad size [fail] {i}") for i in range(args.fail_jobs)]
            cpu_before, own_before = cpu_seconds(worker.pid), time.process_time()
            fail_rate = run_phase(channel, odoo, failing, 120, "failure_path")
            worker_cpu = (cpu_seconds(worker.pid) - cpu_before) / args.fail_jobs
            fakes_cpu = (time.process_time() - own_before) / args.fail_jobs
            print(f"failure_path_worker_cpu_ms_per_job={worker_cpu * 1000:.2f}", flush=True)
            print(f"failure_path_worker_cpu_ratio_to_raw_pika_ack={worker_cpu / raw_cpu:.1f}", flush=True)
            print(f"failure_path_fakes_cpu_ms_per_job={fakes_cpu * 1000:.2f}", flush=True)
            print(f"failure_path_jobs_per_s={fail_rate:.1f}", flush=True)
            print(f"failure_path_ratio_to_raw_pika={fail_rate / raw:.3f}", flush=True)
            print(f"peak_rss_mb={peak_rss_mb(worker.pid):.1f}", flush=True)
            print(f"invalid_callbacks={len(odoo.invalid)}", flush=True)
        finally:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
            conn.close()
            if worker.returncode not in (0, -15):
                log_file.seek(0)
                sys.stderr.write(log_file.read()[-5000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
