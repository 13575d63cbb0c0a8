# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""API keys are verified once per process (models/res_users_apikeys.py): a repeat skips pbkdf2, and a
key removed, expired or of a deactivated user is refused at once, as Odoo refuses it."""

from datetime import timedelta
from unittest import mock

from odoo import fields
from odoo.addons.base.models import res_users
from odoo.tests import tagged

from ..models import res_users_apikeys
from .common import AiGenerationCase

ADDON = "ai_generation"


class CountingContext:
    """Odoo's API key CryptContext, counting its verifications (each one is pbkdf2, 6,000 rounds)."""

    def __init__(self):
        self.calls = 0

    def verify(self, key, stored_hash):
        self.calls += 1
        return res_users.KEY_CRYPT_CONTEXT.verify(key, stored_hash)


@tagged("at_install", "-post_install", ADDON)
class TestApiKeys(AiGenerationCase):
    def setUp(self):
        super().setUp()
        self.Keys = self.env["res.users.apikeys"].sudo()
        self.key = (
            self.env["res.users.apikeys"].with_user(self.alice).sudo()._generate(None, "api-keys test", None)
        )

    def check(self, key=None, scope="rpc"):
        """(user id or None, how many pbkdf2 verifications the check ran)."""
        counting = CountingContext()
        with mock.patch.object(res_users_apikeys, "KEY_CRYPT_CONTEXT", counting):
            user_id = self.Keys._check_credentials(scope=scope, key=key or self.key)
        return user_id, counting.calls

    def test_a_key_verified_once_is_not_hashed_again(self):
        self.assertEqual(self.check(), (self.alice.id, 1))
        self.assertEqual(self.check(), (self.alice.id, 0))
        self.assertEqual(self.check(), (self.alice.id, 0))

    def test_a_wrong_key_always_pays_the_hash_and_is_refused(self):
        self.check()
        wrong = self.key[:8] + ("0" if self.key[8] != "0" else "1") + self.key[9:]  # same index, other key
        for _ in range(2):
            self.assertEqual(self.check(wrong), (None, 1))

    def test_a_removed_key_is_refused_at_once(self):
        self.check()
        self.Keys.search([("user_id", "=", self.alice.id), ("name", "=", "api-keys test")]).unlink()
        self.assertEqual(self.check(), (None, 0))

    def test_an_expired_key_is_refused_at_once(self):
        self.check()
        self.env.cr.execute(
            "UPDATE res_users_apikeys SET expiration_date = %s WHERE user_id = %s",
            (fields.Datetime.now() - timedelta(minutes=1), self.alice.id),
        )
        self.assertEqual(self.check(), (None, 0))

    def test_the_key_of_a_deactivated_user_is_refused_at_once(self):
        self.check()
        self.alice.active = False
        self.env.flush_all()
        self.assertEqual(self.check(), (None, 0))

    def test_a_key_outside_its_scope_is_refused(self):
        scoped = (
            self.env["res.users.apikeys"]
            .with_user(self.alice)
            .sudo()
            ._generate("other-scope", "scoped", None)
        )
        self.assertEqual(self.check(scoped, scope="other-scope"), (self.alice.id, 1))
        self.assertEqual(self.check(scoped, scope="rpc"), (None, 0))

    def test_a_totp_device_key_stays_in_its_scope_and_table(self):
        # auth_totp.device inherits the override: its own table, its own scope
        Device = self.env["auth_totp.device"].sudo()
        device_key = Device.with_user(self.alice).sudo()._generate("browser", "device", None)
        api_key = self.env["res.users.apikeys"].with_user(self.alice).sudo()._generate(None, "api", None)
        for _ in range(2):  # the second time from what this process remembered
            self.assertEqual(Device._check_credentials(scope="browser", key=device_key), self.alice.id)
            self.assertIsNone(Device._check_credentials(scope="rpc", key=device_key))
            self.assertIsNone(
                self.env["res.users.apikeys"].sudo()._check_credentials(scope="browser", key=device_key)
            )
            self.assertIsNone(Device._check_credentials(scope="browser", key=api_key))
            self.assertEqual(
                self.env["res.users.apikeys"].sudo()._check_credentials(scope="rpc", key=api_key),
                self.alice.id,
            )
