# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""What a create reads under the user's lock does not grow with the user's history.

The rate limit counts the user's creates of the last minute on every create, while the user's other
creates wait for the lock: PostgreSQL's own account of the rows that count read (EXPLAIN ANALYZE) must
stay within the limit, however many older requests the user has (bench/create_history.py measures
what it costs a user with a long history).
"""

import importlib.util

from odoo.modules.module import get_module_path
from odoo.tests import tagged

from ..models.ai_generation_request import (
    CREATES_LOCK_SQL,
    RATE_WINDOW_SECONDS,
    USER_CREATED_INDEX,
    USER_LOCK_KEY,
)
from ..pure.validation import GenerationInput
from .common import TEXT_MODEL, AiGenerationCase

GEN = GenerationInput(backend="external", model=TEXT_MODEL, task="text", prompt="a haiku", params={})
HISTORY = 5000
LIMIT = 30
OLD_REQUESTS_SQL = """
INSERT INTO ai_generation_request (user_id, company_id, uuid, backend, ai_model, task, prompt, state,
       dispatch_state, price, credits_charged, attempt, dispatch_attempts, deadline, create_date)
SELECT u.id, u.company_id, gen_random_uuid()::text, 'external', %(model)s, 'text', 'an old prompt',
       'succeeded', 'sent', 0, 0, 1, 1, now() AT TIME ZONE 'UTC',
       (now() AT TIME ZONE 'UTC') - interval '1 day' - g * interval '10 seconds'
  FROM res_users u CROSS JOIN generate_series(1, %(count)s) g
 WHERE u.id = %(user_id)s
"""


def rows_read(plan, table):
    """Rows the scans of ``table`` in an EXPLAIN (ANALYZE, FORMAT JSON) plan returned or threw away."""
    read = 0
    if plan.get("Relation Name") == table:
        kept = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        read += (kept + plan.get("Rows Removed by Index Recheck", 0)) * plan.get("Actual Loops", 1)
    for child in plan.get("Plans", []):
        read += rows_read(child, table)
    return read


@tagged("at_install", "-post_install", "ai_generation")
class TestCreateScan(AiGenerationCase):
    def test_the_rate_limit_reads_the_last_minute_not_the_users_history(self):
        cr = self.env.cr
        cr.execute(OLD_REQUESTS_SQL, {"model": TEXT_MODEL, "count": HISTORY, "user_id": self.alice.id})
        cr.execute("ANALYZE ai_generation_request")
        self.grant(self.alice, 100)
        Request = self.env["ai.generation.request"]
        for _ in range(3):
            self.assertEqual(Request._api_create(self.alice, GEN)[0], 202)
        self.env.flush_all()
        # the statement after the lock, as a create sends it with a limit of 30 a minute
        counted = CREATES_LOCK_SQL.split(";", 1)[1]
        params = {"lock_key": USER_LOCK_KEY, "user_id": self.alice.id, "window": RATE_WINDOW_SECONDS}
        cr.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {counted}", {**params, "key": None, "limit": LIMIT})
        (plan,) = cr.fetchone()[0]
        read = rows_read(plan["Plan"], "ai_generation_request")
        self.assertGreaterEqual(read, 3)  # the window's creates were counted
        self.assertLessEqual(read, LIMIT)  # and none of the 5000 older requests was read

    def test_the_owner_is_indexed_with_the_time_and_the_upgrade_drops_what_became_redundant(self):
        cr = self.env.cr
        # as 18.0.1.1.0 left them: user_id and uuid indexed by their fields (uuid also by its UNIQUE)
        for column in ("user_id", "uuid"):
            cr.execute(
                f"CREATE INDEX IF NOT EXISTS ai_generation_request__{column}_index"
                f" ON ai_generation_request ({column})"
            )
        path = f"{get_module_path('ai_generation')}/migrations/18.0.1.2.0/post-migrate.py"
        spec = importlib.util.spec_from_file_location("ai_generation_migration_18_0_1_2_0", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.migrate(cr, "18.0.1.1.0")
        module.migrate(cr, "18.0.1.1.0")  # twice: nothing left to drop is no error
        cr.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ai_generation_request'")
        indexes = dict(cr.fetchall())
        self.assertNotIn("ai_generation_request__user_id_index", indexes)
        self.assertNotIn("ai_generation_request__uuid_index", indexes)
        self.assertIn("(user_id, create_date)", indexes[USER_CREATED_INDEX])
        self.assertIn("UNIQUE", indexes["ai_generation_request_uuid_unique"])  # the lookups by uuid
