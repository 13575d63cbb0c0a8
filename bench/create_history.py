"""Does a create cost more for a user with a long history? name=value lines, one run, a real Odoo 18.0.

A create counts the user's requests of the last minute (the rate limit) under the user's lock, so
whatever that count reads makes the user's other creates wait. This bench gives one of two bench users
``--history`` finished requests, all older than the rate limit's window, then posts from each user alone
(16 connections on one account, as bench/api_load.py's hot user) with wrk: the new user, the user with
the history, the new user again (the baseline is the mean of the two, so a drift of the machine during
the run cancels out). It prints each phase's req/s and Odoo's server p50, and
``long_history_to_new_user_ratio``: 1.0 when the history costs nothing.
Usage: python bench/create_history.py [--history 200000] [--phase-seconds 6]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import api_stack  # noqa: E402
from load_client import run_wrk, wrk_binary  # noqa: E402
from odoo_log import LogWindow, percentile  # noqa: E402

from tests.support.odoo import find_odoo, psql, throwaway_database  # noqa: E402
from tests.support.rabbit import throwaway_vhost  # noqa: E402

CONNECTIONS = 16
CREATE = "/api/v1/generations"
# finished requests of bench_user_1, one every 10 s back from a day ago: all outside the window
HISTORY_SQL = """
INSERT INTO ai_generation_request (user_id, company_id, uuid, backend, ai_model, task, prompt, state,
       dispatch_state, price, credits_charged, attempt, dispatch_attempts, deadline, create_date,
       write_date, finished_at)
SELECT u.id, u.company_id, gen_random_uuid()::text, 'external', '{model}', 'text', 'an old prompt',
       'succeeded', 'sent', 0, 0, 1, 1, now() AT TIME ZONE 'UTC',
       t.at, t.at, t.at
  FROM res_users u,
       LATERAL (SELECT (now() AT TIME ZONE 'UTC') - interval '1 day' - g * interval '10 seconds' AS at
                  FROM generate_series(1, {count:d}) g) t
 WHERE u.login = 'bench_user_1';
ANALYZE ai_generation_request;
"""


def emit(name: str, value) -> None:
    print(f"{name}={value:.3f}" if isinstance(value, float) else f"{name}={value}", flush=True)


def phase(server, db: str, queue: api_stack.Queue, key: str, seconds: float) -> tuple[float, float, int]:
    """req/s, Odoo's server p50 (ms) and the answers other than 202 of 16 connections posting with
    one user's key."""
    window = LogWindow(server.log_path).open()
    run = run_wrk(f"{server.url}{CREATE}", seconds, CONNECTIONS, [key])
    api_stack.settle(db)
    window.close()
    queue.purge()
    server_ms = [1000 * r.server_seconds for r in window.requests("POST", CREATE) if r.status == 202]
    return run.rps, percentile(server_ms, 50), run.requests - run.status_count(202)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=200_000, help="old requests of the second user")
    parser.add_argument("--phase-seconds", type=float, default=6.0)
    args = parser.parse_args(argv)
    odoo = find_odoo()
    if odoo is None or wrk_binary() is None:
        print("bench needs Odoo 18.0 (AIGEN_ODOO_HOME) and wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="aigen-bench-addons-") as addons_copy,
        throwaway_vhost("aigen-bench") as vhost,
    ):
        odoo = api_stack.snapshot_addons(odoo, Path(addons_copy))
        with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_bench") as db:
            new_key, old_key = api_stack.prepare_database(odoo, db, vhost.url, secrets.token_urlsafe(32), 2)
            psql(db, HISTORY_SQL.format(model=api_stack.MODEL, count=args.history))
            emit("history_requests", args.history)
            queue = api_stack.Queue(vhost)
            server = api_stack.start_odoo(odoo, db, "threaded")
            try:
                api_stack.post_batch(server.url, [new_key, old_key], 4 * CONNECTIONS)  # warm-up
                api_stack.settle(db)
                queue.purge()
                first = phase(server, db, queue, new_key, args.phase_seconds)
                long_history = phase(server, db, queue, old_key, args.phase_seconds)
                again = phase(server, db, queue, new_key, args.phase_seconds)
            finally:
                server.stop()
                server.log_path.unlink(missing_ok=True)
                queue.close()
    new_rps = (first[0] + again[0]) / 2
    emit("post_new_user_rps", new_rps)
    emit("post_new_user_server_p50_ms", (first[1] + again[1]) / 2)
    emit("post_new_user_non_202", first[2] + again[2])
    emit("post_long_history_user_rps", long_history[0])
    emit("post_long_history_user_server_p50_ms", long_history[1])
    emit("post_long_history_user_non_202", long_history[2])
    emit("long_history_to_new_user_ratio", long_history[0] / new_rps if new_rps else float("nan"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
