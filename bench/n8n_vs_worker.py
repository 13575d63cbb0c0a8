"""The same jobs through the n8n workflows and through the Python worker, from one run: name=value lines.

Both consume the same queue (a throwaway vhost of the local RabbitMQ, topology as DESIGN declares it)
with the same in-flight limit (16: the n8n trigger's parallel-message limit), against the same loopback
fake AI (a text success after --latency seconds) and the same Odoo stand-in. Jobs per second are counted
as Odoo sees them: first progress callback to last outcome callback. n8n runs first (then stops), the
worker second, so they never share the queue. Needs n8n (scripts/install-n8n); prints the reason if not.
Usage: python bench/n8n_vs_worker.py [--jobs 300] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import worker_throughput  # noqa: E402
from worker_throughput import SECRET, run_phase, start_worker  # noqa: E402

from tests.n8n.harness import deploy, missing_reason  # noqa: E402
from tests.support import fake_openai as ai  # noqa: E402
from tests.support.fake_odoo import FakeOdoo  # noqa: E402
from tests.support.rabbit import throwaway_vhost  # noqa: E402
from tests.worker.helpers import job_message  # noqa: E402
from worker import topology  # noqa: E402

IN_FLIGHT = 16  # n8n_workflows/build.py: the trigger's parallelMessages
API_KEY = "sk-bench"


def wait_consumers(channel, count: int, timeout: float = 90) -> None:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if channel.queue_declare(topology.JOBS_QUEUE, passive=True).method.consumer_count >= count:
            return
        time.sleep(0.2)
    raise RuntimeError("no consumer on the jobs queue")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake AI takes per answer")
    args = parser.parse_args()
    reason = missing_reason()
    if reason:
        print(f"skipped: {reason}", file=sys.stderr)
        return 0

    with (
        throwaway_vhost("aigen-bench-n8n") as vhost,
        FakeOdoo(SECRET) as odoo,
        ai.FakeOpenAI(latency=args.latency, api_key=API_KEY) as fake_ai,
    ):
        connection = vhost.connect()
        channel = connection.channel()
        topology.declare(channel)

        def jobs(tag: str) -> list[dict]:
            return [job_message(f"{tag} job {i}") for i in range(args.jobs)]

        settings = {"odoo_url": odoo.url, "openai_base_url": fake_ai.base_url}
        n8n = deploy(vhost.name, settings, worker_secret=SECRET, openai_key=API_KEY)
        try:
            version = n8n.version()
            wait_consumers(channel, 1)
            run_phase(channel, odoo, jobs("warmup-n8n")[:20], timeout=300)
            n8n_rate = run_phase(channel, odoo, jobs("n8n"), timeout=900, name="n8n")
        finally:
            n8n.close()

        worker_throughput.IN_FLIGHT = IN_FLIGHT  # start_worker reads it: the same limit as n8n's
        with tempfile.TemporaryFile() as log:
            worker = start_worker(vhost, odoo, fake_ai, log)
            try:
                wait_consumers(channel, 1)
                run_phase(channel, odoo, jobs("warmup-worker")[:20], timeout=300)
                worker_rate = run_phase(channel, odoo, jobs("worker"), timeout=900, name="worker")
            finally:
                worker.terminate()
                worker.wait(timeout=60)
        connection.close()

    print(f"n8n_version={version}")
    print(f"jobs={args.jobs}")
    print(f"in_flight={IN_FLIGHT}")
    print(f"ai_latency_seconds={args.latency}")
    print(f"n8n_jobs_per_second={n8n_rate:.1f}")
    print(f"worker_jobs_per_second={worker_rate:.1f}")
    print(f"worker_vs_n8n_throughput_ratio={worker_rate / n8n_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
