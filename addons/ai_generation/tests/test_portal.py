# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Portal users are customers: the API, their own credits and requests; nothing of the back office."""

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import TEXT_PRICE, AiGenerationCase
from .http_common import AiGenerationHttpCase
from .test_http_api import BODY

USER_GROUP = "ai_generation.group_ai_generation_user"
BACKOFFICE_MODELS = [
    "ai.generation.alert",
    "ai.generation.event",
    "ai.generation.idempotency",
    "ai.credit.report",
    "ai.credit.operation.wizard",
]


@tagged("at_install", "-post_install", "ai_generation")
class TestPortalRights(AiGenerationCase):
    def setUp(self):
        super().setUp()
        self.dana = new_test_user(self.env, login="ai_portal_dana", groups="base.group_portal", name="Dana")
        self.grant(self.dana, 20)
        self.grant(self.alice, 20)
        self.dana_request = self.new_request(self.dana)
        self.alice_request = self.new_request(self.alice)

    def test_portal_users_are_ai_users_and_stay_portal(self):
        self.assertTrue(self.dana.has_group(USER_GROUP))
        self.assertTrue(self.dana.share)
        self.assertFalse(self.dana._is_internal())
        self.assertFalse(self.dana.has_group("ai_generation.group_ai_generation_manager"))

    def test_portal_users_read_only_their_own_requests_credits_and_lines(self):
        Request = self.env["ai.generation.request"].with_user(self.dana)
        self.assertEqual(Request.search([]), self.dana_request)
        self.assertEqual(self.dana_request.with_user(self.dana).price, TEXT_PRICE)
        with self.assertRaises(AccessError):
            self.alice_request.with_user(self.dana).read(["prompt"])
        accounts = self.env["ai.credit.account"].with_user(self.dana).search([])
        self.assertEqual(accounts.user_id, self.dana)
        lines = self.env["ai.credit.ledger.line"].with_user(self.dana).search([])
        self.assertEqual(set(lines.mapped("user_id")), {self.dana})
        self.assertTrue(self.env["ai.generation.price"].with_user(self.dana).search([]))

    def test_portal_users_reach_nothing_of_the_back_office(self):
        for model in BACKOFFICE_MODELS:
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.dana).search([])
        with self.assertRaises(AccessError):
            self.dana_request.with_user(self.dana).read(["error_detail"])
        with self.assertRaises(AccessError):
            self.dana_request.with_user(self.dana).action_cancel()
        with self.assertRaises(AccessError):
            self.dana_request.with_user(self.dana).write({"price": 0})
        with self.assertRaises(AccessError):
            self.env["ai.generation.price"].with_user(self.dana).create(
                {"backend": "external", "model_name": "free", "credits": 0}
            )
        with self.assertRaises(AccessError):  # not even the menus can be read
            self.env["ir.ui.menu"].with_user(self.dana).search([])
        # and by their groups, none of the addon's menus would show
        visible = self.env["ir.ui.menu"].with_user(self.dana).sudo()._visible_menu_ids()
        root = self.env.ref("ai_generation.menu_ai_generation_root")
        self.assertNotIn(root.id, visible)
        self.assertIn(root.id, self.env["ir.ui.menu"].with_user(self.alice)._visible_menu_ids())

    def test_portal_users_are_told_on_their_own_channel(self):
        self.callback("result", self.dana_request, output="for dana")
        events = [
            u["event"] for u in self.bus_updates(self.dana) if u["request_id"] == self.dana_request.uuid
        ]
        self.assertEqual(events, ["accepted", "succeeded"])


@tagged("at_install", "-post_install", "ai_generation")
class TestPortalHttp(AiGenerationHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dana = new_test_user(cls.env, login="ai_portal_dana", groups="base.group_portal", name="Dana")
        cls.dana_key = cls.env["res.users.apikeys"].with_user(cls.dana).sudo()._generate(None, "pwa", None)

    def setUp(self):
        super().setUp()
        self.grant(self.dana, 10)

    def test_a_portal_user_uses_the_api_with_a_session(self):
        self.authenticate("ai_portal_dana", "ai_portal_dana")
        status, accepted = self.call("POST", "/api/v1/generations", BODY)
        self.assertEqual(status, 202)
        status, one = self.call("GET", accepted["status_url"])
        self.assertEqual((status, one["status"]), (200, "queued"))
        status, listing = self.call("GET", "/api/v1/generations")
        self.assertEqual([i["request_id"] for i in listing["items"]], [accepted["request_id"]])
        status, credits = self.call("GET", "/api/v1/credits")
        self.assertEqual((status, credits["available"]), (200, 10 - TEXT_PRICE))
        status, catalogue = self.call("GET", "/api/v1/models")
        self.assertEqual((status, catalogue["credits"]["available"]), (200, 10 - TEXT_PRICE))

    def test_a_portal_user_uses_the_api_with_an_api_key(self):
        status, accepted = self.call("POST", "/api/v1/generations", BODY, token=self.dana_key)
        self.assertEqual(status, 202)
        self.assertEqual(self.call("GET", accepted["status_url"], token=self.dana_key)[0], 200)
        # someone else's key sees nothing of it
        self.assertEqual(self.call("GET", accepted["status_url"], token=self.alice_key)[0], 404)

    def test_the_back_office_sends_a_portal_user_away(self):
        self.authenticate("ai_portal_dana", "ai_portal_dana")
        response = self.url_open(
            "/odoo/action-ai_generation.ai_generation_request_action", allow_redirects=False
        )
        self.assertIn(response.status_code, (302, 303))
        self.assertNotIn("/odoo", response.headers["Location"].replace(self.base_url(), ""))

    def test_a_visitor_without_a_session_gets_json_401_everywhere(self):
        for method, path in [
            ("GET", "/api/v1/models"),
            ("GET", "/api/v1/credits"),
            ("GET", "/api/v1/generations"),
            ("POST", "/api/v1/generations"),
        ]:
            with self.subTest(path=path, method=method):
                status, error = self.call(method, path, BODY if method == "POST" else None)
                self.assertEqual((status, error["error"]["code"]), (401, "unauthorized"))
