# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
import logging

from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..pure import result_limits, worker_secret
from ..pure.amqp import DEFAULT_URL

# ir.config_parameter keys and their defaults: the one place the addon's tunables are named
PARAM_DEFAULTS = {
    "ai_generation.amqp_url": DEFAULT_URL,
    "ai_generation.rate_limit_per_minute": 30,
    "ai_generation.deadline_seconds": 900,
    "ai_generation.max_prompt_chars": 20000,
    "ai_generation.max_params_bytes": 16384,
    "ai_generation.max_result_bytes": result_limits.DEFAULT_MAX_RESULT_BYTES,
    "ai_generation.dispatch_grace_seconds": 30,
    "ai_generation.alertmanager_url": "",
    "ai_generation.alert_window_minutes": 10,
    "ai_generation.alert_rate_threshold": 5,
    "ai_generation.alert_consecutive_threshold": 5,
    "ai_generation.cors_origins": "",  # origins whose pages may call /api/v1/* (res_config_settings_cors.py)
}
_logger = logging.getLogger(__name__)
SECRET_PARAM = "ai_generation.worker_secret"  # noqa: S105 (the parameter name, not a secret)


def get_setting(env, key):
    """The parameter ``key`` typed like its default (int settings come back as int).

    An int setting that is no integer (a system parameter typed by hand) counts as its default, with a
    warning: raising here would fail every request that reads it."""
    default = PARAM_DEFAULTS[key]
    raw = env["ir.config_parameter"].sudo().get_param(key)
    if raw in (None, False, ""):
        return default
    if not isinstance(default, int):
        return raw
    try:
        return int(raw)
    except ValueError:
        _logger.warning("system parameter %s is not an integer (%r): default %s applies", key, raw, default)
        return default


SYSTEM = "base.group_system"  # the settings hold connection URLs with passwords: administrators only


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    ai_amqp_url = fields.Char(
        "RabbitMQ URL", config_parameter="ai_generation.amqp_url", default=DEFAULT_URL, groups=SYSTEM
    )
    # write-only: the parameter keeps a digest (models/ir_config_parameter.py), nothing to show back
    ai_worker_secret = fields.Char(
        "Worker secret",
        compute="_compute_ai_worker_secret",
        inverse="_inverse_ai_worker_secret",
        groups=SYSTEM,
        help="Workers send it as 'Authorization: Bearer <secret>' on every callback. Odoo keeps only a hash"
        " of it: type a new one to replace it, leave the field empty to keep the current one.",
    )
    ai_worker_secret_set = fields.Boolean(
        "Worker secret set", compute="_compute_ai_worker_secret", groups=SYSTEM
    )
    ai_rate_limit_per_minute = fields.Integer(
        "Requests per user per minute",
        config_parameter="ai_generation.rate_limit_per_minute",
        default=30,
        groups=SYSTEM,
    )
    ai_deadline_seconds = fields.Integer(
        "Request deadline (seconds)",
        config_parameter="ai_generation.deadline_seconds",
        default=900,
        groups=SYSTEM,
    )
    ai_max_prompt_chars = fields.Integer(
        "Maximum prompt length",
        config_parameter="ai_generation.max_prompt_chars",
        default=20000,
        groups=SYSTEM,
    )
    ai_max_params_bytes = fields.Integer(
        "Maximum params size (bytes)",
        config_parameter="ai_generation.max_params_bytes",
        default=16384,
        groups=SYSTEM,
    )
    ai_max_result_bytes = fields.Integer(
        "Maximum result size (bytes)",
        config_parameter="ai_generation.max_result_bytes",
        default=result_limits.DEFAULT_MAX_RESULT_BYTES,
        groups=SYSTEM,
        help="A result larger than this (text, or an image as a data: URL) is not kept: the request fails"
        " as a system error and the user is not charged.",
    )
    ai_alertmanager_url = fields.Char(
        "Alertmanager URL",
        config_parameter="ai_generation.alertmanager_url",
        groups=SYSTEM,
        help="Base URL, e.g. http://alertmanager:9093; alerts go to <url>/api/v2/alerts. Empty: no alerts.",
    )
    ai_alert_window_minutes = fields.Integer(
        "Alert window (minutes)",
        config_parameter="ai_generation.alert_window_minutes",
        default=10,
        groups=SYSTEM,
    )
    ai_alert_rate_threshold = fields.Integer(
        "Failures in the window that raise an alert",
        config_parameter="ai_generation.alert_rate_threshold",
        default=5,
        groups=SYSTEM,
    )
    ai_alert_consecutive_threshold = fields.Integer(
        "Consecutive failures of a backend that raise an alert",
        config_parameter="ai_generation.alert_consecutive_threshold",
        default=5,
        groups=SYSTEM,
    )
    ai_invalid_free_warnings = fields.Integer(
        related="company_id.ai_invalid_free_warnings", readonly=False, groups=SYSTEM
    )
    ai_invalid_window_hours = fields.Integer(
        related="company_id.ai_invalid_window_hours", readonly=False, groups=SYSTEM
    )
    ai_invalid_charge_mode = fields.Selection(
        related="company_id.ai_invalid_charge_mode", readonly=False, groups=SYSTEM
    )
    ai_invalid_fixed_credits = fields.Integer(
        related="company_id.ai_invalid_fixed_credits", readonly=False, groups=SYSTEM
    )
    ai_invalid_percent = fields.Integer(
        related="company_id.ai_invalid_percent", readonly=False, groups=SYSTEM
    )

    @api.model
    def default_get(self, fields_list):
        # res.config.settings answers config parameters read with sudo (and get_values) and checks neither
        # the model's access rights nor field groups, while any logged-in user may call default_get over
        # RPC: nothing of a field this user may not read goes in or out
        values = super().default_get([name for name in fields_list if self._may_read(name)])
        if "ai_max_result_bytes" in values:
            # the size that applies: Odoo shows a parameter that is no integer as 0, which the check
            # below then refused on every save of the whole Settings screen
            setting = get_setting(self.env, "ai_generation.max_result_bytes")
            values["ai_max_result_bytes"] = result_limits.effective_max_result_bytes(setting)
        if "ai_worker_secret_set" in fields_list and self._may_read("ai_worker_secret_set"):
            values["ai_worker_secret_set"] = bool(
                self.env["ir.config_parameter"].sudo().get_param(SECRET_PARAM)
            )
        return {name: value for name, value in values.items() if self._may_read(name)}

    @api.model
    def _may_read(self, name):
        return name not in self._fields or self._fields[name].is_accessible(self.env)

    def onchange(self, values, field_names, fields_spec):
        # the same for a new settings record: its fields would be computed and answered without any check
        allowed = {name: spec for name, spec in fields_spec.items() if self._may_read(name)}
        return super().onchange(values, field_names, allowed)

    @api.constrains("ai_max_result_bytes")
    def _check_ai_max_result_bytes(self):
        low, high = result_limits.MIN_MAX_RESULT_BYTES, result_limits.MAX_MAX_RESULT_BYTES
        for settings in self:
            if not low <= settings.ai_max_result_bytes <= high:
                raise ValidationError(
                    _("The maximum result size is between %(low)s and %(high)s bytes.", low=low, high=high)
                )

    def _compute_ai_worker_secret(self):
        is_set = bool(self.env["ir.config_parameter"].sudo().get_param(SECRET_PARAM))
        for settings in self:
            settings.ai_worker_secret = False
            settings.ai_worker_secret_set = is_set

    def _inverse_ai_worker_secret(self):
        for settings in self:
            secret = (settings.ai_worker_secret or "").strip()
            if not secret:
                continue  # left empty: the current secret stays
            if len(secret) < worker_secret.MIN_LENGTH:
                raise ValidationError(
                    _("The worker secret needs at least %s random characters.", worker_secret.MIN_LENGTH)
                )
            self.env["ir.config_parameter"].sudo().set_param(SECRET_PARAM, secret)
