# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The allow-list of origins whose pages may call the public API with an API key (CORS)."""

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..pure import cors
from .res_config_settings import SYSTEM


class ResConfigSettings(models.TransientModel):
    # apart from res_config_settings.py on purpose: the CORS allow-list is one concern of its own
    _inherit = "res.config.settings"  # pylint: disable=consider-merging-classes-inherited

    ai_cors_origins = fields.Char(
        "Allowed origins",
        config_parameter="ai_generation.cors_origins",
        groups=SYSTEM,
        help="Web apps on these origins may call /api/v1/* from the browser with an API key, e.g."
        " https://app.example.com (space- or comma-separated). Empty: only pages Odoo serves itself.",
    )

    @api.constrains("ai_cors_origins")
    def _check_ai_cors_origins(self):
        for settings in self:
            try:
                cors.parse_origins(settings.ai_cors_origins)
            except cors.InvalidOrigin as exc:
                raise ValidationError(_("Allowed origins: %s", exc)) from None
