"""Reading Odoo's own log (``--log-level=info``): its request lines with their server time, and its trouble.

Odoo's werkzeug line for each request ends with three figures: the number of SQL queries, the seconds
spent in them, and the other seconds of the request (odoo/netsvc.py PerfFilter), e.g.::

    2026-12-01 09:46:25,669 31122 INFO db werkzeug: 127.0.0.1 - - [01/Dec/2026 09:46:25]
        "POST /api/v1/generations HTTP/1.1" 202 - 31 0.012 0.020

so a request's server time is the sum of the last two, measured by Odoo from the moment its WSGI
application got the request until the answer's headers went out (queueing before that is not in it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REQUEST_LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \d+ INFO \S+ werkzeug: .*?"
    r'"(?P<method>[A-Z]+) (?P<path>[^ ?"]+)\S* HTTP/[\d.]+" (?P<status>\d{3}) \S+'
    r" (?P<queries>\d+) (?P<query_s>[\d.]+) (?P<other_s>[\d.]+)"
)
# Odoo's retry of a request after a serialization failure, the failed query itself, and the addon's
# own READ COMMITTED transaction rolled back by PostgreSQL (models/transactions.py)
SERIALIZATION_MARKERS = ("could not serialize", "tries left", "own transaction rolled back by PostgreSQL")


@dataclass(frozen=True)
class RequestLine:
    at: float  # seconds since the epoch, when Odoo logged the answer
    method: str
    path: str
    status: int
    queries: int
    server_seconds: float


def parse_requests(text: str) -> list[RequestLine]:
    found = []
    for line in text.splitlines():
        match = REQUEST_LINE.match(line)
        if match:
            at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            found.append(
                RequestLine(
                    at=at,
                    method=match["method"],
                    path=match["path"],
                    status=int(match["status"]),
                    queries=int(match["queries"]),
                    server_seconds=float(match["query_s"]) + float(match["other_s"]),
                )
            )
    return found


def serialization_failures(text: str) -> int:
    """Lines that show a serialization failure (the ERROR of the query and Odoo's retry count apart)."""
    return sum(1 for line in text.splitlines() if any(marker in line for marker in SERIALIZATION_MARKERS))


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line]


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


class LogWindow:
    """The part of a growing log file written between ``open()`` and ``close()`` (by file offset)."""

    def __init__(self, path: Path):
        self.path = path
        self.start = self.end = None

    def _size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def open(self) -> LogWindow:
        self.start = self._size()
        return self

    def close(self) -> LogWindow:
        self.end = self._size()
        return self

    def text(self) -> str:
        end = self.end if self.end is not None else self._size()
        with open(self.path, "rb") as log:
            log.seek(self.start or 0)
            return log.read(end - (self.start or 0)).decode(errors="replace")

    def requests(self, method: str | None = None, path: str | None = None) -> list[RequestLine]:
        return [
            r
            for r in parse_requests(self.text())
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]
