# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Worker outcomes applied to requests and credits (the service layer under the HTTP callbacks)."""

from odoo.exceptions import ValidationError
from odoo.tests import tagged

from ..pure import contracts
from ..pure.errors import Conflict, IllegalTransitionError, NotFound, ValidationFailed
from .common import TEXT_PRICE, AiGenerationCase, event_id

SYSTEM_MESSAGE = "AI processing failed. Please try again or adjust your parameters."
USER_MESSAGE = "Invalid input detected. Please review your prompt/parameters."


@tagged("at_install", "-post_install", "ai_generation")
class TestCallbacks(AiGenerationCase):
    def setUp(self):
        super().setUp()
        self.grant(self.alice, 100)

    # ------------------------------------------------------------------ progress
    def test_progress_moves_to_running_and_tells_the_owner(self):
        request = self.new_request(self.alice)
        answer = self.callback("progress", request, state="running", attempt=1)
        self.assertValid("callback_response.json", answer)
        self.assertEqual((answer["status"], answer["duplicate"]), ("running", False))
        self.assertEqual(request.state, "running")
        updates = self.bus_updates(self.alice)
        self.assertEqual(updates[-1]["status"], "running")
        self.assertEqual(updates[-1]["request_id"], request.uuid)
        self.assertEqual(self.bus_updates(self.bob), [])

    def test_repeated_event_changes_nothing(self):
        request = self.new_request(self.alice)
        evt = event_id()
        self.callback("progress", request, event_id=evt, state="running", attempt=1)
        again = self.callback("progress", request, event_id=evt, state="running", attempt=3)
        self.assertTrue(again["duplicate"])
        self.assertEqual(request.attempt, 1)

    def test_retry_attempt_is_recorded(self):
        request = self.new_request(self.alice)
        self.callback("progress", request, state="running", attempt=1)
        self.callback("progress", request, state="running", attempt=2)
        self.assertEqual((request.state, request.attempt), ("running", 2))

    # ------------------------------------------------------------------ success
    def test_result_captures_the_hold_once_and_stores_the_output(self):
        request = self.new_request(self.alice)
        self.callback("progress", request, state="running", attempt=1)
        evt = event_id()
        answer = self.callback("result", request, event_id=evt, output="a poem", usage={"total_tokens": 12})
        self.assertEqual(
            (answer["status"], answer["duplicate"], answer["credits_charged"]), ("succeeded", False, 3)
        )
        self.assertEqual((request.result_output, request.usage), ("a poem", {"total_tokens": 12}))
        self.assertEqual(self.lines(request).mapped("kind"), ["hold", "capture"])
        self.assertBalance(self.alice, 100 - TEXT_PRICE, 0)
        # the same event, and any later outcome, change nothing
        self.assertTrue(self.callback("result", request, event_id=evt, output="again")["duplicate"])
        self.assertTrue(self.callback("result", request, output="other event")["duplicate"])
        late = self.callback("failure", request, **self.failure_payload("provider_unavailable"))
        self.assertTrue(late["duplicate"])
        self.assertEqual(late["status"], "succeeded")
        self.assertEqual(request.result_output, "a poem")
        self.assertEqual(self.lines(request).mapped("kind"), ["hold", "capture"])
        self.assertBalance(self.alice, 100 - TEXT_PRICE, 0)
        self.assertEqual(self.bus_updates(self.alice)[-1]["status"], "succeeded")
        self.assertLedgerInvariant()

    def test_result_may_arrive_before_the_dispatch_mark(self):
        request = self.new_request(self.alice)
        self.assertEqual(request.state, "queued")
        self.callback("result", request, output_url="https://files.example/x.png")
        self.assertEqual(request.state, "succeeded")
        self.assertLedgerInvariant()

    def test_a_result_over_the_limit_fails_the_request_for_free_and_is_not_kept(self):
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.max_result_bytes", "2048")
        request, at_limit = self.new_request(self.alice), self.new_request(self.alice)
        self.callback("progress", request, state="running", attempt=1)
        evt = event_id()
        # 683 characters of three UTF-8 bytes each: 2049 bytes, over a limit counted in bytes
        answer = self.callback("result", request, event_id=evt, output="€" * 683, attempt=2)
        self.assertEqual(
            (answer["status"], answer["duplicate"], answer["credits_charged"], answer["error_type"]),
            ("failed", False, 0, "result_too_large"),
        )
        self.assertIs(answer["failed_by_this_event"], True)
        self.assertEqual(
            (request.error_type, request.error_side, request.result_output, request.attempt),
            ("result_too_large", "system", False, 2),
        )
        self.assertIn("2049 bytes", request.error_detail)
        self.assertEqual(request.user_message, SYSTEM_MESSAGE)
        expected = contracts.error_type_info("result_too_large")["retry_suggestion"]
        self.assertEqual(request.retry_suggestion, expected)
        self.assertIn("not charged", expected)
        self.assertEqual(self.lines(request).mapped("kind"), ["hold", "release"])
        self.assertEqual(self.bus_updates(self.alice)[-1]["error_type"], "result_too_large")
        # the same event again is its duplicate, which still says it failed the request (its first
        # answer may have been lost); the next result of this request changes nothing
        again = self.callback("result", request, event_id=evt, output="€" * 683)
        self.assertEqual((again["duplicate"], again["failed_by_this_event"]), (True, True))
        later = self.callback("result", request, event_id=event_id(), output="small")
        self.assertEqual((later["duplicate"], later["failed_by_this_event"]), (True, False))
        # a failure callback fails the request too, and says so again when repeated
        failing, failure_evt = self.new_request(self.alice), event_id()
        for _ in range(2):
            failed = self.callback(
                "failure", failing, event_id=failure_evt, **self.failure_payload("provider_timeout")
            )
            self.assertEqual(
                (failed["error_type"], failed["failed_by_this_event"]), ("provider_timeout", True)
            )
        # its notify words the failure, it did not make it
        notify = self.callback(
            "notify",
            request,
            error_type="result_too_large",
            user_message=SYSTEM_MESSAGE,
            retry_suggestion="x",
        )
        self.assertFalse(notify["failed_by_this_event"])
        self.assertEqual(request.state, "failed")
        # the limit is the output and the output URL together, and a result at it is kept
        kept = self.callback("result", at_limit, output="a" * 1024, output_url="b" * 1024)
        self.assertEqual(kept["status"], "succeeded")
        self.assertNotIn("error_type", kept)
        self.assertBalance(self.alice, 100 - TEXT_PRICE, 0)
        self.assertLedgerInvariant()

    def test_the_result_limit_has_a_floor_and_ignores_what_is_no_integer(self):
        request = self.new_request(self.alice)
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.max_result_bytes", "0")
        self.assertEqual(self.callback("result", request, output="a" * 1024)["status"], "succeeded")
        other = self.new_request(self.alice)
        self.env["ir.config_parameter"].sudo().set_param("ai_generation.max_result_bytes", "16 MB")
        with self.assertLogs("odoo.addons.ai_generation", level="WARNING") as logs:
            self.assertEqual(self.callback("result", other, output="a" * 4096)["status"], "succeeded")
        self.assertIn("ai_generation.max_result_bytes is not an integer", logs.output[0])

    def test_the_settings_keep_the_result_limit_within_its_bounds_and_show_what_applies(self):
        Settings = self.env["res.config.settings"]
        for refused in (1023, 60 * 1024 * 1024 + 1):
            with self.assertRaises(ValidationError):
                Settings.create({"ai_max_result_bytes": refused})
        Settings.create({"ai_max_result_bytes": 4096}).execute()
        Params = self.env["ir.config_parameter"].sudo()
        self.assertEqual(Params.get_param("ai_generation.max_result_bytes"), "4096")
        # a parameter typed by hand shows as the size that applies, and the screen still saves
        for typed, shown in (("16 MB", 16 * 1024 * 1024), ("0", 1024), (str(2**40), 60 * 1024 * 1024)):
            Params.set_param("ai_generation.max_result_bytes", typed)
            settings = Settings.create({})
            self.assertEqual(settings.ai_max_result_bytes, shown, typed)
            settings.execute()

    # ------------------------------------------------------------------ system-side failure
    def test_system_failure_releases_the_hold_and_records_the_non_deduction(self):
        request = self.new_request(self.alice)
        answer = self.callback(
            "failure", request, **self.failure_payload("provider_unavailable", 3, "http_503")
        )
        self.assertEqual((answer["status"], answer["credits_charged"]), ("failed", 0))
        release = self.lines(request).filtered(lambda line: line.kind == "release")
        self.assertEqual(release.hold_amount, -TEXT_PRICE)
        self.assertIn("not charged", release.reason)
        self.assertIn("provider_unavailable", release.reason)
        self.assertBalance(self.alice, 100, 0)
        self.assertEqual(
            (request.error_type, request.error_side, request.error_code, request.attempt),
            ("provider_unavailable", "system", "http_503", 3),
        )
        self.assertEqual(request.user_message, SYSTEM_MESSAGE)
        expected = contracts.error_type_info("provider_unavailable")["retry_suggestion"]
        self.assertEqual(request.retry_suggestion, expected)
        self.assertFalse(request.specific_guidance)
        update = self.bus_updates(self.alice)[-1]
        self.assertEqual(
            (update["status"], update["message"], update["retry_suggestion"], update["is_system_error"]),
            ("failed", SYSTEM_MESSAGE, expected, True),
        )
        # a repeated failure (new event id) does not release twice
        self.assertTrue(
            self.callback("failure", request, **self.failure_payload("provider_unavailable"))["duplicate"]
        )
        self.assertEqual(len(self.lines(request)), 2)
        self.assertLedgerInvariant()

    def test_every_system_error_type_is_free(self):
        system_types = [
            n for n, row in contracts.taxonomy()["error_types"].items() if row["side"] == "system"
        ]
        for error_type in system_types:
            request = self.new_request(self.alice)
            self.callback("failure", request, **self.failure_payload(error_type))
            self.assertEqual(request.credits_charged, 0, error_type)
        self.assertBalance(self.alice, 100, 0)
        self.assertLedgerInvariant()

    # ------------------------------------------------------------------ invalid user input
    def _user_failure(self, error_type="invalid_input"):
        request = self.new_request(self.alice)
        self.callback("failure", request, **self.failure_payload(error_type))
        return request

    def test_user_errors_are_free_warnings_first_then_charged(self):
        first, second = self._user_failure(), self._user_failure("content_policy")
        for number, request in enumerate((first, second), 1):
            self.assertEqual((request.credits_charged, request.is_warning), (0, True))
            self.assertIn(f"warning {number} of 2", request.charge_note)
            self.assertIn("free warning", self.lines(request)[-1].reason)
        self.assertBalance(self.alice, 100, 0)
        third = self._user_failure("context_length_exceeded")
        self.assertEqual((third.credits_charged, third.is_warning), (TEXT_PRICE, False))
        charge = self.lines(third).filtered(lambda line: line.kind == "user_error_charge")
        self.assertEqual((charge.amount, charge.hold_amount), (-TEXT_PRICE, -TEXT_PRICE))
        self.assertIn("full price", charge.reason)
        self.assertBalance(self.alice, 100 - TEXT_PRICE, 0)
        self.assertEqual(third.user_message, USER_MESSAGE)
        guidance = contracts.error_type_info("context_length_exceeded")["specific_guidance"]
        update = self.bus_updates(self.alice)[-1]
        self.assertEqual((update["specific_guidance"], update["is_user_error"]), (guidance, True))
        self.assertLedgerInvariant()

    def test_policy_modes(self):
        company = self.env.company
        company.ai_invalid_free_warnings = 0
        for mode, extra, expected in (
            ("none", {}, 0),
            ("fixed", {"ai_invalid_fixed_credits": 2}, 2),
            ("fixed", {"ai_invalid_fixed_credits": 50}, TEXT_PRICE),  # never more than the hold
            ("percent", {"ai_invalid_percent": 50}, 1),  # 50% of 3 rounds down
            ("full", {}, TEXT_PRICE),
        ):
            company.write(dict(extra, ai_invalid_charge_mode=mode))
            before = self.account(self.alice).balance
            request = self._user_failure()
            self.assertEqual(request.credits_charged, expected, (mode, extra))
            self.assertEqual(self.account(self.alice).balance, before - expected)
            self.assertEqual(sum(self.lines(request).mapped("hold_amount")), 0)
        self.assertBalance(self.alice, self.account(self.alice).balance, 0)
        self.assertLedgerInvariant()

    def test_warnings_outside_the_window_do_not_count(self):
        self._user_failure()
        old = self._user_failure()
        self.env.cr.execute(
            "UPDATE ai_generation_request SET finished_at = finished_at - interval '2 days' WHERE id IN %s",
            (tuple(self.env["ai.generation.request"].sudo().search([("user_id", "=", self.alice.id)]).ids),),
        )
        self.env.invalidate_all()
        self.assertTrue(old.is_warning)
        request = self._user_failure()
        self.assertTrue(request.is_warning)
        self.assertEqual(request.credits_charged, 0)

    def test_side_must_agree_with_the_taxonomy(self):
        request = self.new_request(self.alice)
        payload = self.failure_payload("invalid_input")
        payload.update(is_user_error=False, is_system_error=True)
        with self.assertRaises(ValidationFailed):
            self.callback("failure", request, **payload)
        self.assertEqual(request.state, "queued")

    # ------------------------------------------------------------------ notify and errors
    def test_notify_stores_the_message_and_tells_the_owner(self):
        request = self.new_request(self.alice)
        self.callback("failure", request, **self.failure_payload("provider_timeout"))
        answer = self.callback(
            "notify", request, user_message=SYSTEM_MESSAGE, retry_suggestion="Try again in 5 minutes."
        )
        self.assertEqual(answer["status"], "failed")
        self.assertEqual(request.retry_suggestion, "Try again in 5 minutes.")
        self.assertEqual(self.bus_updates(self.alice)[-1]["retry_suggestion"], "Try again in 5 minutes.")

    def test_notify_for_a_request_that_did_not_fail_is_an_illegal_transition(self):
        request = self.new_request(self.alice)
        with self.assertRaises(IllegalTransitionError):
            self.callback("notify", request, user_message=USER_MESSAGE, specific_guidance="x")

    def test_event_id_of_another_request_is_a_conflict(self):
        first, second = self.new_request(self.alice), self.new_request(self.alice)
        evt = event_id()
        self.callback("progress", first, event_id=evt, state="running", attempt=1)
        with self.assertRaises(Conflict) as caught:
            self.callback("progress", second, event_id=evt, state="running", attempt=1)
        self.assertIn("progress callback of another request", str(caught.exception))
        self.assertEqual(second.state, "queued")
        # the same id for another kind of callback of the same request: named as such
        with self.assertRaises(Conflict) as caught:
            self.callback("result", first, event_id=evt, output="a poem")
        self.assertIn("progress callback of this request", str(caught.exception))
        self.assertEqual(first.state, "running")

    def test_unknown_request(self):
        with self.assertRaises(NotFound):
            self.env["ai.generation.request"].sudo()._handle_callback(
                "progress",
                {
                    "generation_request_id": "00000000-0000-4000-8000-000000000000",
                    "event_id": event_id(),
                    "state": "running",
                    "attempt": 1,
                },
            )

    def test_cancel_releases_and_later_outcomes_are_ignored(self):
        request = self.new_request(self.alice)
        request.with_user(self.manager).action_cancel()
        self.assertEqual(request.state, "cancelled")
        self.assertBalance(self.alice, 100, 0)
        self.assertTrue(self.callback("result", request, output="too late")["duplicate"])
        self.assertEqual(self.lines(request).mapped("kind"), ["hold", "release"])
        self.assertLedgerInvariant()
