"""Python snippets run inside ``odoo-bin shell`` to prepare a throwaway database for the tests."""

from tests.support.odoo import free_port

SETUP = """
import json
from odoo.tests.common import new_test_user
params = env["ir.config_parameter"]
params.set_param("ai_generation.amqp_url", {amqp_url!r})
params.set_param("ai_generation.rate_limit_per_minute", "1000")
params.set_param("ai_generation.dispatch_grace_seconds", "0")
params.set_param("ai_generation.worker_secret", {secret!r})
env["ai.generation.price"].create({{"backend": "external", "model_name": "gpt-test", "credits": {price}}})
user = new_test_user(env, login="ai_alice", groups="base.group_user")
env["ai.credit.account"]._open_for_user(user)._grant({credits}, "test grant")
key = env["res.users.apikeys"].with_user(user).sudo()._generate(None, "pwa", None)
env.cr.commit()
print(json.dumps({{"api_key": key, "user_id": user.id}}))
"""

ROLLED_BACK_REQUEST = """
import json
from odoo.addons.ai_generation.pure.validation import GenerationInput
user = env["res.users"].search([("login", "=", "ai_alice")])
gen = GenerationInput("external", "gpt-test", "text", "rolled back", {})
status, body, _ = env["ai.generation.request"]._api_create(user, gen)
print(json.dumps({"created": body["request_id"]}))
env.cr.rollback()
env.cr.commit()  # a later commit must not publish what was rolled back
"""


def setup_without_broker(price, credits, secret="s" * 32):
    """SETUP with a broker URL that points nowhere: for tests about the API, not about dispatch."""
    amqp_url = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    return SETUP.format(amqp_url=amqp_url, secret=secret, price=price, credits=credits)
