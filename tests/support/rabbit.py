"""RabbitMQ for tests: a throwaway vhost per test module, and a broker-side kill of one's own connections.

Several test runs share the one broker on 127.0.0.1:5672, so nothing here touches the default vhost or
other people's connections: every name is scoped by our vhost.
"""

from __future__ import annotations

import subprocess
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
