# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from datetime import timedelta

from odoo import api, fields, models


class AiGenerationIdempotency(models.Model):
    """The first answer given to an Idempotency-Key, replayed for the same key and body (kept 24 h+)."""

    _name = "ai.generation.idempotency"
    _description = "AI Generation Idempotency Key"
    _order = "id desc"

    user_id = fields.Many2one("res.users", required=True, ondelete="cascade", index=True)
    key = fields.Char(required=True)
    body_hash = fields.Char(required=True)
    status_code = fields.Integer(required=True)
    response = fields.Json(required=True)
    request_id = fields.Many2one("ai.generation.request", ondelete="cascade")

    _sql_constraints = [("user_key_unique", "UNIQUE(user_id, key)", "This idempotency key was already used.")]

    @api.autovacuum
    def _gc_expired(self):
        """Keys older than the retention (ai_generation.idempotency_hours, default 48) are forgotten."""
        hours = int(self.env["ir.config_parameter"].sudo().get_param("ai_generation.idempotency_hours", 48))
        self.sudo().search([("create_date", "<", fields.Datetime.now() - timedelta(hours=hours))]).unlink()
