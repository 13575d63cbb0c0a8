"""The public API as a client meets it: a real Odoo with the addon, and the real nginx gateway before it.

One committed throwaway database with a user who holds an API key and plenty of credits, priced models
for the examples of docs/openapi.yaml, and a worker user (the worker group's API key, the documented
alternative to the worker secret) for the callbacks. RabbitMQ is left unreachable on purpose: accepted
requests wait in the outbox, which is all these tests need.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from devstack import gateway
from tests.support.odoo import OdooServer, free_port, json_lines, psql, require_odoo, throwaway_database

SETUP = """
import json
from odoo.tests.common import new_test_user
params = env["ir.config_parameter"]
params.set_param("ai_generation.amqp_url", {amqp_url!r})
params.set_param("ai_generation.rate_limit_per_minute", "100000")
Price = env["ai.generation.price"]
for model, credits in (("gpt-4o-mini", 1), ("gpt-image-1", 8)):  # demo data may have them already
    if not Price.search([("backend", "=", "external"), ("model_name", "=", model)]):
        Price.create({{"backend": "external", "model_name": model, "credits": credits}})
user = new_test_user(env, login="api_client", groups="base.group_user")
env["ai.credit.account"]._open_for_user(user)._grant(1000000, "test grant")
key = env["res.users.apikeys"].with_user(user).sudo()._generate(None, "pwa", None)
worker = new_test_user(
    env, login="api_worker", groups="base.group_user,ai_generation.group_ai_generation_worker"
)
worker_key = env["res.users.apikeys"].with_user(worker).sudo()._generate(None, "worker", None)
env.cr.commit()
print(json.dumps({{"api_key": key, "worker_key": worker_key, "user_id": user.id}}))
"""


@dataclass
class ApiStack:
    db: str
    odoo: OdooServer
    gateway: gateway.Gateway
    api_key: str
    worker_key: str
    user_id: int

    def targets(self) -> dict[str, str]:
        """Where a client reaches the API: Odoo itself, and through the gateway."""
        return {"direct": self.odoo.url, "gateway": self.gateway.url}

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def stored_requests(self) -> int:
        return int(
            psql(self.db, f"SELECT count(*) FROM ai_generation_request WHERE user_id = {self.user_id}")[0][0]
        )


@contextmanager
def api_stack() -> Iterator[ApiStack]:
    odoo = require_odoo()
    if gateway.nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light; ./run-tests does it as root)")
    with throwaway_database(odoo, ["ai_generation"], "aigen_api") as db:
        unreachable = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
        found = json_lines(odoo.shell(db, SETUP.format(amqp_url=unreachable)))[-1]
        with OdooServer(odoo, db) as server:
            # the real template; rate and burst high enough that the tests' own pace is never a 429
            gw = gateway.Gateway(odoo=f"127.0.0.1:{server.port}", rate="2000r/s", burst=2000).start()
            try:
                yield ApiStack(db, server, gw, found["api_key"], found["worker_key"], found["user_id"])
            finally:
                gw.stop()
