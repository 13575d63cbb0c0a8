"""./run-stack: the ai_generation system on this machine without Docker, in the foreground.

Starts, in order: Alertmanager (Debian's), Odoo 18.0 from $AIGEN_ODOO_HOME with the addon (database
created and the addon installed on the first run, its connection settings written every run), the nginx
gateway, and the worker. Ctrl-C stops them in the reverse order. PostgreSQL and RabbitMQ are the
machine's own (scripts/provision starts them). The AI provider is yours: set AIGEN_OPENAI_BASE_URL and
AIGEN_OPENAI_API_KEY (any OpenAI-compatible server).
"""

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from devstack import alertmanager, gateway, procs
from devstack.odoo import CONFIGURE_SCRIPT, REPO, OdooHome, setup_step, write_config
from devstack.ports import wait_http

VAR = REPO / "var"  # git-ignored: databases' filestore, Alertmanager data, the generated secret
# After its shutdown grace the worker still returns the unfinished jobs to the queue, closes its broker
# connections and sends its last alert updates before it exits.
WORKER_STOP_MARGIN = 15.0


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="run-stack",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "Environment: AIGEN_ODOO_HOME (default /opt/odoo-18.0), AIGEN_AMQP_URL (default "
            "amqp://guest:guest@127.0.0.1:5672/aigen), AIGEN_WORKER_SECRET (default: generated once into "
            "var/worker-secret), AIGEN_OPENAI_BASE_URL, AIGEN_OPENAI_API_KEY, and every AIGEN_* worker "
            "setting (docs/worker.md). Data lives in var/."
        ),
    )
    parser.add_argument(
        "--db", default=env("AIGEN_ODOO_DB", "aigen"), help="Odoo database (default %(default)s)"
    )
    parser.add_argument(
        "--gateway-port",
        type=int,
        default=int(env("AIGEN_GATEWAY_PORT", "8080")),
        help="port of the gateway (the one address users need) (default %(default)s)",
    )
    parser.add_argument(
        "--odoo-port",
        type=int,
        default=int(env("AIGEN_ODOO_PORT", "8069")),
        help="port of Odoo itself, on loopback (default %(default)s)",
    )
    parser.add_argument(
        "--alertmanager-port",
        type=int,
        default=int(env("AIGEN_ALERTMANAGER_PORT", "9093")),
        help="port of Alertmanager, on loopback (default %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("AIGEN_METRICS_PORT", "9464")),
        help="port of the worker's /metrics and /healthz (default %(default)s)",
    )
    parser.add_argument("--update", action="store_true", help="update the addon (-u) after changing its code")
    parser.add_argument(
        "--demo", action="store_true", help="load the addon's demo data when the database is created"
    )
    parser.add_argument(
        "--no-worker", action="store_true", help="do not start the Python worker (e.g. n8n runs)"
    )
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def worker_secret() -> str:
    if os.environ.get("AIGEN_WORKER_SECRET"):
        return os.environ["AIGEN_WORKER_SECRET"]
    path = VAR / "worker-secret"
    if not path.exists():
        VAR.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_vhost(amqp_url: str) -> None:
    """Create the URL's vhost on a local broker when it is missing (needs rabbitmqctl, i.e. root)."""
    parts = urllib.parse.urlparse(amqp_url)
    vhost = urllib.parse.unquote(parts.path[1:]) or "/"
    if vhost == "/" or parts.hostname not in ("127.0.0.1", "localhost"):
        return
    user = urllib.parse.unquote(parts.username or "guest")
    try:
        # the broker's own CLI, found on PATH
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_vhosts", "name"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        if vhost not in listed.stdout.split():
            procs.run_step("rabbitmq", ["rabbitmqctl", "-q", "add_vhost", vhost])
            procs.run_step(
                "rabbitmq", ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"]
            )
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"[run-stack] could not check vhost {vhost!r} ({exc}); create it if it is missing", flush=True)


def alert_url_env() -> str:
    """The worker's setting that names the Alertmanager (read from worker/config.py, not guessed)."""
    from worker.config import all_options

    names = [o.env for o in all_options() if o.section == "alert" and o.env.endswith("_URL")]
    return names[0] if names else "AIGEN_ALERT_URL"


def worker_shutdown_grace(environ: Mapping[str, str]) -> float:
    """The worker's shutdown grace as the worker reads it from ``environ`` (worker/config.py)."""
    from worker.config import all_options, convert

    option = next(o for o in all_options() if o.section == "worker" and o.name == "shutdown_grace")
    raw = environ.get(option.env)
    return option.default if raw is None else convert(raw, option.type, option.env)


def worker_stop_timeout(environ: Mapping[str, str]) -> float:
    """How long to wait for the worker after SIGTERM: its grace, so that jobs finishing then still report
    their result instead of being killed and run again, plus the clean-up after it."""
    return worker_shutdown_grace(environ) + WORKER_STOP_MARGIN


def worker_child(worker_env: Mapping[str, str]) -> procs.Child:
    """The worker as run-stack runs it (the .venv's aigen-worker), with time to finish its jobs on stop."""
    worker_bin = str(Path(sys.executable).with_name("aigen-worker"))
    stop_timeout = worker_stop_timeout({**os.environ, **worker_env})
    return procs.Child("worker", [worker_bin], env=worker_env, stop_timeout=stop_timeout)


def db_params_from_env() -> dict:
    return {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("AIGEN_ODOO_DB_USER", "odoo"),
        "password": os.environ.get("AIGEN_ODOO_DB_PASSWORD", "odoo"),
    }


def prepare_database(
    home: OdooHome, conf: Path, db: str, db_params: dict, *, update: bool, demo: bool
) -> str | None:
    """Install the addon in a new database (with the demo data if asked) or update it on --update; an
    installed addon is left as it is, so the demo data is loaded once per database. The step run or None."""
    state = home.addon_state(db, db_params)
    step = setup_step(state, update)
    if step is not None:
        procs.run_step("odoo-setup", home.cmd("-c", str(conf), "-d", db, step, "--stop-after-init"))
    if demo and not (step or "").startswith("--init"):
        print(
            f"[run-stack] --demo: the addon is installed in {db!r} already; demo data is loaded only by the "
            "install (use a new --db to get it)",
            flush=True,
        )
    return step


def preflight(home: OdooHome) -> list[str]:
    problems = []
    if (why := home.problem()) is not None:
        problems.append(why)
    if gateway.nginx_binary() is None:
        problems.append("nginx is missing (apt-get install nginx-light, or run ./run-tests once as root)")
    if alertmanager.binary() is None:
        problems.append("prometheus-alertmanager is missing (apt-get install prometheus-alertmanager)")
    return problems


def main(argv=None) -> int:
    args = parse_args(argv)
    home = OdooHome.from_env()
    problems = preflight(home)
    if problems:
        for problem in problems:
            print(f"run-stack: {problem}", file=sys.stderr)
        return 2

    amqp_url = os.environ.get("AIGEN_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/aigen")
    secret = worker_secret()
    am_url = f"http://127.0.0.1:{args.alertmanager_port}"
    odoo_url = f"http://127.0.0.1:{args.odoo_port}"
    db_params = db_params_from_env()
    conf = write_config(
        VAR / "odoo.conf",
        home,
        db=args.db,
        http_port=args.odoo_port,
        data_dir=VAR / "odoo-data",
        demo=args.demo,
        db_params=db_params,
    )
    odoo_env = {"AIGEN_AMQP_URL": amqp_url, "AIGEN_WORKER_SECRET": secret, "AIGEN_ALERTMANAGER_URL": am_url}

    children: list = []  # procs.Child or gateway.Gateway: each has name, running() and stop()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        ensure_vhost(amqp_url)
        am = procs.Child(
            "alertmanager", alertmanager.cmd(args.alertmanager_port, VAR / "alertmanager")
        ).start()
        children.append(am)
        wait_http(f"{am_url}/-/ready", 30, ok=lambda s: s == 200, proc=am.proc)

        prepare_database(home, conf, args.db, db_params, update=args.update, demo=args.demo)
        procs.run_step(
            "odoo-setup",
            home.cmd("shell", "-c", str(conf), "-d", args.db, "--no-http"),
            env=odoo_env,
            stdin_text=CONFIGURE_SCRIPT.read_text(),
        )
        odoo = procs.Child(
            "odoo", home.cmd("-c", str(conf), "-d", args.db), env=odoo_env, stop_signal=signal.SIGINT
        )
        children.append(odoo.start())
        wait_http(f"{odoo_url}/web/health", 120, ok=lambda s: s == 200, proc=odoo.proc)

        gw = gateway.Gateway(
            odoo=f"127.0.0.1:{args.odoo_port}", port=args.gateway_port, prefix=VAR / "gateway"
        )
        children.append(gw)
        gw.start()

        if not args.no_worker:
            worker_env = {
                "AIGEN_AMQP_URL": amqp_url,
                "AIGEN_ODOO_URL": odoo_url,
                "AIGEN_WORKER_SECRET": secret,
                "AIGEN_METRICS_PORT": str(args.metrics_port),
                alert_url_env(): am_url,
                # the addon's service label, so Alertmanager merges the worker's and Odoo's same alert
                "AIGEN_ALERT_SERVICE": os.environ.get("AIGEN_ALERT_SERVICE", "ai_generation"),
            }
            worker = worker_child(worker_env).start()
            children.append(worker)
            wait_http(f"http://127.0.0.1:{args.metrics_port}/healthz", 30, proc=worker.proc)

        print(banner(args, gw.url, odoo_url, am_url), flush=True)
        while all(child.running() for child in children):
            time.sleep(0.5)
        dead = next(child for child in children if not child.running())
        print(
            f"[run-stack] {dead.name} exited with code {dead.proc.returncode}; stopping the rest", flush=True
        )
        return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"run-stack: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        print("[run-stack] stopping", flush=True)
        for child in reversed(children):
            child.stop()


def _interrupt(*_):
    raise KeyboardInterrupt


def banner(args, gateway_url: str, odoo_url: str, am_url: str) -> str:
    provider = os.environ.get("AIGEN_OPENAI_BASE_URL", "https://api.openai.com/v1 (default)")
    worker = (
        "not started (--no-worker)"
        if args.no_worker
        else f"metrics http://127.0.0.1:{args.metrics_port}/metrics"
    )
    return "\n".join(
        [
            "",
            "ai_generation is running (Ctrl-C stops it):",
            f"  gateway (PWA, API, web)  {gateway_url}    e.g. {gateway_url}/api/v1/credits",
            f"  Odoo (direct, loopback)  {odoo_url}    database {args.db!r}; first login admin / admin",
            f"  Alertmanager             {am_url}",
            f"  worker                   {worker}",
            f"  AI provider              {provider}",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
