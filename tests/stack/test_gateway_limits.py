"""The gateway's password-guess limit and its own error answers, through the real nginx on loopback.

Every route of Odoo 18 that takes a password (or an API key) shares one slow per-client bucket; every
error the gateway makes itself is the API's JSON error (schemas/error_response.json), never nginx's
HTML page.
"""

import json
import re
import socket
import threading

import jsonschema
import pytest
import requests

from devstack import gateway
from devstack.ports import free_port
from tests.stack.conftest import start_gateway
from tests.stack.facts import REPO
from tests.stack.rawhttp import request, send

pytestmark = pytest.mark.usefixtures("nginx_required")

ERROR_SCHEMA = json.loads((REPO / "schemas" / "error_response.json").read_text())

# Odoo 18's routes that check a password: the web login form, the JSON login, and the external APIs that
# carry the password (or an API key) in every call (base/controllers/rpc.py), the portal's password change
# and account deletion (portal/controllers/portal.py), auth_signup's sign-up and reset (each reset sends
# an email), in the spellings Odoo routes
LOGIN_ROUTES = [
    ("POST", "/web/login"),
    ("GET", "/web/login"),
    ("POST", "/web/login/"),
    ("POST", "/web/session/authenticate"),
    ("GET", "/web/session/authenticate"),  # a JSON route reads a body sent with GET too
    ("POST", "/jsonrpc"),
    ("POST", "/jsonrpc/"),
    ("POST", "//jsonrpc"),
    ("POST", "/xmlrpc/common"),
    ("POST", "/xmlrpc/object"),
    ("POST", "/xmlrpc/2/common"),
    ("POST", "/xmlrpc/2/object"),
    ("POST", "/my/security"),
    ("GET", "/my/security/"),
    ("POST", "/my/deactivate_account"),
    ("POST", "/web/signup"),
    ("POST", "/web/reset_password"),
    # Odoo's http_routing (the portal's dependency) serves /<language>/<path> as <path>
    ("POST", "/en/my/security"),
    ("POST", "/fr_BE/web/signup"),
    ("POST", "/sr@latin/web/reset_password"),
    ("POST", "/en/web/login"),
    ("POST", "/es_419/jsonrpc"),
]


def assert_api_error(answer, status: int, code: str) -> None:
    assert answer.status == status, (answer.status, answer.body[:200])
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    jsonschema.validate(body, ERROR_SCHEMA)
    assert body["error"]["code"] == code


@pytest.fixture(scope="module")
def gw(odoo):
    g = start_gateway(odoo.address)  # the defaults users get
    yield g
    g.stop()


@pytest.mark.parametrize(("method", "path"), LOGIN_ROUTES, ids=[f"{m} {p}" for m, p in LOGIN_ROUTES])
def test_guesses_beyond_the_login_burst_get_429_json(odoo, method, path):
    burst = 3
    limited = start_gateway(odoo.address, login_rate="1r/m", burst=200, login_burst=burst)
    try:
        before = len(odoo.seen)
        answers = [request(limited.port, method, path) for _ in range(burst + 1 + 5)]
        assert [a.status for a in answers[: burst + 1]] == [200] * (burst + 1)
        for refused in answers[burst + 1 :]:
            assert_api_error(refused, 429, "rate_limited")
            assert refused.headers["retry-after"] == "1"
        assert len(odoo.seen) - before == burst + 1  # the refused guesses never reached Odoo
    finally:
        limited.stop()


def test_all_login_routes_share_one_bucket(odoo):
    # switching route does not buy a guesser more attempts
    limited = start_gateway(odoo.address, login_rate="1r/m", burst=200, login_burst=len(LOGIN_ROUTES) - 1)
    try:
        statuses = [request(limited.port, m, p).status for m, p in LOGIN_ROUTES]
        assert statuses == [200] * len(LOGIN_ROUTES)
        assert all(request(limited.port, m, p).status == 429 for m, p in LOGIN_ROUTES)
        # the API and the web client have buckets of their own
        assert request(limited.port, "GET", "/api/v1/credits").status == 200
        assert request(limited.port, "GET", "/odoo/action-1").status == 200
    finally:
        limited.stop()


def test_forty_guesses_with_the_default_limits_are_mostly_refused(gw):
    # the attack of issue 11: 40 JSON-RPC logins in a row from one address
    guess = {"jsonrpc": "2.0", "method": "call", "params": {"service": "common", "method": "login"}}
    statuses = []
    with requests.Session() as http:
        for _ in range(40):
            statuses.append(http.post(f"{gw.url}/jsonrpc", json=guess, timeout=5).status_code)
    burst = int(gateway.DEFAULTS["AIGEN_GATEWAY_LOGIN_BURST"])
    # one at the rate plus the burst; the rate (per minute) adds at most one more within these seconds
    assert statuses.count(200) in (burst + 1, burst + 2)
    assert statuses.count(429) == 40 - statuses.count(200)


def test_the_default_login_rate_is_slower_than_the_api_rate():
    def per_second(rate: str) -> float:
        number, unit = re.fullmatch(r"(\d+)r/([sm])", rate).groups()
        return int(number) / (60 if unit == "m" else 1)

    login = per_second(gateway.DEFAULTS["AIGEN_GATEWAY_LOGIN_RATE"])
    assert login < per_second(gateway.DEFAULTS["AIGEN_GATEWAY_RATE"])
    assert login <= 1


def test_web_client_rpcs_are_limited_with_the_api_rate(odoo):
    limited = start_gateway(odoo.address, rate="1r/m", burst=2, login_burst=200)
    try:
        statuses = [
            request(limited.port, "POST", "/web/dataset/call_kw/res.users/read").status for _ in range(5)
        ]
        assert statuses == [200, 200, 200, 429, 429]
        # with a language in front, the same bucket
        assert request(limited.port, "POST", "/en/web/dataset/call_kw/res.users/read").status == 429
    finally:
        limited.stop()


def test_the_api_with_a_language_in_front_has_the_apis_bucket(odoo):
    limited = start_gateway(odoo.address, rate="1r/m", burst=1, login_burst=200)
    try:
        statuses = [request(limited.port, "GET", path).status for path in ["/api/v1/credits"] * 2]
        assert statuses == [200, 200]
        assert_api_error(request(limited.port, "GET", "/en/api/v1/credits"), 429, "rate_limited")
    finally:
        limited.stop()


def test_cors_preflights_are_not_counted_against_the_api_rate(odoo):
    # a browser client with an API key preflights each new URL; a refused preflight is a network error
    # to the page whatever it says
    limited = start_gateway(odoo.address, rate="1r/m", burst=1, login_burst=200)
    try:
        preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
        statuses = [
            request(limited.port, "OPTIONS", "/api/v1/generations", headers=preflight).status
            for _ in range(6)
        ]
        # all passed to Odoo (the stand-in answers OPTIONS with its own 501), none is the gateway's 429
        assert statuses == [501] * 6
        # the calls themselves still are
        assert [request(limited.port, "GET", "/api/v1/credits").status for _ in range(3)] == [200, 200, 429]
    finally:
        limited.stop()


@pytest.mark.parametrize(
    "path",
    [
        "/xmlrpc/db",
        "/xmlrpc/2/db",
        "/web/database/manager",
        "/web/database",
        "/en/web/database/manager",  # a language in front is the same path to Odoo's http_routing
        "/fr_BE/xmlrpc/2/db",
    ],
)
def test_database_services_are_not_served(gw, odoo, path):
    before = len(odoo.seen)
    assert_api_error(request(gw.port, "POST", path), 404, "not_found")
    assert odoo.seen[before:] == []


LONG = "/api/v1/generations?" + "x" * 9000  # beyond large_client_header_buffers (8k)
RAW_ERRORS = [
    ("bad request line", b"GARBAGE\r\n", 400, "bad_request"),
    ("target without a slash", b"GET api/v1/credits HTTP/1.1\r\nHost: x\r\n", 400, "bad_request"),
    ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", 400, "bad_request"),
    ("NUL in the path", b"GET /web%00 HTTP/1.1\r\nHost: x\r\n", 400, "bad_request"),
    ("header too large", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n", 400, "bad_request"),
    ("TRACE", b"TRACE / HTTP/1.1\r\nHost: x\r\n", 405, "method_not_allowed"),
    ("URI too long", f"GET {LONG} HTTP/1.1\r\nHost: x\r\n".encode(), 414, "uri_too_long"),
    (
        "declared body too large",
        b"POST /api/v1/generations HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n",
        413,
        "payload_too_large",
    ),
    (
        "unknown transfer coding",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n",
        501,
        "not_implemented",
    ),
    ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\nHost: x\r\n", 505, "http_version_not_supported"),
    ("internal error page asked for", b"GET /gateway/error/403 HTTP/1.1\r\nHost: x\r\n", 404, "not_found"),
]


@pytest.mark.parametrize(("name", "head", "status", "code"), RAW_ERRORS, ids=[e[0] for e in RAW_ERRORS])
def test_the_gateways_own_errors_are_json(gw, odoo, name, head, status, code):
    before = len(odoo.seen)
    assert_api_error(send(gw.port, head), status, code)
    assert odoo.seen[before:] == []


def test_odoo_answers_pass_through_untouched(gw):
    # only the gateway's own errors are rewritten: a 404 from Odoo (here the stand-in's 200) is Odoo's
    answer = request(gw.port, "GET", "/web/unknown")
    assert answer.status == 200 and answer.json()["path"] == "/web/unknown"


class CutOffOdoo:
    """Reads the request and hangs up without a word: nginx's 502 "upstream prematurely closed"."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)

    def stop(self):
        self.sock.close()


@pytest.mark.parametrize("upstream", ["nothing listening", "hangs up"])
def test_odoo_down_or_broken_is_a_503_json(upstream):
    broken = CutOffOdoo() if upstream == "hangs up" else None
    g = start_gateway(broken.address if broken else f"127.0.0.1:{free_port()}")
    try:
        for method, path in (("GET", "/api/v1/credits"), ("POST", "/jsonrpc"), ("GET", "/odoo")):
            assert_api_error(request(g.port, method, path), 503, "service_unavailable")
    finally:
        g.stop()
        if broken:
            broken.stop()


def test_every_error_page_of_the_template_is_a_json_api_error():
    text = gateway.TEMPLATE.read_text()
    pages = re.findall(r"^\s*error_page ([\d ]+?) (?:=(\d+) )?(\S+);", text, re.M)
    assert pages
    handled = set()
    for codes, override, target in pages:
        handled |= {int(c) for c in codes.split()}
        block = re.search(r"location = " + re.escape(target) + r" \{(.*?)\}\n", text, re.S)
        assert block, f"{target} has no location"
        status, body = re.search(r"return (\d+) '(.*)';", block.group(1)).groups()
        assert "internal;" in block.group(1) and "default_type application/json;" in block.group(1)
        jsonschema.validate(json.loads(body), ERROR_SCHEMA)
        assert int(status) in {int(c) for c in codes.split()} | {int(override or 0)}
    assert {400, 403, 404, 405, 413, 414, 429, 500, 502, 503, 504} <= handled


def test_a_page_of_another_origin_can_read_the_gateways_own_api_errors(odoo):
    # an API key client in a browser (docs/pwa.md): without Access-Control-Allow-Origin it read a 429 as
    # a network error, without its Retry-After
    origin = "https://shop.example"
    limited = start_gateway(odoo.address, rate="1r/m", burst=1, login_burst=200)
    try:
        answers = [
            request(limited.port, "GET", "/api/v1/credits", headers={"Origin": origin}) for _ in range(3)
        ]
        refused = answers[-1]
        assert_api_error(refused, 429, "rate_limited")
        assert refused.headers["access-control-allow-origin"] == origin
        assert refused.headers["access-control-expose-headers"] == "Retry-After"
        assert refused.headers["vary"] == "Origin"
        big = b"POST /api/v1/generations HTTP/1.1\r\nHost: x\r\nOrigin: " + origin.encode()
        too_large = send(limited.port, big + b"\r\nContent-Length: 2000000\r\n")
        assert_api_error(too_large, 413, "payload_too_large")
        assert too_large.headers["access-control-allow-origin"] == origin
        # not beyond the API: a gateway error elsewhere stays unreadable to other origins
        elsewhere = request(limited.port, "GET", "/web/database/manager", headers={"Origin": origin})
        assert_api_error(elsewhere, 404, "not_found")
        assert "access-control-allow-origin" not in elsewhere.headers
        # nor without an Origin (no browser page asked)
        assert "access-control-allow-origin" not in request(limited.port, "GET", "/api/v1/credits").headers
    finally:
        limited.stop()
