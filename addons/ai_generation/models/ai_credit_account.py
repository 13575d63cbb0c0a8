# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
import logging

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from ..pure.errors import InsufficientCredits
from .row_insert import insert_row, insert_row_from, send_together

_logger = logging.getLogger(__name__)
MAX_CREDITS = 2**31 - 1  # the columns are PostgreSQL integers: refused with a message, not an overflow
# the account's UPDATE, which _move_credits follows with the ledger line's INSERT in the same statement
MOVE_CTE = """
    WITH moved AS (
        UPDATE ai_credit_account
           SET balance = balance + %s, held = held + %s,
               write_date = now() at time zone 'UTC', write_uid = %s
         WHERE id = %s
           AND held::bigint + %s >= 0
           AND balance::bigint + %s >= held::bigint + %s
           AND GREATEST(balance::bigint + %s, held::bigint + %s) <= %s
     RETURNING balance, held
    )"""
MOVED_COLUMNS = (("balance_after", "moved.balance"), ("held_after", "moved.held"))
_WRITE_KEY = "ai_generation_account_write"
_WRITE_SENTINEL = object()  # only this module holds it: no RPC context can carry it


def _is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


class AiCreditAccount(models.Model):
    """A user's credits. ``balance`` and ``held`` change only through ``_post_movement`` (SQL under the
    row lock); ``write`` and ``create`` refuse everything else, even for managers.

    Invariant (checked by the tests after every scenario): balance == sum(lines.amount) and
    held == sum(lines.hold_amount). Available = balance - held, never negative.
    """

    _name = "ai.credit.account"
    _description = "AI Credit Account"
    _rec_name = "user_id"
    _order = "id"

    user_id = fields.Many2one("res.users", required=True, ondelete="restrict", index=True, readonly=True)
    company_id = fields.Many2one(related="user_id.company_id", store=True)
    balance = fields.Integer(readonly=True, default=0, help="Credits owned: the sum of the ledger amounts.")
    held = fields.Integer(readonly=True, default=0, help="Credits reserved by requests not finished yet.")
    available = fields.Integer(compute="_compute_available", help="Balance minus holds.")
    line_ids = fields.One2many("ai.credit.ledger.line", "account_id", readonly=True)
    last_movement = fields.Datetime(
        compute="_compute_last_movement", help="Date of the account's latest ledger line."
    )

    _sql_constraints = [
        ("user_unique", "UNIQUE(user_id)", "A user has one credit account."),
        ("held_not_negative", "CHECK(held >= 0)", "Held credits cannot be negative."),
        ("no_overdraft", "CHECK(balance >= held)", "An account cannot hold more credits than it has."),
    ]

    @api.depends("line_ids.date")
    def _compute_last_movement(self):
        latest = dict(
            self.env["ai.credit.ledger.line"]
            .sudo()
            ._read_group([("account_id", "in", self.ids)], ["account_id"], ["date:max"])
        )
        for account in self:
            account.last_movement = latest.get(account._origin)

    @api.depends("balance", "held")
    def _compute_available(self):
        for account in self:
            account.available = account.balance - account.held

    # ------------------------------------------------------------------ protected fields
    @api.model_create_multi
    def create(self, vals_list):
        if self.env.context.get(_WRITE_KEY) is not _WRITE_SENTINEL:
            raise AccessError(_("Credit accounts are opened by the ledger itself."))
        return super().create(vals_list)

    def write(self, vals):
        if self.env.context.get(_WRITE_KEY) is not _WRITE_SENTINEL:
            raise AccessError(_("Credits change only through ledger movements (grant, adjust, refund)."))
        return super().write(vals)

    def copy(self, default=None):  # refused by design; pylint: disable=method-required-super
        raise UserError(_("A credit account cannot be duplicated."))

    # ------------------------------------------------------------------ lookup
    @api.model
    def _find_for_user(self, user):
        """The user's account, or an empty recordset: a read that writes nothing.

        Its balance and held credits come in the same query (the ORM's search then fetch is two, and
        every POST and callback reads them). Record rules apply to a caller that is not superuser."""
        if not user:
            return self.browse()
        if not self.env.su:
            return self.search([("user_id", "=", user.id)], limit=1)
        self.env.cr.execute("SELECT id, balance, held FROM ai_credit_account WHERE user_id = %s", (user.id,))
        row = self.env.cr.fetchone()
        return self._cached(*row, user) if row else self.browse()

    def _cached(self, account_id, balance, held, user):
        """The account ``account_id`` of ``user``, its credits (read by the caller's query) cached;
        empty when ``account_id`` is (the caller's LEFT JOIN found none)."""
        if not account_id:
            return self.browse()
        account = self.browse(account_id)
        for name, value in (("balance", balance), ("held", held), ("user_id", user.id)):
            self.env.cache.set(account, self._fields[name], value)
        return account

    @api.model
    def _open_for_user(self, user):
        """The user's account, opened at zero when missing (a grant, a hold or a settlement needs one).

        The INSERT runs only when the account is missing, so ids are not used up by every call;
        ON CONFLICT covers two first movements of a new user at once.
        """
        account = self._find_for_user(user)
        if account:
            return account
        self.env.cr.execute(
            """
            INSERT INTO ai_credit_account (user_id, company_id, balance, held,
                                           create_uid, write_uid, create_date, write_date)
            VALUES (%s, %s, 0, 0, %s, %s, now() at time zone 'UTC', now() at time zone 'UTC')
            ON CONFLICT (user_id) DO NOTHING
            """,
            (user.id, user.company_id.id, self.env.uid, self.env.uid),
        )
        self.env.cr.execute("SELECT id FROM ai_credit_account WHERE user_id = %s", (user.id,))
        return self.browse(self.env.cr.fetchone()[0])

    def _post_movement(self, kind, amount, hold_amount, reason, request=None, welcome=False, before=()):
        """Write one ledger line and apply it to the account, under the account's row lock.

        ``amount`` is the line's effect on the balance, ``hold_amount`` its effect on the held credits.
        Raises InsufficientCredits when a new hold would exceed the available credits. ``before`` are
        the caller's statements ([(statement, parameters)]), sent first in the same round trip.
        """
        self.ensure_one()
        reason = (reason or "").strip()
        if not reason:
            raise UserError(_("Every ledger line needs a reason."))
        line_values = {
            "account_id": self.id,
            "kind": kind,
            "amount": amount,
            "hold_amount": hold_amount,
            "reason": reason,
            "request_id": request.id if request else False,
            "is_welcome": welcome,
            "date": fields.Datetime.now(),
            # the stored related and computed fields, as Odoo would compute them
            "user_id": self.user_id.id,
            "backend": request.backend if request else False,
            "error_type": request.error_type if request else False,
        }
        Line = self.env["ai.credit.ledger.line"].sudo()
        moved = self._move_credits(amount, hold_amount, Line, line_values, before)
        if moved:
            line_id, new_balance, new_held = moved
            line = Line.browse(line_id)
        else:  # refused by the UPDATE's conditions: checked under the row lock, for the right error
            new_balance, new_held = self._move_credits_checked(amount, hold_amount)
            line_values.update(balance_after=new_balance, held_after=new_held)
            line = insert_row(Line, line_values, cached=False)
        # both statements went through: the cache holds what they wrote (a refused line leaves it as
        # it was, which is what a rollback to a savepoint restores); what derives from it is read again
        self.env.cache.set(self, self._fields["balance"], new_balance)
        self.env.cache.set(self, self._fields["held"], new_held)
        self.invalidate_recordset(["available", "line_ids", "last_movement"])
        if request:
            request.invalidate_recordset(["ledger_line_ids", "credits_refunded"])
        _logger.info(
            "ledger %s account=%s amount=%s hold=%s request=%s",
            kind,
            self.id,
            amount,
            hold_amount,
            request.uuid if request else "-",
        )
        return line

    def _move_credits(self, amount, hold_amount, Line, line_values, before=()):
        """Apply ``amount`` and ``hold_amount`` to the account row and write the ledger line
        (``line_values``, with the balances after), in one statement: (line id, new balance, new held),
        or None when the UPDATE's conditions refused the movement and nothing was written.

        The UPDATE locks the row, so the line's balances are the row's; its conditions are the checks of
        ``_move_credits_checked``, which the caller then runs to raise the right error (or to apply the
        movement, when a concurrent one made room meanwhile). One round trip fewer under the row lock
        than an UPDATE then an INSERT: every other movement on the account waits for that lock. The
        ``before`` statements are sent first, in that round trip, whatever the movement's outcome."""
        if abs(amount) > MAX_CREDITS or abs(hold_amount) > MAX_CREDITS:
            # beyond the column: the sums below could overflow even as bigints; refused with its message
            send_together(self.env.cr, before)
            return None
        hold, uid = hold_amount, self.env.uid
        inserted = insert_row_from(
            Line,
            line_values,
            MOVE_CTE,
            [amount, hold, uid, self.id, hold, amount, hold, amount, hold, MAX_CREDITS],
            MOVED_COLUMNS,
            before,
        )
        if not inserted:
            return None
        line_id, _created, new_balance, new_held = inserted  # the line's balances after: the account's
        return line_id, new_balance, new_held

    def _move_credits_checked(self, amount, hold_amount):
        cr = self.env.cr
        cr.execute("SELECT balance, held FROM ai_credit_account WHERE id = %s FOR UPDATE", (self.id,))
        balance, held = cr.fetchone()
        new_balance, new_held = balance + amount, held + hold_amount
        if new_held < 0:
            raise UserError(_("Releasing more credits than are held is a bug (account %s).", self.id))
        if max(new_balance, new_held) > MAX_CREDITS:
            raise UserError(_("An account holds at most %s credits.", MAX_CREDITS))
        if new_balance < new_held:
            raise InsufficientCredits(
                f"Not enough credits: {balance - held} available, {hold_amount - amount} needed.",
                fields={"credits": f"available={balance - held}"},
            )
        cr.execute(
            "UPDATE ai_credit_account SET balance = %s, held = %s, write_date = now() at time zone 'UTC',"
            " write_uid = %s WHERE id = %s",
            (new_balance, new_held, self.env.uid, self.id),
        )
        return new_balance, new_held

    # ------------------------------------------------------------------ the ledger's operations
    # One ledger line each, each through _post_movement (the account's row lock). The request asks for
    # hold, capture, release and charge from its state API; managers reach grant, adjust and refund
    # only through the credit wizard. Callers outside tests run them in a transaction of their own.
    def _hold(self, request, credits, before=()):
        """``before``: the caller's statements (the request's INSERT), sent in the hold's round trip."""
        return self._post_movement(
            "hold", 0, credits, f"hold for {request.backend}/{request.ai_model}", request, before=before
        )

    def _capture(self, request, credits):
        return self._post_movement(
            "capture", -credits, -credits, "generation succeeded: the held credits are captured", request
        )

    def _release(self, request, credits, reason):
        return self._post_movement("release", 0, -credits, reason, request)

    def _charge(self, request, credits, reason):
        return self._post_movement("user_error_charge", -credits, -credits, reason, request)

    def _refund(self, request, credits, reason):
        return self._post_movement("refund", credits, 0, reason, request)

    def _grant(self, credits, reason):
        """Add ``credits`` to the balance (a purchase, a welcome bonus)."""
        self.ensure_one()
        if not _is_whole(credits) or credits <= 0:
            raise UserError(_("A grant is a positive whole number of credits."))
        return self._post_movement("grant", credits, 0, reason)

    def _grant_welcome(self, credits):
        """The company's welcome credits, once per account (a unique index refuses a second)."""
        self.ensure_one()
        return self._post_movement("grant", credits, 0, "welcome credits for a new user", welcome=True)

    @api.model
    def _grant_to_user(self, user_id, credits, reason):
        """Open the user's account if need be and grant; for the credit wizard. Returns the account id."""
        account = self._open_for_user(self.env["res.users"].browse(user_id))
        account._grant(credits, reason)
        return account.id

    def _adjust(self, credits, reason):
        """Correct the balance by ``credits`` (positive or negative); never below what is held."""
        self.ensure_one()
        if not _is_whole(credits) or credits == 0:
            raise UserError(_("An adjustment is a non-zero whole number of credits."))
        return self._post_movement("adjustment", credits, 0, reason)

    @api.model
    def _check_invariant(self):
        """Accounts whose balance/held differ from the sum of their lines (empty when all is well)."""
        self.env.flush_all()
        self.env.cr.execute(
            """
            SELECT a.id, a.balance, a.held, COALESCE(SUM(l.amount), 0), COALESCE(SUM(l.hold_amount), 0)
              FROM ai_credit_account a
              LEFT JOIN ai_credit_ledger_line l ON l.account_id = a.id
             GROUP BY a.id
            HAVING a.balance != COALESCE(SUM(l.amount), 0) OR a.held != COALESCE(SUM(l.hold_amount), 0)
            """
        )
        return self.env.cr.fetchall()
