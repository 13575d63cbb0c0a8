"""A loopback stand-in for Odoo's worker callbacks, strict like the real one.

It checks the Bearer secret (401), reads every body with the addon's strict JSON parser (no NUL, no
lone surrogate, no integer beyond 2**53 - 1: addons/ai_generation/pure/validation.py), validates it
against schemas/callback_*.json (400 validation_error with the failing field), keeps a per-request
state machine (queued -> running -> succeeded | failed), answers callback_response.json with
``duplicate`` set when the event_id was seen or the request is already terminal (nothing changes then),
and records every call.
``down()`` closes the listening socket (connection refused) and ``up()`` opens it again on the same port.
"""

from __future__ import annotations

import contextlib
import hmac
import importlib
import importlib.util
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.polling import wait_until
from worker.job import validator_for

PURE_DIR = Path(__file__).resolve().parents[2] / "addons" / "ai_generation" / "pure"


def _strict_json():
    """The addon's Odoo-free validation module, loaded as ``aigen_pure`` (as tests/addon_logic does)."""
    if "aigen_pure" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "aigen_pure", PURE_DIR / "__init__.py", submodule_search_locations=[str(PURE_DIR)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["aigen_pure"] = module
        spec.loader.exec_module(module)
    return importlib.import_module("aigen_pure.validation")


SCHEMAS = {
    "/ai/generation/failure": "callback_failure.json",
    "/ai/generation/result": "callback_result.json",
    "/ai/generation/progress": "callback_progress.json",
    "/notify/generation-error": "callback_notify.json",
}
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Call:
    path: str
    body: Any
    status: int  # HTTP status answered
    answer: dict
    at: float = field(default_factory=time.monotonic)

    @property
    def request_id(self) -> str | None:
        return self.body.get("generation_request_id") if isinstance(self.body, dict) else None


@dataclass
class RequestState:
    status: str = "queued"
    error_type: str | None = None
    user_message: str | None = None
    output: str | None = None
    notifications: list[dict] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class FakeOdoo:
    def __init__(self, secret: str, *, known_only: bool = False):
        self.secret = secret
        self.known_only = known_only  # unknown request ids get 404, like the real Odoo
        self.requests: dict[str, RequestState] = {}
        self.calls: list[Call] = []
        self.invalid: list[Call] = []  # bodies the schemas refused: a worker bug when not empty
        self.events: dict[str, dict] = {}
        self.fail_with: int | None = None  # answer every callback with this status (e.g. 503)
        self.max_body_bytes: int | None = None  # larger bodies get the real Odoo's 413, unread
        # a result whose output is longer fails the request (result_too_large), as the real Odoo does
        # above ai_generation.max_result_bytes
        self.max_result_bytes: int | None = None
        # paths whose next callback is applied, then its answer lost: the connection is cut unanswered
        self.lose_next_answer: set[str] = set()
        self.validate = True
        self._strict = _strict_json()
        self._lock = threading.Lock()
        self._validators = {path: validator_for(name) for path, name in SCHEMAS.items()}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set = set()  # open keep-alive connections, cut by down()
        self.connections_accepted = 0
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------------

    def up(self) -> FakeOdoo:
        handler = _handler_for(self)
        self._server = _Server(("127.0.0.1", self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def down(self) -> None:
        """Like a stopped Odoo: refuse new connections and cut the kept-alive ones."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    start = up
    stop = down

    def __enter__(self) -> FakeOdoo:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- test helpers ----------------------------------------------------------------------------------

    def register(self, request_id: str, status: str = "queued") -> None:
        with self._lock:
            self.requests[request_id] = RequestState(status=status)

    def calls_for(self, request_id: str, path: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.request_id == request_id and (path is None or c.path == path)]

    def state(self, request_id: str) -> RequestState | None:
        with self._lock:
            return self.requests.get(request_id)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        return wait_until(predicate, timeout)

    def wait_terminal(self, request_id: str, timeout: float = 30.0) -> RequestState:
        return self.wait_for(
            lambda: (s := self.state(request_id)) is not None and s.status in TERMINAL and s, timeout
        )

    def count_terminal(self) -> int:
        with self._lock:
            return sum(1 for s in self.requests.values() if s.status in TERMINAL)

    # -- the endpoint logic ----------------------------------------------------------------------------

    def handle(self, path: str, authorization: str | None, raw: bytes) -> tuple[int, dict]:
        if path not in SCHEMAS:
            return 404, _error("not_found", "No such endpoint.")
        expected = f"Bearer {self.secret}".encode()
        if not authorization or not hmac.compare_digest(authorization.encode(), expected):
            return 401, _error("unauthorized", "A valid worker secret is required.")
        if self.fail_with is not None:
            return self.fail_with, _error("unavailable", "Odoo is failing on purpose (test).")
        if self.max_body_bytes is not None and len(raw) > self.max_body_bytes:
            message = f"The callback body is larger than {self.max_body_bytes} bytes."
            answer = _error("payload_too_large", message)
            with self._lock:
                self.calls.append(Call(path, {"bytes": len(raw)}, 413, answer))
            return 413, answer
        if self.validate:
            # what the real callback controller does first: a NUL, a lone surrogate or an unsafe integer
            # is refused before the schemas see the body
            try:
                body = self._strict.parse_json_object(raw)
            except self._strict.InvalidRequest as exc:
                answer = _error("validation_error", str(exc), exc.fields)
                with self._lock:
                    self.invalid.append(Call(path, _lenient(raw), 400, answer))
                return 400, answer
        else:
            try:
                body = json.loads(raw)
            except ValueError:
                return 400, _error("validation_error", "The body is not valid JSON.")
        if self.validate:
            errors = list(self._validators[path].iter_errors(body))
            if errors:
                first = errors[0]
                where = "/".join(str(p) for p in first.absolute_path) or "(body)"
                answer = _error("validation_error", "The callback body is invalid.", {where: first.message})
                with self._lock:
                    self.invalid.append(Call(path, body, 400, answer))
                return 400, answer
        with self._lock:
            return self._apply(path, body)

    def _apply(self, path: str, body: dict) -> tuple[int, dict]:
        request_id = body["generation_request_id"]
        state = self.requests.get(request_id)
        if state is None:
            if self.known_only:
                return 404, _error("not_found", "No such generation request.")
            state = self.requests[request_id] = RequestState()
        event_id = body.get("event_id")
        if event_id and event_id in self.events:
            answer = {**self.events[event_id], "duplicate": True}
        else:
            duplicate = state.status in TERMINAL
            if not duplicate:
                if path == "/ai/generation/progress":
                    state.status = "running"
                elif path == "/ai/generation/failure":
                    state.status = "failed"
                    state.error_type = body["error_type"]
                elif path == "/ai/generation/result" and self._too_large(body):
                    state.status, state.error_type = "failed", "result_too_large"
                elif path == "/ai/generation/result":
                    state.status = "succeeded"
                    state.output = body.get("output") or body.get("output_url")
            if path == "/notify/generation-error":
                # the message is kept on the request whatever its state: polling shows it
                duplicate = False
                state.user_message = body["user_message"]
                state.notifications.append(body)
            answer = {"generation_request_id": request_id, "status": state.status, "duplicate": duplicate}
            if state.status == "failed":
                answer["error_type"] = state.error_type
                # kept with the event: a repeat says it too, as the real Odoo's does
                failing = path in ("/ai/generation/failure", "/ai/generation/result")
                answer["failed_by_this_event"] = failing and not duplicate
            if event_id:
                self.events[event_id] = answer
        self.calls.append(Call(path, body, 200, answer))
        return 200, answer

    def _lose_answer(self, path: str) -> bool:
        with self._lock:
            if path not in self.lose_next_answer:
                return False
            self.lose_next_answer.discard(path)
            return True

    def _too_large(self, result: dict) -> bool:
        size = len((result.get("output") or "").encode()) + len((result.get("output_url") or "").encode())
        return self.max_result_bytes is not None and size > self.max_result_bytes


def _lenient(raw: bytes) -> Any:
    """A refused body as far as Python's own json reads it (for the record of refusals)."""
    try:
        return json.loads(raw.decode("utf-8", "surrogatepass"))
    except ValueError:
        return raw


def _error(code: str, message: str, fields: dict | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _handler_for(odoo: FakeOdoo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like Odoo behind nginx
        # one send per answer and no Nagle: headers and body in separate segments would meet the
        # client's delayed ACK and add ~40 ms to every call, which no real server does
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with odoo._lock:
                odoo._sockets.add(self.connection)
                odoo.connections_accepted += 1

        def finish(self) -> None:
            with odoo._lock:
                odoo._sockets.discard(self.connection)
            super().finish()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            status, answer = odoo.handle(self.path, self.headers.get("Authorization"), raw)
            if status == 200 and odoo._lose_answer(self.path):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # quiet: pytest shows failures, not traffic
            pass

    return Handler
