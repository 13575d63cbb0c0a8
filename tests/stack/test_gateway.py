"""The gateway (docker/nginx/aigen.conf.template) served by the real nginx on loopback before an echo server.

The same rendered file is what docker compose and ./run-stack serve, so these are the routes users get.
"""

import time

import pytest
import requests

from devstack import gateway
from devstack.ports import free_port
from tests.stack.conftest import start_gateway
from tests.stack.facts import ADDON, addon_routes, module_int

TEMPLATE = gateway.TEMPLATE.read_text()
BODY_LIMIT = gateway.body_limit()

pytestmark = pytest.mark.usefixtures("nginx_required")


@pytest.fixture(scope="module")
def gw(echo_odoo):
    # a rate high enough that only the rate-limit test reaches it
    g = start_gateway(echo_odoo, rate="50r/s", burst=200)
    yield g
    g.stop()


def test_rendered_template_passes_nginx_t():
    values = {
        "AIGEN_GATEWAY_LISTEN": "127.0.0.1:8080",
        "AIGEN_GATEWAY_ODOO": "127.0.0.1:8069",
        "AIGEN_GATEWAY_ODOO_BUS": "127.0.0.1:8072",
    }
    result = gateway.check(values)
    assert result.returncode == 0, result.stderr


def test_render_refuses_a_missing_value():
    with pytest.raises(ValueError, match="AIGEN_GATEWAY_ODOO"):
        gateway.render({"AIGEN_GATEWAY_LISTEN": "8080"})


def test_render_leaves_nginx_variables_alone():
    values = {"AIGEN_GATEWAY_LISTEN": "1", "AIGEN_GATEWAY_ODOO": "a:1", "AIGEN_GATEWAY_ODOO_BUS": "b:2"}
    text = gateway.render(values)
    assert "${" not in text
    assert "$binary_remote_addr" in text and "$http_upgrade" in text


def test_api_reaches_odoo_with_forwarding_headers(gw):
    resp = requests.post(f"{gw.url}/api/v1/generations", json={"prompt": "x"}, timeout=5)
    assert resp.status_code == 200
    seen = resp.json()
    assert seen["path"] == "/api/v1/generations"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["x-forwarded-host"] == f"127.0.0.1:{gw.port}"


def test_body_at_the_limit_passes_and_one_byte_more_is_413_json(gw):
    at_limit = requests.post(f"{gw.url}/api/v1/generations", data=b"x" * BODY_LIMIT, timeout=5)
    assert at_limit.status_code == 200
    assert at_limit.json()["body_bytes"] == BODY_LIMIT
    over = requests.post(f"{gw.url}/api/v1/generations", data=b"x" * (BODY_LIMIT + 1), timeout=5)
    assert over.status_code == 413
    assert over.headers["Content-Type"] == "application/json"
    assert over.json()["error"]["code"] == "payload_too_large"


def test_websocket_is_forwarded_with_the_upgrade_headers(gw):
    resp = requests.get(
        f"{gw.url}/websocket?version=18.0",
        headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
        timeout=5,
    )
    seen = resp.json()["headers"]
    assert seen["upgrade"] == "websocket"
    assert seen["connection"].lower() == "upgrade"
    assert seen["x-forwarded-for"] == "127.0.0.1"


def test_plain_requests_keep_the_upstream_connection_reusable(gw):
    seen = requests.get(f"{gw.url}/web/login", timeout=5).json()["headers"]
    assert "upgrade" not in seen
    assert seen.get("connection", "") != "upgrade"


def test_database_manager_is_not_reachable(gw):
    assert requests.get(f"{gw.url}/web/database/manager", timeout=5).status_code == 404


def test_own_health_answers_without_odoo(gw):
    resp = requests.get(f"{gw.url}/gateway/health", timeout=5)
    assert (resp.status_code, resp.text) == (200, "ok\n")


CALLBACKS = addon_routes("callbacks")
API = sorted(
    {
        route.replace("<string:request_id>", "0f1e2d3c-0000-4000-8000-000000000000")
        for route in addon_routes("api")
    }
)


def test_gateway_body_limit_is_the_addons():
    assert module_int(ADDON / "controllers" / "api.py", "MAX_BODY_BYTES") == BODY_LIMIT


@pytest.mark.parametrize("path", API)
def test_every_api_route_of_the_addon_reaches_odoo(gw, path):
    resp = requests.get(f"{gw.url}{path}", timeout=5)
    assert resp.status_code == 200 and resp.json()["path"] == path


@pytest.mark.parametrize("path", CALLBACKS)
def test_callbacks_closed_unless_allowed(echo_odoo, path):
    closed = start_gateway(echo_odoo, callback_allow="192.0.2.1")  # TEST-NET: nobody on this machine
    try:
        resp = requests.post(f"{closed.url}{path}", json={}, timeout=5)
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "forbidden"
        # the public API next to them stays open
        assert requests.post(f"{closed.url}/api/v1/generations", json={}, timeout=5).status_code == 200
    finally:
        closed.stop()
    opened = start_gateway(echo_odoo, callback_allow="127.0.0.1")
    try:
        resp = requests.post(f"{opened.url}{path}", json={}, timeout=5)
        assert resp.status_code == 200
        assert resp.json()["path"] == path
    finally:
        opened.stop()


def test_per_client_rate_limit_answers_429_json(echo_odoo):
    limited = start_gateway(echo_odoo, rate="2r/s", burst=3)
    try:
        statuses = []
        with requests.Session() as http:
            for _ in range(12):
                statuses.append(http.get(f"{limited.url}/api/v1/credits", timeout=5).status_code)
            refused = http.get(f"{limited.url}/api/v1/credits", timeout=5)
            # the web client and websocket are not throttled by the API bucket
            assert http.get(f"{limited.url}/web/assets/x.js", timeout=5).status_code == 200
        assert statuses[:4] == [200] * 4  # one at the rate plus the burst
        assert 429 in statuses
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "1"
        time.sleep(1.1)  # the bucket refills at the configured rate
        assert requests.get(f"{limited.url}/api/v1/credits", timeout=5).status_code == 200
    finally:
        limited.stop()


def test_odoo_down_is_a_503_json_not_an_html_page():
    port = free_port()  # nothing listens there
    g = start_gateway(f"127.0.0.1:{port}")
    try:
        resp = requests.get(f"{g.url}/api/v1/credits", timeout=10)
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "service_unavailable"
    finally:
        g.stop()
