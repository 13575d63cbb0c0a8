"""Where a POST /api/v1/generations spends Odoo's CPU: py-spy on a threaded Odoo under wrk load.

The same stack as bench/api_load.py (a throwaway database with the addon and 16 bench users, a throwaway
vhost, no worker), then ``py-spy record`` on the Odoo process while wrk posts from 16 users. Prints the
top frames by inclusive share of the samples, as ``name=value`` lines with the addon's and Odoo's own
functions named ``file:function``; ``--raw FILE`` keeps py-spy's collapsed stacks for a flame graph.
Also prints ``odoo_cpu_ms_per_post``: the CPU of Odoo's processes over the POSTs wrk got answered.
``--with-worker`` runs the real worker against an instant fake AI meanwhile, so the profile holds the
callbacks each job costs too (progress, result); the CPU is then counted until the last job is terminal
(``jobs_finished``, ``jobs_unfinished``), so ``odoo_cpu_ms_per_post`` is per job.
``--samples`` chooses what py-spy counts: ``gil`` (the thread holding the GIL: CPU), ``active`` or
``idle`` (every thread, waits included: where the request threads wait).
Usage: python bench/profile_post.py [--seconds 20] [--samples gil|active|idle] [--raw FILE] [--top 40]
       [--hot-user] [--idempotency-keys] [--with-worker] [--mode threaded|prefork]
       python bench/profile_post.py --no-spy   # only post_rps and odoo_cpu_ms_per_post
Needs py-spy (pip install py-spy) and ptrace rights on the Odoo process (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import api_stack  # noqa: E402
from load_client import run_wrk, wrk_binary  # noqa: E402

from tests.support.fake_openai import FakeOpenAI  # noqa: E402
from tests.support.odoo import find_odoo, throwaway_database  # noqa: E402
from tests.support.rabbit import throwaway_vhost  # noqa: E402

CREATE = "/api/v1/generations"
SPY_MODES = {"gil": ["--gil"], "active": [], "idle": ["--idle"]}


def inclusive_shares(folded: str) -> tuple[int, collections.Counter]:
    """Samples in all, and per frame the samples whose stack holds it (once per stack)."""
    total, seen = 0, collections.Counter()
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            seen[frame] += int(count)
    return total, seen


def short(frame: str) -> str:
    """``function (path/to/file.py:12)`` as ``file.py:function``."""
    name, _, where = frame.partition(" (")
    return f"{Path(where.split(':')[0]).name}:{name}" if where else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument(
        "--samples",
        default="gil",
        choices=sorted(SPY_MODES),
        help="gil: what holds the GIL (CPU); active: threads not idle; idle: every thread, waits included",
    )
    parser.add_argument("--hot-user", action="store_true", help="every connection on one account")
    parser.add_argument("--no-spy", action="store_true", help="only the CPU per POST, without py-spy")
    parser.add_argument(
        "--idempotency-keys", action="store_true", help="each POST with a new Idempotency-Key, as the PWA"
    )
    parser.add_argument(
        "--with-worker", action="store_true", help="the real worker and an instant fake AI finish the jobs"
    )
    parser.add_argument("--mode", default="threaded", choices=["threaded", "prefork"])
    parser.add_argument("--python-path", type=Path, help="first on Odoo's PYTHONPATH (a sitecustomize)")
    args = parser.parse_args(argv)
    beside = Path(sys.executable).with_name("py-spy")  # installed in this virtualenv, not on PATH
    odoo, py_spy = find_odoo(), shutil.which("py-spy") or (str(beside) if beside.exists() else None)
    if odoo is None or wrk_binary() is None or (py_spy is None and not args.no_spy):
        print("needs Odoo 18.0 (AIGEN_ODOO_HOME), wrk and py-spy (pip install py-spy)", file=sys.stderr)
        return 2
    secret = secrets.token_urlsafe(32)
    with (
        tempfile.TemporaryDirectory(prefix="aigen-profile-") as tmp,
        throwaway_vhost("aigen-profile") as vhost,
        FakeOpenAI() if args.with_worker else contextlib.nullcontext() as ai,
        contextlib.ExitStack() as cleanup,
    ):
        odoo = api_stack.snapshot_addons(odoo, Path(tmp))
        with throwaway_database(odoo, modules=["ai_generation"], prefix="aigen_profile") as db:
            keys = api_stack.prepare_database(odoo, db, vhost.url, secret, 16)
            server = api_stack.start_odoo(odoo, db, args.mode, args.python_path)
            try:
                if ai is not None:
                    worker = api_stack.Worker(vhost.url, server.url, secret, ai.base_url, "profile").start()
                    cleanup.callback(worker.stop)
                    worker.wait_ready()
                api_stack.post_batch(server.url, keys, 64)  # routes and caches loaded: not in the profile
                if ai is not None:
                    api_stack.wait_terminal(db, 0, None, 30)  # the warm-up's jobs are not in it either
                after = api_stack.max_request_id(db)
                folded = Path(tmp) / "post.folded"
                cpu_before = api_stack.tree_cpu_seconds(server.process.pid)
                command = [py_spy, "record", "--nonblocking", *SPY_MODES[args.samples], "--format", "raw"]
                command += ["--rate", "100", "--subprocesses", "--pid", str(server.process.pid)]
                command += ["--output", str(folded), "--duration", str(int(args.seconds))]
                spy = None
                if not args.no_spy:
                    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                run = run_wrk(
                    f"{server.url}{CREATE}",
                    args.seconds,
                    16,
                    keys[:1] if args.hot_user else keys,
                    idempotency_keys=args.idempotency_keys,
                )
                jobs = api_stack.wait_terminal(db, after, None, 30) if ai is not None else None
                cpu = api_stack.tree_cpu_seconds(server.process.pid) - cpu_before  # the callbacks' too
                if spy is not None:
                    spy.wait(timeout=args.seconds + 60)
            finally:
                server.stop()
            text = folded.read_text() if folded.exists() else ""
    if args.raw:
        args.raw.write_text(text)
    total, seen = inclusive_shares(text)
    print(f"post_rps={run.rps:.3f}")
    print(f"odoo_cpu_ms_per_post={1000 * cpu / max(run.requests, 1):.3f}")
    print(f"post_non_202={run.requests - run.status_count(202)}")
    print(f"post_replayed={int(run.values.get('wrk_replayed', 0))}")
    for name in ("wrk_latency_p50_ms", "wrk_latency_p99_ms"):
        print(f"client_{name[4:]}={run.values.get(name, float('nan')):.1f}")
    if jobs is not None:
        print(f"jobs_finished={jobs[1]}")
        print(f"jobs_unfinished={jobs[0] - jobs[1]}")
    if not total:
        return 0
    print(f"samples={total}")
    for frame, count in seen.most_common(args.top):
        print(f"{short(frame)}={count / total:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
