# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The round trips a create and each callback make, counted as Odoo's own performance tests count them
(each ``execute``: statements sent together, models/row_insert.py's ``send_together``, count once).

Under load every statement is a round trip during which the thread gives up the GIL and then waits to
get it back, and a create's statements run under the user's lock: a statement added to these paths
shows here, where a benchmark on shared cores could not tell it from noise (bench/README.md). The
counts include the bus row (written at flush in tests, at commit on a server) and not the commit.
"""

from odoo.tests import tagged

from ..models.res_config_settings import get_setting
from ..pure.validation import GenerationInput
from .common import TEXT_MODEL, AiGenerationCase

GEN = GenerationInput(backend="external", model=TEXT_MODEL, task="text", prompt="a haiku", params={})


@tagged("at_install", "-post_install", "ai_generation")
class TestQueryCounts(AiGenerationCase):
    def setUp(self):
        super().setUp()
        self.grant(self.alice, 100)
        self.Request = self.env["ai.generation.request"]
        self.Request._api_create(self.alice, GEN)  # the settings' and prices' caches filled
        get_setting(self.env, "ai_generation.max_result_bytes")  # and the one a result reads
        self.env.flush_all()

    def test_a_create_is_one_locked_read_one_write_and_the_bus_row(self):
        # the lock with the owner, rate limit, account and key read (and the request's id); the
        # request's INSERT sent with the hold (the account and its line, one statement); the bus row
        with self.assertQueryCount(3):
            status, _body, _replayed = self.Request._api_create(self.alice, GEN)
            self.env.flush_all()
        self.assertEqual(status, 202)

    def test_a_create_with_an_idempotency_key_costs_no_round_trip_more_and_a_replay_is_one_read(self):
        # the key's answer rides with the request's INSERT and the hold
        with self.assertQueryCount(3):
            first = self.Request._api_create(self.alice, GEN, "key-1", "hash-1")
            self.env.flush_all()
        with self.assertQueryCount(1):
            self.assertEqual(
                self.Request._api_create(self.alice, GEN, "key-1", "hash-1"), (202, first[1], True)
            )

    def test_a_success_reads_what_it_decides_on_with_the_lock(self):
        request = self.new_request(self.alice)
        self.callback("progress", request, state="running", attempt=1)
        self.env.flush_all()
        payload = {"generation_request_id": request.uuid, "event_id": "evt-result-1", "output": "a poem"}
        self.env.invalidate_all()  # a callback starts a transaction of its own: nothing cached
        # the request locked, then read with its event, its hold, the owner and the account (one round
        # trip); the capture (account and line, one statement); the event, the request and the bus
        # row written
        with self.assertQueryCount(5):
            answer = self.Request.sudo()._handle_callback("result", payload)
            self.env.flush_all()
        self.assertEqual(answer["status"], "succeeded")

    def test_a_progress_reads_what_it_decides_on_with_the_lock(self):
        request = self.new_request(self.alice)
        payload = {"generation_request_id": request.uuid, "event_id": "evt-progress-1", "state": "running"}
        self.env.invalidate_all()
        # the request locked, then read with its event, the owner and the account (one round trip);
        # the event, the request and the bus row written
        with self.assertQueryCount(4):
            answer = self.Request.sudo()._handle_callback("progress", payload)
            self.env.flush_all()
        self.assertEqual((answer["status"], answer["duplicate"]), ("running", False))
        self.env.invalidate_all()
        with self.assertQueryCount(1):  # a duplicate: the lock and the lookup, nothing written
            answer = self.Request.sudo()._handle_callback("progress", payload)
        self.assertEqual((answer["status"], answer["duplicate"]), ("running", True))

    def test_a_confirmed_publish_marks_and_moves_its_request_without_reading_it_again(self):
        request = self.new_request(self.alice)
        self.env.flush_all()
        self.env.invalidate_all()  # the publisher's own transaction: nothing cached
        # the dispatch mark (it returns the state under the row lock), then the state API's write
        with self.assertQueryCount(2):
            self.Request.sudo()._mark_dispatch([request.id], {})
        self.assertEqual((request.state, request.dispatch_state), ("dispatched", "sent"))
