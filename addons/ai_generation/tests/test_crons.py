# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from datetime import timedelta

from odoo import fields
from odoo.tests import tagged

from .common import IMAGE_MODEL, IMAGE_PRICE, TEXT_PRICE, AiGenerationCase


@tagged("at_install", "-post_install", "ai_generation")
class TestCrons(AiGenerationCase):
    def setUp(self):
        super().setUp()
        self.grant(self.alice, 100)

    def _expire(self, request):
        request.sudo()._write_protected({"deadline": fields.Datetime.now() - timedelta(seconds=1)})

    def test_reaper_fails_expired_requests_as_system_errors(self):
        queued, running, fresh, done = (self.new_request(self.alice) for _ in range(4))
        self.callback("progress", running, state="running", attempt=2)
        self.callback("result", done, output="ok")
        for request in (queued, running, done):
            self._expire(request)
        reaped = self.env["ai.generation.request"]._cron_fail_expired()
        self.assertEqual(set(reaped.ids), {queued.id, running.id})
        for request in (queued, running):
            self.assertEqual(
                (request.state, request.error_type, request.error_side), ("failed", "model_timeout", "system")
            )
            self.assertEqual(request.credits_charged, 0)
            self.assertIn("not charged", self.lines(request)[-1].reason)
        self.assertEqual(fresh.state, "queued")
        self.assertEqual(done.state, "succeeded")
        self.assertBalance(self.alice, 100 - TEXT_PRICE, TEXT_PRICE)  # done captured, fresh still held
        statuses = [(u["request_id"], u["status"]) for u in self.bus_updates(self.alice)]
        self.assertIn((queued.uuid, "failed"), statuses)
        self.assertIn((running.uuid, "failed"), statuses)
        # a late callback after the reaper changes nothing
        self.assertTrue(self.callback("result", queued, output="late")["duplicate"])
        self.assertLedgerInvariant()

    def test_outbox_keeps_requests_while_the_broker_is_down(self):
        request = self.new_request(self.alice)
        published = self.env["ai.generation.request"]._cron_dispatch_pending(min_age_seconds=0)
        self.assertFalse(published)
        self.assertEqual((request.dispatch_state, request.state), ("pending", "queued"))
        self.assertEqual(request.dispatch_attempts, 1)
        self.assertIn("unreachable", request.dispatch_error)

    def test_outbox_grace_leaves_fresh_requests_to_the_after_commit_publish(self):
        request = self.new_request(self.alice)
        self.env["ai.generation.request"]._cron_dispatch_pending(min_age_seconds=3600)
        self.assertEqual(request.dispatch_attempts, 0)

    def test_outbox_never_publishes_a_held_request_and_the_reaper_still_frees_its_credits(self):
        held, pending = self.new_request(self.alice), self.new_request(self.alice)
        held.sudo()._write_protected({"dispatch_state": "held"})
        self.env["ai.generation.request"]._cron_dispatch_pending(min_age_seconds=0)
        self.assertEqual((held.dispatch_attempts, held.dispatch_state), (0, "held"))
        self.assertEqual(pending.dispatch_attempts, 1)  # tried (the test broker URL is unreachable)
        self._expire(held)
        self.env["ai.generation.request"]._cron_fail_expired()
        self.assertEqual((held.state, held.error_side, held.credits_charged), ("failed", "system", 0))
        self.assertBalance(self.alice, 100, TEXT_PRICE)  # only the pending request still holds
        self.assertLedgerInvariant()

    def test_creation_schedules_a_publish_after_commit(self):
        request = self.new_request(self.alice)
        self.assertIn(request.id, self.env.cr.postcommit.data["ai_generation.dispatch_ids"])

    def test_job_message_follows_the_schema(self):
        request = self.new_request(
            self.alice,
            backend="internal",
            model=IMAGE_MODEL,
            task="image",
            params={"size": "512x512", "n": 2},
        )
        self.assertEqual(request.price, 2 * IMAGE_PRICE)
        message = request._job_message()
        self.assertValid("job_requested.v1.json", message)
        self.assertEqual(message["generation_request_id"], request.uuid)
        self.assertEqual((message["attempt"], message["params"]), (1, {"size": "512x512", "n": 2}))

    def test_one_broken_request_does_not_block_the_reaper_for_the_others(self):
        good_before, broken, good_after = (self.new_request(self.alice) for _ in range(3))
        for request in (good_before, broken, good_after):
            self._expire(request)
        # the case: the owner changed behind the ledger's back (bob holds nothing), so failing
        # it would release credits bob's account does not hold
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE ai_generation_request SET user_id = %s WHERE id = %s", (self.bob.id, broken.id)
        )
        self.env.invalidate_all()
        with self.assertLogs("odoo.addons.ai_generation.models.ai_generation_request", "WARNING") as logs:
            reaped = self.env["ai.generation.request"]._cron_fail_expired()
        self.assertEqual(set(reaped.ids), {good_before.id, good_after.id})
        self.assertEqual((good_before.state, good_after.state, broken.state), ("failed", "failed", "queued"))
        self.assertIn(broken.uuid, "\n".join(logs.output))
        self.assertBalance(self.alice, 100, TEXT_PRICE)  # only the broken one's hold is left
