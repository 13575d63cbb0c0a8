# Sets the ai_generation addon's connection settings from the environment.
# Run inside `odoo shell` (it provides `env`): docker compose's odoo-init service and ./run-stack both do
#   odoo shell -d DB --no-http < docker/odoo/configure.py
# Reads AIGEN_AMQP_URL, AIGEN_WORKER_SECRET (or AIGEN_WORKER_SECRET_FILE) and AIGEN_ALERTMANAGER_URL;
# a variable that is not set leaves its setting as it is (Settings > AI Generation in Odoo shows them).
import os

from odoo.addons.ai_generation.pure.worker_secret import matches  # the secret is stored hashed

PARAMS = {
    "AIGEN_AMQP_URL": "ai_generation.amqp_url",
    "AIGEN_WORKER_SECRET": "ai_generation.worker_secret",
    "AIGEN_ALERTMANAGER_URL": "ai_generation.alertmanager_url",
}

values = {name: os.environ.get(name) for name in PARAMS}
secret_file = os.environ.get("AIGEN_WORKER_SECRET_FILE")
if not values["AIGEN_WORKER_SECRET"] and secret_file:
    with open(secret_file, encoding="utf-8") as handle:
        values["AIGEN_WORKER_SECRET"] = handle.read().strip()

config = env["ir.config_parameter"].sudo()  # noqa: F821 (defined by odoo shell)
changed = []
for name, key in PARAMS.items():
    current = config.get_param(key)
    if values[name] is not None and current != values[name] and not matches(values[name], current):
        config.set_param(key, values[name])
        changed.append(key)
env.cr.commit()  # noqa: F821
print("ai_generation settings updated: " + (", ".join(changed) or "none"))
