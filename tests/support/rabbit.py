"""RabbitMQ for tests: a throwaway vhost per test module, and a broker-side kill of one's own connections.

Several test runs share the one broker on 127.0.0.1:5672, so nothing here touches the default vhost or
other people's connections: every name is scoped by our vhost.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import pika

HOST = "127.0.0.1"
PORT = 5672


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


@dataclass(frozen=True)
class Vhost:
    name: str

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{PORT}/{quote(self.name, safe='')}"

    def connect(self, **kwargs) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT, self.name, **kwargs))

    def connection_pids(self, name_contains: str = "") -> list[str]:
        """Broker-side ids of this vhost's connections whose client-given name contains ``name_contains``."""
        out = rabbitmqctl("list_connections", "pid", "vhost", "client_properties", "-q", "--no-table-headers")
        pids = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == self.name and name_contains in parts[2]:
                pids.append(parts[0])
        return pids

    def close_connections(self, name_contains: str, reason: str = "closed by test") -> int:
        """Close (from the broker side) this vhost's connections named like ``name_contains``."""
        pids = self.connection_pids(name_contains)
        for pid in pids:
            rabbitmqctl("close_connection", pid, reason)
        return len(pids)


@contextmanager
def throwaway_vhost(prefix: str = "aigen-test") -> Iterator[Vhost]:
    vhost = Vhost(f"{prefix}-{uuid.uuid4().hex[:12]}")
    rabbitmqctl("add_vhost", vhost.name, "-q")
    try:
        rabbitmqctl("set_permissions", "-p", vhost.name, "guest", ".*", ".*", ".*", "-q")
        yield vhost
    finally:
        rabbitmqctl("delete_vhost", vhost.name, "-q")


class BrokerProxy:
    """A loopback TCP proxy in front of the broker: ``cut()`` is the broker going away (open connections
    dropped, new ones refused), ``restore()`` brings it back on the same port. Lets a test take "the
    broker" down without touching the shared one."""

    def __init__(self, target: tuple[str, int] = (HOST, PORT)):
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def url(self, vhost: Vhost) -> str:
        return f"amqp://guest:guest@{HOST}:{self.port}/{quote(vhost.name, safe='')}"

    def restore(self) -> BrokerProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    start = restore

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept() (close alone does not)
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


@contextmanager
def hung_broker() -> Iterator[str]:
    """An AMQP URL whose port accepts TCP connections and never says a word: a broker that hangs
    (connecting costs the client its whole timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    try:
        yield f"amqp://guest:guest@127.0.0.1:{listener.getsockname()[1]}/%2F"
    finally:
        listener.close()


def drain(vhost: Vhost, queue: str = "ai.generation.jobs") -> list[tuple[pika.BasicProperties, dict]]:
    """Every message now in ``queue`` (the jobs queue by default), taken off it: [(properties, body)]."""
    connection = vhost.connect()
    try:
        channel = connection.channel()
        messages = []
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            messages.append((properties, json.loads(body)))
    finally:
        connection.close()
