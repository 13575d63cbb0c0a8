# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Credit statement for admins: the ledger turned into named columns, to pivot by user and period."""

from odoo import fields, models, tools

from ..models.ai_credit_ledger_line import KINDS, error_type_selection
from ..models.ai_generation_price import BACKENDS


class AiCreditReport(models.Model):
    """One row per ledger line; each measure is the part of the line it names, so sums read as a statement.

    ``net`` is the line's effect on the balance: its sum over a user is that user's balance.
    """

    _name = "ai.credit.report"
    _description = "AI Credit Report"
    _auto = False
    _order = "date desc"
    _rec_name = "date"

    date = fields.Datetime(readonly=True)
    user_id = fields.Many2one("res.users", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    account_id = fields.Many2one("ai.credit.account", readonly=True)
    request_id = fields.Many2one("ai.generation.request", readonly=True)
    kind = fields.Selection(KINDS, readonly=True)
    backend = fields.Selection(BACKENDS, readonly=True)
    error_type = fields.Selection(error_type_selection, readonly=True)
    granted = fields.Integer(readonly=True, help="Grants and positive adjustments.")
    spent = fields.Integer(readonly=True, help="Captured for successful generations.")
    charged_invalid = fields.Integer(
        "Charged for invalid input", readonly=True, help="Charges of the invalid-input policy."
    )
    refunded = fields.Integer(readonly=True)
    deducted = fields.Integer("Adjusted down", readonly=True, help="Negative adjustments, made positive.")
    released = fields.Integer(
        "Released (not charged)", readonly=True, help="Held credits given back (system failures, cancels)."
    )
    net = fields.Integer("Net change", readonly=True, help="Effect on the balance.")

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(
            f"""
            CREATE OR REPLACE VIEW {self._table} AS (
                SELECT l.id,
                       l.date,
                       a.user_id,
                       a.company_id,
                       l.account_id,
                       l.request_id,
                       l.kind,
                       l.backend,
                       l.error_type,
                       CASE WHEN l.kind = 'grant' OR (l.kind = 'adjustment' AND l.amount > 0)
                            THEN l.amount ELSE 0 END AS granted,
                       CASE WHEN l.kind = 'capture' THEN -l.amount ELSE 0 END AS spent,
                       CASE WHEN l.kind = 'user_error_charge' THEN -l.amount ELSE 0 END AS charged_invalid,
                       CASE WHEN l.kind = 'refund' THEN l.amount ELSE 0 END AS refunded,
                       CASE WHEN l.kind = 'adjustment' AND l.amount < 0 THEN -l.amount ELSE 0 END AS deducted,
                       CASE WHEN l.kind = 'release' THEN -l.hold_amount ELSE 0 END AS released,
                       l.amount AS net
                  FROM ai_credit_ledger_line l
                  JOIN ai_credit_account a ON a.id = l.account_id
            )
            """  # noqa: S608 (the table name is the model's own)
        )
