"""Structured JSON log lines (python-json-logger), with prompts redacted above DEBUG.

Every line is one JSON object; context goes in ``extra=`` (request_id, backend, error_type,
provider_status, provider_request_id, attempt, ...). Fields that may hold user content (the prompt, the
system message, the raw body of a bad message) are replaced by their length unless the record itself is
a DEBUG record, so an INFO/WARNING/ERROR line can never leak them.

A line is formatted in the thread that logs it and written by one background thread, within about
50 ms, together with the lines logged meanwhile. With a hundred job threads, a plain StreamHandler made
them queue on its lock while the holder sat in the write system call (the lock is held across it): a
lock convoy that cost more CPU than the lines themselves (bench/worker_throughput.py). ``flush()`` (and
``logging.shutdown()``, which calls it) returns once every line logged before it is written.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
import traceback
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


class BackgroundLines(logging.Handler):
    """Formats a record where it is logged (no lock: formatting is thread-safe); a thread writes lines.

    The writer takes whatever lines are waiting and writes them with one write and one flush, in the
    order they were logged.
    """

    def __init__(self, stream: IO[str], batch_seconds: float = 0.05):
        super().__init__()
        self.stream = stream
        self.batch_seconds = batch_seconds
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # str lines, Event markers, None to stop
        self._writer = threading.Thread(target=self._write_lines, name="log-writer", daemon=True)
        self._writer.start()

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            if self._writer.is_alive():
                self._queue.put(line)
            else:  # closed (after logging.shutdown): a late line is still written, in this thread
                self.stream.write(line)
                self.stream.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Wait until every line queued so far is written (at most 5 s: a stuck stream must not hang)."""
        if not self._writer.is_alive() or threading.current_thread() is self._writer:
            return
        written = threading.Event()
        self._queue.put(written)
        written.wait(5.0)

    def close(self) -> None:
        if self._writer.is_alive():
            self.flush()
            self._queue.put(None)
            self._writer.join(5.0)
        super().close()

    def _write_lines(self) -> None:
        while True:
            items = [self._queue.get()]
            if not isinstance(items[0], threading.Event):
                time.sleep(self.batch_seconds)  # let lines gather: one wake-up and one write for many
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            text = "".join(item for item in items if isinstance(item, str))
            if text:
                try:
                    self.stream.write(text)
                    self.stream.flush()
                except Exception:  # a closed or broken stream: say so where it can still be seen
                    if logging.raiseExceptions and sys.__stderr__ is not None:
                        traceback.print_exc(file=sys.__stderr__)
            for item in items:
                if isinstance(item, threading.Event):
                    item.set()
            if None in items:
                return


def configure(level: str | int = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Route the root logger to JSON lines on ``stream`` (stderr by default); returns the handler."""
    handler = BackgroundLines(stream or sys.stderr)
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
        old.close()
    handler._aigen = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # the client libraries are chatty at INFO/DEBUG (httpx2, the openai SDK's HTTP client, logs a line
    # per AI call at INFO); their warnings still come through
    for noisy in ("pika", "urllib3", "kubernetes", "httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
