"""The bus websocket through the real gateway: only pages of the gateway's own origin may open it.

Odoo's session cookie has no SameSite attribute, so a browser sends it with a websocket opened by a page
of the same site (another port of the host, a sibling subdomain); Odoo 18 compares the Origin with the
Host only when ODOO_BUS_PUBLIC_SAMESITE_WS is set (bus/websocket.py), which compose does not set. The
gateway refuses an Origin whose host[:port] is not the Host, before Odoo, with the API's JSON 403.
"""

import json
import uuid

import jsonschema
import pytest

from tests.stack.conftest import start_gateway
from tests.stack.facts import REPO
from tests.stack.rawhttp import send

pytestmark = pytest.mark.usefixtures("nginx_required")

ERROR_SCHEMA = json.loads((REPO / "schemas" / "error_response.json").read_text())


@pytest.fixture(scope="module")
def gw(odoo):
    g = start_gateway(odoo.address, odoo_bus=odoo.address)
    yield g
    g.stop()


def handshake(
    port: int,
    marker: str,
    origin: str | None,
    host: str,
    method: str = "GET",
    path: str = "",
    path_prefix: str = "",
):
    """A browser's websocket upgrade to /websocket (``path`` after it), ``marker`` in the query."""
    lines = [
        f"{method} {path_prefix}/websocket{path}?version=18.0-3&t={marker} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Cookie: session_id=the-users-session",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if method == "POST":
        lines.append("Content-Length: 0")
    return send(port, ("\r\n".join(lines) + "\r\n").encode("latin-1"))


def reached(odoo, marker: str) -> bool:
    return any(f"t={marker}" in path for path in odoo.seen)


# (origin, host): {port} is the gateway's
REFUSED = {
    "another site": ("http://evil.example", "127.0.0.1:{port}"),
    "same host, another port": ("http://127.0.0.1:1", "127.0.0.1:{port}"),
    "same port, another host name": ("http://localhost:{port}", "127.0.0.1:{port}"),
    "the port with a digit more": ("http://127.0.0.1:{port}0", "127.0.0.1:{port}"),
    "the host as a prefix of another": ("http://127.0.0.1:{port}.evil.example", "127.0.0.1:{port}"),
    "the host as a path": ("http://evil.example/127.0.0.1:{port}", "127.0.0.1:{port}"),
    "sibling subdomain behind TLS": ("https://evil.example.com", "aigen.example.com"),
    "opaque origin (sandboxed frame, file:)": ("null", "127.0.0.1:{port}"),
}

ALLOWED = {
    "the gateway's own origin": ("http://127.0.0.1:{port}", "127.0.0.1:{port}"),
    "no Origin (not a browser)": (None, "127.0.0.1:{port}"),
    "https Origin, same host (TLS proxy in front)": ("https://aigen.example.com", "aigen.example.com"),
    "host name in another case": ("https://aigen.example.com", "AIGEN.Example.com"),
}


@pytest.mark.parametrize(("origin", "host"), REFUSED.values(), ids=REFUSED.keys())
def test_websocket_from_another_origin_is_refused_before_odoo(gw, odoo, origin, host):
    marker = uuid.uuid4().hex
    answer = handshake(gw.port, marker, origin.format(port=gw.port), host.format(port=gw.port))
    assert answer.status == 403, (answer.status, answer.body[:200])
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    jsonschema.validate(body, ERROR_SCHEMA)
    assert body["error"]["code"] == "origin_not_allowed"
    assert "upgrade" not in answer.headers
    assert not reached(odoo, marker)


def test_bus_json_routes_are_refused_to_another_origin_too(gw, odoo):
    # /websocket/peek_notifications and the like answer the user's notifications over plain HTTP
    answer = handshake(
        gw.port, "peek", "http://127.0.0.1:1", f"127.0.0.1:{gw.port}", "POST", "/peek_notifications"
    )
    assert answer.status == 403 and answer.json()["error"]["code"] == "origin_not_allowed"
    assert not reached(odoo, "peek")


def test_an_origin_without_a_host_is_refused(gw, odoo):
    # HTTP/1.0 needs no Host: an Origin that names no host must not pass for one equal to the empty Host
    marker = uuid.uuid4().hex
    answer = send(
        gw.port, f"GET /websocket?t={marker} HTTP/1.0\r\nUpgrade: websocket\r\nOrigin: null\r\n".encode()
    )
    assert answer.status == 403 and answer.json()["error"]["code"] == "origin_not_allowed"
    assert not reached(odoo, marker)


@pytest.mark.parametrize(("origin", "host"), ALLOWED.values(), ids=ALLOWED.keys())
def test_websocket_from_the_same_origin_or_without_one_reaches_odoo(gw, odoo, origin, host):
    marker = uuid.uuid4().hex
    origin = origin.format(port=gw.port) if origin else None
    answer = handshake(gw.port, marker, origin, host.format(port=gw.port))
    assert answer.status == 200, (answer.status, answer.body[:200])
    seen = answer.json()["headers"]  # what the stand-in Odoo received
    assert seen["upgrade"] == "websocket" and seen["connection"].lower() == "upgrade"
    assert seen.get("origin") == origin
    assert seen["cookie"] == "session_id=the-users-session"
    assert reached(odoo, marker)


@pytest.mark.parametrize("prefix", ["/en", "/fr_BE", "/sr@latin"])
def test_the_bus_with_a_language_in_front_is_refused(gw, odoo, prefix):
    # Odoo's http_routing serves /<language>/websocket as /websocket: the Origin check must not be passed by
    marker = uuid.uuid4().hex
    answer = handshake(gw.port, marker, "http://evil.example", f"127.0.0.1:{gw.port}", path_prefix=prefix)
    assert answer.status == 403, (answer.status, answer.body[:200])
    assert not reached(odoo, marker)


def test_the_origin_error_page_is_internal(gw):
    answer = send(gw.port, b"GET /gateway/error/403-origin HTTP/1.1\r\nHost: x\r\n")
    assert answer.status == 404 and answer.json()["error"]["code"] == "not_found"
