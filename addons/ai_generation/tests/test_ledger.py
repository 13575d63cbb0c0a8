# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged
from odoo.tools import mute_logger
from psycopg2 import IntegrityError

from ..pure.errors import InsufficientCredits, ValidationFailed
from ..pure.validation import MODEL_MAX_LENGTH, GenerationInput
from .common import TEXT_PRICE, AiGenerationCase, price_cache_entries


@tagged("at_install", "-post_install", "ai_generation")
class TestLedger(AiGenerationCase):
    def test_grant_and_hold_change_balance_and_held(self):
        self.grant(self.alice, 10)
        request = self.new_request(self.alice)
        self.assertBalance(self.alice, 10, TEXT_PRICE)
        self.assertEqual(self.account(self.alice).available, 10 - TEXT_PRICE)
        hold = self.lines(request)
        self.assertEqual(hold.mapped("kind"), ["hold"])
        self.assertEqual((hold.amount, hold.hold_amount, hold.balance_after, hold.held_after), (0, 3, 10, 3))
        self.assertLedgerInvariant()

    def test_hold_beyond_available_is_refused_and_writes_nothing(self):
        self.grant(self.alice, TEXT_PRICE - 1)
        Request = self.env["ai.generation.request"]
        before = Request.sudo().search_count([])
        with self.assertRaises(InsufficientCredits), self.env.cr.savepoint():
            self.new_request(self.alice)
        self.assertEqual(Request.sudo().search_count([]), before)
        self.assertBalance(self.alice, TEXT_PRICE - 1, 0)
        self.assertLedgerInvariant()

    def test_each_check_of_a_movement_refuses_with_its_own_error_and_moves_nothing(self):
        """The account's one UPDATE carries the checks as conditions; a refusal says which one."""
        account = self.account(self.alice)
        self.grant(self.alice, 2**31 - 3)
        request = self.new_request(self.alice)  # holds TEXT_PRICE
        cases = [
            (lambda: account._grant(3, "beyond the integer column"), UserError, "at most"),
            (lambda: account._release(request, TEXT_PRICE + 1, "more than held"), UserError, "is a bug"),
            (lambda: account._hold(request, 2**31), UserError, "at most"),
            # beyond what a bigint sum holds (review): the limit's message, not a database error
            (lambda: account._adjust(2**63 - 1, "beyond bigint"), UserError, "at most"),
            (lambda: account._grant(2**63 - 5, "beyond bigint"), UserError, "at most"),
            (lambda: account._hold(request, 2**63 - 1), UserError, "at most"),
        ]
        for move, error, words in cases:
            with self.subTest(words), self.assertRaises(error) as caught, self.env.cr.savepoint():
                move()
            self.assertIn(words, str(caught.exception))
            self.env.invalidate_all()
            self.assertBalance(self.alice, 2**31 - 3, TEXT_PRICE)
        with self.assertRaises(InsufficientCredits) as caught, self.env.cr.savepoint():
            account._hold(request, 2**31 - 5)  # within the column, one more than is available
        self.assertEqual(
            str(caught.exception),
            f"Not enough credits: {2**31 - 3 - TEXT_PRICE} available, {2**31 - 5} needed.",
        )
        self.assertLedgerInvariant()

    def test_credits_cover_exactly_n_requests(self):
        self.grant(self.alice, 5 * TEXT_PRICE)
        for _ in range(5):
            self.new_request(self.alice)
        with self.assertRaises(InsufficientCredits), self.env.cr.savepoint():
            self.new_request(self.alice)
        self.assertBalance(self.alice, 5 * TEXT_PRICE, 5 * TEXT_PRICE)
        self.assertEqual(self.account(self.alice).available, 0)
        self.assertLedgerInvariant()

    def test_database_refuses_a_second_capture_of_one_request(self):
        self.grant(self.alice, 10)
        request = self.new_request(self.alice)
        account = self.account(self.alice)
        account._post_movement("capture", -1, -1, "first part", request)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            account._post_movement("user_error_charge", -1, -1, "second settlement", request)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            account._post_movement("hold", 0, 1, "second hold", request)
        self.assertLedgerInvariant()

    def test_database_refuses_a_line_with_the_wrong_sign(self):
        self.grant(self.alice, 10)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.account(self.alice)._post_movement("grant", -5, 0, "negative grant")
        self.assertLedgerInvariant()

    def test_ledger_lines_are_immutable(self):
        line = self.grant(self.alice, 10)
        with self.assertRaises(UserError):
            line.write({"amount": 1000})
        with self.assertRaises(UserError):
            line.unlink()
        with self.assertRaises(UserError):
            self.env["ai.credit.ledger.line"].sudo().create(
                {
                    "account_id": line.account_id.id,
                    "kind": "grant",
                    "amount": 5,
                    "hold_amount": 0,
                    "balance_after": 15,
                    "held_after": 0,
                    "reason": "forged",
                }
            )
        self.assertBalance(self.alice, 10, 0)
        self.assertLedgerInvariant()

    def test_adjustment_cannot_go_below_what_is_held(self):
        self.grant(self.alice, 10)
        self.new_request(self.alice)
        with self.assertRaises(InsufficientCredits), self.env.cr.savepoint():
            self.account(self.alice)._adjust(-8, "too much")
        self.account(self.alice)._adjust(-7, "correction")
        self.assertBalance(self.alice, 3, 3)
        self.assertLedgerInvariant()

    def test_only_managers_grant(self):
        account = self.account(self.alice)
        values = {"operation": "grant", "account_id": account.id, "credits": 100, "reason": "self service"}
        with self.assertRaises(AccessError):
            self.env["ai.credit.operation.wizard"].with_user(self.alice).create(values).action_apply()
        self.env["ai.credit.operation.wizard"].with_user(self.manager).create(values).action_apply()
        self.assertBalance(self.alice, 100, 0)
        self.assertLedgerInvariant()

    def test_refund_is_bounded_by_the_charge_and_happens_once(self):
        self.grant(self.alice, 10)
        request = self.new_request(self.alice)
        self.callback("result", request, output="done")
        with self.assertRaises(UserError):
            request._refund(TEXT_PRICE + 1, "too much")
        request._refund(2, "goodwill")
        self.assertBalance(self.alice, 10 - TEXT_PRICE + 2, 0)
        with self.assertRaisesRegex(UserError, "already refunded"):
            request._refund(1, "again")
        # and should code skip that check, the database refuses a second refund line
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError), self.env.cr.savepoint():
            self.account(self.alice)._refund(request, 1, "again")
        self.assertLedgerInvariant()

    def test_account_creation_is_idempotent_and_uses_no_ids_once_open(self):
        Account = self.env["ai.credit.account"].sudo()
        self.assertFalse(Account._find_for_user(self.bob))  # a read opens nothing
        self.assertEqual(Account.search_count([("user_id", "=", self.bob.id)]), 0)
        first = Account._open_for_user(self.bob)
        self.env.cr.execute("SELECT last_value FROM ai_credit_account_id_seq")
        before = self.env.cr.fetchone()[0]
        for _ in range(10):
            self.assertEqual(Account._open_for_user(self.bob), first)
            self.assertEqual(Account._find_for_user(self.bob), first)
        self.env.cr.execute("SELECT last_value FROM ai_credit_account_id_seq")
        self.assertEqual(self.env.cr.fetchone()[0], before)
        self.assertEqual(Account.search_count([("user_id", "=", self.bob.id)]), 1)

    def test_a_price_change_applies_to_the_next_request(self):
        """Prices are cached per process; every change clears the cache."""
        self.grant(self.alice, 100)
        self.assertEqual(self.new_request(self.alice).price, TEXT_PRICE)
        price = self.env["ai.generation.price"].search([("model_name", "=", "gpt-test")])
        price.credits = 7
        self.assertEqual(self.new_request(self.alice).price, 7)
        price.active = False
        with self.assertRaises(ValidationFailed):
            self.new_request(self.alice)
        price.active = True
        price.unlink()
        self.assertIsNone(self.env["ai.generation.price"]._unit_price("external", "gpt-test"))

    def test_unknown_model_names_add_nothing_to_the_shared_cache(self):
        """One client sending many made-up names must not push the settings, prices and access rules
        of everyone out of Odoo's shared LRU (8192 entries), nor fill memory with 128-character keys."""
        self.grant(self.alice, 100)
        self.new_request(self.alice)  # the prices' cache filled
        before = price_cache_entries(self.env)
        Request = self.env["ai.generation.request"]
        for i in range(500):
            name = f"made-up-{i:03d}".ljust(MODEL_MAX_LENGTH, "x")
            gen = GenerationInput(backend="external", model=name, task="text", prompt="a haiku", params={})
            with self.assertRaises(ValidationFailed) as refused:
                Request._api_create(self.alice, gen)
            self.assertEqual(list(refused.exception.fields), ["model"])
        self.assertEqual(price_cache_entries(self.env), before)
        self.assertEqual(self.new_request(self.alice).price, TEXT_PRICE)  # a known model still resolves
        self.assertEqual(price_cache_entries(self.env), before)
