# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
import logging

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from ..pure.validation import GenerationInput
from .common import TEXT_MODEL, TEXT_PRICE, AiGenerationCase

SECRET_PROMPT = "my-very-private-prompt-7f3a"


@tagged("at_install", "-post_install", "ai_generation")
class TestSecurity(AiGenerationCase):
    def setUp(self):
        super().setUp()
        self.grant(self.alice, 50)
        self.grant(self.bob, 50)
        self.alice_request = self.new_request(self.alice)
        self.bob_request = self.new_request(self.bob)

    def test_users_see_only_their_own_requests_accounts_and_lines(self):
        Request = self.env["ai.generation.request"].with_user(self.alice)
        self.assertEqual(Request.search([]), self.alice_request)
        with self.assertRaises(AccessError):
            self.bob_request.with_user(self.alice).read(["prompt"])
        lines = self.env["ai.credit.ledger.line"].with_user(self.alice).search([])
        self.assertEqual(lines.user_id, self.alice)
        accounts = self.env["ai.credit.account"].with_user(self.alice).search([])
        self.assertEqual(accounts.user_id, self.alice)

    def test_users_cannot_write_requests_or_ledger(self):
        with self.assertRaises(AccessError):
            self.alice_request.with_user(self.alice).write({"price": 0})
        with self.assertRaises(AccessError):
            self.env["ai.credit.ledger.line"].with_user(self.alice).create({})
        with self.assertRaises(AccessError):
            self.env["ai.generation.price"].with_user(self.alice).create(
                {"backend": "external", "model_name": "free", "credits": 0}
            )

    def test_managers_see_everything(self):
        Request = self.env["ai.generation.request"].with_user(self.manager)
        self.assertEqual(set(Request.search([]).ids) >= {self.alice_request.id, self.bob_request.id}, True)
        self.assertTrue(
            self.env["ai.credit.ledger.line"].with_user(self.manager).search([("user_id", "=", self.bob.id)])
        )

    def test_managers_see_the_companies_they_work_in(self):
        # Bob works for another company; a manager of Alice's company sees Bob's records only once that
        # company is selected in the switcher (Odoo's multi-company rules)
        other = self.env["res.company"].create({"name": "Other AI Company"})
        self.bob.write({"company_ids": [(4, other.id)], "company_id": other.id})
        self.manager.write({"company_ids": [(4, other.id)]})
        home = self.manager.company_id
        # Bob's account (and its lines) follow him; a request stays in the company it was made in
        made_at_home, self.bob_request = self.bob_request, self.new_request(self.bob)
        Request = self.env["ai.generation.request"].with_user(self.manager)
        self.assertIn(made_at_home, Request.with_context(allowed_company_ids=home.ids).search([]))
        self.assertNotIn(self.bob_request, Request.with_context(allowed_company_ids=home.ids).search([]))
        self.assertIn(self.bob_request, Request.with_context(allowed_company_ids=other.ids).search([]))
        models = ("ai.credit.account", "ai.credit.ledger.line", "ai.credit.report")
        for model in models:
            with self.subTest(model=model):
                Model = self.env[model].with_user(self.manager)
                self.env.invalidate_all()
                only_home = Model.with_context(allowed_company_ids=home.ids).search([])
                both = Model.with_context(allowed_company_ids=(home | other).ids).search([])
                self.assertNotIn(self.bob, only_home.user_id)
                self.assertIn(self.alice, only_home.user_id)
                self.assertIn(self.bob, both.user_id)
        with self.assertRaises(AccessError):
            self.bob_request.with_user(self.manager).with_context(allowed_company_ids=home.ids).read(
                ["prompt"]
            )
        # Bob, who works in both companies, sees all of his
        self.assertEqual(len(self.env["ai.generation.request"].with_user(self.bob).search([])), 2)
        # nor does the credit wizard, which finds and moves the account as superuser, reach him
        Wizard = self.env["ai.credit.operation.wizard"].with_user(self.manager)
        for operation in ("grant", "adjustment"):
            wizard = Wizard.with_context(allowed_company_ids=home.ids).create(
                {"operation": operation, "user_id": self.bob.id, "credits": 5, "reason": "other company"}
            )
            with self.subTest(operation=operation), self.assertRaises(AccessError):
                wizard.action_apply()
        self.assertBalance(self.bob, 50, 2 * TEXT_PRICE)
        Wizard.with_context(allowed_company_ids=(home | other).ids).create(
            {"operation": "grant", "user_id": self.bob.id, "credits": 5, "reason": "both companies"}
        ).action_apply()
        self.assertBalance(self.bob, 55, 2 * TEXT_PRICE)

    def test_a_request_keeps_the_company_it_was_made_in_and_its_policy(self):
        # the owner's company is the owner's to change (res.users lets a user write it): it picked the
        # invalid-input policy at failure time and moved every past request with it
        home = self.alice.company_id
        home.write({"ai_invalid_free_warnings": 0, "ai_invalid_charge_mode": "full"})
        lenient = self.env["res.company"].create(
            {"name": "Lenient AI", "ai_invalid_charge_mode": "none", "ai_invalid_free_warnings": 0}
        )
        self.alice.write({"company_ids": [(4, lenient.id)]})
        made_at_home = self.new_request(self.alice)
        self.alice.with_user(self.alice).write({"company_id": lenient.id})
        self.callback("failure", made_at_home, **self.failure_payload("invalid_input"))
        self.assertEqual(made_at_home.company_id, home)
        self.assertEqual(made_at_home.credits_charged, TEXT_PRICE, "the owner chose a kinder policy")
        made_there = self.new_request(self.alice)
        self.assertEqual(made_there.company_id, lenient)
        self.callback("failure", made_there, **self.failure_payload("invalid_input"))
        self.assertEqual(made_there.credits_charged, 0)
        self.assertLedgerInvariant()

    def _move_bob_to_another_company(self):
        """Bob works for a company the manager does not work in."""
        other = self.env["res.company"].create({"name": "Other AI Company"})
        self.bob.write({"company_ids": [(4, other.id)], "company_id": other.id})
        self.env.invalidate_all()
        return other

    def test_managers_cancel_and_refund_only_in_their_companies(self):
        # the actions work as superuser: without a record-rule check a manager reached other companies
        paid_at_home = self.new_request(self.bob)
        self.callback("result", paid_at_home, output="ok")
        self._move_bob_to_another_company()
        queued, done = self.new_request(self.bob), self.new_request(self.bob)  # made in his new company
        self.callback("result", done, output="ok")
        before = (self.account(self.bob).balance, self.account(self.bob).held)
        for records in (queued, done, self.alice_request | queued):
            with self.subTest(records=records.ids):
                with self.assertRaises(UserError) as caught:
                    records.with_user(self.manager).action_cancel()
                self.assertIsInstance(caught.exception, AccessError, "cancelled in another company")
                self.assertNotIn(done.uuid, str(caught.exception), "names another company's request")
        self.assertEqual((self.alice_request.state, queued.state), ("queued", "queued"))
        self.assertBalance(self.bob, *before)
        wizard = (
            self.env["ai.credit.operation.wizard"]
            .with_user(self.manager)
            .create({"operation": "refund", "request_id": done.id, "credits": 1, "reason": "other company"})
        )
        with self.assertRaises(AccessError):
            wizard.action_apply()
        self.assertFalse(done.credits_refunded, "refunded in another company")
        # a request made in the manager's company before Bob left: the refund would credit his account,
        # now in his new company
        wizard = (
            self.env["ai.credit.operation.wizard"]
            .with_user(self.manager)
            .create({"operation": "refund", "request_id": paid_at_home.id, "credits": 1, "reason": "left"})
        )
        with self.assertRaises(AccessError):
            wizard.action_apply()
        self.assertFalse(paid_at_home.credits_refunded, "credited an account of another company")
        self.assertBalance(self.bob, *before)
        # nor on Bob's request made in the manager's company: its hold is on Bob's account, now in his
        # new company, as a grant to him would be
        with self.assertRaises(AccessError):
            self.bob_request.with_user(self.manager).action_cancel()
        self.assertBalance(self.bob, *before)
        # in their own company, the same actions still work
        self.alice_request.with_user(self.manager).action_cancel()
        self.assertEqual(self.alice_request.state, "cancelled")
        # and a manager who works in Bob's company too may
        self.manager.write({"company_ids": [(4, self.bob.company_id.id)]})
        self.bob_request.with_user(self.manager).action_cancel()
        self.assertEqual(self.bob_request.state, "cancelled")

    def test_managers_read_credits_only_in_their_companies(self):
        other = self._move_bob_to_another_company()
        home = self.manager.company_id
        self.manager.write({"company_ids": [(4, other.id)]})
        available = 50 - TEXT_PRICE
        for companies, expected in ((home, 0), (other, available), (home | other, available)):
            users = (self.alice | self.bob).with_user(self.manager)
            users = users.with_context(allowed_company_ids=companies.ids)
            self.env.invalidate_all()
            with self.subTest(companies=companies.mapped("name")):
                self.assertEqual(users[1].ai_credits_available, expected, "reads another company's credits")
        self.assertEqual(self.alice.with_user(self.manager).ai_credits_available, available)

    def test_managers_read_keys_and_events_only_in_their_companies(self):
        self._move_bob_to_another_company()
        keyed = GenerationInput(backend="external", model=TEXT_MODEL, task="text", prompt="keyed")
        for user in (self.alice, self.bob):
            request = self.new_request(user)
            self.callback("progress", request, state="running", attempt=1)
            self.env["ai.generation.request"]._api_create(user, keyed, "key-mc", "hash-mc")
        for model in ("ai.generation.idempotency", "ai.generation.event"):
            with self.subTest(model=model):
                seen = self.env[model].with_user(self.manager).search([])
                owners = seen.sudo().mapped("user_id" if "user_id" in seen._fields else "request_id.user_id")
                self.assertIn(self.alice, owners)
                self.assertNotIn(self.bob, owners, f"{model}: another company's rows are read")

    def test_error_detail_is_for_managers(self):
        self.callback("failure", self.alice_request, **self.failure_payload("provider_unavailable"))
        with self.assertRaises(AccessError):
            self.alice_request.with_user(self.alice).read(["error_detail"])
        self.assertEqual(self.alice_request.with_user(self.manager).error_detail, "test detail")

    def test_prompts_and_secrets_stay_out_of_logs_above_debug(self):
        secret = self.env["ir.config_parameter"].sudo().get_param("ai_generation.worker_secret")
        with self.assertLogs("odoo.addons.ai_generation", level=logging.DEBUG) as logs:
            logging.getLogger("odoo.addons.ai_generation").debug("start")
            request = self.new_request(self.alice, prompt=SECRET_PROMPT)
            self.env["ai.generation.request"]._cron_dispatch_pending(min_age_seconds=0)
            self.callback("failure", request, **self.failure_payload("invalid_input"))
        loud = [r.getMessage() for r in logs.records if r.levelno > logging.DEBUG]
        self.assertTrue(loud, "the flow logs at INFO: the check below must see real messages")
        for message in loud:
            self.assertNotIn(SECRET_PROMPT, message)
            self.assertNotIn(secret, message)

    # ------------------------------------------------------------------ manager writes (issue: bypass)
    def test_nobody_writes_state_money_or_owner_outside_the_state_api(self):
        request = self.alice_request
        for who in (self.manager, self.alice):
            for vals in (
                {"state": "succeeded"},
                {"credits_charged": 500},
                {"price": 0},
                {"user_id": self.bob.id},
                {"dispatch_state": "held"},
                {"deadline": "2000-01-01 00:00:00"},
            ):
                with self.subTest(user=who.login, vals=vals), self.assertRaises(AccessError):
                    request.with_user(who).write(vals)
        # not even sudo: only the addon's own code holds the sentinel
        with self.assertRaises(AccessError):
            request.sudo().write({"state": "succeeded"})
        with self.assertRaises(AccessError):
            request.sudo().with_context(ai_generation_request_write=True).write({"credits_charged": 500})
        with self.assertRaises(AccessError):
            self.env["ai.generation.request"].with_user(self.manager).create({"prompt": "free"})
        self.assertEqual((request.state, request.credits_charged, request.user_id), ("queued", 0, self.alice))
        self.assertBalance(self.alice, 50, request.price)
        self.assertLedgerInvariant()

    def test_nobody_writes_an_account_or_posts_a_line_directly(self):
        account = self.account(self.alice)
        for env in (self.env(user=self.manager), self.env(su=True)):
            with self.subTest(su=env.su), self.assertRaises(AccessError):
                account.with_env(env).write({"balance": 10**6})
        with self.assertRaises(AccessError):
            self.env["ai.credit.account"].sudo().create({"user_id": self.bob.id, "balance": 10**6})
        with self.assertRaises(UserError):  # the old context flag an RPC caller could send
            self.env["ai.credit.ledger.line"].sudo().with_context(ai_generation_ledger_post=True).create(
                {"account_id": account.id, "kind": "grant", "amount": 10**6, "hold_amount": 0}
            )
        self.assertBalance(self.alice, 50, self.alice_request.price)
        self.assertLedgerInvariant()

    def test_refund_is_bounded_by_what_the_ledger_charged(self):
        """The old path: write credits_charged=500, then refund 500 for a 3-credit request."""
        self.callback("result", self.alice_request, output="ok")
        with self.assertRaises(AccessError):
            self.alice_request.with_user(self.manager).write({"credits_charged": 500})
        with self.assertRaises(UserError):
            self.alice_request.with_user(self.manager)._refund(500, "too generous")
        with self.assertRaises(AccessError):
            self.alice_request.with_user(self.alice)._refund(1, "self service")
        self.assertEqual(self.lines(self.alice_request).mapped("kind"), ["hold", "capture"])
        self.assertLedgerInvariant()
