# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from odoo import fields, models


class AiGenerationEvent(models.Model):
    """A worker callback already processed: the unique event_id makes every callback idempotent."""

    _name = "ai.generation.event"
    _description = "AI Generation Callback Event"
    _order = "id desc"
    _rec_name = "event_id"

    event_id = fields.Char(required=True, readonly=True)
    request_id = fields.Many2one("ai.generation.request", required=True, ondelete="cascade", index=True)
    kind = fields.Selection(
        [("progress", "Progress"), ("result", "Result"), ("failure", "Failure"), ("notify", "Notify")],
        required=True,
        readonly=True,
    )
    state_after = fields.Char(readonly=True, help="The request's state once this event was applied.")

    _sql_constraints = [("event_id_unique", "UNIQUE(event_id)", "This event was already processed.")]
