# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..pure.contracts import taxonomy

KINDS = [
    ("grant", "Grant"),
    ("hold", "Hold"),
    ("capture", "Capture"),
    ("release", "Release"),
    ("user_error_charge", "User-error charge"),
    ("refund", "Refund"),
    ("adjustment", "Adjustment"),
]


def error_type_selection(_model=None):
    """Selection values of error_type; Odoo calls it with the model, the code without arguments."""
    return [(name, name.replace("_", " ").capitalize()) for name in taxonomy()["error_types"]]


class AiCreditLedgerLine(models.Model):
    """One credit movement. Immutable; its effect on balance (amount) and on held (hold_amount)."""

    _name = "ai.credit.ledger.line"
    _description = "AI Credit Ledger Line"
    _order = "id desc"

    account_id = fields.Many2one("ai.credit.account", required=True, ondelete="restrict", index=True)
    user_id = fields.Many2one(related="account_id.user_id", store=True, index=True)
    request_id = fields.Many2one("ai.generation.request", ondelete="restrict", index=True)
    kind = fields.Selection(KINDS, required=True, index=True)
    amount = fields.Integer(required=True, help="Effect on the balance.")
    hold_amount = fields.Integer(required=True, help="Effect on the held credits.")
    balance_after = fields.Integer(required=True)
    held_after = fields.Integer(required=True)
    reason = fields.Char(required=True)
    is_welcome = fields.Boolean(
        "Welcome grant", readonly=True, help="The company's welcome credits for a new user (once per user)."
    )
    date = fields.Datetime(default=fields.Datetime.now, required=True, index=True)
    backend = fields.Selection(related="request_id.backend", store=True)
    error_type = fields.Selection(error_type_selection, compute="_compute_error_type", store=True)

    _sql_constraints = [
        # the signs each movement may have: a line can only do what its kind says
        (
            "kind_signs",
            """CHECK(
                (kind = 'grant' AND amount > 0 AND hold_amount = 0)
             OR (kind = 'hold' AND amount = 0 AND hold_amount > 0)
             OR (kind = 'capture' AND amount < 0 AND hold_amount = amount)
             OR (kind = 'user_error_charge' AND amount < 0 AND hold_amount = amount)
             OR (kind = 'release' AND amount = 0 AND hold_amount < 0)
             OR (kind = 'refund' AND amount > 0 AND hold_amount = 0)
             OR (kind = 'adjustment' AND amount != 0 AND hold_amount = 0)
            )""",
            "This ledger movement has the wrong sign for its kind.",
        ),
        (
            "request_movements",
            "CHECK(kind IN ('grant', 'adjustment') OR request_id IS NOT NULL)",
            "Holds, captures, releases, charges and refunds belong to a request.",
        ),
    ]

    def init(self):
        # One hold, one settlement (capture or charge), one release and one refund per request at most:
        # a repeated callback can never move credits twice, whatever the Python code does.
        for name, kinds in (
            ("ai_credit_ledger_line_one_hold", ("hold",)),
            ("ai_credit_ledger_line_one_settlement", ("capture", "user_error_charge")),
            ("ai_credit_ledger_line_one_release", ("release",)),
            ("ai_credit_ledger_line_one_refund", ("refund",)),
        ):
            self.env.cr.execute(
                SQL(
                    "CREATE UNIQUE INDEX IF NOT EXISTS %s ON ai_credit_ledger_line (request_id)"
                    " WHERE kind IN %s",
                    SQL.identifier(name),
                    kinds,
                )
            )
        # and one welcome grant per account: a user is welcomed once
        self._init_welcome_index()

    def _init_welcome_index(self):
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS ai_credit_ledger_line_one_welcome"
            " ON ai_credit_ledger_line (account_id) WHERE is_welcome"
        )

    @api.depends("kind", "amount", "hold_amount", "user_id", "date")
    def _compute_display_name(self):
        kinds = dict(KINDS)
        for line in self:
            # the movement as a person reads it: "Grant +15 · Alice", "Hold 3 held · Alice"
            if line.amount:
                figure = f"{line.amount:+d}"
            else:
                figure = f"{abs(line.hold_amount)} {'held' if line.hold_amount > 0 else 'released'}"
            line.display_name = (
                f"{kinds.get(line.kind, line.kind or '')} {figure} · {line.user_id.name or ''}"
            )

    @api.depends("request_id.error_type")
    def _compute_error_type(self):
        for line in self:
            line.error_type = line.request_id.error_type

    @api.model_create_multi
    def create(self, vals_list):  # refused by design; pylint: disable=method-required-super
        # the credit account inserts its lines itself (_post_movement, models/row_insert.py)
        self.browse().check_access("create")
        raise UserError(_("Ledger lines are written by the credit account only."))

    def copy(self, default=None):  # refused by design; pylint: disable=method-required-super
        raise UserError(_("Ledger lines cannot be duplicated; post a new movement instead."))

    def write(self, vals):
        if set(vals) - {"error_type"}:
            raise UserError(_("Ledger lines cannot be changed; post a new movement instead."))
        return super().write(vals)

    def unlink(self):  # refused by design; pylint: disable=method-required-super
        raise UserError(_("Ledger lines cannot be deleted; post a new movement instead."))
