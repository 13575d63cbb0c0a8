"""The worker callbacks through the real gateway, in every spelling a client can send.

Odoo's routing map is not strict about slashes (``/notify/generation-error/`` and
``/notify/generation-error%2F`` reach the callback) and Odoo receives the raw request line, so the
gateway must refuse every spelling that is not the callback's own, whoever asks, and let the own
spelling through only for AIGEN_GATEWAY_CALLBACK_ALLOW. A stand-in for Odoo records what reached it.
"""

import re

import pytest

from devstack.gateway import TEMPLATE, render
from tests.stack.conftest import start_gateway
from tests.stack.facts import ADDON, addon_routes, module_int
from tests.stack.rawhttp import request

pytestmark = pytest.mark.usefixtures("nginx_required")

CALLBACKS = addon_routes("callbacks")


def encode_all(text: str) -> str:
    return "".join(f"%{ord(c):02X}" for c in text)


def spellings(path: str) -> dict[str, str]:
    """Other spellings of ``path`` (e.g. /ai/generation/result) that Odoo or nginx may read as it."""
    head, _, rest = path[1:].partition("/")  # "ai", "generation/result"
    last = path.rsplit("/", 1)[1]
    return {
        "trailing slash": path + "/",
        "trailing slash and query": path + "/?x=1",
        "trailing encoded slash": path + "%2F",
        "trailing encoded slash, lower case": path + "%2f",
        "two trailing slashes": path + "//",
        "leading double slash": "/" + path,
        "every slash doubled": path.replace("/", "//"),
        "dot segment": f"/{head}/./{rest}",
        "leading dot segment": "/." + path,
        "trailing dot segment": path + "/.",
        "dot-dot segment": f"/{head}/x/../{rest}",
        "dot-dot from elsewhere": "/web/.." + path,
        "trailing dot-dot": path + "/x/..",
        "encoded dot segment": f"/{head}/%2e/{rest}",
        "encoded dot-dot": f"/{head}/x/%2e%2e/{rest}",
        "encoded separators": "/" + path[1:].replace("/", "%2F"),
        "encoded separators, lower case": "/" + path[1:].replace("/", "%2f"),
        "double-encoded separator": f"/{head}%252F{rest}",
        "every letter encoded": "/" + "/".join(encode_all(part) for part in path[1:].split("/")),
        "upper case": path.upper(),
        "capitalised": path.title(),
        "path parameter": path + ";x",
        "encoded space": path + "%20",
        "backslash": f"/{head}\\{rest}",
        "encoded backslash": f"/{head}%5C{rest}",
        "fragment": path + "#x",
        "last segment encoded": path[: -len(last)] + encode_all(last),
        "absolute form with a trailing slash": "http://127.0.0.1" + path + "/",
        # Odoo's http_routing (the portal's dependency) serves /<language>/<path> as <path>
        "language in front": "/en" + path,
        "language and region in front": "/fr_BE" + path,
        "language and script in front": "/sr@latin" + path,
    }


VARIANTS = [(route, name, target) for route in CALLBACKS for name, target in spellings(route).items()]


@pytest.fixture(scope="module")
def closed(odoo):
    g = start_gateway(odoo.address, callback_allow="192.0.2.1")  # TEST-NET: nobody on this machine
    yield g
    g.stop()


@pytest.fixture(scope="module")
def opened(odoo):
    g = start_gateway(odoo.address, callback_allow="127.0.0.1")
    yield g
    g.stop()


def refused_before_odoo(gw, odoo, target: str, method: str = "POST") -> None:
    before = len(odoo.seen)
    answer = request(gw.port, method, target)
    assert odoo.seen[before:] == [], f"{target!r} reached Odoo"
    assert answer.status == 403, (target, answer.status, answer.body[:200])
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == "forbidden"


def test_the_variants_cover_every_callback():
    assert {route for route, _, _ in VARIANTS} == set(CALLBACKS) and len(CALLBACKS) == 4


@pytest.mark.parametrize(("route", "name", "target"), VARIANTS, ids=[f"{r} {n}" for r, n, _ in VARIANTS])
def test_other_spellings_never_reach_odoo_from_anyone(closed, opened, odoo, route, name, target):
    refused_before_odoo(closed, odoo, target)
    # an allowed host gets the callback only under its own name: a worker never sends another spelling
    refused_before_odoo(opened, odoo, target)


@pytest.mark.parametrize("route", CALLBACKS)
def test_own_spelling_reaches_odoo_only_from_an_allowed_host(closed, opened, odoo, route):
    refused_before_odoo(closed, odoo, route)
    before = len(odoo.seen)
    answer = request(opened.port, "POST", route)
    assert answer.status == 200
    assert odoo.seen[before:] == [route]
    # a query string is still the same route
    assert request(opened.port, "POST", route + "?attempt=1").status == 200
    assert odoo.seen[-1] == route + "?attempt=1"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_refused_too(closed, odoo, method):
    refused_before_odoo(closed, odoo, CALLBACKS[0] + "/", method)


@pytest.mark.parametrize("target", ["/ai", "/ai/", "/ai/other", "/notify", "/notify/other", "/AI/x"])
def test_everything_else_under_the_callback_prefixes_is_refused(opened, odoo, target):
    refused_before_odoo(opened, odoo, target)


@pytest.mark.parametrize(
    "target",
    ["/web%2Flogin", "/web/database%2Fmanager", "/api/v1/generations%2Fx", "/odoo%5Caction-1", "/x%2f..%2fy"],
)
def test_an_encoded_separator_never_reaches_odoo_anywhere(opened, odoo, target):
    refused_before_odoo(opened, odoo, target)


def test_an_encoded_slash_in_the_query_is_fine(opened, odoo):
    # Odoo's own login redirects carry one: /web/login?redirect=%2Fodoo
    answer = request(opened.port, "GET", "/web/login?redirect=%2Fodoo%2Faction-1")
    assert answer.status == 200
    assert odoo.seen[-1] == "/web/login?redirect=%2Fodoo%2Faction-1"


def test_neighbours_of_the_prefixes_still_reach_odoo(opened, odoo):
    for target in ("/aim", "/notifyx", "/web/ai/x", "/odoo/ai"):
        assert request(opened.port, "GET", target).status == 200, target
        assert odoo.seen[-1] == target


def callback_body_limit_of_the_template() -> int:
    """The callback location's client_max_body_size as rendered with the defaults, in bytes."""
    rendered = render(
        {"AIGEN_GATEWAY_LISTEN": "8080", "AIGEN_GATEWAY_ODOO": "o", "AIGEN_GATEWAY_ODOO_BUS": "o"}
    )
    location = rendered.split('(?:ai|notify)(?:[^a-z0-9_]|$)" {', 1)[1].split("proxy_pass", 1)[0]
    number = re.search(r"client_max_body_size (\d+)m;", location).group(1)
    return int(number) * 1024 * 1024


def test_the_callbacks_take_the_bodies_odoo_reads():
    # the server's 1m (the API's) refused every result over 1 MiB, an image as a data: URL: the worker
    # retried it, then parked it and replayed it for good
    default = module_int(ADDON / "pure" / "result_limits.py", "DEFAULT_MAX_RESULT_BYTES")
    assert callback_body_limit_of_the_template() >= 2 * default + 64 * 1024
    assert "${AIGEN_GATEWAY_CALLBACK_MAX_BODY}" in TEMPLATE.read_text()


def test_the_callback_body_limit_follows_its_variable(odoo):
    # an operator who raises ai_generation.max_result_bytes, or lowers it, sets the gateway's with it
    small = start_gateway(odoo.address, callback_allow="127.0.0.1", callback_max_body="2m")
    try:
        body = b'{"output": "' + b"a" * (1024 * 1024) + b'"}'
        assert request(small.port, "POST", "/ai/generation/result", body=body).status == 200
        before = len(odoo.seen)
        answer = request(small.port, "POST", "/ai/generation/result", body=b"a" * (3 * 1024 * 1024))
        assert answer.status == 413 and answer.json()["error"]["code"] == "payload_too_large"
        assert odoo.seen[before:] == []
    finally:
        small.stop()


def test_a_large_result_reaches_odoo_and_a_larger_body_is_a_json_413(opened, odoo):
    body = b'{"output": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    answer = request(opened.port, "POST", "/ai/generation/result", body=body)
    assert answer.status == 200 and answer.json()["body_bytes"] == len(body)
    before = len(odoo.seen)
    answer = request(opened.port, "POST", "/ai/generation/result", body=b"a" * (34 * 1024 * 1024))
    assert answer.status == 413 and answer.json()["error"]["code"] == "payload_too_large"
    assert odoo.seen[before:] == []
