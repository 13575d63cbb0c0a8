# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""What an Odoo admin meets: the roles as one selection, credits before the first call (welcome grant,
grant from the user), a request form that shows what happened, reports whose measures add up."""

from lxml import etree
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, new_test_user, tagged
from odoo.tools import mute_logger
from psycopg2 import IntegrityError

from .common import AiGenerationCase


@tagged("post_install", "-at_install")
class TestBackOffice(AiGenerationCase):
    def arch(self, xmlid, user, view_type="form"):
        action = self.env.ref(xmlid)
        explicit = {v.view_mode: v.view_id.id for v in action.view_ids}
        view_id = explicit.get(view_type) or (action.view_id.type == view_type and action.view_id.id)
        views = self.env[action.res_model].with_user(user).get_views([(view_id or False, view_type)])
        return etree.fromstring(views["views"][view_type]["arch"])

    # ------------------------------------------------------------------ roles
    def test_user_and_manager_are_one_selection_on_the_user_form(self):
        user_group = self.env.ref("ai_generation.group_ai_generation_user")
        manager_group = self.env.ref("ai_generation.group_ai_generation_manager")
        worker_group = self.env.ref("ai_generation.group_ai_generation_worker")
        self.assertNotEqual(worker_group.category_id, user_group.category_id)
        self.env["res.groups"]._update_user_groups_view()
        arch = etree.fromstring(self.env.ref("base.user_groups_view").arch_db)
        name = f"sel_groups_{user_group.id}_{manager_group.id}"
        [field] = arch.xpath(f"//field[@name='{name}']")
        # shown without debug mode: no ancestor restricted to base.group_no_one
        hidden = [node for node in field.iterancestors() if node.get("groups") == "base.group_no_one"]
        self.assertFalse(hidden, "the AI Generation role is only visible in debug mode")

    # ------------------------------------------------------------------ credits before the first call
    def test_a_new_user_gets_the_company_welcome_credits_once(self):
        self.env.company.ai_welcome_credits = 25
        carol = new_test_user(self.env, login="ai_carol", groups="base.group_user")
        portal = new_test_user(self.env, login="ai_portal_dan", groups="base.group_portal")
        for user in (carol, portal):
            account = self.env["ai.credit.account"].sudo()._find_for_user(user)
            self.assertEqual((account.balance, account.held), (25, 0))
            self.assertEqual(account.line_ids.mapped("is_welcome"), [True])
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.account(carol)._grant_welcome(25)
        self.env.company.ai_welcome_credits = 0
        erin = new_test_user(self.env, login="ai_erin", groups="base.group_user")
        self.assertFalse(self.env["ai.credit.account"].sudo()._find_for_user(erin))
        self.assertLedgerInvariant()

    def test_a_manager_grants_from_the_user_before_any_account_exists(self):
        frank = new_test_user(self.env, login="ai_frank", groups="base.group_user")
        self.assertFalse(self.env["ai.credit.account"].sudo()._find_for_user(frank))
        wizard = Form(
            self.env["ai.credit.operation.wizard"]
            .with_user(self.manager)
            .with_context(default_user_id=frank.id, default_operation="grant")
        )
        wizard.credits = 40
        wizard.reason = "trial allowance"
        action = wizard.save().action_apply()
        account = self.env["ai.credit.account"].sudo()._find_for_user(frank)
        self.assertEqual(account.balance, 40)
        # back on the account, not on "ai.credit.ledger.line,1099"
        self.assertEqual((action["res_model"], action["res_id"]), ("ai.credit.account", account.id))
        self.assertEqual(frank.with_user(self.manager).ai_credits_available, 40)
        users_form = self.env.ref("base.view_users_form").id
        views = self.env["res.users"].with_user(self.manager).get_views([(users_form, "form")])
        form = etree.fromstring(views["views"]["form"]["arch"])
        self.assertTrue(form.xpath("//field[@name='ai_credits_available']"))
        self.assertLedgerInvariant()

    # ------------------------------------------------------------------ the request form
    def test_the_status_bar_shows_the_path_that_happened(self):
        form = self.arch("ai_generation.ai_generation_request_action", self.manager)
        bars = {
            bar.get("invisible"): bar.get("statusbar_visible")
            for bar in form.xpath("//header/field[@name='state'][@widget='statusbar']")
        }
        self.assertEqual(
            bars,
            {
                "state in ('failed', 'cancelled')": "queued,dispatched,running,succeeded",
                "state != 'failed'": "queued,dispatched,running,failed",
                "state != 'cancelled'": "queued,dispatched,running,cancelled",
            },
        )

    def test_the_system_failure_banner_says_not_charged_once(self):
        request = self.new_request(self.alice) if self.grant(self.alice, 10) else None
        self.callback("failure", request, **self.failure_payload("provider_unavailable"))
        form = self.arch("ai_generation.ai_generation_request_action", self.manager)
        [banner] = form.xpath("//div[contains(@class, 'alert-danger')]")
        shown = {f.get("name") for f in banner.iter("field")}
        self.assertIn("retry_suggestion", shown)  # which already says "you were not charged"
        self.assertNotIn("charge_note", shown)
        self.assertIn("not charged", request.retry_suggestion)
        # an admin reading someone else's request reads it as what the owner was told
        self.assertFalse(request.with_user(self.manager).is_mine)
        self.assertTrue(request.with_user(self.alice).is_mine)

    def test_one_name_for_one_number(self):
        Request = self.env["ai.generation.request"]
        self.assertEqual(Request._fields["price"].string, "Price")
        self.assertEqual(Request._fields["credits_charged"].string, "Charged")
        for xmlid in (
            "ai_generation.ai_generation_request_action",
            "ai_generation.ai_generation_request_action",
        ):
            for view_type in ("list", "form"):
                arch = self.arch(xmlid, self.manager, view_type)
                for field in arch.xpath("//field[@name='price' or @name='credits_charged'][@string]"):
                    self.fail(f"{view_type} renames {field.get('name')} to {field.get('string')}")

    # ------------------------------------------------------------------ reports and the ledger
    def test_failures_pivot_counts_failures_by_default(self):
        pivot = self.arch("ai_generation.ai_generation_request_action_failures", self.manager, "pivot")
        # with no measure named, Odoo's pivot shows its Count measure: the number of failures
        self.assertEqual([f.get("name") for f in pivot.iter("field") if f.get("type") == "measure"], [])

    def test_credit_report_measures_add_up_to_the_net_change(self):
        pivot = self.arch("ai_generation.ai_credit_report_action", self.manager, "pivot")
        measures = [f.get("name") for f in pivot.iter("field") if f.get("type") == "measure"]
        self.assertEqual(
            measures, ["granted", "spent", "charged_invalid", "refunded", "deducted", "net", "released"]
        )

    def test_ledger_lines_have_a_name_and_accounts_their_last_movement(self):
        line = self.grant(self.alice, 15)
        self.assertEqual(line.display_name, "Grant +15 · Alice")
        request = self.new_request(self.alice)
        hold = self.lines(request)
        self.assertEqual(hold.display_name, "Hold 3 held · Alice")
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE ai_credit_ledger_line SET date = '2026-01-02 03:04:05' WHERE account_id = %s",
            (line.account_id.id,),
        )
        self.env.invalidate_all()
        account = self.account(self.alice)
        self.assertEqual(str(account.last_movement), "2026-01-02 03:04:05")

    # ------------------------------------------------------------------ found by the attack review
    def test_the_wizard_shows_no_charge_of_a_request_the_caller_cannot_read(self):
        self.grant(self.bob, 10)
        bobs = self.new_request(self.bob)
        self.callback("result", bobs, output="ok")
        Wizard = self.env["ai.credit.operation.wizard"]
        with self.assertRaises(AccessError):
            Wizard.with_user(self.alice).onchange(
                {"request_id": bobs.id}, ["request_id"], {"credits_charged": {}}
            )
        answer = Wizard.with_user(self.manager).onchange(
            {"request_id": bobs.id}, ["request_id"], {"credits_charged": {}}
        )
        self.assertEqual(answer["value"]["credits_charged"], bobs.credits_charged)

    def test_the_wizard_refuses_odd_targets_and_amounts(self):
        Wizard = self.env["ai.credit.operation.wizard"].with_user(self.manager)
        self.grant(self.alice, 10)
        alice_account = self.account(self.alice)
        public = self.env.ref("base.public_user")
        cases = {
            "public user": {"user_id": public.id},
            "superuser": {"user_id": self.env.ref("base.user_root").id},
            "account of another user": {"account_id": alice_account.id, "user_id": self.bob.id},
            "blank reason": {"account_id": alice_account.id, "reason": "   "},
            "a balance beyond an integer column": {"account_id": alice_account.id, "credits": 2**31 - 1},
        }
        for name, values in cases.items():
            with self.subTest(name), self.assertRaises(UserError):
                Wizard.create({"operation": "grant", "credits": 5, "reason": "x", **values}).action_apply()
        self.assertEqual(self.account(self.alice).balance, 10)
        self.assertFalse(self.env["ai.credit.account"].sudo()._find_for_user(public))
        self.assertLedgerInvariant()

    def test_no_welcome_credits_for_an_inactive_user(self):
        self.env.company.ai_welcome_credits = 25
        archived = new_test_user(self.env, login="ai_archived", groups="base.group_user", active=False)
        self.assertFalse(self.env["ai.credit.account"].sudo()._find_for_user(archived))

    def test_cancel_is_all_or_nothing_for_a_selection(self):
        self.grant(self.alice, 20)
        first, done, last = (self.new_request(self.alice) for _ in range(3))
        self.callback("result", done, output="ok")
        with self.assertRaisesRegex(UserError, "nothing cancelled"):
            (first | done | last).with_user(self.manager).action_cancel()
        self.assertEqual((first.state, last.state), ("queued", "queued"))
