# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""The UI: every action's views load for the groups that reach them, the reports add up to the ledger,
the credit wizard posts through the account, and the demo data shows every state with a sound ledger."""

import ast
from collections import Counter

from lxml import etree
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, tagged

from .common import IMAGE_MODEL, AiGenerationCase

USER_ACTIONS = (
    "ai_generation.ai_generation_request_action_my",
    "ai_generation.ai_credit_account_action",
    "ai_generation.ai_credit_ledger_line_action",
)
MANAGER_ACTIONS = (
    *USER_ACTIONS,
    "ai_generation.ai_generation_request_action",
    "ai_generation.ai_generation_request_action_failures",
    "ai_generation.ai_credit_report_action",
    "ai_generation.ai_generation_alert_action",
    "ai_generation.ai_generation_price_action",
)
ROOT_TAG = {"list": "list", "form": "form", "pivot": "pivot", "graph": "graph", "search": "search"}
DEMO_STATES = {"queued", "dispatched", "running", "succeeded", "failed", "cancelled"}


@tagged("post_install", "-at_install")
class TestViews(AiGenerationCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = cls.env.ref("base.user_admin")

    # ------------------------------------------------------------------ helpers
    def views_of(self, xmlid, user):
        """get_views of every view of the action, as ``user``: {view type: parsed arch}."""
        action = self.env.ref(xmlid)
        Model = self.env[action.res_model].with_user(user)
        explicit = {v.view_mode: v.view_id.id for v in action.view_ids}
        if action.view_id:
            explicit.setdefault(action.view_id.type, action.view_id.id)
        modes = action.view_mode.split(",")
        views = [(explicit.get(mode, False), mode) for mode in modes]
        views.append((action.search_view_id.id or False, "search"))
        result = Model.get_views(views, {"action_id": action.id})
        archs = {mode: etree.fromstring(result["views"][mode]["arch"]) for mode in [*modes, "search"]}
        for mode, arch in archs.items():
            self.assertEqual(arch.tag, ROOT_TAG[mode], f"{xmlid} {mode}")
        return archs

    def groupbys(self, arch):
        """The group-bys of a graph or pivot arch, rows first: ['finished_at:day', 'error_type']."""
        rows = [f for f in arch.iter("field") if f.get("type") in (None, "row", "col")]
        return [f"{f.get('name')}:{f.get('interval')}" if f.get("interval") else f.get("name") for f in rows]

    def measures(self, arch):
        return [f.get("name") for f in arch.iter("field") if f.get("type") == "measure"]

    def fail_with(self, request, error_type):
        self.callback("failure", request, **self.failure_payload(error_type))

    # ------------------------------------------------------------------ views load for their groups
    def test_every_action_loads_for_its_group(self):
        for xmlid in MANAGER_ACTIONS:
            with self.subTest(action=xmlid, user="manager"):
                self.views_of(xmlid, self.manager)
        for xmlid in USER_ACTIONS:
            with self.subTest(action=xmlid, user="user"):
                self.views_of(xmlid, self.alice)
        # res.config.settings is for administrators (base.group_system), like every settings page
        self.views_of("ai_generation.res_config_settings_action", self.admin)

    def test_user_form_hides_manager_parts(self):
        form = self.views_of("ai_generation.ai_generation_request_action_my", self.alice)["form"]
        names = {f.get("name") for f in form.iter("field")}
        self.assertNotIn("error_detail", names)
        self.assertNotIn("event_ids", names)
        self.assertFalse(form.xpath("//button[@name='action_cancel']"))
        manager_form = self.views_of("ai_generation.ai_generation_request_action", self.manager)["form"]
        self.assertTrue(manager_form.xpath("//field[@name='error_detail']"))
        self.assertTrue(manager_form.xpath("//button[@name='action_cancel']"))

    def test_menus_by_group(self):
        Menu = self.env["ir.ui.menu"]

        def visible(user):
            ids = Menu.with_user(user)._visible_menu_ids()
            return {xmlid for xmlid, menu in self.menus.items() if menu.id in ids}

        self.menus = {
            name: self.env.ref(f"ai_generation.{name}")
            for name in (
                "menu_ai_generation_root",
                "menu_ai_generation_request_my",
                "menu_ai_generation_request_all",
                "menu_ai_credit_account",
                "menu_ai_credit_ledger_line",
                "menu_ai_generation_failures",
                "menu_ai_credit_report",
                "menu_ai_generation_settings",
                "menu_ai_generation_price",
            )
        }
        user_menus = {
            "menu_ai_generation_root",
            "menu_ai_generation_request_my",
            "menu_ai_credit_account",
            "menu_ai_credit_ledger_line",
        }
        self.assertEqual(visible(self.alice), user_menus)
        self.assertEqual(visible(self.manager), set(self.menus) - {"menu_ai_generation_settings"})
        self.assertEqual(visible(self.admin), set(self.menus))

    def test_settings_page_exposes_every_setting(self):
        form = self.views_of("ai_generation.res_config_settings_action", self.admin)["form"]
        app = form.xpath("//app[@name='ai_generation']")
        self.assertTrue(app)
        shown = {f.get("name") for f in app[0].iter("field")}
        defined = {name for name in self.env["res.config.settings"]._fields if name.startswith("ai_")}
        self.assertEqual(defined - shown, set())
        secret = app[0].xpath(".//field[@name='ai_worker_secret']")[0]
        self.assertEqual(secret.get("password"), "True")

    def test_settings_page_saves(self):
        settings = Form(self.env["res.config.settings"].with_user(self.admin))
        settings.ai_rate_limit_per_minute = 12
        settings.ai_invalid_charge_mode = "percent"
        settings.ai_invalid_percent = 25
        settings.save().execute()
        params = self.env["ir.config_parameter"].sudo()
        self.assertEqual(params.get_param("ai_generation.rate_limit_per_minute"), "12")
        self.assertEqual(self.env.company.ai_invalid_charge_mode, "percent")
        self.assertEqual(self.env.company.ai_invalid_percent, 25)

    # ------------------------------------------------------------------ reports add up
    def test_failures_graph_counts_by_day_and_error_type(self):
        self.grant(self.alice, 100)
        for error_type in ("provider_unavailable", "provider_unavailable", "invalid_input", "pod_error"):
            self.fail_with(self.new_request(self.alice), error_type)
        self.callback("result", self.new_request(self.alice), output="ok")
        archs = self.views_of("ai_generation.ai_generation_request_action_failures", self.manager)
        action = self.env.ref("ai_generation.ai_generation_request_action_failures")
        domain = [("user_id", "=", self.alice.id), *ast.literal_eval(action.domain)]
        groupby = self.groupbys(archs["graph"])
        self.assertEqual(groupby, ["finished_at:day", "error_type"])
        self.assertEqual(archs["graph"].get("stacked"), "1")
        groups = self.env["ai.generation.request"].read_group(domain, ["__count"], groupby, lazy=False)
        counts = Counter({g["error_type"]: g["__count"] for g in groups})
        self.assertEqual(counts, Counter(provider_unavailable=2, invalid_input=1, pod_error=1))
        self.assertEqual(len({g["finished_at:day"] for g in groups}), 1)
        pivot_groups = self.env["ai.generation.request"].read_group(
            domain, self.measures(archs["pivot"]), self.groupbys(archs["pivot"])[:1]
        )
        self.assertEqual(sum(g["error_type_count"] for g in pivot_groups), 4)

    def test_ledger_pivot_sums_to_the_balances(self):
        self.grant(self.alice, 20)
        self.grant(self.bob, 9)
        self.callback("result", self.new_request(self.alice), output="ok")
        self.fail_with(self.new_request(self.bob), "provider_unavailable")
        pivot = self.views_of("ai_generation.ai_credit_ledger_line_action", self.manager)["pivot"]
        self.assertEqual(self.groupbys(pivot), ["user_id", "kind"])
        self.assertEqual(self.measures(pivot), ["amount"])
        users = (self.alice | self.bob).ids
        groups = self.env["ai.credit.ledger.line"].read_group(
            [("user_id", "in", users)], ["amount:sum"], ["user_id", "kind"], lazy=False
        )
        by_user = Counter()
        for group in groups:
            by_user[group["user_id"][0]] += group["amount"]
        self.assertEqual(by_user[self.alice.id], self.account(self.alice).balance)
        self.assertEqual(by_user[self.alice.id], 17)
        self.assertEqual(by_user[self.bob.id], 9)

    def test_credit_report_is_a_statement_of_the_ledger(self):
        self.grant(self.alice, 30)
        self.callback("result", self.new_request(self.alice), output="ok")  # spends 3
        self.fail_with(self.new_request(self.alice), "provider_timeout")  # released 3
        self.env.company.ai_invalid_free_warnings = 0
        self.fail_with(
            self.new_request(self.alice, backend="internal", model=IMAGE_MODEL, task="image"), "invalid_input"
        )
        success = self.new_request(self.alice)
        self.callback("result", success, output="ok")
        success.with_user(self.manager)._refund(2, "goodwill")
        self.account(self.alice)._adjust(-1, "correction")
        pivot = self.views_of("ai_generation.ai_credit_report_action", self.manager)["pivot"]
        self.assertEqual(self.groupbys(pivot), ["user_id", "date:month"])
        Report = self.env["ai.credit.report"].with_user(self.manager)
        fields = ["granted", "spent", "charged_invalid", "refunded", "deducted", "released", "net"]
        [row] = Report.read_group([("user_id", "=", self.alice.id)], fields, ["user_id"])
        self.assertEqual(
            {f: row[f] for f in fields},
            {
                "granted": 30,
                "spent": 6,
                "charged_invalid": 5,
                "refunded": 2,
                "deducted": 1,
                "released": 3,
                "net": 20,
            },
        )
        self.assertEqual(row["net"], self.account(self.alice).balance)
        self.assertLedgerInvariant()

    def test_credit_report_is_for_managers(self):
        self.assertFalse(self.env["ai.credit.report"].with_user(self.alice).has_access("read"))

    # ------------------------------------------------------------------ credit operations wizard
    def test_wizard_grants_adjusts_and_refunds_through_the_account(self):
        account = self.account(self.alice)
        Wizard = self.env["ai.credit.operation.wizard"].with_user(self.manager)
        grant = Form(Wizard.with_context(default_account_id=account.id, default_operation="grant"))
        grant.credits = 15
        grant.reason = "monthly allowance"
        grant.save().action_apply()
        self.assertBalance(self.alice, 15, 0)
        request = self.new_request(self.alice)
        self.callback("result", request, output="ok")
        refund = Form(Wizard.with_context(default_request_id=request.id, default_operation="refund"))
        self.assertEqual(refund.credits, 3)  # proposed: what the request cost
        refund.reason = "poor result"
        refund.save().action_apply()
        self.assertBalance(self.alice, 15, 0)
        self.assertEqual(self.lines(request).mapped("kind"), ["hold", "capture", "refund"])
        self.assertEqual(request.credits_refunded, 3)
        again = Form(Wizard.with_context(default_request_id=request.id, default_operation="refund"))
        again.reason = "twice"
        with self.assertRaisesRegex(UserError, "already refunded"):
            again.save().action_apply()
        self.assertBalance(self.alice, 15, 0)
        self.assertLedgerInvariant()

    def test_wizard_explains_an_adjustment_below_the_held_credits(self):
        self.grant(self.alice, 5)
        self.new_request(self.alice)  # holds 3
        adjust = Form(
            self.env["ai.credit.operation.wizard"]
            .with_user(self.manager)
            .with_context(default_account_id=self.account(self.alice).id, default_operation="adjustment")
        )
        adjust.credits = -4
        adjust.reason = "correction"
        with self.assertRaisesRegex(UserError, "Not enough credits"):
            adjust.save().action_apply()
        self.assertBalance(self.alice, 5, 3)

    def test_wizard_is_for_managers(self):
        account = self.account(self.alice)
        wizard = (
            self.env["ai.credit.operation.wizard"]
            .sudo()
            .create({"operation": "grant", "account_id": account.id, "credits": 5, "reason": "x"})
        )
        with self.assertRaises(AccessError):
            wizard.with_user(self.alice).action_apply()
        self.assertBalance(self.alice, 0, 0)

    # ------------------------------------------------------------------ demo data
    def test_demo_data_shows_every_state_with_a_sound_ledger(self):
        jane = self.env.ref("ai_generation.demo_user_jane", raise_if_not_found=False)
        if not jane:
            self.skipTest("demo data not loaded")
        # the README tells a new user to log in as her: the demo password must work
        credential = {"type": "password", "password": "jane.ai"}
        jane.with_user(jane)._check_credentials(credential, {"interactive": True})
        users = jane | self.env.ref("base.user_demo") | self.admin
        requests = self.env["ai.generation.request"].search([("user_id", "in", users.ids)])
        self.assertEqual(set(requests.mapped("state")), DEMO_STATES)
        # nothing of the demo is left for the outbox cron to publish to a real provider
        self.assertFalse(requests.filtered(lambda r: r.dispatch_state == "pending"))
        failed = requests.filtered(lambda r: r.state == "failed")
        self.assertTrue(failed.filtered(lambda r: r.error_side == "system" and not r.credits_charged))
        self.assertTrue(failed.filtered(lambda r: r.error_side == "user" and r.is_warning))
        self.assertTrue(failed.filtered(lambda r: r.error_side == "user" and r.credits_charged > 0))
        self.assertTrue(failed.filtered(lambda r: r.error_code == "deadline_exceeded"))
        for request in requests:
            kinds = self.lines(request).mapped("kind")
            expected = {
                "queued": ["hold"],
                "dispatched": ["hold"],
                "running": ["hold"],
                "cancelled": ["hold", "release"],
            }.get(request.state)
            if expected:
                self.assertEqual(kinds, expected, request.uuid)
            elif request.state == "succeeded":
                self.assertEqual(kinds[:2], ["hold", "capture"], request.uuid)
            else:
                self.assertEqual(kinds[0], "hold", request.uuid)
                self.assertEqual(sum(self.lines(request).mapped("hold_amount")), 0, request.uuid)
        self.assertLedgerInvariant()
        Report = self.env["ai.credit.report"]
        for account in self.env["ai.credit.account"].search([("user_id", "in", requests.user_id.ids)]):
            [row] = Report.read_group([("account_id", "=", account.id)], ["net"], ["account_id"])
            self.assertEqual(row["net"], account.balance)
