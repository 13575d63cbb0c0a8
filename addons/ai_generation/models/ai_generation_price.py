# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from odoo import api, fields, models

BACKENDS = [("external", "External (OpenAI-compatible API)"), ("internal", "Internal (Kubernetes Job)")]


class AiGenerationPrice(models.Model):
    """Credits a request costs, per backend and model. A model without a price is not offered."""

    _name = "ai.generation.price"
    _description = "AI Generation Price"
    _order = "backend, model_name"
    _rec_name = "model_name"

    backend = fields.Selection(BACKENDS, required=True)
    model_name = fields.Char("Model", required=True, help="The model name clients send, e.g. gpt-4o-mini.")
    credits = fields.Integer(required=True, default=1, help="Per request; image requests pay it per image.")
    active = fields.Boolean(default=True)

    _sql_constraints = [
        ("backend_model_unique", "UNIQUE(backend, model_name)", "One price per backend and model."),
        ("credits_not_negative", "CHECK(credits >= 0)", "A price cannot be negative."),
    ]

    @api.model
    def _unit_price(self, backend, model_name):
        """The price in credits, or None when the model is not offered on that backend."""
        price = self.sudo().search([("backend", "=", backend), ("model_name", "=", model_name)], limit=1)
        return price.credits if price else None
