# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The rows _api_create and _post_movement insert themselves (models/row_insert.py) are what Odoo's
create() would write: every column of an API request equals that of a request created through the ORM
from the same input, the cache holds what the database holds, and the stored related/computed values
(no second UPDATE) equal their sources, including a release or charge posted before the failure's
error_type is written."""

from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import SQL, mute_logger
from psycopg2 import IntegrityError

from ..models.owner_messages import owner_lang
from ..pure.validation import GenerationInput
from .common import TEXT_MODEL, AiGenerationCase

# what differs between two requests by nature: their identity and the moment each was written
NOT_COMPARED = {"id", "uuid", "create_date", "write_date", "last_state_change", "deadline"}


@tagged("at_install", "-post_install", "ai_generation")
class TestStoredValues(AiGenerationCase):
    def stored(self, table, record_id, columns):
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT %s FROM %s WHERE id = %s",
                SQL(", ").join(map(SQL.identifier, columns)),
                SQL.identifier(table),
                record_id,
            )
        )
        return self.env.cr.fetchone()

    def assertLinesMatchTheirRequest(self, request):
        lines = self.lines(request)
        self.assertTrue(lines)
        for line in lines:
            self.assertEqual(
                self.stored("ai_credit_ledger_line", line.id, ["user_id", "backend", "error_type"]),
                (request.user_id.id, request.backend, request.error_type or None),
                line.kind,
            )

    def stored_columns(self, model):
        return [
            name
            for name, field in model._fields.items()
            if field.store and field.column_type and name not in NOT_COMPARED
        ]

    def assertSameRow(self, inserted, created, *differing):
        """Every stored column of the row the addon inserted equals that of the row create() wrote,
        but for the columns that differ by nature and ``differing`` (a unique key)."""
        columns = [c for c in self.stored_columns(inserted) if c not in differing]
        self.assertEqual(
            dict(zip(columns, self.stored(inserted._table, inserted.id, columns), strict=True)),
            dict(zip(columns, self.stored(created._table, created.id, columns), strict=True)),
        )

    def test_an_api_request_row_is_what_create_writes(self):
        self.grant(self.alice, 10)
        prompt, params = "a haiku about rows", {"max_tokens": 12}
        api = self.env["ai.generation.request"]._api_create(
            self.alice,
            GenerationInput(backend="external", model=TEXT_MODEL, task="text", prompt=prompt, params=params),
        )[1]
        by_api = self.env["ai.generation.request"].sudo().search([("uuid", "=", api["request_id"])])
        by_orm = (
            self.env["ai.generation.request"]
            .sudo()
            ._protected()
            .create(
                {
                    "user_id": self.alice.id,
                    "backend": "external",
                    "ai_model": TEXT_MODEL,
                    "task": "text",
                    "prompt": prompt,
                    "params": params,
                    "price": by_api.price,
                    "user_message": by_api.user_message,
                    "deadline": by_api.deadline,
                }
            )
        )
        self.assertIn("dispatch_state", self.stored_columns(by_api))
        self.assertSameRow(by_api, by_orm)

    def test_a_callback_event_row_is_what_create_writes(self):
        self.grant(self.alice, 10)
        request = self.new_request(self.alice)
        self.callback("progress", request, event_id="evt-by-callback", attempt=1)
        Event = self.env["ai.generation.event"].sudo()
        by_callback = Event.search([("event_id", "=", "evt-by-callback")])
        by_orm = Event.create(
            {"event_id": "evt-by-orm", "request_id": request.id, "kind": "progress", "state_after": "running"}
        )
        self.assertEqual(request.event_ids, by_callback | by_orm)
        self.assertSameRow(by_callback, by_orm, "event_id")

    def test_an_idempotency_row_is_what_create_writes_and_replays_its_answer(self):
        self.grant(self.alice, 10)
        Request = self.env["ai.generation.request"]
        gen = GenerationInput(backend="external", model=TEXT_MODEL, task="text", prompt="once", params={})
        first = Request._api_create(self.alice, gen, "key-by-api", "hash-1")
        self.assertEqual(Request._api_create(self.alice, gen, "key-by-api", "hash-1"), (202, first[1], True))
        Idempotency = self.env["ai.generation.idempotency"].sudo()
        by_api = Idempotency.search([("key", "=", "key-by-api")])
        by_orm = Idempotency.create(
            {
                "user_id": self.alice.id,
                "key": "key-by-orm",
                "body_hash": "hash-1",
                "status_code": 202,
                "response": first[1],
                "request_id": by_api.request_id.id,
            }
        )
        self.assertSameRow(by_api, by_orm, "key")

    def test_the_cache_holds_what_the_insert_wrote(self):
        self.grant(self.alice, 10)
        Request = self.env["ai.generation.request"]
        gen = GenerationInput(backend="external", model=TEXT_MODEL, task="text", prompt="x", params={})
        body = Request._api_create(self.alice, gen)[1]
        request = Request.sudo().search([("uuid", "=", body["request_id"])])
        names = ["uuid", *self.stored_columns(request), "create_date", "write_date", "deadline"]
        cached = request.read(names)[0]
        self.env.invalidate_all()
        self.assertEqual(cached, request.read(names)[0])

    def test_a_locked_request_is_cached_as_stored(self):
        self.grant(self.alice, 10)
        request = self.new_request(self.alice)
        self.callback("result", request, output="a row", usage={"total_tokens": 3})
        self.env.invalidate_all()
        Request = self.env["ai.generation.request"].sudo()
        names = ["uuid", *self.stored_columns(Request), "create_date", "write_date", "deadline"]
        locked = Request._lock_by_uuid(request.uuid)
        self.assertEqual(locked, request)
        cached = locked.read(names)[0]
        self.env.invalidate_all()
        self.assertEqual(cached, locked.read(names)[0])
        self.assertEqual((cached["result_output"], cached["usage"]), ("a row", {"total_tokens": 3}))

    def test_the_request_company_is_the_owner_company(self):
        self.grant(self.alice, 10)
        request = self.new_request(self.alice)
        self.assertEqual(
            self.stored("ai_generation_request", request.id, ["company_id"]), (self.alice.company_id.id,)
        )

    def test_lines_posted_before_a_system_failure_carry_its_error_type(self):
        self.grant(self.alice, 10)
        request = self.new_request(self.alice)
        self.callback("failure", request, **self.failure_payload("provider_unavailable"))
        self.assertEqual(request.error_type, "provider_unavailable")
        self.assertIn("release", self.lines(request).mapped("kind"))
        self.assertLinesMatchTheirRequest(request)

    def test_lines_posted_before_a_user_failure_carry_its_error_type(self):
        self.env.company.ai_invalid_free_warnings = 0
        self.grant(self.alice, 10)
        request = self.new_request(self.alice)
        self.callback("failure", request, **self.failure_payload("invalid_input"))
        self.assertEqual(request.error_type, "invalid_input")
        self.assertLinesMatchTheirRequest(request)

    def test_a_grant_has_no_request_values(self):
        line = self.grant(self.alice, 10)
        self.assertEqual(
            self.stored("ai_credit_ledger_line", line.id, ["user_id", "backend", "error_type", "request_id"]),
            (self.alice.id, None, None, None),
        )

    # the reads and inserts done in SQL answer as the ORM did (review of the change)
    def test_find_for_no_user_is_an_empty_account(self):
        # the ORM's search answered an empty recordset; the SQL path sends "user_id = false"
        self.assertFalse(self.env["ai.credit.account"].sudo()._find_for_user(self.env["res.users"]))

    def test_the_wizard_without_user_or_account_says_so(self):
        wizard = (
            self.env["ai.credit.operation.wizard"]
            .with_user(self.manager)
            .create({"operation": "grant", "credits": 5, "reason": "rpc, no user"})
        )
        with self.assertRaises(UserError):
            wizard.action_apply()

    def test_a_refused_line_leaves_the_cached_credits_as_stored(self):
        account = self.account(self.alice)
        self.grant(self.alice, 10)
        account._grant_welcome(5)
        refused = False
        try:  # not assertRaises: Odoo's wraps it in a flushing savepoint, which clears the cache
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint(flush=False):
                account._grant_welcome(5)  # the one-welcome index refuses the line after the UPDATE
        except IntegrityError:
            refused = True
        self.assertTrue(refused)
        self.assertEqual((account.balance, account.held), (15, 0))

    def test_the_owner_language_is_the_pending_one(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        partner = self.alice.partner_id
        partner.lang = "fr_FR"  # pending: not flushed yet
        self.alice.invalidate_recordset(["partner_id"])  # flushes res.users only
        with self.assertNoLogs("odoo.api", "ERROR"):
            self.assertEqual(owner_lang(self.alice), "fr_FR")
        self.env.flush_all()
        self.env.cr.execute("SELECT lang FROM res_partner WHERE id = %s", (partner.id,))
        self.assertEqual(self.env.cr.fetchone()[0], "fr_FR")
