"""A loopback stand-in for an OpenAI-compatible API, speaking the real REST wire format.

The real ``openai`` client runs unchanged against it (``base_url=fake.base_url``). It serves
``POST /v1/chat/completions`` and ``POST /v1/images/generations``; each answer comes from a script:

1. marker rules, ``fake.on("MARKER", reply, ...)``: a request whose prompt contains MARKER gets the
   rule's replies in order (the last one repeats unless ``repeat_last=False``, then the rule falls through);
2. the queue, ``fake.enqueue(reply, ...)``: one reply per request, first in first out;
3. ``fake.default`` (a text or image success, matching the endpoint).

Replies are built with the functions below (``text``, ``image``, ``error`` and one per provider error:
``invalid_value``, ``content_policy_violation``, ``invalid_prompt``, ``context_length_exceeded``,
``unauthorized``, ``model_not_found``, ``rate_limited``, ``insufficient_quota``, ``server_error``,
``unavailable``, ``disconnect``), each with an optional ``delay``; ``slow(seconds)`` answers after the
client gave up. ``FakeOpenAI(latency=1.0)`` adds a fixed delay to every answer (the bench's 1 s model).
With ``api_key=...`` a request with another bearer token gets the provider's 401.

Every request is recorded (``fake.requests``: path, headers, authorization, JSON body, prompt) for
assertions. Threaded (one thread per connection, a deep accept queue) so 100+ concurrent slow requests
overlap instead of queueing.

Library use::

    with FakeOpenAI() as fake:
        fake.on("[oom]", server_error())
        client = fake.client(timeout=2)

pytest: the ``fake_openai`` fixture (a started server, fresh per test).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# A 1x1 transparent PNG: what a b64_json image answer carries.
TINY_PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
CHAT_PATH = "/v1/chat/completions"
IMAGES_PATH = "/v1/images/generations"


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``body`` None means "a success built from the request" (see ``kind``)."""

    status: int = 200
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    kind: str = "auto"  # auto (success matching the endpoint) | text | image | raw | disconnect
    content: str | None = None  # text success: the completion text
    image_url: str | None = None  # image success: a URL answer ...
    b64_json: str | tuple[str, ...] | None = None  # ... or an inline image (a tuple: one per image, in turn)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any
    prompt: str
    received_at: float

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


# --- reply builders ------------------------------------------------------------------------------------


def text(content: str | None = None, *, delay: float = 0.0) -> Reply:
    """200 chat.completion; ``content`` defaults to a fixed text naming the model."""
    return Reply(kind="text", content=content, delay=delay)


def image(
    url: str | None = None, *, b64_json: str | tuple[str, ...] | list[str] | None = None, delay: float = 0.0
) -> Reply:
    """200 images answer with ``url`` or, when no url is given, ``b64_json`` (a tiny PNG by default).

    The answer holds the request's ``n`` images; ``b64_json`` as a list gives them in turn (distinct images).
    """
    if isinstance(b64_json, list):
        b64_json = tuple(b64_json)
    return Reply(
        kind="image", image_url=url, b64_json=None if url else (b64_json or TINY_PNG_B64), delay=delay
    )


def error(
    status: int,
    message: str,
    *,
    type: str | None = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
) -> Reply:
    """An error answer in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return Reply(status=status, body=body, headers=headers or {}, delay=delay, kind="raw")


def invalid_value(param: str = "size", *, delay: float = 0.0) -> Reply:
    return error(400, f"Invalid value for '{param}'.", code="invalid_value", param=param, delay=delay)


def content_policy_violation(*, delay: float = 0.0) -> Reply:
    message = "Your request was rejected as a result of our safety system."
    return error(400, message, code="content_policy_violation", param="prompt", delay=delay)


def invalid_prompt(*, delay: float = 0.0) -> Reply:
    message = "Invalid prompt: your prompt was flagged as potentially violating our usage policy."
    return error(400, message, code="invalid_prompt", param="prompt", delay=delay)


def context_length_exceeded(*, delay: float = 0.0) -> Reply:
    message = (
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."
    )
    return error(400, message, code="context_length_exceeded", param="messages", delay=delay)


def unauthorized(*, delay: float = 0.0) -> Reply:
    return error(401, "Incorrect API key provided.", code="invalid_api_key", delay=delay)


def model_not_found(model: str = "no-such-model", *, delay: float = 0.0) -> Reply:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return error(404, message, code="model_not_found", param="model", delay=delay)


def rate_limited(retry_after: float = 1, *, delay: float = 0.0) -> Reply:
    message = "Rate limit reached for requests per min. Please try again later."
    headers = {"Retry-After": f"{retry_after:g}"}
    return error(429, message, type="requests", code="rate_limit_exceeded", headers=headers, delay=delay)


def insufficient_quota(*, delay: float = 0.0) -> Reply:
    message = "You exceeded your current quota, please check your plan and billing details."
    return error(429, message, type="insufficient_quota", code="insufficient_quota", delay=delay)


def server_error(status: int = 500, *, delay: float = 0.0) -> Reply:
    message = "The server had an error while processing your request. Sorry about that!"
    return error(status, message, type="server_error", delay=delay)


def unavailable(*, delay: float = 0.0) -> Reply:
    return error(
        503, "The engine is currently overloaded, please try again later.", type="server_error", delay=delay
    )


def slow(seconds: float, then: Reply | None = None) -> Reply:
    """``then`` (a success by default) after ``seconds``: past the client's timeout, the client gives up."""
    base = then or Reply()
    return replace(base, delay=base.delay + seconds)


def disconnect(*, delay: float = 0.0) -> Reply:
    """Close the connection without answering: the client sees a connection error."""
    return Reply(kind="disconnect", delay=delay)


# --- the server ----------------------------------------------------------------------------------------


@dataclass
class _Rule:
    marker: str
    replies: deque
    repeat_last: bool


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the bench opens 100+ connections at once
    allow_reuse_address = True


class FakeOpenAI:
    """A started-on-demand loopback OpenAI API. Thread-safe scripting; see the module docstring."""

    def __init__(self, *, latency: float = 0.0, api_key: str | None = None, host: str = "127.0.0.1"):
        self.latency = latency
        self.api_key = api_key
        self.default: Reply | None = None  # None: a success matching the endpoint
        self.requests: list[RecordedRequest] = []
        self._host = host
        self._rules: list[_Rule] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._released = threading.Event()
        self._released.set()
        self.in_flight = 0  # requests being answered right now
        self.max_in_flight = 0  # the most answered at once: proves requests overlap
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeOpenAI:
        self._server = _Server((self._host, 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a delay
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What the openai client wants: http://127.0.0.1:PORT/v1"""
        return f"http://{self._host}:{self.port}/v1"

    def client(self, *, timeout: float = 5.0, api_key: str | None = None, **kwargs):
        """A real openai.OpenAI pointed here, with the SDK's own retries off."""
        import openai

        key = api_key or self.api_key or "sk-test"
        return openai.OpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=0, **kwargs)

    # scripting
    def on(self, marker: str, *replies: Reply, repeat_last: bool = True) -> None:
        """Requests whose prompt contains ``marker`` get ``replies`` in order (see module docstring)."""
        if not replies:
            raise ValueError("on() needs at least one reply")
        with self._lock:
            self._rules.append(_Rule(marker, deque(replies), repeat_last))

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def hold(self) -> None:
        """Keep every answer waiting (after its delay) until ``release()``: shows requests in flight."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def wait_in_flight(self, count: int, timeout: float = 10.0) -> bool:
        """True once ``count`` requests are being answered at the same time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_flight >= count:
                return True
            time.sleep(0.01)
        return False

    def reset(self) -> None:
        """Forget the script and the recorded requests (latency, api_key and default stay)."""
        with self._lock:
            self._rules.clear()
            self._queue.clear()
            self.requests.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # used by the handler
    def _next_reply(self, recorded: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self.api_key is not None and recorded.authorization != f"Bearer {self.api_key}":
                return unauthorized()
            for rule in self._rules:
                if rule.marker in recorded.prompt and rule.replies:
                    if len(rule.replies) > 1 or not rule.repeat_last:
                        return rule.replies.popleft()
                    return rule.replies[0]
            if self._queue:
                return self._queue.popleft()
            return self.default or Reply()

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _success_body(self, reply: Reply, path: str, body: dict) -> dict:
        n = next(self._ids)
        now = int(time.time())
        model = body.get("model") or "fake-model"
        if path == IMAGES_PATH or reply.kind == "image":
            count = int(body.get("n") or 1)
            if reply.kind == "image" and reply.image_url:
                items = [{"url": reply.image_url}]
            elif reply.kind == "image" or body.get("response_format") == "b64_json":
                b64 = reply.b64_json or TINY_PNG_B64
                items = [{"b64_json": one} for one in (b64 if isinstance(b64, tuple) else (b64,))]
            else:
                items = [{"url": f"http://{self._host}:{self.port}/files/img-{n}.png"}]
            return {
                "created": now,
                "data": [dict(items[i % len(items)], revised_prompt=None) for i in range(count)],
                "usage": {"input_tokens": 10, "output_tokens": 100, "total_tokens": 110},
            }
        content = reply.content if reply.content is not None else f"Fake completion {n} from {model}."
        prompt_tokens = max(1, len(_prompt_of(path, body)) // 4)
        completion_tokens = max(1, len(content) // 4)
        return {
            "id": f"chatcmpl-fake{n}",
            "object": "chat.completion",
            "created": now,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _prompt_of(path: str, body: Any) -> str:
    """The text a marker is looked for in: the image prompt, or every chat message's text."""
    if not isinstance(body, dict):
        return ""
    if path == IMAGES_PATH:
        return str(body.get("prompt") or "")
    parts = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
        # one send per answer and no Nagle: headers and body in two segments meet the client's delayed
        # ACK and add ~40 ms to every answer (measured), which no real provider does
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def log_message(self, *args):  # keep test output clean
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = None
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded = RecordedRequest(path, headers, body, _prompt_of(path, body), time.time())
            if path not in (CHAT_PATH, IMAGES_PATH):
                self._send(error(404, f"Invalid URL (POST {path})", code=None))
                return
            if not isinstance(body, dict):
                self._send(error(400, "We could not parse the JSON body of your request.", code=None))
                return
            reply = fake._next_reply(recorded)
            fake._enter()
            try:
                if fake._stopping.wait(fake.latency + reply.delay):
                    return
                fake._released.wait()
                if fake._stopping.is_set():
                    return
            finally:
                fake._leave()
            if reply.kind == "disconnect":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if reply.status == 200 and reply.body is None:
                reply = Reply(status=200, body=fake._success_body(reply, path, body), headers=reply.headers)
            self._send(reply)

        def _send(self, reply: Reply):
            payload = json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-request-id", f"req_fake{next(fake._ids)}")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                self.close_connection = True

    return Handler


@pytest.fixture
def fake_openai():
    """A started FakeOpenAI, fresh for each test."""
    with FakeOpenAI() as fake:
        yield fake


__all__ = [
    "CHAT_PATH",
    "IMAGES_PATH",
    "TINY_PNG_B64",
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "content_policy_violation",
    "context_length_exceeded",
    "disconnect",
    "error",
    "fake_openai",
    "image",
    "insufficient_quota",
    "invalid_prompt",
    "invalid_value",
    "model_not_found",
    "rate_limited",
    "server_error",
    "slow",
    "text",
    "unauthorized",
    "unavailable",
]
