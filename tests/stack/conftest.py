"""Fixtures for the stack tests: the gateway in front of a loopback stand-in for Odoo that echoes requests."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack import gateway


class EchoOdoo(BaseHTTPRequestHandler):
    """Answers every request with what reached it, so a test sees what the gateway forwarded."""

    protocol_version = "HTTP/1.1"

    def _echo(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_bytes": len(body),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _echo

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def echo_odoo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoOdoo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def nginx_required():
    if gateway.nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light; ./run-tests does it as root)")


def start_gateway(odoo: str, **kwargs) -> gateway.Gateway:
    return gateway.Gateway(odoo=odoo, **kwargs).start()


@pytest.fixture(scope="module")
def odoo():
    """A stand-in Odoo that records every request reaching it (tests/stack/rawhttp.py)."""
    from tests.stack.rawhttp import RecordingOdoo  # rawhttp builds on this module's EchoOdoo

    recorder = RecordingOdoo()
    yield recorder
    recorder.stop()
