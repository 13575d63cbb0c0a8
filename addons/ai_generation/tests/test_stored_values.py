# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The stored related/computed values _api_create and _post_movement give in create() (no second UPDATE)
are what Odoo computes: read back from the database after the transaction's writes, each equals its
source, including a release or charge posted before the failure's error_type is written."""

from odoo.tests import tagged
from odoo.tools import SQL

from .common import AiGenerationCase


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
