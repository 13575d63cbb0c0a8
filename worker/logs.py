"""Structured JSON log lines (python-json-logger), with prompts redacted above DEBUG.

Every line is one JSON object; context goes in ``extra=`` (request_id, backend, error_type,
provider_status, provider_request_id, attempt, ...). Fields that may hold user content (the prompt, the
system message, the raw body of a bad message) are replaced by their length unless the record itself is
a DEBUG record, so an INFO/WARNING/ERROR line can never leak them.
"""

from __future__ import annotations

import logging
import sys
from typing import IO

from pythonjsonlogger.json import JsonFormatter

#: record attributes that may carry user content
SENSITIVE_FIELDS = frozenset({"prompt", "system", "body", "params"})


class RedactSensitive(logging.Filter):
    """Replace user content on records above DEBUG (a filter, so it holds whatever the call site passes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            for name in SENSITIVE_FIELDS & record.__dict__.keys():
                value = record.__dict__[name]
                size = len(value) if isinstance(value, str | bytes | dict | list) else 0
                record.__dict__[name] = f"[redacted {size}]"
        return True


def configure(level: str | int = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Route the root logger to JSON lines on ``stream`` (stderr by default); returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    )
    handler.addFilter(RedactSensitive())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_aigen", False)]:
        root.removeHandler(old)
    handler._aigen = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # pika and urllib3 are chatty at INFO/DEBUG; their warnings still come through
    for noisy in ("pika", "urllib3", "kubernetes", "httpx", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
