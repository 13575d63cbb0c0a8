# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from odoo import fields, models

from ..pure.credit_policy import MODES, InvalidInputPolicy


class ResCompany(models.Model):
    _inherit = "res.company"

    ai_invalid_free_warnings = fields.Integer("Free warnings", default=2)
    ai_invalid_window_hours = fields.Integer("Warning window (hours)", default=24)
    ai_invalid_charge_mode = fields.Selection(
        [(m, m.capitalize()) for m in MODES], "Charge after warnings", default="full", required=True
    )
    ai_invalid_fixed_credits = fields.Integer("Fixed charge (credits)", default=1)
    ai_invalid_percent = fields.Integer("Charge (% of the price)", default=50)
    ai_welcome_credits = fields.Integer(
        "Welcome credits",
        default=0,
        help="Credits granted once to every new user of the company (0: none); a ledger line each.",
    )

    _sql_constraints = [
        (
            "ai_invalid_policy_ranges",
            "CHECK(ai_invalid_free_warnings >= 0 AND ai_invalid_window_hours >= 0"
            " AND ai_invalid_fixed_credits >= 0 AND ai_invalid_percent BETWEEN 0 AND 100)",
            "Invalid-input policy values must be non-negative; the percentage at most 100.",
        ),
        (
            "ai_welcome_credits_not_negative",
            "CHECK(ai_welcome_credits >= 0)",
            "Welcome credits cannot be negative.",
        ),
    ]

    def _ai_invalid_input_policy(self):
        self.ensure_one()
        return InvalidInputPolicy(
            free_warnings=self.ai_invalid_free_warnings,
            window_hours=self.ai_invalid_window_hours,
            mode=self.ai_invalid_charge_mode,
            fixed_amount=self.ai_invalid_fixed_credits,
            percent=self.ai_invalid_percent,
        )
