"""HTTP requests sent byte for byte, for the spellings an HTTP client library would tidy up first.

``requests`` (urllib3) removes dot segments and re-quotes paths; an attacker's client does not. These
helpers write the request line exactly as given and read the answer back from the socket.
"""

import json
import socket
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from tests.stack.conftest import EchoOdoo


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def send(port: int, head: bytes, body: bytes = b"", timeout: float = 10) -> Answer:
    """Send ``head`` (request line and headers, each ending in CRLF, without the blank line) and ``body``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + b"Connection: close\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return Answer(int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, rest)


def request(port: int, method: str, target: str, body: bytes = b"{}", headers: dict | None = None) -> Answer:
    """``method target HTTP/1.1`` with the target untouched, a JSON body and its length."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += ["Content-Type: application/json"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return send(port, ("\r\n".join(lines) + "\r\n").encode("latin-1"), body)


class RecordingOdoo:
    """The echo stand-in for Odoo, keeping every request target that reached it."""

    def __init__(self):
        seen = self.seen = []

        class Recorder(EchoOdoo):
            def _echo(self):
                seen.append(self.path)
                super()._echo()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _echo

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
