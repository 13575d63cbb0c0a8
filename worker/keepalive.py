"""POSTs to one base URL over a kept-alive connection per thread (http.client, standard library).

Used for the callbacks to Odoo, where each job thread sends two to four small POSTs per job. A pool
shared by a hundred threads costs more than the requests themselves: urllib3's took its lock twice per
request, polled the pooled socket and reset its timeout (each a system call that hands the GIL over),
and requests added its per-call preparation on top. Here a thread keeps its own connection: the
timeout is set once at connect, and a request is its sends and one receive.

A connection the server closed while it sat idle is noticed when it is used: the request is then sent
once more on a new connection (what urllib3's check before reuse gave). Odoo's callbacks are idempotent
by event_id, so a second copy of one that did arrive is harmless.

Proxies: ``proxy`` (an http:// URL, as requests picks it from the environment) is used as an HTTP
proxy for http:// targets and as a CONNECT tunnel for https:// ones. TLS is verified with ``ssl_context``.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: the connection failed before the server answered: worth one more try on a fresh connection
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


@dataclass(frozen=True)
class Answer:
    status: int
    data: bytes


class _NoDelayHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        # headers and body go out as two sends: without this the body could wait on Nagle's algorithm
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _NoDelayHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class KeepAlivePoster:
    """Thread-safe: every thread that posts gets (and keeps) a connection of its own."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout: float,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ):
        target = urlsplit(base_url)
        if target.scheme not in ("http", "https") or not target.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._https = target.scheme == "https"
        self._host = target.hostname
        self._port = target.port or (443 if self._https else 80)
        self._prefix = target.path.rstrip("/")
        self._headers = dict(headers)
        self._timeout = timeout
        self._ssl_context = ssl_context or (ssl.create_default_context() if self._https else None)
        self._proxy = urlsplit(proxy) if proxy else None
        if self._proxy and (self._proxy.scheme != "http" or not self._proxy.hostname):
            raise ValueError(f"only an http:// proxy is supported, not {proxy!r}")
        self._proxy_headers = _proxy_authorization(self._proxy) if self._proxy else {}
        if self._proxy and not self._https:  # an HTTP proxy takes the absolute URL
            self._prefix = f"http://{target.netloc.rpartition('@')[2]}{self._prefix}"
            self._headers.update(self._proxy_headers)
        self._local = threading.local()
        self._open: set[http.client.HTTPConnection] = set()  # every thread's, for close()
        self._open_lock = threading.Lock()

    def post(self, path: str, body: bytes) -> Answer:
        """One POST; OSError / http.client.HTTPException when there is no answer."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                return self._exchange(connection, path, body)
            except _STALE:
                self._discard(connection)
        return self._exchange(self._connect(), path, body)

    def close(self) -> None:
        with self._open_lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def _exchange(self, connection: http.client.HTTPConnection, path: str, body: bytes) -> Answer:
        try:
            connection.request("POST", self._prefix + path, body, self._headers)
            response = connection.getresponse()
            return Answer(response.status, response.read())
        except BaseException:
            self._discard(connection)
            raise

    def _connect(self) -> http.client.HTTPConnection:
        if self._proxy is None:
            connection = self._new(self._host, self._port)
        else:
            connection = self._new(self._proxy.hostname, self._proxy.port or 80)
            if self._https:
                connection.set_tunnel(self._host, self._port, headers=self._proxy_headers)
        with self._open_lock:
            self._open.add(connection)
        self._local.connection = connection
        return connection

    def _new(self, host: str, port: int) -> http.client.HTTPConnection:
        if self._https:
            return _NoDelayHTTPSConnection(host, port, timeout=self._timeout, context=self._ssl_context)
        return _NoDelayHTTPConnection(host, port, timeout=self._timeout)

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        with self._open_lock:
            self._open.discard(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None


def _proxy_authorization(proxy) -> dict[str, str]:
    if not proxy.username:
        return {}
    credentials = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(credentials).decode()}
