"""The running worker: builds the parts from the configuration and wires them together.

consumer (pika, connection thread) -> pool thread: JobPipeline (parse, Processor, OdooReporter)
-> disposition back on the connection thread (ack, DLQ, park). Beside it: the parked-outcomes
drainer, the alert monitor's loop, and the metrics / health HTTP server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from worker.backends.base import Backend
from worker.backoff import Backoff
from worker.config import Settings, WorkerConfig
from worker.consumer import Consumer, ConsumerConfig
from worker.parking import ParkedDrainer
from worker.pipeline import JobPipeline
from worker.processing import FailureSink, ProcessingConfig, Processor
from worker.reporting import OdooReporter, ReporterConfig

log = logging.getLogger(__name__)


def build_backends(config: WorkerConfig, sections: Mapping[str, Any]) -> dict[str, Backend]:
    backends: dict[str, Backend] = {}
    for name in config.backend_names():
        if name == "external":
            from worker.backends.openai_backend import OpenAIBackend

            backends[name] = OpenAIBackend(sections["openai"])
        elif name == "internal":
            from worker.backends.kubernetes_backend import KubernetesBackend

            backends[name] = KubernetesBackend(sections["kubernetes"])
        else:
            raise ValueError(f"unknown backend {name!r} in AIGEN_BACKENDS (external, internal)")
    return backends


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        backends: Mapping[str, Backend],
        *,
        monitor: Any = None,  # worker.alerting.AlertMonitor, or None for no alerts
        metrics: Any = None,  # the worker.metrics module, or None for no metrics
    ):
        self.config = config
        self.metrics = metrics
        self.monitor = monitor
        self.abort = threading.Event()  # end of the grace period: in-flight work gives up
        secret = config.secret()
        if not secret:
            raise ValueError("AIGEN_WORKER_SECRET (or AIGEN_WORKER_SECRET_FILE) is required")
        self.reporter = OdooReporter(
            ReporterConfig(
                config.odoo_url,
                secret,
                timeout=config.callback_timeout,
                patience=config.callback_patience,
                concurrency=config.callback_concurrency,
            ),
            stop=self.abort,
        )
        self.processor = Processor(
            backends,
            self.reporter,
            ProcessingConfig(
                max_attempts=config.max_attempts,
                backoff=Backoff(config.backoff_initial, config.backoff_max, config.backoff_jitter),
                request_timeout=config.request_timeout,
                fallback_models=config.fallback_models(),
            ),
            monitor=monitor or FailureSink(),
            stop=self.abort,
        )
        self.pipeline = JobPipeline(self.processor, self.reporter, observe=self._observe)
        self.consumer = Consumer(
            ConsumerConfig(
                amqp_url=config.amqp_url,
                max_in_flight=config.max_in_flight,
                heartbeat=config.heartbeat,
                blocked_connection_timeout=config.blocked_connection_timeout,
                reconnect_initial=config.reconnect_initial,
                reconnect_max=config.reconnect_max,
                shutdown_grace=config.shutdown_grace,
                connection_name=config.connection_name,
            ),
            self.pipeline,
            on_in_flight=metrics.set_in_flight if metrics else None,
            abort=self.abort,
        )
        self.drainer = ParkedDrainer(
            config.amqp_url,
            self.reporter,
            interval=config.drain_interval,
            max_interval=max(config.drain_interval, 60.0),
            connection_name=f"{config.connection_name}-drainer",
            monitor=monitor,
        )
        self.metrics_server = None

    def _observe(self, outcome: str, backend: str, error_type: str | None, seconds: float) -> None:
        if self.metrics:
            self.metrics.observe_job(outcome, backend, error_type, seconds)

    def healthy(self) -> bool:
        return self.consumer.healthy

    def stop(self) -> None:
        """Graceful stop (SIGTERM): see Consumer.stop; run() returns once it is done."""
        self.consumer.stop()

    def run(self) -> None:
        if self.metrics and self.config.metrics_port >= 0:
            self.metrics_server = self.metrics.serve(
                self.config.metrics_port, self.config.metrics_host, health=self.healthy
            )
            log.info("metrics and health served", extra={"metrics_url": self.metrics_server.url})
        if self.monitor:
            self.monitor.start()
        self.drainer.start()
        try:
            self.consumer.run()
        finally:
            self.drainer.stop()
            if self.monitor:
                self.monitor.stop()
            if self.metrics_server is not None:
                self.metrics_server.stop()
            self.reporter.close()
            log.info("worker stopped")


def from_settings(settings: Settings) -> Worker:
    """The production wiring: real backends, alert monitor and metrics from the configuration."""
    from worker import metrics
    from worker.alerting import AlertMonitor

    monitor = AlertMonitor(settings.sections["alert"]) if "alert" in settings.sections else None
    return Worker(
        settings.worker,
        build_backends(settings.worker, settings.sections),
        monitor=monitor,
        metrics=metrics,
    )
