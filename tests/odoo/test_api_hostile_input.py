"""Issue 11 point 5: hostile input is a 400 (404 for a path) in the API's JSON error shape, never a 500.

Before the fix, 26 HTML 500s came from 12 such inputs on POST /api/v1/generations (RecursionError,
PostgreSQL refusing NUL and NaN, the answer encoder refusing a lone surrogate). Each class of input
goes to a real Odoo directly and through the real nginx gateway; nothing may be stored, and Odoo's
log must show no traceback. The last test makes PostgreSQL refuse a value and reads Odoo's log.
"""

import subprocess

import pytest
import requests
from jsonschema import Draft202012Validator

import aigen_contracts
from tests.support.odoo import require_odoo

pytestmark = [pytest.mark.odoo, pytest.mark.slow]

GOOD = '{"backend":"external","model":"gpt-4o-mini","prompt":"a haiku","params":%s}'
PROMPT_ONLY = '{"backend":"external","model":"gpt-4o-mini","prompt":"%s"}'
ERROR_SHAPE = Draft202012Validator(aigen_contracts.load("error_response.json"))

# class of input -> [(raw body, the field the answer must name)]
HOSTILE_BODIES = {
    "nesting 1000 deep": [
        (GOOD % ("[" * 1000 + "]" * 1000), "body"),
        ('{"x":' + "{" * 3000 + "}" * 3000 + "}", "body"),
        (GOOD % ('{"a":' * 20 + "1" + "}" * 20), "params"),
    ],
    "NUL character": [
        ('{"backend":"external","model":"gpt-4o-mini\\u0000","prompt":"a"}', "model"),
        (PROMPT_ONLY % "a\\u0000b", "prompt"),
        (GOOD % '{"system":"be \\u0000 brief"}', "params.system"),
        (GOOD % '{"sys\\u0000tem":"x"}', "params"),
    ],
    "lone surrogate": [
        (PROMPT_ONLY % "\\ud800", "prompt"),
        ('{"backend":"external","model":"\\udc00","prompt":"a"}', "model"),
        (GOOD % '{"system":"\\udc00"}', "params.system"),
        ('{"backend":"external","model":"gpt-4o-mini","prompt":"a","\\ud800":1}', "body"),
    ],
    "NaN and Infinity": [
        (GOOD % '{"temperature":NaN}', "params.temperature"),
        (GOOD % '{"temperature":Infinity}', "params.temperature"),
        (GOOD % '{"seed":-Infinity}', "params.seed"),
        (GOOD % '{"temperature":1e999}', "params.temperature"),
    ],
    "integer beyond 2**53": [
        (GOOD % ('{"seed":' + "9" * 5000 + "}"), "params.seed"),
        (GOOD % ('{"seed":' + str(2**53) + "}"), "params.seed"),
    ],
    "duplicate key": [
        ('{"backend":"external","model":"gpt-4o-mini","prompt":"a","prompt":"b"}', "prompt"),
        (GOOD % '{"n":1,"n":2}', "params.n"),
    ],
    "not UTF-8": [
        (b'{"backend":"external","model":"gpt-4o-mini","prompt":"\xed\xa0\x80"}', "body"),
        (b'{"backend":"external","model":"gpt-4o-mini","prompt":"\xff"}', "body"),
        ((GOOD % "{}").encode("utf-16"), "body"),
    ],
    "not a JSON object": [(b, "body") for b in ("", "[1]", "null", "1", '"x"', "{}x", "{")],
    "wrong types and unknown fields": [
        ('{"backend":"external","model":7,"prompt":"a"}', "model"),
        ('{"backend":"external","model":"gpt-4o-mini","prompt":["a"]}', "prompt"),
        (GOOD % "[]", "params"),
        (GOOD % '{"max_tokens":true}', "params.max_tokens"),
        ('{"backend":"external","model":"gpt-4o-mini","prompt":"a","extra":1}', "extra"),
    ],
}
HOSTILE_KEYS = ["", "has space", "caf\xe9", "k" * 256, "tab\tinside"]
HOSTILE_QUERIES = {
    "limit": ["abc", "", "0", "101", "1_0", "+5", " 5", "%D9%A3", "1e2", "9" * 400, "%00", "5&limit=6"],
    "offset": ["-1", "1000000001", "99999999999999999999", "0x10", "1.5"],
    "status": ["", "Queued", "%ED%A0%80", "queued%00", "queued&status=failed"],
}
ODD_IDS = [
    "%00",
    "%ED%A0%80",
    "%FF",
    "a" * 3000,
    "00000000-0000-0000-0000-000000000000%0A",
    "00000000-0000-0000-0000-00000000000A",
    "%F0%9F%98%80",
    "a%20b",
    ";x",
]


def body_bytes(body):
    return body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")


def assert_json_error(response, status, field=None):
    assert response.status_code == status, (response.request.url[:200], response.text[:500])
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:300]
    body = response.json()
    assert not list(ERROR_SHAPE.iter_errors(body)), body
    if field is not None:
        assert field in body["error"]["fields"], body


@pytest.fixture(params=["direct", "gateway"])
def target(request, stack):
    return stack.targets()[request.param]


@pytest.mark.parametrize("kind", HOSTILE_BODIES)
def test_hostile_body_is_a_400_with_the_field_and_stores_nothing(stack, target, kind):
    before = stack.stored_requests()
    for body, field in HOSTILE_BODIES[kind]:
        response = requests.post(
            f"{target}/api/v1/generations",
            data=body_bytes(body),
            headers={**stack.auth(), "Content-Type": "application/json"},
            timeout=60,
        )
        assert_json_error(response, 400, field)
    assert stack.stored_requests() == before


def test_a_leading_bom_is_ignored_as_rfc_8259_allows(stack, target):
    response = requests.post(
        f"{target}/api/v1/generations",
        data=("\ufeff" + GOOD % '{"seed":9007199254740991}').encode(),
        headers={**stack.auth(), "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 202, response.text


def test_hostile_idempotency_key_is_a_400(stack, target):
    before = stack.stored_requests()
    for key in HOSTILE_KEYS:
        response = requests.post(
            f"{target}/api/v1/generations",
            data=(GOOD % "{}").encode(),
            headers={**stack.auth(), "Content-Type": "application/json", "Idempotency-Key": key},
            timeout=60,
        )
        assert_json_error(response, 400, "Idempotency-Key")
    assert stack.stored_requests() == before


@pytest.mark.parametrize("name", HOSTILE_QUERIES)
def test_odd_query_arguments_are_a_400(stack, target, name):
    for value in HOSTILE_QUERIES[name]:
        response = requests.get(
            f"{target}/api/v1/generations?{name}={value}", headers=stack.auth(), timeout=60
        )
        assert_json_error(response, 400, name)


def test_odd_request_ids_are_a_json_404(stack):
    # The gateway answers some of these itself (a NUL in the path is a 400 there): the direct answer is
    # the addon's own, checked here; the fuzz test covers the gateway against the spec.
    for request_id in ODD_IDS:
        response = requests.get(
            f"{stack.odoo.url}/api/v1/generations/{request_id}", headers=stack.auth(), timeout=60
        )
        assert_json_error(response, 404)


def test_hostile_callback_body_is_a_400_and_changes_nothing(stack):
    # Only a worker reaches the callbacks, but a NUL, a surrogate or deep nesting there was a 500 too.
    created = requests.post(
        f"{stack.odoo.url}/api/v1/generations",
        data=(GOOD % "{}").encode(),
        headers={**stack.auth(), "Content-Type": "application/json"},
        timeout=60,
    )
    assert created.status_code == 202, created.text
    request_id = created.json()["request_id"]
    result = '{"generation_request_id":"%s","event_id":"evt-hostile-1",%s}'
    worker = {"Authorization": f"Bearer {stack.worker_key}", "Content-Type": "application/json"}
    for body, field in [
        (result % (request_id, '"output":"a\\u0000b"'), "output"),
        (result % (request_id, '"output":"\\ud800"'), "output"),
        (result % (request_id, '"output":"x","usage":' + "[" * 3000 + "]" * 3000), "body"),
        (
            result % (request_id, '"output":"x","usage":{"total_tokens":' + "9" * 30 + "}"),
            "usage.total_tokens",
        ),
    ]:
        response = requests.post(
            f"{stack.odoo.url}/ai/generation/result", data=body_bytes(body), headers=worker, timeout=60
        )
        assert_json_error(response, 400, field)
    answer = requests.get(
        f"{stack.odoo.url}/api/v1/generations/{request_id}", headers=stack.auth(), timeout=60
    )
    assert answer.json()["status"] == "queued"


def test_odoo_logged_no_traceback(stack):
    """Run last in this file (pytest keeps file order): the inputs above left no traceback behind."""
    log = stack.odoo.log()
    assert "Traceback" not in log, log[log.find("Traceback") - 2000 :][:4000]
    assert '" 500 -' not in log


PROMPT = "the board meets on friday about the merger"
REFUSED_BY_POSTGRES = """
import logging
from odoo.addons.ai_generation.pure.validation import GenerationInput
user = env["res.users"].search([("login", "=", "api_client")])
# past the API's validation on purpose: PostgreSQL refuses \\u0000 inside jsonb
gen = GenerationInput("external", "gpt-4o-mini", "text", {prompt!r}, {{"system": {prompt!r} + "\\x00"}})
try:
    env["ai.generation.request"]._api_create(user, gen)
    env.flush_all()
except Exception:
    logging.getLogger("odoo.http").error("Exception during request handling.", exc_info=True)
env.cr.rollback()
print("done")
"""


def test_a_statement_postgres_refuses_is_logged_without_the_prompt(stack):
    odoo = require_odoo()
    done = subprocess.run(
        odoo.command(stack.db, "--no-http", "--log-level=info", subcommand="shell"),
        input=REFUSED_BY_POSTGRES.format(prompt=PROMPT),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = done.stderr
    assert "done" in done.stdout, log[-3000:]
    bad_query = [line for line in log.splitlines() if "odoo.sql_db: bad query:" in line]
    assert bad_query, log[-3000:]
    # the request's INSERT goes with the hold's statement (account, ledger line): one round trip
    tables = "ai_generation_request, ai_credit_account, ai_credit_ledger_line"
    assert f"INSERT {tables} (query text and parameters redacted)" in bad_query[0]
    assert "ERROR: unsupported Unicode escape sequence" in log  # the error is kept
    assert "Traceback (most recent call last)" in log  # and the traceback, without its data
    assert PROMPT not in log
