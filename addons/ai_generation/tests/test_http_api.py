# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The public API over real HTTP: status codes, bodies per schemas/api_*.json, own data only."""

import contextlib
import json
import logging
import socket
from unittest import mock
from urllib.parse import urlsplit

from odoo import models
from odoo.tests import tagged

from ..models.ai_generation_request import LIST_RESULT_LIMIT, _json_size
from .common import TEXT_MODEL, TEXT_PRICE, price_cache_entries
from .http_common import AiGenerationHttpCase, captured_logs

BODY = {
    "backend": "external",
    "model": TEXT_MODEL,
    "task": "text",
    "prompt": "a haiku",
    "params": {"max_tokens": 50},
}


@contextlib.contextmanager
def rows_fetched(model, fields=None):
    """The ids of ``model``'s rows the ORM reads from the database meanwhile (with one of ``fields``)."""
    fetched, fetch_query = [], models.BaseModel._fetch_query

    def recording(records, query, wanted):
        found = fetch_query(records, query, wanted)
        if records._name == model and (fields is None or {f.name for f in wanted} & fields):
            fetched.extend(found.ids)
        return found

    with mock.patch.object(models.BaseModel, "_fetch_query", recording):
        yield fetched


@tagged("at_install", "-post_install", "ai_generation")
class TestHttpApi(AiGenerationHttpCase):
    def setUp(self):
        super().setUp()
        self.grant(self.alice, 10)
        # the test users' requests only: a database with the demo data holds others
        self.own_requests = [("user_id", "in", (self.alice | self.bob | self.manager).ids)]

    def create(self, body=None, token=None, **kwargs):  # not a model's; pylint: disable=method-required-super
        body = BODY if body is None else body
        return self.call("POST", "/api/v1/generations", body, token=token or self.alice_key, **kwargs)

    def test_create_read_list_and_credits(self):
        status, accepted = self.create()
        self.assertEqual(status, 202)
        self.assertValid("api_generation_accepted.json", accepted)
        self.assertEqual((accepted["status"], accepted["credits_reserved"]), ("queued", TEXT_PRICE))
        self.assertEqual(self.last_response.headers["Location"], accepted["status_url"])
        status, one = self.call("GET", accepted["status_url"], token=self.alice_key)
        self.assertEqual(status, 200)
        self.assertValid("api_generation.json", one)
        self.assertEqual(
            (one["request_id"], one["prompt"], one["params"]),
            (accepted["request_id"], "a haiku", {"max_tokens": 50}),
        )
        status, listing = self.call("GET", "/api/v1/generations?limit=5", token=self.alice_key)
        self.assertEqual(status, 200)
        self.assertValid("api_generation_list.json", listing)
        self.assertEqual([i["request_id"] for i in listing["items"]], [accepted["request_id"]])
        status, credits = self.call("GET", "/api/v1/credits", token=self.alice_key)
        self.assertEqual(status, 200)
        self.assertValid("api_credits.json", credits)
        self.assertEqual(
            (credits["balance"], credits["held"], credits["available"]), (10, TEXT_PRICE, 10 - TEXT_PRICE)
        )
        self.assertEqual(credits["recent_lines"][0]["kind"], "hold")
        self.assertLedgerInvariant()

    def test_a_list_page_leaves_large_results_to_their_status_url(self):
        self.grant(self.alice, 100)
        small, large, running = (self.new_request(self.alice) for _ in range(3))
        image = "data:image/png;base64," + "A" * (64 * 1024)  # a list of 20 such images was tens of MB
        self.callback("result", small, output="a haiku")
        self.callback("result", large, output_url=image)
        status, listing = self.call("GET", "/api/v1/generations", token=self.alice_key)
        self.assertEqual(status, 200)
        self.assertValid("api_generation_list.json", listing)
        shown = {
            i["request_id"]: (i["result_available"], i["result_included"], i["result"])
            for i in listing["items"]
        }
        self.assertEqual(shown[running.uuid], (False, False, None))
        self.assertEqual(shown[large.uuid], (True, False, None))
        self.assertEqual(
            shown[small.uuid], (True, True, {"output": "a haiku", "output_url": None, "usage": {}})
        )
        self.assertLess(len(self.last_response.content), 16 * 1024)
        status, one = self.call("GET", f"/api/v1/generations/{large.uuid}", token=self.alice_key)
        self.assertValid("api_generation.json", one)
        self.assertEqual((one["result_available"], one["result_included"]), (True, True))
        self.assertEqual(one["result"]["output_url"], image)

    def test_credits_read_the_newest_20_ledger_lines_only(self):
        # the whole ledger was read on every call (line_ids, then sorted and cut): a cost growing with it
        for _ in range(48):
            self.grant(self.alice, 1)
        self.new_request(self.alice)
        account = self.account(self.alice)
        newest = account.line_ids.sorted("id", reverse=True)[:20]  # what the answer held
        self.assertEqual(len(account.line_ids), 50)
        expected = [
            {
                "kind": line.kind,
                "amount": line.amount,
                "hold_amount": line.hold_amount,
                "reason": line.reason,
                "request_id": line.request_id.uuid or None,
                "date": line.date.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            for line in newest
        ]
        self.env.invalidate_all()
        with rows_fetched("ai.credit.ledger.line") as fetched:
            status, credits = self.call("GET", "/api/v1/credits", token=self.alice_key)
        self.assertEqual(status, 200)
        self.assertValid("api_credits.json", credits)
        self.assertEqual(credits["recent_lines"], expected)
        self.assertEqual(credits["recent_lines"][0]["kind"], "hold")
        self.assertEqual(sorted(set(fetched)), sorted(newest.ids))  # the 20 newest read, no other line

    def test_a_list_page_does_not_read_the_results_it_leaves_out(self):
        # every row's result was read (a prefetched Text field) to be measured: a page of 100 images
        # loaded hundreds of MB into the Odoo process
        self.grant(self.alice, 100)
        base = _json_size({"output": "", "output_url": None, "usage": {}})
        outputs = {
            "small": {"output": "a haiku"},
            "at the limit": {"output": "a" * (LIST_RESULT_LIMIT - base)},
            # its bytes within the limit, its JSON over it (each quote escaped): read and measured
            "escaped over": {"output": '"' * (LIST_RESULT_LIMIT - base)},
            "image": {"output_url": "data:image/png;base64," + "A" * (1024 * 1024)},
            "large text": {"output": "é" * (LIST_RESULT_LIMIT // 2 + 1)},
        }
        requests = {}
        for name, output in outputs.items():
            requests[name] = self.new_request(self.alice)
            self.callback("result", requests[name], **output)
        requests["running"] = self.new_request(self.alice)
        expected = {
            r.uuid: json.loads(json.dumps(r._api_body(result_limit=LIST_RESULT_LIMIT)))  # as before
            for r in requests.values()
        }
        self.assertEqual(
            {
                name: (expected[r.uuid]["result_available"], expected[r.uuid]["result_included"])
                for name, r in requests.items()
            },
            {
                "small": (True, True),
                "at the limit": (True, True),
                "escaped over": (True, False),
                "image": (True, False),
                "large text": (True, False),
                "running": (False, False),
            },
        )
        self.env.invalidate_all()
        with rows_fetched("ai.generation.request", {"result_output", "result_url"}) as read:
            status, listing = self.call("GET", "/api/v1/generations?limit=100", token=self.alice_key)
        self.assertEqual(status, 200)
        self.assertValid("api_generation_list.json", listing)
        self.assertEqual({i["request_id"]: i for i in listing["items"]}, expected)
        self.assertEqual(
            sorted(set(read)), sorted(requests[name].id for name in ("small", "at the limit", "escaped over"))
        )
        self.assertLess(len(self.last_response.content), 3 * LIST_RESULT_LIMIT)

    def test_a_user_sees_only_their_own_requests(self):
        _status, accepted = self.create()
        status, error = self.call("GET", accepted["status_url"], token=self.bob_key)
        self.assertEqual((status, error["error"]["code"]), (404, "not_found"))
        status, listing = self.call("GET", "/api/v1/generations", token=self.bob_key)
        self.assertEqual(listing["items"], [])
        self.assertEqual(self.call("GET", "/api/v1/generations/not-a-uuid", token=self.alice_key)[0], 404)

    def test_unauthenticated_and_bad_keys_get_json_401(self):
        for token in (None, "not-a-key"):
            status, error = self.call("POST", "/api/v1/generations", BODY, token=token)
            self.assertEqual((status, error["error"]["code"]), (401, "unauthorized"))
            self.assertEqual(self.call("GET", "/api/v1/credits", token=token)[0], 401)
        self.assertEqual(self.env["ai.generation.request"].sudo().search_count(self.own_requests), 0)

    def test_a_key_with_a_character_postgresql_refuses_is_a_json_401(self):
        # a NUL in the key's index (its first 8 characters) made the key lookup raise in psycopg2: an
        # HTML 500 with the key in an ERROR traceback (only Odoo reached directly: nginx refuses a NUL)
        for token in (
            "\x00" + self.alice_key[1:],
            "abc\x00",
            self.alice_key[:8] + "\x00" + self.alice_key[9:],
        ):
            with self.subTest(token=token), captured_logs() as records:
                status, error = self.call("GET", "/api/v1/credits", token=token)
                self.assertEqual((status, error["error"]["code"]), (401, "unauthorized"))
                self.assertEqual(
                    self.last_response.headers["WWW-Authenticate"], 'Bearer realm="ai_generation"'
                )
            self.assertEqual([r.getMessage() for r in records if r.levelno > logging.INFO], [])
            self.assertFalse([r for r in records if token in r.getMessage()])

    def test_session_works_too(self):
        self.authenticate("ai_alice", "ai_alice")
        status, accepted = self.call("POST", "/api/v1/generations", BODY)
        self.assertEqual(status, 202)
        self.assertEqual(self.call("GET", accepted["status_url"])[0], 200)

    def test_field_errors(self):
        status, error = self.create(
            {
                "backend": "cloud",
                "model": "",
                "prompt": " ",
                "params": {"size": "3x3", "colour": 1},
                "extra": 1,
            }
        )
        self.assertEqual((status, error["error"]["code"]), (400, "validation_error"))
        self.assertEqual(
            sorted(error["error"]["fields"]),
            ["backend", "extra", "model", "params.colour", "params.size", "prompt"],
        )
        status, error = self.create(dict(BODY, model="not-offered"))
        self.assertEqual((status, sorted(error["error"]["fields"])), (400, ["model"]))
        status, error = self.create(raw="{not json")
        self.assertEqual((status, sorted(error["error"]["fields"])), (400, ["body"]))
        status, error = self.create(headers={"Content-Type": "text/plain"})
        self.assertEqual((status, error["error"]["code"]), (415, "unsupported_media_type"))
        self.assertEqual(self.env["ai.generation.request"].sudo().search_count(self.own_requests), 0)
        self.assertBalance(self.alice, 10, 0)

    def test_unknown_models_get_the_same_400_and_add_nothing_to_the_shared_cache(self):
        self.assertEqual(self.create()[0], 202)  # the prices' cache filled
        before = price_cache_entries(self.env)
        for i in range(20):
            status, error = self.create(dict(BODY, model=f"not-offered-{i}"))
            self.assertEqual((status, error["error"]["code"]), (400, "validation_error"))
            self.assertEqual(
                error["error"]["fields"],
                {"model": f"The model 'not-offered-{i}' is not offered on the external backend."},
            )
        self.assertEqual(price_cache_entries(self.env), before)
        self.assertEqual(self.create()[0], 202)

    def test_a_body_of_many_unknown_keys_gets_a_short_answer(self):
        # one field entry per key, and every key in the message: 1 MiB of them was a 3.4 MB answer
        keys = [f"k{i:06d}" for i in range(80000)]
        raw = json.dumps(dict(BODY, **dict.fromkeys(keys, 0)), separators=(",", ":"))
        self.assertLessEqual(len(raw), 1024 * 1024)
        status, error = self.create(raw=raw)  # the answer checked against error_response.json
        self.assertEqual((status, error["error"]["code"]), (400, "validation_error"))
        self.assertEqual(sorted(error["error"]["fields"]), keys[:20])
        self.assertEqual(error["error"]["fields_omitted"], len(keys) - 20)
        self.assertIn(f"{len(keys)} invalid fields", error["error"]["message"])
        self.assertLess(len(self.last_response.content), 4096)

    def test_oversized_prompt_or_params(self):
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.max_prompt_chars", "100")
        status, error = self.create(dict(BODY, prompt="x" * 101))
        self.assertEqual((status, error["error"]["code"]), (413, "payload_too_large"))
        status, error = self.create(dict(BODY, params={"system": "y" * 20000}))
        self.assertEqual(status, 413)
        self.assertEqual(self.env["ai.generation.request"].sudo().search_count(self.own_requests), 0)

    def test_a_body_without_a_length_is_read_no_further_than_the_limit(self):
        status, error = self.post_chunked("/api/v1/generations", b"[" * (2 * 1024 * 1024), self.alice_key)
        self.assertEqual((status, error["error"]["code"]), (413, "payload_too_large"))
        status, answer = self.post_chunked("/api/v1/generations", json.dumps(BODY).encode(), self.alice_key)
        self.assertEqual((status, answer["status"]), (202, "queued"))

    def test_a_declared_body_far_over_the_limit_is_refused_without_waiting_for_it(self):
        # drained up to 4 MiB only: any API key holder could make Odoo read 128 MiB, or wait for a body
        # a lying Content-Length announced and never sent
        url = urlsplit(self.base_url())
        with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
            conn.sendall(
                b"POST /api/v1/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer %s\r\nContent-Length: 5242880\r\n\r\n{}" % self.alice_key.encode()
            )
            answer = b""
            while chunk := conn.recv(65536):  # the server closes the connection after its answer
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer[:200])
        self.assertIn(b"payload_too_large", answer)

    def test_a_limit_set_as_no_integer_counts_as_its_default(self):
        # a system parameter typed by hand: int() raised on every create, an HTML 500 for everyone
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.max_prompt_chars", "20k")
        with self.assertLogs("odoo.addons.ai_generation", level="WARNING") as logs:
            status, answer = self.create()
        self.assertEqual((status, answer["status"]), (202, "queued"))
        self.assertIn("ai_generation.max_prompt_chars is not an integer", logs.output[0])

    def test_insufficient_credits(self):
        self.create()
        self.create()
        self.create()
        status, error = self.create()
        self.assertEqual((status, error["error"]["code"]), (402, "insufficient_credits"))
        self.assertBalance(self.alice, 10, 3 * TEXT_PRICE)
        self.assertLedgerInvariant()

    def test_query_and_form_fields_are_no_arguments_of_a_route(self):
        # Odoo passes both to the route as keywords: ?self=1 was a TypeError, an empty multipart
        # boundary an AttributeError in werkzeug's form parser, each an HTML 500 for anyone
        status, accepted = self.create()
        self.assertEqual(status, 202)
        for path in ("/api/v1/credits", "/api/v1/generations", accepted["status_url"], "/api/v1/models"):
            with self.subTest(path=path):
                status, _body = self.call("GET", f"{path}?self=1&request_id=x", token=self.alice_key)
                self.assertEqual(status, 200)
        status, one = self.call("GET", f"{accepted['status_url']}?request_id=other", token=self.alice_key)
        self.assertEqual(one["request_id"], accepted["request_id"])  # the path's, not the query's
        status, error = self.call("POST", "/api/v1/nowhere?self=1", {})
        self.assertEqual((status, error["error"]["code"]), (404, "not_found"))
        for token in (None, self.alice_key):
            with self.subTest(token=token):
                status, error = self.call(
                    "POST",
                    "/api/v1/generations",
                    raw="x",
                    token=token,
                    headers={"Content-Type": "multipart/form-data; boundary="},
                )
                self.assertIn(status, (401, 415))
        status, _error = self.call(
            "POST", "/api/v1/nowhere", raw="x", headers={"Content-Type": "multipart/form-data; boundary"}
        )
        self.assertEqual(status, 404)

    def test_an_owner_sees_the_requests_made_in_a_company_they_left(self):
        # a request stays in the company it was made in; its owner sees it from any company
        status, accepted = self.create()
        self.assertEqual(status, 202)
        other = self.env["res.company"].create({"name": "New employer"})
        self.alice.write({"company_ids": [(6, 0, other.ids)], "company_id": other.id})
        status, listed = self.call("GET", "/api/v1/generations", token=self.alice_key)
        self.assertEqual(status, 200)
        self.assertEqual([item["request_id"] for item in listed["items"]], [accepted["request_id"]])
        self.assertEqual(listed["count"], 1)
        status, one = self.call("GET", accepted["status_url"], token=self.alice_key)
        self.assertEqual((status, one["request_id"]), (200, accepted["request_id"]))
        # and never another user's, whatever their company
        status, listed = self.call("GET", "/api/v1/generations", token=self.bob_key)
        self.assertEqual(listed["items"], [])

    def test_rate_limit(self):
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.rate_limit_per_minute", "2")
        self.grant(self.alice, 100)
        self.assertEqual(self.create()[0], 202)
        self.assertEqual(self.create()[0], 202)
        status, error = self.create()
        self.assertEqual((status, error["error"]["code"]), (429, "rate_limited"))
        self.assertGreaterEqual(int(self.last_response.headers["Retry-After"]), 1)
        self.assertEqual(self.create(token=self.bob_key)[0], 402)  # bob has his own budget (and no credits)

    def test_idempotency_key(self):
        key = {"Idempotency-Key": "order-42"}
        first = self.create(headers=key)
        again = self.create(headers=key)
        self.assertEqual(first, again)
        self.assertEqual(self.last_response.headers.get("Idempotent-Replayed"), "true")
        self.assertEqual(self.env["ai.generation.request"].sudo().search_count(self.own_requests), 1)
        self.assertBalance(self.alice, 10, TEXT_PRICE)
        status, error = self.create(dict(BODY, prompt="another"), headers=key)
        self.assertEqual((status, error["error"]["code"]), (422, "idempotency_key_reused"))
        # keys are per user
        self.grant(self.bob, 10)
        self.assertEqual(self.create(token=self.bob_key, headers=key)[0], 202)
        self.assertLedgerInvariant()
