# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from odoo import api, models

from ..pure import worker_secret
from .res_config_settings import SECRET_PARAM


class IrConfigParameter(models.Model):
    """The worker secret is kept hashed whoever sets it (settings, ``set_param``, a deployment script).

    Hashing here, under every ``create``/``write`` of the parameter, is what lets each place that sets
    the secret go on passing the plain value; the plain value never reaches the database.
    """

    _inherit = "ir.config_parameter"

    @api.model_create_multi
    def create(self, vals_list):
        return super().create([self._ai_hashed_secret_vals(vals) for vals in vals_list])

    def write(self, vals):
        if not {"key", "value"} & set(vals):
            return super().write(vals)
        secret_params = self.filtered(lambda p: vals.get("key", p.key) == SECRET_PARAM)
        if not secret_params:
            return super().write(vals)
        super(IrConfigParameter, self - secret_params).write(vals)
        for param in secret_params:
            value = vals.get("value", param.value)
            if not worker_secret.is_hashed(value) and worker_secret.matches(value, param.value):
                # the same secret again (a deployment script run at each start): keep its digest
                value = param.value
            super(IrConfigParameter, param).write(dict(vals, value=worker_secret.stored_form(value)))
        return True

    @api.model
    def _ai_hashed_secret_vals(self, vals):
        if vals.get("key") == SECRET_PARAM and vals.get("value"):
            return dict(vals, value=worker_secret.stored_form(vals["value"]))
        return vals
