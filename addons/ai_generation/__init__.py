import secrets

from . import controllers, demo, models, report, wizard


def post_init_hook(env):
    """A random worker secret at install: no deployment runs with a known default."""
    params = env["ir.config_parameter"].sudo()
    if not params.get_param(models.res_config_settings.SECRET_PARAM):
        params.set_param(models.res_config_settings.SECRET_PARAM, secrets.token_urlsafe(32))
