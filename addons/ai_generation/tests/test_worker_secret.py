# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The worker secret is stored hashed, whoever sets it, and the callbacks check it against the hash."""

import importlib.util
from types import SimpleNamespace

from odoo.exceptions import ValidationError
from odoo.modules.module import get_module_path
from odoo.tests import Form, tagged

from ..controllers.callbacks import _authenticated_worker
from ..models.res_config_settings import SECRET_PARAM
from ..pure import worker_secret
from .common import AiGenerationCase

NEW_SECRET = "a-new-worker-secret-of-forty-characters!"


def bearer(token):
    return SimpleNamespace(headers={"Authorization": f"Bearer {token}"})


@tagged("at_install", "-post_install", "ai_generation")
class TestWorkerSecret(AiGenerationCase):
    def setUp(self):
        super().setUp()
        self.params = self.env["ir.config_parameter"].sudo()
        self.admin = self.env.ref("base.user_admin")

    def stored(self):
        self.env.flush_all()
        self.env.cr.execute("SELECT value FROM ir_config_parameter WHERE key = %s", (SECRET_PARAM,))
        row = self.env.cr.fetchone()
        return row and row[0]

    def test_set_param_stores_a_digest_that_opens_the_callbacks(self):
        self.params.set_param(SECRET_PARAM, NEW_SECRET)
        stored = self.stored()
        self.assertTrue(worker_secret.is_hashed(stored), stored)
        self.assertNotIn(NEW_SECRET, stored)
        self.assertEqual(self.params.get_param(SECRET_PARAM), stored)
        self.assertTrue(_authenticated_worker(self.env, bearer(NEW_SECRET)))
        for token in (stored, NEW_SECRET[:-1], "test-worker-secret-0123456789"):
            self.assertFalse(_authenticated_worker(self.env, bearer(token)), token)

    def test_every_orm_path_to_the_parameter_hashes(self):
        self.params.search([("key", "=", SECRET_PARAM)]).unlink()
        self.params.create({"key": SECRET_PARAM, "value": NEW_SECRET})
        self.assertTrue(worker_secret.matches(NEW_SECRET, self.stored()))
        other = self.params.create(
            {"key": "ai_generation.renamed_later", "value": "another-secret-" + "x" * 30}
        )
        self.params.search([("key", "=", SECRET_PARAM)]).unlink()
        other.write({"key": SECRET_PARAM})  # renamed into place: hashed as well
        self.assertTrue(worker_secret.matches("another-secret-" + "x" * 30, self.stored()))

    def test_the_same_secret_again_keeps_its_digest(self):
        """docker/odoo/configure.py sets the secret at every start: the digest stays the same."""
        self.params.set_param(SECRET_PARAM, NEW_SECRET)
        first = self.stored()
        self.params.set_param(SECRET_PARAM, NEW_SECRET)
        self.assertEqual(self.stored(), first)
        self.params.set_param(SECRET_PARAM, NEW_SECRET + "2")
        self.assertNotEqual(self.stored(), first)

    def test_the_settings_field_is_write_only(self):
        Settings = self.env["res.config.settings"].with_user(self.admin)
        defaults = Settings.default_get(["ai_worker_secret", "ai_worker_secret_set"])
        self.assertEqual(defaults.get("ai_worker_secret") or False, False)
        form = Form(Settings)
        self.assertFalse(form.ai_worker_secret)
        self.assertTrue(form.ai_worker_secret_set)
        form.ai_worker_secret = NEW_SECRET
        form.save().execute()
        self.assertTrue(worker_secret.matches(NEW_SECRET, self.stored()))
        self.assertFalse(Settings.create({}).ai_worker_secret, "nothing to read back, not even the digest")
        # saved again with the field left empty: the secret stays
        Form(Settings).save().execute()
        self.assertTrue(worker_secret.matches(NEW_SECRET, self.stored()))

    def test_the_settings_refuse_a_short_secret(self):
        with self.assertRaises(ValidationError):
            self.env["res.config.settings"].with_user(self.admin).create({"ai_worker_secret": "short"})
        self.assertTrue(worker_secret.matches("test-worker-secret-0123456789", self.stored()))

    def test_the_migration_hashes_a_plain_text_secret(self):
        """18.0.1.0.0 stored the secret as it was; the 18.0.1.1.0 post-migration script hashes it."""
        self.env.cr.execute(
            "UPDATE ir_config_parameter SET value = %s WHERE key = %s", (NEW_SECRET, SECRET_PARAM)
        )
        self.env.registry.clear_cache()
        self.env.invalidate_all()
        self.assertFalse(_authenticated_worker(self.env, bearer(NEW_SECRET)), "plain text opens nothing")
        migrate = self._migration("18.0.1.1.0", "post-migrate.py")
        migrate(self.env.cr, "18.0.1.0.0")
        self.env.invalidate_all()
        self.assertTrue(worker_secret.matches(NEW_SECRET, self.stored()))
        self.assertTrue(_authenticated_worker(self.env, bearer(NEW_SECRET)))
        digest = self.stored()
        migrate(self.env.cr, "18.0.1.0.0")  # run twice: the digest is left alone
        self.assertEqual(self.stored(), digest)

    def _migration(self, version, name):
        path = f"{get_module_path('ai_generation')}/migrations/{version}/{name}"
        spec = importlib.util.spec_from_file_location(f"ai_generation_migration_{version}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.migrate
