# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The owner's bus messages: one per change they care about, each enough to render it (bus_update.json)."""

from odoo.tests import tagged

from ..pure import contracts
from ..pure.validation import GenerationInput
from .common import TEXT_MODEL, TEXT_PRICE, AiGenerationCase

SYSTEM_MESSAGE = "AI processing failed. Please try again or adjust your parameters."
USER_MESSAGE = "Invalid input detected. Please review your prompt/parameters."


@tagged("at_install", "-post_install", "ai_generation")
class TestBusUpdates(AiGenerationCase):
    def setUp(self):
        super().setUp()
        self.grant(self.alice, 100)

    def updates(self, request):
        found = [u for u in self.bus_updates(self.alice) if u["request_id"] == request.uuid]
        for update in found:
            self.assertValid("bus_update.json", update)
        return found

    def worker_notify(self, request, error_type):
        """The /notify/generation-error the worker sends after a failure (worker/processing.py)."""
        info = contracts.error_type_info(error_type)
        payload = {"user_message": contracts.user_message(info["side"]), "error_type": error_type}
        if info["side"] == "user":
            payload["specific_guidance"] = info["specific_guidance"]
        else:
            payload["retry_suggestion"] = info["retry_suggestion"]
        return self.callback("notify", request, **payload)

    def test_accepted_running_succeeded_once_each_with_the_small_result(self):
        request = self.new_request(self.alice, prompt="  a haiku\nabout  credits  ")
        self.callback("progress", request, state="running", attempt=1)
        self.callback("progress", request, state="running", attempt=2)  # a retry: nothing new to tell
        self.callback("result", request, output="five seven five", usage={"total_tokens": 9})
        self.callback("result", request, output="late duplicate")
        updates = self.updates(request)
        self.assertEqual([u["event"] for u in updates], ["accepted", "running", "succeeded"])
        accepted, _running, succeeded = updates
        self.assertEqual(
            (accepted["status"], accepted["credits_reserved"], accepted["credits_available"]),
            ("queued", TEXT_PRICE, 100 - TEXT_PRICE),
        )
        self.assertEqual(accepted["prompt_preview"], "a haiku about credits")
        self.assertEqual(
            (succeeded["result_included"], succeeded["result"]["output"], succeeded["credits_charged"]),
            (True, "five seven five", TEXT_PRICE),
        )
        self.assertEqual(succeeded["result"]["usage"], {"total_tokens": 9})
        self.assertEqual(succeeded["credits_available"], 100 - TEXT_PRICE)
        self.assertEqual(succeeded["message"], "Your generation is ready.")

    def test_a_large_result_is_left_for_get(self):
        request = self.new_request(self.alice)
        self.callback("result", request, output="x" * 9000)
        [_accepted, succeeded] = self.updates(request)
        self.assertEqual(
            (succeeded["result_available"], succeeded["result_included"], succeeded["result"]),
            (True, False, None),
        )
        self.assertEqual(succeeded["status_url"], f"/api/v1/generations/{request.uuid}")

    def test_a_system_failure_is_one_message_even_with_the_workers_notify(self):
        request = self.new_request(self.alice)
        self.callback("progress", request, state="running", attempt=1)
        self.callback("failure", request, **self.failure_payload("provider_unavailable", attempt=3))
        answer = self.worker_notify(request, "provider_unavailable")
        self.assertEqual(answer["status"], "failed")
        updates = self.updates(request)
        self.assertEqual([u["event"] for u in updates], ["accepted", "running", "failed"])
        failed = updates[-1]
        self.assertEqual(failed["message"], SYSTEM_MESSAGE)
        self.assertEqual(
            failed["retry_suggestion"], contracts.error_type_info("provider_unavailable")["retry_suggestion"]
        )
        self.assertEqual(
            (failed["is_system_error"], failed["credits_charged"], failed["credits_available"]),
            (True, 0, 100),
        )
        self.assertEqual(failed["charge_note"], "You were not charged.")

    def test_invalid_input_carries_the_guidance_and_what_was_charged(self):
        guidance = contracts.error_type_info("invalid_input")["specific_guidance"]
        for _warning in range(2):  # the company's two free warnings
            free = self.new_request(self.alice)
            self.callback("failure", free, **self.failure_payload("invalid_input"))
            self.worker_notify(free, "invalid_input")
            [_accepted, failed] = self.updates(free)
            self.assertEqual((failed["warning"], failed["credits_charged"]), (True, 0))
        charged = self.new_request(self.alice)
        self.callback("failure", charged, **self.failure_payload("invalid_input"))
        self.worker_notify(charged, "invalid_input")
        [_accepted, failed] = self.updates(charged)
        self.assertEqual((failed["message"], failed["specific_guidance"]), (USER_MESSAGE, guidance))
        self.assertEqual(
            (failed["is_user_error"], failed["warning"], failed["credits_charged"]), (True, False, TEXT_PRICE)
        )
        self.assertEqual(failed["charge_note"], f"{TEXT_PRICE} credit(s) were charged for invalid input.")
        self.assertEqual(failed["credits_available"], 100 - TEXT_PRICE)

    def test_a_notify_with_other_wording_replaces_the_message_for_the_same_status(self):
        request = self.new_request(self.alice)
        self.callback("failure", request, **self.failure_payload("provider_timeout"))
        self.callback("notify", request, user_message=SYSTEM_MESSAGE, retry_suggestion="Try again at noon.")
        self.callback("notify", request, user_message=SYSTEM_MESSAGE, retry_suggestion="Try again at noon.")
        updates = self.updates(request)
        self.assertEqual([u["event"] for u in updates], ["accepted", "failed", "failed"])
        self.assertEqual(updates[-1]["retry_suggestion"], "Try again at noon.")

    def test_cancelled_and_an_idempotent_replay_tell_nothing_twice(self):
        cancelled = self.new_request(self.alice)
        cancelled.with_user(self.manager).action_cancel()
        updates = self.updates(cancelled)
        self.assertEqual([u["event"] for u in updates], ["accepted", "cancelled"])
        self.assertEqual((updates[-1]["credits_charged"], updates[-1]["credits_available"]), (0, 100))
        gen = GenerationInput(backend="external", model=TEXT_MODEL, task="text", prompt="once", params={})
        Request = self.env["ai.generation.request"]
        _status, first, _replayed = Request._api_create(self.alice, gen, "key-1", "hash-1")
        _status, again, replayed = Request._api_create(self.alice, gen, "key-1", "hash-1")
        self.assertTrue(replayed)
        self.assertEqual(first, again)
        accepted = [u for u in self.bus_updates(self.alice) if u["request_id"] == first["request_id"]]
        self.assertEqual([u["event"] for u in accepted], ["accepted"])

    def test_only_the_owner_is_told(self):
        self.grant(self.bob, 10)
        request = self.new_request(self.bob)
        self.callback("result", request, output="bob's")
        self.assertEqual([u for u in self.bus_updates(self.alice) if u["request_id"] == request.uuid], [])
        self.assertEqual(len([u for u in self.bus_updates(self.bob) if u["request_id"] == request.uuid]), 2)
