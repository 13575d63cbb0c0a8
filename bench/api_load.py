"""The public API under load, from one run against a real Odoo 18.0: name=value lines (issue 8, points 3-4).

Parts: a throwaway database with the addon and 16 bench users (credits, API keys), a throwaway vhost on the
local RabbitMQ, the real worker (``aigen-worker``), instant and 1 s fake AI providers
(tests/support/fake_openai.py), and wrk (bench/load_client.py, bench/api_load.lua: one thread and one API
key per connection). First the client's own ceiling against a trivial nginx; then, for each Odoo mode
(threaded; prefork ``--workers 2`` with the gevent port, as docker/compose.yaml runs it), phases of
``--phase-seconds`` each:

1. ``health``: GET /web/health at 16 connections, the trivial route every ratio is taken against;
2. ``post_16_users`` and ``post_hot_user``: POST /api/v1/generations at 16 connections from 16 users, then
   from one user (every connection on one account), with no worker running (the jobs are purged after);
   server time is Odoo's own (its werkzeug log line: query time + the rest, bench/odoo_log.py), client
   time is wrk's;
3. ``e2e``: the same POSTs with the worker running against the instant AI; jobs terminal per second
   from the first POST to the last outcome callback (every job costs Odoo a create, a progress and an
   outcome request);
4. ``scaling``: one worker, then two on the same queue, each with 8 jobs at once against the 1 s AI;
   the jobs are created beforehand and put on the queue in one go once the workers consume; jobs per
   second until the last outcome callback, two workers as a ratio to one.

Odoo serves a copy of the addon taken when the bench starts (``code_commit`` and how many files differed
from it): every phase and mode measure the same code. Each mode ends with the serialization failures and
ERROR lines Odoo logged while it ran (the whole log of that server, start-up included).
Usage: python bench/api_load.py [--quick] [--modes threaded,prefork] [--log-dir DIR]
"""

from __future__ import annotations

import argparse
import math
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import api_stack  # noqa: E402
from load_client import run_wrk, trivial_server, wrk_binary  # noqa: E402
from odoo_log import LogWindow, error_lines, percentile, serialization_failures  # noqa: E402

from tests.support.fake_openai import FakeOpenAI  # noqa: E402
from tests.support.odoo import find_odoo, free_port, throwaway_database  # noqa: E402
from tests.support.rabbit import throwaway_vhost  # noqa: E402

CONNECTIONS = USERS = 16
CREATE = "/api/v1/generations"
OUTCOMES = ("/ai/generation/result", "/ai/generation/failure")


@dataclass(frozen=True)
class Settings:
    phase: float  # seconds of each wrk phase
    drain: float  # longest wait for the e2e jobs to finish after the POSTs stop
    in_flight: int  # per worker in the scaling phase
    rounds: int  # scaling: jobs per worker = in_flight * rounds (about `rounds` seconds against the 1 s AI)
    slow_ai: float  # the scaling phase's AI latency


FULL = Settings(phase=8, drain=20, in_flight=8, rounds=6, slow_ai=1.0)
QUICK = Settings(phase=2, drain=15, in_flight=2, rounds=2, slow_ai=1.0)


def emit(name: str, value) -> None:
    if isinstance(value, float):
        value = "nan" if math.isnan(value) else f"{value:.3f}"
    print(f"{name}={value}", flush=True)


def ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


class CpuMeter:
    """CPU used from now on by process trees (``roots``), by the machine as a whole and by the shared
    services (PostgreSQL, RabbitMQ), and by this process (the fake AIs, wrk's parent) with ``bench``."""

    def __init__(self, roots: dict[str, int], bench: bool = False):
        self.sources = {name: lambda pid=pid: api_stack.tree_cpu_seconds(pid) for name, pid in roots.items()}
        self.sources["machine"] = api_stack.machine_cpu_seconds
        for name, commands in api_stack.SERVICES.items():
            self.sources[name] = lambda commands=commands: api_stack.command_cpu_seconds(commands)
        if bench:
            self.sources["bench"] = time.process_time
        self.started = time.monotonic()
        self.before = {name: read() for name, read in self.sources.items()}

    def seconds(self) -> dict[str, float]:
        """CPU seconds used since the meter started, by source."""
        return {name: read() - self.before[name] for name, read in self.sources.items()}

    def cores(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        return {name: seconds / wall for name, seconds in self.seconds().items()}


def cpu_ms_per(seconds: float, requests: int) -> float:
    return 1000 * seconds / requests if requests else float("nan")


class Bench:
    def __init__(self, odoo, db, vhost, keys, secret, settings: Settings, ais, log_dir: Path | None = None):
        self.odoo, self.db, self.vhost, self.keys, self.secret = odoo, db, vhost, keys, secret
        self.settings, self.log_dir = settings, log_dir
        self.python_path: Path | None = None  # the gevent metadata shim, when Odoo's venv needs it
        self.instant_ai, self.slow_ai = ais
        self.queue = api_stack.Queue(vhost)
        self.totals = {"serialization_failures": 0, "error_lines": 0}

    def client_ceiling(self) -> float:
        with trivial_server(free_port()) as url:
            run = run_wrk(f"{url}{CREATE}", min(self.settings.phase, 3), CONNECTIONS, self.keys)
        emit("client_ceiling_post_rps", run.rps)
        emit("client_ceiling_client_cores", run.client_cores)
        return run.rps

    def run_mode(self, mode: str, ceiling: float) -> None:
        server = api_stack.start_odoo(self.odoo, self.db, mode, self.python_path)
        try:
            self._warm_up(server)
            fastest = self._phases(mode, server)
            emit(f"{mode}_client_headroom", ratio(ceiling, fastest))
            self.queue.purge()
            self._scaling(mode, server)
        finally:
            server.stop()
            log = server.log()
            if self.log_dir:
                (self.log_dir / f"odoo-{mode}.log").write_text(log)
            server.log_path.unlink(missing_ok=True)
        failures, errors = serialization_failures(log), error_lines(log)
        emit(f"{mode}_serialization_failures", failures)
        emit(f"{mode}_error_lines", len(errors))
        emit(f"{mode}_tracebacks", log.count("Traceback (most recent call last)"))
        for line in errors[:5]:
            print(f"# {mode} odoo ERROR: {line[:300]}", file=sys.stderr)
        self.totals["serialization_failures"] += failures
        self.totals["error_lines"] += len(errors)

    def _warm_up(self, server) -> None:
        """Every Odoo process loads its routes and caches on its first requests: not in the figures."""
        run_wrk(f"{server.url}/web/health", 1, CONNECTIONS)
        api_stack.post_batch(server.url, self.keys, 4 * CONNECTIONS)
        api_stack.settle(self.db)
        self.queue.purge()

    def _phases(self, mode: str, server) -> float:
        """health (half before the POST phases, half after: the cores' other users come and go), the
        two POST phases, then end to end; returns the fastest rate wrk saw."""
        phase, health_url = self.settings.phase, f"{server.url}/web/health"
        roots = {"odoo": server.process.pid}
        cpu = CpuMeter(roots)
        health_before, health_cpu = run_wrk(health_url, phase / 2, CONNECTIONS), cpu.seconds()
        posts = {}
        for name, keys in (("post_16_users", self.keys[:USERS]), ("post_hot_user", self.keys[:1])):
            window = LogWindow(server.log_path).open()
            cpu = CpuMeter(roots)
            run = run_wrk(f"{server.url}{CREATE}", phase, CONNECTIONS, keys)
            posts[name] = run, cpu.cores(), cpu.seconds(), window
            api_stack.settle(self.db)
            window.close()
            self.queue.purge()
        cpu = CpuMeter(roots)
        health_after = run_wrk(health_url, phase / 2, CONNECTIONS)
        health_cpu = {name: used + cpu.seconds()[name] for name, used in health_cpu.items()}
        requests = health_before.requests + health_after.requests
        seconds = health_before.values["wrk_duration_s"] + health_after.values["wrk_duration_s"]
        health_rps = requests / seconds
        health_machine_ms = cpu_ms_per(health_cpu["machine"], requests)
        health_odoo_ms = cpu_ms_per(health_cpu["odoo"], requests)
        emit(f"{mode}_health_rps", health_rps)
        emit(f"{mode}_health_after_to_before", ratio(health_after.rps, health_before.rps))
        emit(f"{mode}_health_client_cores", max(health_before.client_cores, health_after.client_cores))
        emit(f"{mode}_health_machine_cpu_ms", health_machine_ms)
        emit(f"{mode}_health_odoo_cpu_ms", health_odoo_ms)
        for name, (run, cores, used, window) in posts.items():
            server_ms = [1000 * r.server_seconds for r in window.requests("POST", CREATE) if r.status == 202]
            emit(f"{mode}_{name}_rps", run.rps)
            emit(f"{mode}_{name}_ratio_to_health", ratio(run.rps, health_rps))
            emit(f"{mode}_{name}_non_202", run.requests - run.status_count(202))
            emit(f"{mode}_{name}_server_p50_ms", percentile(server_ms, 50))
            emit(f"{mode}_{name}_server_p99_ms", percentile(server_ms, 99))
            emit(f"{mode}_{name}_client_p50_ms", run.values.get("wrk_latency_p50_ms", float("nan")))
            emit(f"{mode}_{name}_client_p99_ms", run.values.get("wrk_latency_p99_ms", float("nan")))
            emit(f"{mode}_{name}_client_cores", run.client_cores)
            emit(f"{mode}_{name}_odoo_cores", cores["odoo"])
            # what one POST costs, and who spends it; a _bound_ratio is the ratio to health if one
            # resource, the cores or Odoo's processes (threaded: one GIL), limited both (README)
            for source in ("machine", "odoo", *api_stack.SERVICES):
                emit(f"{mode}_{name}_{source}_cpu_ms", cpu_ms_per(used[source], run.requests))
            emit(f"{mode}_{name}_machine_cores", cores["machine"])
            post_ms = {source: cpu_ms_per(used[source], run.requests) for source in ("machine", "odoo")}
            emit(f"{mode}_{name}_machine_bound_ratio", ratio(health_machine_ms, post_ms["machine"]))
            emit(f"{mode}_{name}_odoo_bound_ratio", ratio(health_odoo_ms, post_ms["odoo"]))
        self._end_to_end(mode, server, health_rps, {"machine": health_machine_ms, "odoo": health_odoo_ms})
        return max([health_before.rps, health_after.rps] + [run.rps for run, *_rest in posts.values()])

    def _worker(self, server, ai: FakeOpenAI, name: str, **extra: str) -> api_stack.Worker:
        worker = api_stack.Worker(
            self.vhost.url, server.url, self.secret, ai.base_url, name, self.log_dir, **extra
        )
        return worker.start()

    def _end_to_end(self, mode: str, server, health_rps: float, health_ms: dict[str, float]) -> None:
        worker = self._worker(server, self.instant_ai, f"{mode}-e2e")
        try:
            worker.wait_ready()
            self.queue.wait_consumers(1)
            after = api_stack.max_request_id(self.db)
            window = LogWindow(server.log_path).open()
            cpu = CpuMeter({"odoo": server.process.pid, "worker": worker.process.pid}, bench=True)
            started = time.time()
            run = run_wrk(f"{server.url}{CREATE}", self.settings.phase, CONNECTIONS, self.keys[:USERS])
            cores = cpu.cores()  # while the POSTs ran
            created, finished = api_stack.wait_terminal(self.db, after, None, self.settings.drain)
            used = cpu.seconds()  # until the last job finished: every job's three requests
            window.close()
        finally:
            worker.stop()
        outcomes = [r.at for r in window.requests("POST") if r.path in OUTCOMES and r.status == 200]
        jobs_per_s = finished / (max(outcomes) - started) if outcomes else 0.0
        emit(f"{mode}_e2e_post_rps", run.rps)
        emit(f"{mode}_e2e_jobs_finished", finished)
        emit(f"{mode}_e2e_jobs_unfinished", created - finished)
        emit(f"{mode}_e2e_jobs_per_s", jobs_per_s)
        emit(f"{mode}_e2e_ratio_to_health", ratio(jobs_per_s, health_rps))
        emit(f"{mode}_e2e_callback_errors", sum(1 for r in window.requests("POST") if r.status >= 500))
        for name, value in cores.items():
            emit(f"{mode}_e2e_{name}_cores", value)
        for source in ("machine", "odoo"):
            job_ms = cpu_ms_per(used[source], finished)
            emit(f"{mode}_e2e_{source}_cpu_ms_per_job", job_ms)
            emit(f"{mode}_e2e_{source}_bound_ratio", ratio(health_ms[source], job_ms))

    def _scaling(self, mode: str, server) -> None:
        """The jobs are created first and held back by the bench, then put on the queue at once when
        every worker consumes: no create competes with the callbacks, no worker starts before another."""
        s = self.settings
        rates = {}
        for count in (1, 2):
            jobs = count * s.in_flight * s.rounds
            after = api_stack.max_request_id(self.db)
            api_stack.post_batch(server.url, self.keys, jobs)
            api_stack.settle(self.db)
            held = self.queue.take_all(jobs)
            in_flight = {"AIGEN_MAX_IN_FLIGHT": str(s.in_flight)}
            workers = [
                self._worker(server, self.slow_ai, f"{mode}-scale{count}-{i}", **in_flight)
                for i in range(count)
            ]
            try:
                for worker in workers:
                    worker.wait_ready()
                self.queue.wait_consumers(count)
                window = LogWindow(server.log_path).open()
                started = time.time()
                self.queue.publish_all(held)
                _created, finished = api_stack.wait_terminal(self.db, after, jobs, s.rounds * s.slow_ai + 30)
                window.close()
            finally:
                for worker in workers:
                    worker.stop()
            outcomes = [r.at for r in window.requests("POST") if r.path in OUTCOMES and r.status == 200]
            rates[count] = finished / (max(outcomes) - started) if outcomes else 0.0
            label = "one_worker" if count == 1 else "two_workers"
            emit(f"{mode}_scaling_{label}_jobs_per_s", rates[count])
            emit(
                f"{mode}_scaling_{label}_ratio_to_ideal", ratio(rates[count], count * s.in_flight / s.slow_ai)
            )
        emit(f"{mode}_scaling_in_flight_per_worker", s.in_flight)
        emit(f"{mode}_scaling_two_to_one_workers", ratio(rates[2], rates[1]))


def code_version() -> tuple[str, int]:
    """The commit the measured addon was copied from, and how many of its files differed from it."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    status = subprocess.run(
        [*git, "status", "--porcelain", "--", "addons", "schemas"],
        capture_output=True,
        text=True,
        check=False,
    )
    return head.stdout.strip() or "unknown", len(status.stdout.splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s phases, tiny batches: checks it runs")
    parser.add_argument("--modes", default="threaded,prefork", help="Odoo modes, comma-separated")
    parser.add_argument("--phase-seconds", type=float, help="override each wrk phase's length")
    parser.add_argument("--log-dir", type=Path, help="keep each mode's Odoo log there (odoo-MODE.log)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.phase_seconds:
        settings = Settings(**{**settings.__dict__, "phase": args.phase_seconds})
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    odoo = find_odoo()
    if odoo is None or wrk_binary() is None:
        print("bench needs Odoo 18.0 (AIGEN_ODOO_HOME) and wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.monotonic()
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="aigen-bench-addons-") as addons_copy:
        odoo = api_stack.snapshot_addons(odoo, Path(addons_copy))
        commit, changed = code_version()
        emit("code_commit", commit)
        emit("code_uncommitted_files", changed)
        bench = run(odoo, modes, settings, secret, args.log_dir)
    emit("serialization_failures_total", bench.totals["serialization_failures"])
    emit("error_lines_total", bench.totals["error_lines"])
    emit("bench_seconds", time.monotonic() - started)
    return 0


def run(odoo, modes: list[str], settings: Settings, secret: str, log_dir: Path | None) -> Bench:
    with (
        throwaway_vhost("aigen-bench") as vhost,
        FakeOpenAI() as instant_ai,
        FakeOpenAI(latency=settings.slow_ai) as slow_ai,
        throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_bench") as db,
        tempfile.TemporaryDirectory(prefix="aigen-bench-") as tmp,
    ):
        keys = api_stack.prepare_database(odoo, db, vhost.url, secret, USERS)
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)
        bench = Bench(odoo, db, vhost, keys, secret, settings, (instant_ai, slow_ai), log_dir)
        shim = Path(tmp)
        shimmed = api_stack.gevent_metadata_shim(odoo, shim) if "prefork" in modes else []
        if shimmed:
            bench.python_path = shim
        emit("gevent_metadata_shim", ",".join(shimmed) or "none")
        try:
            ceiling = bench.client_ceiling()
            for mode in modes:
                bench.run_mode(mode, ceiling)
        finally:
            bench.queue.close()
    return bench


if __name__ == "__main__":
    sys.exit(main())
