# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The managers' form for credit operations: it only collects the numbers, the account posts them."""

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from ..models.transactions import call_in_own_transaction
from ..pure.errors import ApiError


class AiCreditOperationWizard(models.TransientModel):
    _name = "ai.credit.operation.wizard"
    _description = "AI Credit Operation"

    operation = fields.Selection(
        [("grant", "Grant credits"), ("adjustment", "Adjust the balance"), ("refund", "Refund a request")],
        required=True,
        default="grant",
    )
    account_id = fields.Many2one("ai.credit.account")
    user_id = fields.Many2one(
        "res.users",
        help="Whose credits: the account is opened with this grant when the user has none yet.",
    )
    request_id = fields.Many2one("ai.generation.request")
    # read as the caller: onchange answers any logged-in user, and a related field reads as superuser
    credits_charged = fields.Integer(related="request_id.credits_charged", compute_sudo=False)
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
        """Post the operation in a transaction of its own (the account's lock, READ COMMITTED), then
        show the account (grant, adjustment) or the request (refund) it changed."""
        self.ensure_one()
        if not self.env.su and not self.env.user.has_group("ai_generation.group_ai_generation_manager"):
            raise AccessError(_("Only AI Generation managers can change credits."))
        if self.operation == "refund":
            if not self.request_id:
                raise UserError(_("Choose the request to refund."))
            self.request_id._refund(self.credits, self.reason)
            target = self.request_id
        else:
            if self.account_id and self.user_id and self.account_id.user_id != self.user_id:
                raise UserError(_("The account and the user do not match: choose one of them."))
            owner = self.user_id or self.account_id.user_id
            if owner and (not owner.active or owner._is_public() or owner._is_superuser()):
                raise UserError(_("Credits are for active users: %s cannot hold any.", owner.display_name))
            # the account is found and moved as superuser: the multi-company rule is checked here
            if owner and not self.env.su and owner.company_id not in self.env.companies:
                raise AccessError(
                    _(
                        "%(user)s works for %(company)s: select that company to change their credits.",
                        user=owner.display_name,
                        company=owner.company_id.display_name,
                    )
                )
            account = self.account_id or self.env["ai.credit.account"].sudo()._find_for_user(self.user_id)
            try:
                if account:
                    method = "_grant" if self.operation == "grant" else "_adjust"
                    call_in_own_transaction(account.sudo(), method, self.credits, self.reason)
                elif self.user_id and self.operation == "grant":
                    # a user without an account yet: opened with this grant
                    account_id = call_in_own_transaction(
                        self.env["ai.credit.account"].sudo(),
                        "_grant_to_user",
                        self.user_id.id,
                        self.credits,
                        self.reason,
                    )
                    account = self.env["ai.credit.account"].browse(account_id)
                else:
                    raise UserError(_("Choose the user or the credit account."))
            except ApiError as exc:  # e.g. an adjustment below what is held: the API's words fit here too
                raise UserError(exc.message) from exc
            account.invalidate_recordset()
            target = account
        return {
            "type": "ir.actions.act_window",
            "res_model": target._name,
            "res_id": target.id,
            "view_mode": "form",
            "target": "current",
        }
