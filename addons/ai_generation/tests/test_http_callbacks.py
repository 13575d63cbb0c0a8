# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The worker callbacks over real HTTP: secret, schemas, idempotency, illegal transitions."""

import json
import logging

from odoo.tests import new_test_user, tagged

from .common import TEXT_PRICE, event_id
from .http_common import AiGenerationHttpCase, captured_logs


@tagged("at_install", "-post_install", "ai_generation")
class TestHttpCallbacks(AiGenerationHttpCase):
    def setUp(self):
        super().setUp()
        self.grant(self.alice, 10)
        self.request = self.new_request(self.alice, prompt="callback-prompt-91b2")

    def post(self, path, token=None, **payload):
        payload.setdefault("generation_request_id", self.request.uuid)
        return self.call("POST", path, payload, token=self.secret if token is None else token)

    def test_only_workers_may_call(self):
        for token in ("", "wrong-secret", self.alice_key):
            status, error = self.post(
                "/ai/generation/progress", token=token, event_id=event_id(), state="running", attempt=1
            )
            self.assertEqual((status, error["error"]["code"]), (401, "unauthorized"), token)
        self.assertEqual(self.request.state, "queued")
        # a user of the worker group, with an API key, may
        worker = new_test_user(self.env, login="ai_worker", groups="ai_generation.group_ai_generation_worker")
        key = self.env["res.users.apikeys"].with_user(worker).sudo()._generate(None, "worker", None)
        status, _answer = self.post(
            "/ai/generation/progress", token=key, event_id=event_id(), state="running", attempt=1
        )
        self.assertEqual(status, 200)

    def test_a_secret_with_a_character_postgresql_refuses_is_a_json_401(self):
        # not the secret, so looked up as an API key: a NUL in its index made psycopg2 raise, an HTML 500
        for token in ("\x00" + self.secret[1:], self.secret[:3] + "\x00"):
            with self.subTest(token=token), captured_logs() as records:
                status, error = self.post(
                    "/ai/generation/progress", token=token, event_id=event_id(), state="running", attempt=1
                )
                self.assertEqual((status, error["error"]["code"]), (401, "unauthorized"))
            self.assertEqual([r.getMessage() for r in records if r.levelno > logging.INFO], [])
            self.assertFalse([r for r in records if token in r.getMessage()])
        self.assertEqual(self.request.state, "queued")

    def test_result_flow_is_idempotent(self):
        evt = event_id()
        status, answer = self.post("/ai/generation/progress", event_id=event_id(), state="running", attempt=1)
        self.assertEqual((status, answer.get("status")), (200, "running"), answer)
        self.assertValid("callback_response.json", answer)
        status, answer = self.post(
            "/ai/generation/result", event_id=evt, output="done", usage={"total_tokens": 3}
        )
        self.assertEqual(
            (status, answer["status"], answer["duplicate"], answer["credits_charged"]),
            (200, "succeeded", False, TEXT_PRICE),
        )
        status, answer = self.post("/ai/generation/result", event_id=evt, output="done")
        self.assertEqual((status, answer["duplicate"]), (200, True))
        self.assertValid("callback_response.json", answer)
        self.assertBalance(self.alice, 10 - TEXT_PRICE, 0)
        self.assertLedgerInvariant()

    def test_failure_and_notify(self):
        with self.assertLogs("odoo.addons.ai_generation", level=logging.DEBUG) as logs:
            status, answer = self.post(
                "/ai/generation/failure",
                event_id=event_id(),
                **self.failure_payload("provider_unavailable", 3, "http_503"),
            )
            self.assertEqual((status, answer["status"], answer["credits_charged"]), (200, "failed", 0))
            status, answer = self.post(
                "/notify/generation-error",
                user_message="AI processing failed. Please try again or adjust your parameters.",
                retry_suggestion="Try again in a few minutes; you were not charged.",
            )
            self.assertEqual((status, answer["status"]), (200, "failed"))
        self.assertBalance(self.alice, 10, 0)
        status, one = self.call("GET", f"/api/v1/generations/{self.request.uuid}", token=self.alice_key)
        self.assertEqual(one["retry_suggestion"], "Try again in a few minutes; you were not charged.")
        self.assertEqual((one["is_system_error"], one["credits_charged"]), (True, 0))
        loud = " ".join(r.getMessage() for r in logs.records if r.levelno > logging.DEBUG)
        self.assertIn(self.request.uuid, loud)
        self.assertNotIn(self.secret, loud)
        self.assertNotIn("callback-prompt-91b2", loud)
        self.assertLedgerInvariant()

    def test_a_notify_must_word_the_failure_recorded(self):
        status, _answer = self.post(
            "/ai/generation/failure", event_id=event_id(), **self.failure_payload("invalid_input")
        )
        self.assertEqual(status, 200)
        before = self.request.read(["user_message", "retry_suggestion", "specific_guidance"])
        wrong = {
            "another error type": {"error_type": "provider_unavailable", "specific_guidance": "Shorten it."},
            "a retry suggestion for the user's error": {"retry_suggestion": "Just retry, it was our fault."},
        }
        # a late worker's (its failure was a duplicate too): a duplicate, nothing recorded
        for name, fields_ in wrong.items():
            with self.subTest(name):
                status, answer = self.post(
                    "/notify/generation-error", user_message="Invalid input detected.", **fields_
                )
                self.assertEqual((status, answer["duplicate"]), (200, True))
        self.env.invalidate_all()
        self.assertEqual(self.request.read(["user_message", "retry_suggestion", "specific_guidance"]), before)
        status, answer = self.post(
            "/notify/generation-error",
            error_type="invalid_input",
            user_message="Invalid input detected. Please review your prompt/parameters.",
            specific_guidance="Remove the unsupported parameter.",
        )
        self.assertEqual((status, answer["status"], answer["duplicate"]), (200, "failed", False))
        # and a system-side failure gets no specific guidance
        other = self.new_request(self.alice)
        self.post(
            "/ai/generation/failure",
            generation_request_id=other.uuid,
            event_id=event_id(),
            **self.failure_payload("provider_unavailable", 3, "http_503"),
        )
        status, answer = self.post(
            "/notify/generation-error",
            generation_request_id=other.uuid,
            user_message="AI processing failed.",
            specific_guidance="Shorten your prompt.",
        )
        self.assertEqual((status, answer["duplicate"]), (200, True))
        self.assertFalse(other.specific_guidance)

    def test_bad_bodies_and_unknown_requests(self):
        status, error = self.post("/ai/generation/failure", event_id=event_id(), error_type="made_up")
        self.assertEqual((status, error["error"]["code"]), (400, "validation_error"))
        self.assertIn("error_type", error["error"]["fields"])
        status, error = self.call("POST", "/ai/generation/result", raw="nope", token=self.secret)
        self.assertEqual(status, 400)
        status, error = self.post(
            "/ai/generation/result",
            generation_request_id="00000000-0000-4000-8000-000000000000",
            event_id=event_id(),
            output="x",
        )
        self.assertEqual((status, error["error"]["code"]), (404, "not_found"))

    def test_a_callback_body_beyond_twice_the_result_limit_is_a_413_unread(self):
        # 2 x 1024 + 64 KiB: a body of any size used to be read whole and its result kept
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.max_result_bytes", "1024")
        body = {"generation_request_id": self.request.uuid, "event_id": event_id(), "output": "a" * 70000}
        status, error = self.post("/ai/generation/result", **body)
        self.assertEqual((status, error["error"]["code"]), (413, "payload_too_large"))
        self.assertIn("67584 bytes", error["error"]["message"])
        # without a Content-Length, read no further than the limit
        status, error = self.post_chunked("/ai/generation/result", json.dumps(body).encode() * 4, self.secret)
        self.assertEqual((status, error["error"]["code"]), (413, "payload_too_large"))
        # a body far larger than the socket's buffers: the worker reads the 413, not a broken pipe
        large = dict(body, output="a" * (8 * 1024 * 1024))
        status, error = self.post("/ai/generation/result", **large)
        self.assertEqual((status, error["error"]["code"]), (413, "payload_too_large"))
        status, error = self.post_chunked("/ai/generation/result", json.dumps(large).encode(), self.secret)
        self.assertEqual((status, error["error"]["code"]), (413, "payload_too_large"))
        self.assertEqual(self.request.state, "queued")
        events = self.env["ai.generation.event"].sudo().search([("request_id", "=", self.request.id)])
        self.assertFalse(events)
        # a chunked body within the limit is read as any other
        small = dict(body, output="done", event_id=event_id())
        status, answer = self.post_chunked("/ai/generation/result", json.dumps(small).encode(), self.secret)
        self.assertEqual((status, answer["status"]), (200, "succeeded"))
        self.assertLedgerInvariant()

    def test_a_result_over_the_limit_fails_the_request_over_http(self):
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.max_result_bytes", "1024")
        url = "data:," + "a" * 1100
        status, answer = self.post("/ai/generation/result", event_id=event_id(), output_url=url)
        self.assertEqual((status, answer["status"], answer["credits_charged"]), (200, "failed", 0))
        self.assertValid("callback_response.json", answer)
        status, one = self.call("GET", f"/api/v1/generations/{self.request.uuid}", token=self.alice_key)
        self.assertEqual(
            (one["error_type"], one["is_system_error"], one["result"]), ("result_too_large", True, None)
        )
        self.assertValid("api_generation.json", one)
        self.assertBalance(self.alice, 10, 0)

    def test_an_attempt_beyond_the_column_or_written_as_a_float_is_a_400(self):
        # the column is an int4: 2**31 was PostgreSQL's "integer out of range", an HTML 500
        for attempt in (2**31, 1e10, 2.0):
            for path in ("/ai/generation/progress", "/ai/generation/result"):
                with self.subTest(attempt=attempt, path=path):
                    extra = {"state": "running"} if path.endswith("progress") else {"output": "x"}
                    status, error = self.post(path, event_id=event_id(), attempt=attempt, **extra)
                    self.assertEqual((status, error["error"]["code"]), (400, "validation_error"))
                    self.assertIn("attempt", error["error"]["fields"])
        self.assertEqual(self.request.state, "queued")
        status, _answer = self.post(
            "/ai/generation/progress", event_id=event_id(), state="running", attempt=2**31 - 1
        )
        self.assertEqual(status, 200)

    def test_a_callback_is_json_or_a_415(self):
        # a worker's session cookie and a cross-site form (text/plain needs no CORS preflight) must not
        # make a callback
        body = '{"generation_request_id": "%s", "event_id": "evt-form", "output": "forged"}'
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            with self.subTest(content_type=content_type):
                status, error = self.call(
                    "POST",
                    "/ai/generation/result",
                    raw=body % self.request.uuid,
                    token=self.secret,
                    headers={"Content-Type": content_type},
                )
                self.assertEqual((status, error["error"]["code"]), (415, "unsupported_media_type"))
        self.assertEqual(self.request.state, "queued")

    def test_query_and_form_fields_are_no_arguments_of_a_callback(self):
        # Odoo passes both to the route as keywords: ?self=1 was a TypeError, an empty multipart
        # boundary an AttributeError in werkzeug's form parser, each an HTML 500 before any secret
        status, answer = self.call(
            "POST",
            "/ai/generation/progress?self=1&kind=result",
            {
                "generation_request_id": self.request.uuid,
                "event_id": event_id(),
                "state": "running",
                "attempt": 1,
            },
            token=self.secret,
        )
        self.assertEqual((status, answer.get("status")), (200, "running"), answer)
        for path in ("/ai/generation/result", "/ai/generation/nowhere", "/notify/generation-error"):
            with self.subTest(path=path):
                status, _error = self.call(
                    "POST", path, raw="x", headers={"Content-Type": "multipart/form-data; boundary="}
                )
                self.assertIn(status, (401, 404))

    def test_illegal_transition_is_409(self):
        status, error = self.post(
            "/notify/generation-error",
            user_message="Invalid input detected.",
            specific_guidance="Shorten it.",
        )
        self.assertEqual((status, error["error"]["code"]), (409, "illegal_transition"))
        self.assertIn("queued", error["error"]["message"])

    def test_a_callback_path_with_another_method_or_an_unknown_one_answers_json(self):
        # a worker's HTTP node misconfigured to GET, or a typo in its URL: JSON, as every API answer
        for method in ("GET", "PUT", "DELETE", "OPTIONS"):
            for path in ("/ai/generation/result", "/notify/generation-error", "/ai/generation/progress"):
                with self.subTest(method=method, path=path):
                    status, error = self.call(method, path, token=self.secret)
                    self.assertEqual((status, error["error"]["code"]), (405, "method_not_allowed"))
                    self.assertEqual(self.last_response.headers["Allow"], "POST")
        # OPTIONS reached the callback itself (Odoo adds it to every route with methods): not any more
        status, _error = self.call(
            "OPTIONS",
            "/ai/generation/progress",
            {"generation_request_id": self.request.uuid, "event_id": event_id(), "state": "running"},
            token=self.secret,
        )
        self.assertEqual(status, 405)
        status, error = self.call("POST", "/ai/generation/resutl", {}, token=self.secret)
        self.assertEqual((status, error["error"]["code"]), (404, "not_found"))
        for path in ("/ai/generation//progress", "/notify//generation-error"):
            with self.subTest(path=path):
                status, error = self.call(
                    "POST",
                    path,
                    {"generation_request_id": self.request.uuid, "event_id": event_id()},
                    token=self.secret,
                )
                self.assertEqual((status, error["error"]["code"]), (404, "not_found"))
        self.assertEqual(self.request.state, "queued")
