# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from odoo import api, fields, models


class ResUsers(models.Model):
    _inherit = "res.users"

    ai_credits_available = fields.Integer(
        "AI credits",
        compute="_compute_ai_credits_available",
        groups="ai_generation.group_ai_generation_manager",
        help="Credits the user can spend on generations (balance minus holds).",
    )

    def _compute_ai_credits_available(self):
        Account = self.env["ai.credit.account"].sudo()
        domain = [("user_id", "in", self.ids)]
        if not self.env.su:  # sudo skips the multi-company rule: other companies' credits stay hidden
            domain.append(("company_id", "in", self.env.companies.ids))
        accounts = {a.user_id.id: a for a in Account.search(domain)}
        for user in self:
            account = accounts.get(user.id)
            user.ai_credits_available = account.available if account else 0

    @api.model_create_multi
    def create(self, vals_list):
        users = super().create(vals_list)
        # a new user of a company with welcome credits gets them once, in the same transaction
        for user in users:
            credits = user.company_id.ai_welcome_credits
            if credits > 0 and user.active and not user._is_public():
                self.env["ai.credit.account"].sudo()._open_for_user(user)._grant_welcome(credits)
        return users
