# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The managers' form for credit operations: it only collects the numbers, the account posts them."""

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..pure.errors import ApiError


class AiCreditOperationWizard(models.TransientModel):
    _name = "ai.credit.operation.wizard"
    _description = "AI Credit Operation"

    operation = fields.Selection(
        [("grant", "Grant credits"), ("adjustment", "Adjust the balance"), ("refund", "Refund a request")],
        required=True,
        default="grant",
    )
    account_id = fields.Many2one("ai.credit.account", "Account")
    request_id = fields.Many2one("ai.generation.request", "Request")
    credits_charged = fields.Integer(related="request_id.credits_charged")
    credits = fields.Integer(
        required=True, help="Whole credits. An adjustment may be negative; it never goes below what is held."
    )
    reason = fields.Char(required=True, help="Kept on the ledger line.")

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        if values.get("request_id") and "credits" in fields_list and not values.get("credits"):
            values["credits"] = self.env["ai.generation.request"].browse(values["request_id"]).credits_charged
        return values

    def action_apply(self):
        self.ensure_one()
        if self.operation == "refund":
            if not self.request_id:
                raise UserError(_("Choose the request to refund."))
            if self.request_id.credits_refunded:
                raise UserError(
                    _(
                        "Request %(id)s was already refunded (%(credits)s credits): one refund per request.",
                        id=self.request_id.uuid,
                        credits=self.request_id.credits_refunded,
                    )
                )
            line = self.request_id.action_refund(self.credits, self.reason)
        else:
            if not self.account_id:
                raise UserError(_("Choose the credit account."))
            account = self.account_id
            post = account.action_grant if self.operation == "grant" else account.action_adjust
            try:
                line = post(self.credits, self.reason)
            except ApiError as exc:  # e.g. an adjustment below what is held: the API's words fit here too
                raise UserError(exc.message) from exc
        return {
            "type": "ir.actions.act_window",
            "res_model": "ai.credit.ledger.line",
            "res_id": line.id,
            "view_mode": "form",
            "target": "current",
        }
