# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from odoo import api, fields, models

from ..pure.amqp import DEFAULT_URL

# ir.config_parameter keys and their defaults: the one place the addon's tunables are named
PARAM_DEFAULTS = {
    "ai_generation.amqp_url": DEFAULT_URL,
    "ai_generation.rate_limit_per_minute": 30,
    "ai_generation.deadline_seconds": 900,
    "ai_generation.max_prompt_chars": 20000,
    "ai_generation.max_params_bytes": 16384,
    "ai_generation.dispatch_grace_seconds": 30,
    "ai_generation.alertmanager_url": "",
    "ai_generation.alert_window_minutes": 10,
    "ai_generation.alert_rate_threshold": 5,
    "ai_generation.alert_consecutive_threshold": 5,
}
SECRET_PARAM = "ai_generation.worker_secret"  # noqa: S105 (the parameter name, not a secret)


def get_setting(env, key):
    """The parameter ``key`` typed like its default (int settings come back as int)."""
    default = PARAM_DEFAULTS[key]
    raw = env["ir.config_parameter"].sudo().get_param(key)
    if raw in (None, False, ""):
        return default
    return int(raw) if isinstance(default, int) else raw


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    ai_amqp_url = fields.Char("RabbitMQ URL", config_parameter="ai_generation.amqp_url", default=DEFAULT_URL)
    ai_worker_secret = fields.Char(
        "Worker secret",
        config_parameter=SECRET_PARAM,
        help="Workers send it as 'Authorization: Bearer <secret>' on every callback.",
    )
    ai_rate_limit_per_minute = fields.Integer(
        "Requests per user per minute", config_parameter="ai_generation.rate_limit_per_minute", default=30
    )
    ai_deadline_seconds = fields.Integer(
        "Request deadline (seconds)", config_parameter="ai_generation.deadline_seconds", default=900
    )
    ai_max_prompt_chars = fields.Integer(
        "Maximum prompt length", config_parameter="ai_generation.max_prompt_chars", default=20000
    )
    ai_max_params_bytes = fields.Integer(
        "Maximum params size (bytes)", config_parameter="ai_generation.max_params_bytes", default=16384
    )
    ai_alertmanager_url = fields.Char(
        "Alertmanager URL",
        config_parameter="ai_generation.alertmanager_url",
        help="Base URL, e.g. http://alertmanager:9093; alerts go to <url>/api/v2/alerts. Empty: no alerts.",
    )
    ai_alert_window_minutes = fields.Integer(
        "Alert window (minutes)", config_parameter="ai_generation.alert_window_minutes", default=10
    )
    ai_alert_rate_threshold = fields.Integer(
        "Failures in the window that raise an alert",
        config_parameter="ai_generation.alert_rate_threshold",
        default=5,
    )
    ai_alert_consecutive_threshold = fields.Integer(
        "Consecutive failures of a backend that raise an alert",
        config_parameter="ai_generation.alert_consecutive_threshold",
        default=5,
    )
    ai_invalid_free_warnings = fields.Integer(related="company_id.ai_invalid_free_warnings", readonly=False)
    ai_invalid_window_hours = fields.Integer(related="company_id.ai_invalid_window_hours", readonly=False)
    ai_invalid_charge_mode = fields.Selection(related="company_id.ai_invalid_charge_mode", readonly=False)
    ai_invalid_fixed_credits = fields.Integer(related="company_id.ai_invalid_fixed_credits", readonly=False)
    ai_invalid_percent = fields.Integer(related="company_id.ai_invalid_percent", readonly=False)

    @api.model
    def _ai_setting(self, key):
        return get_setting(self.env, key)
