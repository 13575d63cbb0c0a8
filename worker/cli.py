"""``aigen-worker``: run the worker (configuration from AIGEN_* environment variables and flags)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from worker import __version__
from worker.config import ConfigError, add_arguments, all_options, load

log = logging.getLogger("worker")

EPILOG = (
    "Every flag has an environment variable (shown with it); a flag wins over the variable. "
    "SIGTERM or SIGINT stops gracefully: no new jobs, in-flight jobs get AIGEN_SHUTDOWN_GRACE seconds to "
    "finish, the rest go back to the queue. Exit status: 0 after a stop, 2 for a configuration error."
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aigen-worker",
        description="Consume AIGenerationJobRequested from RabbitMQ, run the AI call on the external "
        "(OpenAI-compatible) or internal (Kubernetes Job) backend, classify failures, report to Odoo, "
        "alert Alertmanager on persistent or high-frequency errors.",
        epilog=EPILOG,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings (secrets hidden) as JSON lines and exit",
    )
    add_arguments(p, all_options())
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from worker import logs

    try:
        settings = load(args)
        logs.configure(settings.worker.log_level)
        if args.print_config:
            print(repr(settings.worker))
            for name, section in settings.sections.items():
                print(f"{name}: {section!r}")
            return 0
        if not settings.worker.secret():
            raise ConfigError("AIGEN_WORKER_SECRET (or AIGEN_WORKER_SECRET_FILE) is required")
        from worker.app import from_settings

        worker = from_settings(settings)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"aigen-worker: configuration error: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        log.info("signal received; stopping gracefully", extra={"signal": signal.Signals(signum).name})
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "worker starting",
        extra={
            "version": __version__,
            "backends": settings.worker.backend_names(),
            "max_in_flight": settings.worker.max_in_flight,
            "pid": os.getpid(),
        },
    )
    worker.run()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # AI calls still blocked past the grace period were returned to the queue already; do not wait for them
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
