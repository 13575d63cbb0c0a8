# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Shared set-up of the addon's tests: users, prices, credits, and the checks every scenario ends with."""

import json
import socket
import uuid

from odoo.tests import TransactionCase, new_test_user

from ..pure import contracts
from ..pure.validation import GenerationInput

TEXT_MODEL = "gpt-test"
IMAGE_MODEL = "sd-test"
TEXT_PRICE = 3
IMAGE_PRICE = 5


def closed_port():
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def event_id():
    return f"evt-{uuid.uuid4()}"


def price_cache_entries(env):
    """How many entries ai.generation.price holds in the registry's shared ormcache (keys start with
    the model's name, odoo/tools/cache.py's ``ormcache.lru``)."""
    cache = env.registry._Registry__caches["default"]
    return sum(1 for key in list(cache.d) if key[0] == "ai.generation.price")


class AiGenerationMixin:
    """Shared set-up and checks; ``cls._setup_ai_generation()`` in setUpClass (see AiGenerationCase)."""

    @classmethod
    def _setup_ai_generation(cls):
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.alice = new_test_user(cls.env, login="ai_alice", groups="base.group_user", name="Alice")
        cls.bob = new_test_user(cls.env, login="ai_bob", groups="base.group_user", name="Bob")
        cls.manager = new_test_user(
            cls.env,
            login="ai_manager",
            groups="base.group_user,ai_generation.group_ai_generation_manager",
            name="Manager",
        )
        Price = cls.env["ai.generation.price"]
        Price.search([]).unlink()
        Price.create({"backend": "external", "model_name": TEXT_MODEL, "credits": TEXT_PRICE})
        Price.create({"backend": "internal", "model_name": IMAGE_MODEL, "credits": IMAGE_PRICE})
        params = cls.env["ir.config_parameter"].sudo()
        # nothing listens there: no test publishes to a broker by accident
        params.set_param("ai_generation.amqp_url", f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F")
        params.set_param("ai_generation.rate_limit_per_minute", "1000")
        params.set_param("ai_generation.worker_secret", "test-worker-secret-0123456789")
        params.set_param("ai_generation.alertmanager_url", "")
        company = cls.env.company
        company.write(
            {
                "ai_invalid_free_warnings": 2,
                "ai_invalid_window_hours": 24,
                "ai_invalid_charge_mode": "full",
            }
        )

    # ------------------------------------------------------------------ helpers
    def account(self, user):
        return self.env["ai.credit.account"].sudo()._open_for_user(user)

    def grant(self, user, credits):
        return self.account(user)._grant(credits, "test grant")

    def new_request(
        self, user, backend="external", model=TEXT_MODEL, task="text", prompt="a haiku", params=None
    ):
        gen = GenerationInput(backend=backend, model=model, task=task, prompt=prompt, params=params or {})
        status, body, _replayed = self.env["ai.generation.request"]._api_create(user, gen)
        self.assertEqual(status, 202)
        return self.env["ai.generation.request"].sudo().search([("uuid", "=", body["request_id"])])

    def callback(self, kind, request, **payload):
        payload.setdefault("generation_request_id", request.uuid)
        if kind != "notify":
            payload.setdefault("event_id", event_id())
        return self.env["ai.generation.request"].sudo()._handle_callback(kind, payload)

    def failure_payload(self, error_type, attempt=1, error_code="http_400"):
        side = contracts.error_type_info(error_type)["side"]
        return {
            "error_type": error_type,
            "is_system_error": side == "system",
            "is_user_error": side == "user",
            "error_code": error_code,
            "detail": "test detail",
            "backend": "external",
            "attempt": attempt,
            "occurred_at": "2026-11-24T10:00:00Z",
        }

    def lines(self, request):
        return self.env["ai.credit.ledger.line"].sudo().search([("request_id", "=", request.id)], order="id")

    def assertLedgerInvariant(self):
        """Every account's balance and held equal the sums of its lines."""
        self.assertEqual(self.env["ai.credit.account"].sudo()._check_invariant(), [])

    def assertBalance(self, user, balance, held):
        account = self.account(user)
        self.assertEqual((account.balance, account.held), (balance, held))

    def bus_updates(self, user):
        """The ai_generation/update payloads sent to ``user`` in this transaction, oldest first."""
        self.env.cr.precommit.run()
        channel = json.dumps([self.env.cr.dbname, "res.partner", user.partner_id.id], separators=(",", ":"))
        rows = self.env["bus.bus"].sudo().search([("channel", "=", channel)], order="id")
        messages = [json.loads(row.message) for row in rows]
        return [m["payload"] for m in messages if m["type"] == "ai_generation/update"]

    def assertValid(self, schema_name, instance):
        errors = [e.message for e in contracts.validator(schema_name).iter_errors(instance)]
        self.assertEqual(errors, [], f"{schema_name}: {instance}")


class AiGenerationCase(AiGenerationMixin, TransactionCase):
    """A TransactionCase with the shared users, prices and settings in place."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_ai_generation()
