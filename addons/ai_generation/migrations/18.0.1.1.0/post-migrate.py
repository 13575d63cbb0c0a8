# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""18.0.1.1.0 keeps the worker secret only hashed: a plain-text secret left by 18.0.1.0.0 is hashed here."""

import logging

from odoo import SUPERUSER_ID, api
from odoo.addons.ai_generation.models.res_config_settings import SECRET_PARAM
from odoo.addons.ai_generation.pure import worker_secret

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    param = env["ir.config_parameter"].search([("key", "=", SECRET_PARAM)])
    if param and not worker_secret.is_hashed(param.value):
        param.write({"value": param.value})  # ir.config_parameter's write stores the digest
        _logger.info("ai_generation: the worker secret is now stored hashed")
