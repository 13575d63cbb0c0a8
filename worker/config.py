"""Worker settings: one table of (field, environment variable, default, meaning), flags derived from it.

Precedence: command-line flag > environment variable > default. The backends' own settings
(OpenAIConfig, KubernetesConfig, AlertConfig, owned by their modules) are read the same way, field by
field, under the prefixes AIGEN_OPENAI_, AIGEN_K8S_ and AIGEN_ALERT_; ``python -m worker.config``
prints the whole table as Markdown and ``python -m worker.config --write docs/worker.md`` refreshes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import socket
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def setting(default: Any, env: str, help: str, *, secret: bool = False, repr: bool = True) -> Any:
    return field(
        default=default, repr=repr and not secret, metadata={"env": env, "help": help, "secret": secret}
    )


@dataclass(frozen=True)
class WorkerConfig:
    # RabbitMQ
    amqp_url: str = setting(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        "AIGEN_AMQP_URL",
        "Broker URL (pika URLParameters: vhost URL-encoded, query options allowed).",
        repr=False,  # may carry a password
    )
    max_in_flight: int = setting(
        128,
        "AIGEN_MAX_IN_FLIGHT",
        "Jobs run at once by this process: the prefetch count and the thread pool size.",
    )
    heartbeat: int = setting(30, "AIGEN_AMQP_HEARTBEAT", "AMQP heartbeat in seconds.")
    blocked_connection_timeout: float = setting(
        60.0,
        "AIGEN_AMQP_BLOCKED_TIMEOUT",
        "Seconds a broker may block the connection (alarms) before reconnecting.",
    )
    reconnect_initial: float = setting(
        1.0, "AIGEN_RECONNECT_INITIAL", "First reconnect delay, doubled per failure."
    )
    reconnect_max: float = setting(30.0, "AIGEN_RECONNECT_MAX", "Longest reconnect delay.")
    shutdown_grace: float = setting(
        30.0,
        "AIGEN_SHUTDOWN_GRACE",
        "On SIGTERM: seconds in-flight jobs get to finish before they are requeued.",
    )
    connection_name: str = setting(
        f"aigen-worker@{socket.gethostname()}",
        "AIGEN_CONNECTION_NAME",
        "AMQP connection name shown by rabbitmqctl list_connections.",
    )
    # Odoo callbacks
    odoo_url: str = setting("http://127.0.0.1:8069", "AIGEN_ODOO_URL", "Base URL of Odoo for the callbacks.")
    worker_secret: str = setting(
        "", "AIGEN_WORKER_SECRET", "Shared secret sent as 'Authorization: Bearer'. Required.", secret=True
    )
    worker_secret_file: str = setting(
        "", "AIGEN_WORKER_SECRET_FILE", "File holding the secret (used when AIGEN_WORKER_SECRET is empty)."
    )
    callback_timeout: float = setting(10.0, "AIGEN_CALLBACK_TIMEOUT", "Seconds per callback HTTP request.")
    callback_concurrency: int = setting(
        16,
        "AIGEN_CALLBACK_CONCURRENCY",
        "Callbacks this process sends to Odoo at once; the others wait their turn (a burst of outcomes "
        "must not take more of Odoo's database connections than it has).",
    )
    callback_patience: float = setting(
        60.0,
        "AIGEN_CALLBACK_PATIENCE",
        "Seconds of retrying a callback (with backoff) before the outcome is parked "
        "(queue ai.generation.outcomes.parked).",
    )
    drain_interval: float = setting(
        5.0,
        "AIGEN_DRAIN_INTERVAL",
        "Seconds between looks at the parked-outcomes queue (doubles while Odoo is down).",
    )
    # attempts
    max_attempts: int = setting(
        3, "AIGEN_MAX_ATTEMPTS", "Attempts per backend for retryable errors (the taxonomy may set fewer)."
    )
    backoff_initial: float = setting(
        1.0, "AIGEN_BACKOFF_INITIAL", "First retry delay in seconds, doubled per attempt."
    )
    backoff_max: float = setting(
        30.0, "AIGEN_BACKOFF_MAX", "Longest retry delay (a longer Retry-After still wins)."
    )
    backoff_jitter: float = setting(
        1.0, "AIGEN_BACKOFF_JITTER", "Random seconds (0..jitter) added to each delay."
    )
    request_timeout: float = setting(
        120.0,
        "AIGEN_REQUEST_TIMEOUT",
        "Longest single AI attempt in seconds; the job's deadline bounds it further.",
    )
    backends: str = setting(
        "external", "AIGEN_BACKENDS", "Comma-separated backends this worker runs: external, internal."
    )
    fallback_external_model: str = setting(
        "",
        "AIGEN_FALLBACK_EXTERNAL_MODEL",
        "If set, internal jobs failing on the system side are tried once more on the external "
        "backend with this model.",
    )
    fallback_internal_model: str = setting(
        "",
        "AIGEN_FALLBACK_INTERNAL_MODEL",
        "If set, external jobs failing on the system side are tried once more on the internal "
        "backend with this model.",
    )
    # operations
    metrics_port: int = setting(
        9464, "AIGEN_METRICS_PORT", "Port of /metrics and /healthz (0: any free port; -1: no server)."
    )
    metrics_host: str = setting("127.0.0.1", "AIGEN_METRICS_HOST", "Address the metrics server binds.")
    log_level: str = setting(
        "INFO", "AIGEN_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR (prompts appear only at DEBUG)."
    )

    def secret(self) -> str:
        if self.worker_secret:
            return self.worker_secret
        if self.worker_secret_file:
            with open(self.worker_secret_file, encoding="utf-8") as handle:
                return handle.read().strip()
        return ""

    def backend_names(self) -> list[str]:
        return [name.strip() for name in self.backends.split(",") if name.strip()]

    def fallback_models(self) -> dict[str, str]:
        pairs = {"external": self.fallback_external_model, "internal": self.fallback_internal_model}
        return {backend: model for backend, model in pairs.items() if model}


# The backends' config classes: (module, class, env prefix, flag prefix)
SECTIONS: dict[str, tuple[str, str, str]] = {
    "openai": ("worker.backends.openai_backend", "OpenAIConfig", "AIGEN_OPENAI_"),
    "kubernetes": ("worker.backends.kubernetes_backend", "KubernetesConfig", "AIGEN_K8S_"),
    "alert": ("worker.alerting", "AlertConfig", "AIGEN_ALERT_"),
}


# Meanings of the backends' fields (their dataclasses carry no help text of their own)
SECTION_HELP: dict[str, dict[str, str]] = {
    "openai": {
        "base_url": "OpenAI-compatible API base URL (e.g. a local gateway or another provider).",
        "api_key": "API key sent as Bearer token.",
        "timeout": "Ceiling of one request in seconds (the job's remaining time lowers it).",
        "connect_timeout": "Seconds to establish the connection.",
        "organization": "OpenAI organization header, if any.",
        "max_tokens_param": "Name of the max-tokens parameter (max_tokens or max_completion_tokens).",
        "image_response_format": "Images: 'url' or 'b64_json' to ask for; empty sends nothing.",
    },
    "kubernetes": {
        "namespace": "Namespace the generation Jobs run in.",
        "image": "Container image of the model.",
        "command": "Container command (JSON list or comma-separated); empty uses the image's entrypoint.",
        "host": "API server URL (with token); empty: in-cluster service account, else kubeconfig.",
        "token": "Bearer token for the API server.",
        "verify_ssl": "Verify the API server's TLS certificate.",
        "ca_cert": "CA bundle file for the API server.",
        "kubeconfig": "Kubeconfig file (when neither host nor in-cluster config applies).",
        "request_timeout": "Seconds per Kubernetes API call.",
        "connection_pool_maxsize": "HTTP connections kept to the API server.",
        "job_name_prefix": "Prefix of the Job names.",
        "container_name": "Name of the model container.",
        "service_account": "Service account of the Job's pod.",
        "resources": 'Container resources as JSON, e.g. {"limits": {"memory": "2Gi"}}.',
        "node_selector": "Pod nodeSelector as a JSON object.",
        "extra_env": "Extra environment for the container as a JSON object.",
        "active_deadline_seconds": "Ceiling of activeDeadlineSeconds (the job's remaining time lowers it).",
        "ttl_seconds_after_finished": "ttlSecondsAfterFinished: clean-up if the worker dies before deleting.",
        "backoff_limit": "Job backoffLimit (0: the worker owns retries).",
        "user_input_exit_code": "Exit code by which the model says 'bad input' (podFailurePolicy FailJob).",
        "poll_interval": "Seconds between looks at the Job and its pod.",
        "pending_grace_seconds": "How long a pod may sit in ImagePullBackOff / Unschedulable before failing.",
        "api_error_tolerance": "Consecutive failed polls tolerated before giving up.",
        "log_tail_lines": "Lines of the pod log read for the result and for failure details.",
    },
    "alert": {
        "alertmanager_url": "Alertmanager base URL (API v2 is used); empty disables alerting.",
        "window_seconds": "Window of the high-frequency rule.",
        "rate_threshold": "N: errors of one (backend, error_type) within the window that raise an alert.",
        "persistent_seconds": "T: errors going on for longer than this raise the persistent alert.",
        "consecutive_threshold": "K: system-side failures in a row on one backend that raise an alert.",
        "resend_seconds": "Active alerts are re-sent this often (endsAt set ahead of now).",
        "eval_interval_seconds": "Seconds between evaluations of the rules.",
        "quiet_seconds": "Without a matching error for this long, an alert resolves (endsAt now).",
        "sample_size": "Sample request ids carried in an alert's annotations.",
        "request_timeout": "Seconds per POST to Alertmanager.",
        "service": "The alerts' service label.",
        "generator_url": "Link shown as the alerts' source in Alertmanager.",
        "instance": "The alerts' instance label: each worker's alerts stay its own to resolve.",
        "extra_labels": 'Extra labels as a JSON object, e.g. {"region": "eu"}.',
    },
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Option:
    section: str  # "worker" or a SECTIONS key
    name: str  # dataclass field
    env: str
    flag: str
    type: Any
    default: Any
    help: str
    secret: bool


def section_class(section: str) -> type | None:
    module_name, class_name, _ = SECTIONS[section]
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return None


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def options_of(cls: type, section: str, env_prefix: str) -> list[Option]:
    hints = typing.get_type_hints(cls)
    result = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        env = f.metadata.get("env") or env_prefix + f.name.upper()
        flag_prefix = "" if section == "worker" else section.replace("kubernetes", "k8s") + "-"
        # the backends mark secrets with repr=False (api_key, token)
        secret = bool(f.metadata.get("secret")) or (section != "worker" and not f.repr)
        result.append(
            Option(
                section=section,
                name=f.name,
                env=env,
                flag="--" + flag_prefix + f.name.replace("_", "-"),
                type=hints.get(f.name, str),
                default=_default_of(f),
                help=f.metadata.get("help")
                or f.metadata.get("doc")
                or SECTION_HELP.get(section, {}).get(f.name, ""),
                secret=secret,
            )
        )
    return result


def all_options() -> list[Option]:
    options = options_of(WorkerConfig, "worker", "AIGEN_")
    for section, (_module, _cls, prefix) in SECTIONS.items():
        cls = section_class(section)
        if cls is not None:
            options += options_of(cls, section, prefix)
    return options


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def convert(raw: str, kind: Any, name: str) -> Any:
    """A string from the environment or a flag, as the field's type (Optional, tuples, dicts included)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw.strip() == "" or raw.strip().lower() == "none":
            return None
        return convert(raw, args[0], name)
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(f"expected true/false, got {raw!r}")
            return lowered in _TRUE
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if origin in (tuple, list, frozenset, set) or kind in (tuple, list):
            args = typing.get_args(kind)
            item = args[0] if args else str
            if raw.strip().startswith("["):  # JSON list: items may contain commas
                parts = [str(p) for p in json.loads(raw)]
            else:
                parts = [part.strip() for part in raw.split(",") if part.strip()]
            return (origin or kind)(convert(part, item, name) for part in parts)
        if origin in (dict, Mapping) or kind is dict:
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{name}: {exc}") from exc
    return raw


def add_arguments(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt in options:
        group = groups.setdefault(opt.section, parser.add_argument_group(f"{opt.section} settings"))
        shown = "(secret)" if opt.secret else repr(opt.default)
        group.add_argument(
            opt.flag,
            dest=f"{opt.section}__{opt.name}",
            default=None,
            metavar=opt.name.upper(),
            help=f"{opt.help} [env {opt.env}, default {shown}]".replace("%", "%%"),
        )


@dataclass(frozen=True)
class Settings:
    worker: WorkerConfig
    sections: dict[str, Any]  # section name -> its config object (absent when the module is not there)


def load(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, dict[str, Any]] = {}
    for opt in all_options():
        raw = getattr(args, f"{opt.section}__{opt.name}", None) if args is not None else None
        if raw is None:
            raw = environ.get(opt.env)
        if raw is not None:
            values.setdefault(opt.section, {})[opt.name] = convert(raw, opt.type, opt.env)
    worker = WorkerConfig(**values.get("worker", {}))
    if worker.max_in_flight < 1:
        raise ConfigError("AIGEN_MAX_IN_FLIGHT must be at least 1")
    if worker.callback_concurrency < 1:
        raise ConfigError("AIGEN_CALLBACK_CONCURRENCY must be at least 1")
    sections = {}
    for section in SECTIONS:
        cls = section_class(section)
        if cls is not None:
            try:
                sections[section] = cls(**values.get(section, {}))
            except TypeError as exc:  # a required field without a value
                raise ConfigError(f"{section} settings: {exc}") from exc
    return Settings(worker, sections)


def markdown_table() -> str:
    lines = ["| Variable | Flag | Default | Meaning |", "|---|---|---|---|"]
    for opt in all_options():
        default = "(none)" if opt.default in ("", None) else f"`{opt.default}`"
        if opt.secret and opt.default not in ("", None):
            default = "(secret)"
        if opt.name == "connection_name":
            default = "`aigen-worker@<hostname>`"
        if (opt.section, opt.name) == ("alert", "instance"):
            default = "`<hostname>:<pid>`"
        lines.append(f"| `{opt.env}` | `{opt.flag}` | {default} | {opt.help} |")
    return "\n".join(lines)


def rewrite_doc(path: str) -> None:
    """Replace the table between the settings markers of ``path`` (docs/worker.md)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{head}{begin}{markdown_table()}\n{end}{tail}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        rewrite_doc(sys.argv[2])
    else:
        print(markdown_table())
