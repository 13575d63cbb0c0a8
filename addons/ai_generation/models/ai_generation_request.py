# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""A generation request: the state Odoo owns, its credit hold and every outcome the workers report.

One state API, as Odoo's payment transactions have: ``_set_dispatched``, ``_set_running``,
``_set_succeeded``, ``_set_failed`` and ``_set_cancelled`` each call ``_update_state``, and nothing else
writes ``state``. Every field is protected (queue_job's way): ``write`` and ``create`` refuse unless
the private sentinel below is in the context, which no RPC caller can send (a context over RPC is JSON).
Money moves only through the account's own operations, which the state methods ask for.
"""

import collections
import functools
import json
import logging
import uuid
from datetime import datetime, timedelta, timezone

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.modules.registry import Registry
from odoo.tools import SQL
from odoo.tools.sql import create_index

from .. import broker
from ..pure import amqp, contracts, result_limits, states
from ..pure.credit_policy import decide_charge
from ..pure.errors import (
    Conflict,
    IdempotencyKeyReused,
    IllegalTransitionError,
    InsufficientCredits,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from ..pure.pricing import request_price
from .ai_credit_ledger_line import error_type_selection
from .ai_generation_price import BACKENDS
from .owner_messages import (
    NOT_CHARGED,
    STATE_MESSAGES,
    cache_owner,
    charged_note,
    load_owner,
    owner_text,
    text_in,
    warning_note,
)
from .res_config_settings import get_setting
from .row_insert import cache_new_row, insert_sql, send_together
from .transactions import call_in_own_transaction

_logger = logging.getLogger(__name__)

BUS_TYPE = "ai_generation/update"
# the bus message's event for each state: what changed for the owner (schemas/bus_update.json)
BUS_EVENTS = {
    states.QUEUED: "accepted",
    states.DISPATCHED: "accepted",
    states.RUNNING: "running",
    states.SUCCEEDED: "succeeded",
    states.FAILED: "failed",
    states.CANCELLED: "cancelled",
}
BUS_RESULT_LIMIT = 8192  # bytes of JSON: a larger result is read with GET status_url
# in a list page, likewise: a page of images as data: URLs was tens of MB (results may be 16 MiB each)
LIST_RESULT_LIMIT = 64 * 1024
PROMPT_PREVIEW_CHARS = 80
# the post-commit list of request ids to publish (the demo data takes its requests off it)
DISPATCH_KEY = "ai_generation.dispatch_ids"
DISPATCH_FIELDS = ["dispatch_state", "dispatched_at", "dispatch_error", "dispatch_attempts", "state"]
STATE_SELECTION = [
    (states.QUEUED, "Queued"),
    (states.DISPATCHED, "Dispatched"),
    (states.RUNNING, "Running"),
    (states.SUCCEEDED, "Succeeded"),
    (states.FAILED, "Failed"),
    (states.CANCELLED, "Cancelled"),
]
# The key of pg_advisory_xact_lock(key, user id) that serialises one user's creates ("AIGE")
USER_LOCK_KEY = 0x41494745
# The lock, then (a statement of its own: a snapshot taken after the lock) what a create checks under it.
# The rate limit's window ends once the lock is held: clock_timestamp(), since statement_timestamp() is
# when the server received the whole query string, before the wait. The new request is stamped with
# that time too (its create_date, which later windows count), not with the transaction's start.
RATE_WINDOW_SECONDS = 60
CREATES_LOCK_SQL = """
SELECT pg_advisory_xact_lock(%(lock_key)s, %(user_id)s);
WITH t AS (SELECT clock_timestamp() AT TIME ZONE 'UTC' AS locked_at),
     w AS (SELECT locked_at - %(window)s * interval '1 second' AS since FROM t)
SELECT u.company_id, u.partner_id, p.lang, recent.count, recent.oldest, w.since,
       nextval('ai_generation_request_id_seq'), t.locked_at,
       a.id, a.balance, a.held, i.id, i.body_hash, i.status_code, i.response
  FROM res_users u
  JOIN res_partner p ON p.id = u.partner_id
 CROSS JOIN t
 CROSS JOIN w
 CROSS JOIN LATERAL (SELECT count(*) AS count, min(create_date) AS oldest
                       FROM (SELECT create_date FROM ai_generation_request
                              WHERE user_id = u.id AND create_date > w.since
                              ORDER BY create_date LIMIT %(limit)s) window_creates) recent
  LEFT JOIN ai_credit_account a ON a.user_id = u.id
  LEFT JOIN ai_generation_idempotency i ON i.user_id = u.id AND i.key = %(key)s
 WHERE u.id = %(user_id)s
"""
USER_CREATED_INDEX = "ai_generation_request_user_id_create_date_index"
LockedCreates = collections.namedtuple(
    "LockedCreates", "company_id lang recent oldest since new_id locked_at account previous"
)
_WRITE_KEY = "ai_generation_request_write"
_WRITE_SENTINEL = object()  # only this module's code holds it: no RPC context can carry it


def _check_rate_limit(limit, since, recent, oldest):
    """RateLimited when ``recent`` creates after ``since`` (the oldest at ``oldest``) reach ``limit``."""
    if limit > 0 and recent >= limit:
        retry_after = max(1, int((oldest - since).total_seconds()) + 1)
        raise RateLimited(
            f"Too many requests: at most {limit} per minute. Try again in {retry_after} s.", retry_after
        )


def _preview(prompt):
    """The start of a prompt, for a list row in a client that did not send it (another tab)."""
    text = " ".join((prompt or "").split())
    return text if len(text) <= PROMPT_PREVIEW_CHARS else text[: PROMPT_PREVIEW_CHARS - 1] + "…"


def _json_size(value):
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


@functools.lru_cache(maxsize=8)
def _lock_statement(names, skip_locked):
    """The SELECT ... FOR UPDATE of the request's columns ``names``, built once (see _lock_by_uuid)."""
    return SQL(
        "SELECT id, %s FROM ai_generation_request WHERE uuid = %%s FOR UPDATE%s",
        SQL(", ").join(map(SQL.identifier, names)),
        SQL(" SKIP LOCKED") if skip_locked else SQL(),
    ).code


@functools.lru_cache(maxsize=8)
def _callback_lock_statement(names):
    """The request's row lock, then, in a statement of its own (its snapshot is taken once the lock is
    held), what a callback reads before it decides: the row's columns ``names``, the event already
    recorded under the callback's event id, the credits still held for the request, the owner (company,
    partner, language) and the owner's account. See _lock_for_callback."""
    return SQL(
        """
        SELECT 1 FROM ai_generation_request WHERE uuid = %%s FOR UPDATE;
        SELECT r.id, %s, e.request_id, e.kind, e.state_after,
               (SELECT COALESCE(SUM(hold_amount), 0) FROM ai_credit_ledger_line WHERE request_id = r.id),
               u.company_id, u.partner_id, p.lang, a.id, a.balance, a.held
          FROM ai_generation_request r
          JOIN res_users u ON u.id = r.user_id
          JOIN res_partner p ON p.id = u.partner_id
          LEFT JOIN ai_credit_account a ON a.user_id = u.id
          LEFT JOIN LATERAL (
               SELECT request_id, kind, state_after FROM ai_generation_event WHERE event_id = %%s LIMIT 1
               ) e
            ON TRUE
         WHERE r.uuid = %%s
        """,
        SQL(", ").join(SQL.identifier("r", name) for name in names),
    ).code


def _fails(kind, state_after):
    """Whether a callback of ``kind`` that left the request in ``state_after`` failed it: a failure, or
    a result Odoo did not keep (a notify only words a failure already there)."""
    return kind in ("failure", "result") and state_after == states.FAILED


# what _lock_for_callback read with the lock: the credits still held for the request, the owner's account
CallbackReads = collections.namedtuple("CallbackReads", "hold account")


class AiGenerationRequest(models.Model):
    _name = "ai.generation.request"
    _description = "AI Generation Request"
    _order = "id desc"
    _rec_name = "uuid"

    uuid = fields.Char(  # indexed by its UNIQUE constraint
        "Request ID",
        required=True,
        readonly=True,
        copy=False,
        default=lambda _s: str(uuid.uuid4()),
    )
    # indexed with create_date (init): the rate limit's count and the owner's lookups share one index
    user_id = fields.Many2one(
        "res.users", "Owner", required=True, readonly=True, default=lambda s: s.env.user
    )
    # the owner's company when the request was accepted, kept: its invalid-input policy applies to the
    # request, and a change of the owner's company (theirs to make) neither moves past requests nor
    # rewrites every one of them while callbacks hold their rows
    company_id = fields.Many2one("res.company", readonly=True)
    backend = fields.Selection(BACKENDS, required=True, readonly=True)
    ai_model = fields.Char("Model", required=True, readonly=True)
    task = fields.Selection(
        [("text", "Text"), ("image", "Image")], required=True, default="text", readonly=True
    )
    prompt = fields.Text(required=True, readonly=True)
    params = fields.Json(readonly=True)
    state = fields.Selection(STATE_SELECTION, required=True, default=states.QUEUED, readonly=True, index=True)
    last_state_change = fields.Datetime(readonly=True, default=fields.Datetime.now)
    attempt = fields.Integer(readonly=True, default=0, help="Worker attempt last reported.")
    deadline = fields.Datetime(required=True, readonly=True, index=True)
    price = fields.Integer(
        readonly=True, default=0, help="Credits held when the request was accepted, until it ends."
    )
    credits_charged = fields.Integer(
        "Charged", readonly=True, default=0, help="Credits the owner paid in the end (0 when not charged)."
    )
    is_warning = fields.Boolean("Free warning", readonly=True)
    error_type = fields.Selection(error_type_selection, readonly=True, index=True)
    error_side = fields.Selection([("system", "System"), ("user", "User input")], readonly=True, index=True)
    error_code = fields.Char(readonly=True)
    error_detail = fields.Text(readonly=True, groups="ai_generation.group_ai_generation_manager")
    user_message = fields.Char(readonly=True)
    retry_suggestion = fields.Char(readonly=True)
    specific_guidance = fields.Char(readonly=True)
    charge_note = fields.Char(readonly=True)
    # not prefetched with the other fields: results may be MiBs each, and a list page leaves large ones out
    result_output = fields.Text("Output", readonly=True, prefetch="result")
    result_url = fields.Char("Output URL", readonly=True, prefetch="result")
    usage = fields.Json(readonly=True)
    dispatch_state = fields.Selection(
        # "held": never published by the outbox cron (demo data, or a request an admin holds back);
        # the deadline reaper still fails it, so its credits are released in time.
        [("pending", "Not yet published"), ("sent", "Published"), ("held", "Held back (not published)")],
        required=True,
        default="pending",
        readonly=True,
        index=True,
    )
    dispatched_at = fields.Datetime(readonly=True)
    dispatch_attempts = fields.Integer(readonly=True, default=0)
    dispatch_error = fields.Char(readonly=True)
    started_at = fields.Datetime(readonly=True)
    finished_at = fields.Datetime(readonly=True, index=True)
    ledger_line_ids = fields.One2many("ai.credit.ledger.line", "request_id", readonly=True)
    credits_refunded = fields.Integer(
        compute="_compute_credits_refunded", help="Given back by a manager (one refund per request)."
    )
    event_ids = fields.One2many("ai.generation.event", "request_id", readonly=True)
    is_mine = fields.Boolean(compute="_compute_is_mine", help="The current user owns this request.")

    _sql_constraints = [
        ("uuid_unique", "UNIQUE(uuid)", "The request id must be unique."),
        ("price_not_negative", "CHECK(price >= 0)", "A price cannot be negative."),
        (
            "error_needs_failure",
            "CHECK(error_type IS NULL OR state = 'failed')",
            "Only a failed request has an error type.",
        ),
    ]

    def init(self):
        # the owner's requests by time: the rate limit counts a user's creates of the last minute on
        # every create, under the user's lock; with user_id alone it read the user's whole history
        create_index(self.env.cr, USER_CREATED_INDEX, self._table, ["user_id", "create_date"])

    @api.depends_context("uid")
    def _compute_is_mine(self):
        for request in self:
            request.is_mine = request.user_id.id == self.env.uid

    @api.depends("ledger_line_ids.amount", "ledger_line_ids.kind")
    def _compute_credits_refunded(self):
        for request in self:
            lines = request.sudo().ledger_line_ids.filtered(lambda line: line.kind == "refund")
            request.credits_refunded = sum(lines.mapped("amount"))

    # ------------------------------------------------------------------ protected fields
    @api.model_create_multi
    def create(self, vals_list):
        if self.env.context.get(_WRITE_KEY) is not _WRITE_SENTINEL:
            raise AccessError(_("Generation requests are created through the API only."))
        for vals in vals_list:  # as _api_create gives it: the owner's company now
            if "company_id" not in vals:
                owner = self.env["res.users"].browse(vals.get("user_id") or self.env.uid)
                vals["company_id"] = owner.sudo().company_id.id
        return super().create(vals_list)

    def write(self, vals):
        if self.env.context.get(_WRITE_KEY) is not _WRITE_SENTINEL:
            raise AccessError(
                _(
                    "Generation requests change only through their own operations (cancel, refund) and the"
                    " workers' callbacks; %(fields)s cannot be written.",
                    fields=", ".join(sorted(vals)),
                )
            )
        return super().write(vals)

    def copy(self, default=None):  # refused by design; pylint: disable=method-required-super
        raise UserError(_("A generation request cannot be duplicated; ask for a new one."))

    def _protected(self):
        return self.with_context(**{_WRITE_KEY: _WRITE_SENTINEL})

    def _write_protected(self, vals):
        """Write protected fields: for this addon's own code (state API, outbox, demo, tests) only."""
        return self._protected().write(vals)

    # ------------------------------------------------------------------ creation (public API)
    @api.model
    def _api_create(self, user, gen, idempotency_key=None, body_hash=None):
        """Validate the price, hold the credits and create the request, all in this transaction.

        Returns (status, body, replayed). A transaction-level advisory lock per user serialises that
        user's creates, so the idempotency lookup, the rate limit and the credit check are exact; run it
        in a READ COMMITTED transaction (run_in_own_transaction) so waiting for it costs no replay.
        """
        unit = self.env["ai.generation.price"]._unit_price(gen.backend, gen.model, gen.task)
        if unit is None:
            raise ValidationFailed(
                "The request has invalid fields: model",
                fields={"model": f"The model '{gen.model}' is not offered on the {gen.backend} backend."},
            )
        price = request_price(unit, gen.task, gen.params)
        # what does not depend on the user's other requests is read before the lock: every statement
        # and ORM read inside it makes that user's other creates wait (a hot account's throughput)
        values = {
            "uuid": str(uuid.uuid4()),
            "user_id": user.id,
            "backend": gen.backend,
            "ai_model": gen.model,
            "task": gen.task,
            "prompt": gen.prompt,
            "params": gen.params,
            "price": price,
            # the fields' defaults, given here: row_insert.py writes what it is given
            "state": states.QUEUED,
            "last_state_change": fields.Datetime.now(),
            "attempt": 0,
            "credits_charged": 0,
            "dispatch_state": "pending",
            "dispatch_attempts": 0,
        }
        deadline_seconds = get_setting(self.env, "ai_generation.deadline_seconds")
        rate_limit = get_setting(self.env, "ai_generation.rate_limit_per_minute")
        locked = self._lock_creates_of(user, idempotency_key, rate_limit)
        if locked.previous:
            previous_hash, status, answer = locked.previous
            if previous_hash != body_hash:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was already used with another request body; use a new key."
                )
            return status, answer, True
        _check_rate_limit(rate_limit, locked.since, locked.recent, locked.oldest)
        account = locked.account
        available = account.balance - account.held if account else 0
        if available < price:
            raise InsufficientCredits(
                f"Not enough credits: this request costs {price}, you have {available}.",
                fields={"credits": f"needed={price} available={available}"},
            )
        # the request's INSERT (its id drawn under the lock, the record cached as create() caches it,
        # models/row_insert.py says why), the key's answer and the hold: one round trip under the lock
        values.update(
            id=locked.new_id,
            create_date=locked.locked_at,
            write_date=locked.locked_at,
            company_id=locked.company_id,
            user_message=text_in(locked.lang, STATE_MESSAGES[states.QUEUED]),
            deadline=fields.Datetime.now() + timedelta(seconds=deadline_seconds),
        )
        Request = self.sudo()
        writes = [insert_sql(Request, values)]
        request = cache_new_row(Request, locked.new_id, values, locked.locked_at)
        body = request._api_accepted_body()
        if idempotency_key:
            Key = self.env["ai.generation.idempotency"].sudo()
            key_values = {
                "user_id": user.id,
                "key": idempotency_key,
                "body_hash": body_hash,
                "status_code": 202,
                "response": body,
                "request_id": request.id,
            }
            writes.append(insert_sql(Key, key_values))
        if price:
            account._hold(request, price, before=writes)
        else:
            send_together(self.env.cr, writes)
        request._schedule_dispatch()
        request._notify_owner(account)  # accepted: every tab of the owner learns of it
        _logger.info(
            "request %s accepted: user=%s %s/%s price=%s",
            request.uuid,
            user.id,
            gen.backend,
            gen.model,
            price,
        )
        return 202, body, False

    def _lock_creates_of(self, user, idempotency_key, rate_limit=0):
        """Take ``user``'s create lock and read what a create checks under it, in one round trip.

        Each statement of the string gets its own snapshot in READ COMMITTED, so the SELECT after the
        lock sees every create that held it before. The owner's company, partner and language, the
        account's credits (the records cached as the ORM would) come with the requests of the rate
        limit's window and the first answer to ``idempotency_key``: four round trips in one, each of
        which made the user's other creates wait. It also draws the new request's id and reads the
        time the lock was taken (its create_date, as the rate limit counts it), so that the request's
        INSERT needs no answer and rides with the hold (``send_together``).

        The window's creates are counted up to ``rate_limit`` only (none when there is no limit),
        along the (user_id, create_date) index: a create costs the same for a user with a long
        history as for a new one, and the count is all it waits on the lock for."""
        self.env.flush_all()
        self.env.cr.execute(
            CREATES_LOCK_SQL,
            {
                "lock_key": USER_LOCK_KEY,
                "user_id": user.id,
                "window": RATE_WINDOW_SECONDS,
                "key": idempotency_key or None,
                "limit": max(rate_limit, 0),
            },
        )
        (
            company_id,
            partner_id,
            lang,
            recent,
            oldest,
            since,
            new_id,
            locked_at,
            account_id,
            balance,
            held,
            previous_id,
            *previous,
        ) = self.env.cr.fetchone()
        cache_owner(user, company_id, partner_id, lang)
        account = self.env["ai.credit.account"].sudo()._cached(account_id, balance, held, user)
        return LockedCreates(
            company_id,
            lang or "en_US",
            recent,
            oldest,
            since,
            new_id,
            locked_at,
            account,
            previous if previous_id is not None else None,
        )

    # ------------------------------------------------------------------ answers
    def _status_url(self):
        return f"/api/v1/generations/{self.uuid}"

    def _api_accepted_body(self):
        self.ensure_one()
        return {
            "request_id": self.uuid,
            "status": self.state,
            "credits_reserved": self.price,
            "status_url": self._status_url(),
        }

    def _api_list_bodies(self, result_limit):
        """``_api_body(result_limit)`` of each request, without reading a result left out.

        A result's JSON is never shorter than its texts' UTF-8 bytes (ensure_ascii=False, see
        _json_size): a result whose bytes (octet_length, in SQL) exceed the limit is over it unread; the
        others are read and measured exactly, as ``_api_body`` measures them."""
        if not self:
            return []
        self.flush_recordset(["state", "result_output", "result_url"])
        self.env.cr.execute(
            SQL(
                """
                SELECT id FROM ai_generation_request
                 WHERE id IN %s AND state = %s
                   AND coalesce(octet_length(result_output), 0) + coalesce(octet_length(result_url), 0) <= %s
                """,
                tuple(self.ids),
                states.SUCCEEDED,
                result_limit,
            )
        )
        within = self.browse(row[0] for row in self.env.cr.fetchall())
        within.fetch(["result_output", "result_url"])  # their own fetch: the other rows' stay unread
        readable = set(within.ids)
        return [
            request._api_body(result_limit=result_limit, result_over_limit=request.id not in readable)
            for request in self
        ]

    def _api_body(self, result_limit=None, result_over_limit=False):
        """The request as the owner sees it through GET /api/v1/generations[/<id>].

        With ``result_limit`` (bytes of JSON, a list page's) a larger result is left out:
        ``result_included`` is false and the client reads it with GET ``status_url``.
        ``result_over_limit`` says the caller knows it is larger (_api_list_bodies): it is not read."""
        self.ensure_one()

        def iso(value):
            return amqp.iso(value) if value else None

        result = None
        available = self.state == states.SUCCEEDED
        if available and not result_over_limit:
            result = {"output": self.result_output or None, "output_url": self.result_url or None}
            result["usage"] = self.usage or {}
        if result is not None and result_limit is not None and _json_size(result) > result_limit:
            result = None
        return {
            "request_id": self.uuid,
            "status": self.state,
            "backend": self.backend,
            "model": self.ai_model,
            "task": self.task,
            "prompt": self.prompt,
            "params": self.params or {},
            "attempt": self.attempt,
            "credits_reserved": self.price,
            "credits_charged": self.credits_charged,
            "message": self.user_message or owner_text(self.user_id, STATE_MESSAGES.get(self.state)) or "",
            "retry_suggestion": self.retry_suggestion or None,
            "specific_guidance": self.specific_guidance or None,
            "charge_note": self.charge_note or None,
            "error_type": self.error_type or None,
            "is_system_error": self.error_side == "system",
            "is_user_error": self.error_side == "user",
            "warning": self.is_warning,
            "result_available": available,
            "result_included": result is not None,
            "result": result,
            "created_at": iso(self.create_date),
            "updated_at": iso(self.write_date),
            "deadline": iso(self.deadline),
            "finished_at": iso(self.finished_at),
            "status_url": self._status_url(),
        }

    def _bus_payload(self, account=None):
        """What the owner's clients render without a second call (schemas/bus_update.json).

        Shares its fields with ``_api_body``; adds the event, the owner's credits after the change and
        the result itself when it is small (BUS_RESULT_LIMIT), otherwise ``result_included`` is false
        and the client reads it with GET ``status_url``. ``account`` is the owner's, when the caller has it.
        """
        self.ensure_one()
        body = self._api_body()
        result = body.pop("result")
        for private in ("prompt", "params", "attempt", "deadline"):
            body.pop(private)
        body["prompt_preview"] = _preview(self.prompt)
        if account is None:
            account = self.env["ai.credit.account"].sudo()._find_for_user(self.user_id)
        included = result is not None and _json_size(result) <= BUS_RESULT_LIMIT
        body.update(
            event=BUS_EVENTS[self.state],
            credits_available=(account.balance - account.held) if account else 0,
            result_available=result is not None,
            result_included=included,
            result=result if included else None,
        )
        return body

    def _notify_owner(self, account=None):
        """Tell the owner on the bus (type ai_generation/update); the same text stays on the request.

        Called once per change the owner cares about (accepted, running, succeeded, failed, cancelled);
        a later /notify that changes the failure's wording sends a replacement for the same status."""
        for request in self:
            load_owner(request.user_id)  # the channel is the owner's partner: one query, not the ORM's
            request.user_id._bus_send(BUS_TYPE, request._bus_payload(account))

    # ------------------------------------------------------------------ dispatch (outbox)
    def _schedule_dispatch(self):
        """Publish these requests once (and only if) the current transaction commits.

        After the commit the ids go to this process's background publisher (a thread of its own with a
        long-lived connection, see broker/background.py) and the caller returns at once: the 202 never
        waits for the broker. What it cannot publish (broker down, queue full, process gone) stays in the
        outbox for the cron. While tests run or the module installs, the caller's thread publishes.
        """
        cr = self.env.cr
        pending = cr.postcommit.data.setdefault(DISPATCH_KEY, [])
        if not pending:
            registry, ids = self.env.registry, pending
            handler = type(self)._publish_in_background

            def publish_after_commit():
                if not ids:
                    return
                if registry.ready and not registry.in_test_mode():
                    broker.background_publisher(handler).submit((registry.db_name, tuple(ids)))
                    return
                try:
                    with registry.cursor() as new_cr:
                        env = api.Environment(new_cr, api.SUPERUSER_ID, {})
                        env["ai.generation.request"].browse(ids)._publish_and_mark()
                except Exception:
                    # the request stays in the outbox; the cron publishes it later
                    _logger.exception("dispatch after commit failed; the outbox cron will retry")

            cr.postcommit.add(publish_after_commit)
        pending.extend(self.ids)

    @staticmethod
    def _publish_in_background(publisher, items):
        """The background publisher's handler, in its thread: ``items`` are (database, request ids)."""
        by_db = {}
        for db_name, ids in items:
            by_db.setdefault(db_name, []).extend(ids)
        for db_name, ids in by_db.items():
            try:
                with Registry(db_name).cursor() as cr:
                    env = api.Environment(cr, api.SUPERUSER_ID, {})
                    env["ai.generation.request"].browse(ids)._publish_and_mark(publisher)
            except Exception:
                _logger.exception(
                    "background dispatch of %d request(s) failed; the outbox keeps them", len(ids)
                )

    def _job_message(self):
        self.ensure_one()
        return amqp.build_message(
            request_id=self.uuid,
            backend=self.backend,
            model=self.ai_model,
            task=self.task,
            prompt=self.prompt,
            params=self.params or {},
            attempt=self.dispatch_attempts + 1,
            deadline=self.deadline,
            created_at=self.create_date,
        )

    def _publish_and_mark(self, publisher=None):
        """Publish the requests of self still waiting in the outbox; mark the confirmed ones dispatched.

        No transaction waits for the broker: the rows are read in a short transaction of their own, then
        published over ``publisher`` (the caller's long-lived one, or a connection of this call's own),
        then marked in a READ COMMITTED transaction of their own (see ``_mark_dispatch``). Returns the
        requests the broker confirmed.
        """
        messages, failures = call_in_own_transaction(self, "_outbox_messages")
        confirmed = set()
        if messages:
            url = get_setting(self.env, "ai_generation.amqp_url")
            own_publisher = publisher is None
            publisher = publisher or broker.Publisher(url)
            publisher.use(url)
            try:
                confirmed = set(publisher.publish(messages.values()))
                error = "not confirmed by the broker"
            except broker.PublishError as exc:
                error = str(exc)[:250]
            finally:
                if own_publisher:
                    publisher.close()
            left = {
                rid: error
                for rid, message in messages.items()
                if message["generation_request_id"] not in confirmed
            }
            if left:
                _logger.warning("%d request(s) left in the outbox: %s", len(left), error)
            failures.update(left)
        sent = [rid for rid, message in messages.items() if message["generation_request_id"] in confirmed]
        if sent or failures:
            call_in_own_transaction(self.browse(), "_mark_dispatch", sent, failures)
        self.invalidate_recordset(DISPATCH_FIELDS)
        return self.browse(sent)

    def _outbox_messages(self):
        """({id: job message}, {id: error}) for the requests of self still waiting to be published; a
        record whose message cannot be built is logged and reported, never stopping the others."""
        messages, failures = {}, {}
        for request in self.filtered(
            lambda r: r.dispatch_state == "pending" and not states.is_terminal(r.state)
        ):
            try:
                messages[request.id] = request._job_message()
            except Exception as exc:
                _logger.exception("request %s cannot be published; it stays in the outbox", request.uuid)
                failures[request.id] = f"cannot build the job message: {exc.__class__.__name__}"[:250]
        return messages, failures

    @api.model
    def _mark_dispatch(self, sent_ids, failures):
        """Record a publish: ``sent_ids`` confirmed, ``failures`` ({id: error}) left in the outbox.

        Run in a READ COMMITTED transaction of its own: the conditional update waits for a callback that
        holds the row and then sees what it committed, so a request a worker already moved on (running,
        finished) keeps its state, and no serialization failure is possible. Only a request still queued
        becomes dispatched, through the state API.
        """
        self.env.flush_all()
        queued, returned = [], []
        if sent_ids:
            self.env.cr.execute(
                """UPDATE ai_generation_request
                      SET dispatch_state = 'sent', dispatched_at = %s, dispatch_error = NULL,
                          dispatch_attempts = COALESCE(dispatch_attempts, 0) + 1
                    WHERE id = ANY(%s) AND dispatch_state = 'pending'
                RETURNING id, state""",
                (fields.Datetime.now(), list(sent_ids)),
            )
            returned = self.env.cr.fetchall()
            queued = [rid for rid, state in returned if state == states.QUEUED]
        by_error = {}
        for rid, error in failures.items():
            by_error.setdefault(error, []).append(rid)
        for error, ids in by_error.items():
            self.env.cr.execute(
                "UPDATE ai_generation_request"
                " SET dispatch_attempts = COALESCE(dispatch_attempts, 0) + 1, dispatch_error = %s"
                " WHERE id = ANY(%s) AND dispatch_state = 'pending'",
                (error, ids),
            )
        self.browse(list(sent_ids) + list(failures)).invalidate_recordset(DISPATCH_FIELDS)
        # the state of the requests marked, as the UPDATE returned it under the row lock: the state API
        # reads nothing more (not every column of every request: the prompt, the params...)
        state_field = self._fields["state"]
        for rid, state in returned:
            self.env.cache.set(self.browse(rid), state_field, state)
        self.browse(queued).with_context(prefetch_fields=False)._set_dispatched()
        # written now: once this returns nothing references the own environment, and a commit flushes
        # only the environments still alive (Transaction.envs is a WeakSet)
        self.env.flush_all()

    @api.model
    def _cron_dispatch_pending(self, min_age_seconds=None, limit=200, batch_size=20):
        """Outbox: publish what a broker outage (or a crash after commit) left undispatched.

        The safety net behind the background publisher: small batches, each read and marked in
        transactions of their own over one connection for the run; a batch that fails is logged and
        skipped, never blocking the others. Progress goes to ir.cron (a full run with more waiting asks
        to be run again soon). Returns the requests published.
        """
        grace = (
            get_setting(self.env, "ai_generation.dispatch_grace_seconds")
            if min_age_seconds is None
            else min_age_seconds
        )
        # full precision: fields.Datetime.now() drops the microseconds create_date keeps
        cutoff = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=grace)
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT id FROM ai_generation_request
                WHERE dispatch_state = 'pending' AND state = 'queued' AND create_date <= %s
                ORDER BY dispatch_attempts, id LIMIT %s""",
            (cutoff, limit),
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        published = []
        publisher = broker.Publisher(get_setting(self.env, "ai_generation.amqp_url"))
        try:
            for start in range(0, len(ids), batch_size):
                batch = self.browse(ids[start : start + batch_size])
                try:
                    published += batch._publish_and_mark(publisher).ids
                except Exception:
                    _logger.exception(
                        "outbox: %d request(s) skipped after an error; the next run retries", len(batch)
                    )
                remaining = len(ids) - start - len(batch)
                if not remaining and len(ids) == limit and len(published) == len(ids):
                    # all published and maybe more waiting: tell ir.cron to run again soon
                    self.env.cr.execute(
                        """SELECT count(*) FROM ai_generation_request
                            WHERE dispatch_state = 'pending' AND state = 'queued' AND create_date <= %s""",
                        (cutoff,),
                    )
                    remaining = self.env.cr.fetchone()[0]
                self.env["ir.cron"]._notify_progress(done=len(published), remaining=remaining)
        finally:
            publisher.close()
        return self.browse(published)

    # ------------------------------------------------------------------ worker callbacks
    @api.model
    def _lock_by_uuid(self, request_uuid, skip_locked=False):
        """The request, row-locked till the end of the transaction (first of the lock order: request,
        then account). With ``skip_locked``, empty when another transaction holds it.

        The row is read by the same statement that locks it and put in the cache as the ORM's fetch
        puts it: every caller reads it next, and the fetch was a fifth of a callback's own CPU."""
        self.env.flush_all()
        loaded = self._loaded_on_lock()
        self.env.cr.execute(_lock_statement(tuple(f.name for f in loaded), skip_locked), (request_uuid,))
        row = self.env.cr.fetchone()
        if not row:
            if skip_locked:
                return self.browse()
            raise NotFound(f"No generation request {request_uuid}.")
        return self._cache_locked(loaded, row)

    @api.model
    def _lock_for_callback(self, request_uuid, event_id):
        """``_lock_by_uuid`` with, in the same round trip, the event already recorded under
        ``event_id`` ((request id, kind, state after it), or None) and the CallbackReads: (request, seen,
        reads). The
        owner and the account are left in the cache, as load_owner and _find_for_user leave them."""
        self.env.flush_all()
        loaded = self._loaded_on_lock()
        self.env.cr.execute(
            _callback_lock_statement(tuple(f.name for f in loaded)), (request_uuid, event_id, request_uuid)
        )
        row = self.env.cr.fetchone()
        if not row:
            raise NotFound(f"No generation request {request_uuid}.")
        width = len(loaded) + 1
        request = self._cache_locked(loaded, row[:width])
        seen_request_id, seen_kind, seen_state, hold, company_id, partner_id, lang, *account_row = row[width:]
        cache_owner(request.user_id, company_id, partner_id, lang)
        seen = (seen_request_id, seen_kind, seen_state) if seen_request_id is not None else None
        return request, seen, request._callback_reads(hold, *account_row)

    def _loaded_on_lock(self):
        return [
            field
            for name, field in self._fields.items()
            if field.store and field.column_type and field.prefetch is True and name != "id"
        ]

    def _cache_locked(self, loaded, row):
        request = self.browse(row[0])
        request.invalidate_recordset()
        for field, value in zip(loaded, row[1:], strict=True):
            self.env.cache.update(request, field, [value])
        return request

    @api.model
    def _handle_callback(self, kind, payload):
        """Apply one worker callback; idempotent on event_id and on the request's terminal state.

        Returns the callback answer (schemas/callback_response.json). Raises NotFound, Conflict,
        IllegalTransitionError or ValidationFailed. Callers outside tests run it in a transaction of its
        own (run_in_own_transaction), so the request's row lock orders concurrent callbacks.
        """
        event_id = payload.get("event_id")
        if event_id:
            # looked up after the lock: it sees the same event committed by a callback that held it
            request, seen, reads = self._lock_for_callback(payload["generation_request_id"], event_id)
            if seen:
                seen_request_id, seen_kind, seen_state = seen
                if seen_request_id != request.id or seen_kind != kind:
                    whose = "another request" if seen_request_id != request.id else "this request"
                    raise Conflict(
                        f"event_id {event_id} was already used for a {seen_kind} callback of {whose}."
                    )
                # a repeat whose first answer was lost: it still says whether this event failed it
                return request._callback_answer(duplicate=True, failed_it=_fails(kind, seen_state))
        else:
            request, reads = self._lock_by_uuid(payload["generation_request_id"]), None
        if kind == "notify":  # the worker words it in English (the taxonomy's): the owner reads theirs
            payload = request._in_owner_language(payload)
        changed = getattr(request, f"_on_{kind}")(payload, reads)
        if event_id and changed:
            # one INSERT: the ORM's create was a tenth of a callback's CPU (models/row_insert.py). A
            # callback of another request holding the same event_id right now is not seen by the lookup
            # above (each locks its own request): the unique index decides, and this one, second, is
            # refused as a reuse, all it did rolled back, not a unique violation's HTML 400 and ERROR line
            recorded = send_together(
                self.env.cr,
                [
                    insert_sql(
                        self.env["ai.generation.event"].sudo(),
                        {
                            "event_id": event_id,
                            "request_id": request.id,
                            "kind": kind,
                            "state_after": request.state,
                        },
                        unless_taken="event_id",
                    )
                ],
            )
            if recorded is None:
                raise Conflict(f"event_id {event_id} was already used for a callback of another request.")
            request.invalidate_recordset(["event_ids"])
        return request._callback_answer(
            duplicate=not changed, failed_it=changed and _fails(kind, request.state)
        )

    def _in_owner_language(self, payload):
        texts = ("user_message", "retry_suggestion", "specific_guidance")
        return {k: owner_text(self.user_id, v) if k in texts else v for k, v in payload.items()}

    def _callback_answer(self, duplicate, failed_it=False):
        """The callback's answer; ``failed_it`` when the callback's event (this time or the first time
        it came) is the one that failed the request."""
        answer = {
            "generation_request_id": self.uuid,
            "status": self.state,
            "duplicate": duplicate,
            "credits_charged": self.credits_charged,
        }
        if self.state == states.FAILED:
            # a result callback can end in a failure (a result over the size Odoo keeps): the worker
            # counts it as the failure it is, not as the success it sent
            answer["error_type"] = self.error_type or "unknown"
            answer["failed_by_this_event"] = bool(failed_it)
        return answer

    # each _on_<kind> gets what the lock read (CallbackReads, or None: then what it needs is read)
    def _on_progress(self, payload, reads=None):
        if states.is_terminal(self.state):
            return False
        attempt = max(self.attempt, payload.get("attempt", 1))
        if self.state == states.RUNNING:
            if attempt != self.attempt:
                self._write_protected({"attempt": attempt})
            return True
        self._set_running(attempt, account=reads and reads.account)
        return True

    def _on_result(self, payload, reads=None):
        if states.is_terminal(self.state):
            return False
        setting = get_setting(self.env, "ai_generation.max_result_bytes")
        limit = result_limits.effective_max_result_bytes(setting)
        size = result_limits.result_bytes(payload)
        if size > limit:
            # not the user's fault, and not kept: every read of the request would carry it
            self._set_failed(
                "result_too_large",
                "system",
                "",
                f"the result has {size} bytes; ai_generation.max_result_bytes is {limit}",
                attempt=payload.get("attempt", 1),
                reads=reads,
            )
            return True
        self._set_succeeded(
            output=payload.get("output"),
            output_url=payload.get("output_url"),
            usage=payload.get("usage"),
            attempt=payload.get("attempt", 1),
            reads=reads,
        )
        return True

    def _on_failure(self, payload, reads=None):
        if states.is_terminal(self.state):
            return False
        error_type = payload["error_type"]
        side = "user" if payload["is_user_error"] else "system"
        expected = contracts.error_type_info(error_type)["side"]
        if side != expected:
            raise ValidationFailed(
                "The failure's side contradicts the error taxonomy.",
                fields={
                    "is_user_error": f"{error_type} is a {expected}-side error (schemas/error_taxonomy.json)."
                },
            )
        self._set_failed(
            error_type,
            side,
            payload.get("error_code") or "",
            payload.get("detail") or "",
            attempt=payload.get("attempt", 1),
            reads=reads,
        )
        return True

    def _on_notify(self, payload, reads=None):
        """The worker's wording of a failure. The owner was told with the failure itself: only wording
        that changes what they read is stored and sent again (as a replacement, same status), so one
        failure is one message on the bus. Returns whether anything changed."""
        if self.state != states.FAILED:
            raise IllegalTransitionError(
                f"Only a failed request can carry an error message; request {self.uuid} is {self.state}."
            )
        # only the wording of the failure recorded: a retry suggestion told a user whose input was
        # refused that the platform was at fault, and the reverse. A worker whose failure came after
        # another one was recorded (the deadline reaper's, another delivery's) got a duplicate for it:
        # its notify is one too, kept out (a 409 would fail an n8n execution and raise its alert)
        named = payload.get("error_type")
        side = "user" if payload.get("specific_guidance") else "system"
        if (named and named != self.error_type) or (self.error_side and side != self.error_side):
            _logger.info(
                "notify for %s ignored: it words a %s %s-side failure, the request failed with %s (%s side)",
                self.uuid,
                named or "-",
                side,
                self.error_type,
                self.error_side,
            )
            return False
        vals = {"user_message": payload["user_message"]}
        if payload.get("retry_suggestion"):
            vals.update(retry_suggestion=payload["retry_suggestion"], specific_guidance=False)
        if payload.get("specific_guidance"):
            vals.update(specific_guidance=payload["specific_guidance"], retry_suggestion=False)
        changed = {name: value for name, value in vals.items() if (self[name] or False) != (value or False)}
        if not changed:
            return False
        self._write_protected(changed)
        self._notify_owner(reads and reads.account)
        return True

    # ------------------------------------------------------------------ the state API
    def _update_state(self, allowed_states, target_state, vals=None):
        """Move the records in ``allowed_states`` to ``target_state`` (with ``vals``); the only writer
        of ``state``. As payment's: records already there are skipped (INFO), records in another state
        are refused (IllegalTransitionError, nothing written). Returns the records moved."""
        already = self.filtered(lambda r: r.state == target_state and r.state not in allowed_states)
        wrong = self.filtered(lambda r: r.state not in allowed_states) - already
        if already:
            _logger.info("request(s) %s already %s", ",".join(already.mapped("uuid")), target_state)
        if wrong:
            _logger.warning(
                "refused to move request(s) %s to %s from %s",
                ",".join(wrong.mapped("uuid")),
                target_state,
                ",".join(sorted(set(wrong.mapped("state")))),
            )
            first = wrong[0]
            raise IllegalTransitionError(str(states.IllegalTransition(first.state, target_state)))
        todo = self - already
        if todo:
            todo._write_protected(
                dict(vals or {}, state=target_state, last_state_change=fields.Datetime.now())
            )
        return todo

    def _set_dispatched(self):
        """The broker confirmed the job (the outbox); a worker faster than the confirm wins."""
        return self._update_state({states.QUEUED}, states.DISPATCHED)

    def _set_running(self, attempt, account=None):
        moved = self._update_state(
            states.allowed_sources(states.RUNNING) - {states.RUNNING},
            states.RUNNING,
            {
                "attempt": attempt,
                "started_at": fields.Datetime.now(),
                "user_message": owner_text(self.user_id[:1], STATE_MESSAGES[states.RUNNING]),
            },
        )
        moved._notify_owner(account)
        return moved

    def _set_succeeded(self, output=None, output_url=None, usage=None, attempt=1, reads=None):
        """Success: the hold is captured (paid once), the result stored, the owner told. ``reads``:
        the hold and account read under the request's lock by the caller (CallbackReads)."""
        self.ensure_one()
        self._check_can_move(states.SUCCEEDED)
        hold, account = reads or self._open_hold_and_account()
        if hold:
            account._capture(self, hold)
        moved = self._update_state(
            states.allowed_sources(states.SUCCEEDED),
            states.SUCCEEDED,
            {
                "result_output": output or False,
                "result_url": output_url or False,
                "usage": usage or {},
                "attempt": max(self.attempt, attempt or 1),
                "credits_charged": hold,
                "finished_at": fields.Datetime.now(),
                "user_message": owner_text(self.user_id, STATE_MESSAGES[states.SUCCEEDED]),
            },
        )
        moved._notify_owner(account)  # its credits are cached since the capture: not read again
        return moved

    def _set_failed(self, error_type, side, error_code, detail, attempt=None, reads=None):
        """Terminal failure: release (system side) or apply the invalid-input policy (user side).
        ``reads`` as for _set_succeeded."""
        self.ensure_one()
        self._check_can_move(states.FAILED)
        info = contracts.error_type_info(error_type)
        hold, account = reads or self._open_hold_and_account()
        owner = self.user_id
        charge, warning, note = 0, False, owner_text(owner, NOT_CHARGED)
        if side == "system":
            if hold:
                account._release(
                    self, hold, f"not charged: system-side failure {error_type} ({error_code or '-'})"
                )
        else:
            # the policy of the company the request was made in: the owner cannot pick a kinder one
            policy = (self.company_id or owner.company_id)._ai_invalid_input_policy()
            decision = decide_charge(policy, self.price, hold, self._prior_user_errors(policy.window_hours))
            charge, warning = decision.charge, decision.warning
            if charge:
                account._charge(self, charge, decision.reason)
            if hold - charge:
                account._release(self, hold - charge, f"rest of the hold released after: {decision.reason}")
            if warning:
                note = warning_note(owner, decision.warning_number, policy.free_warnings)
            elif charge:
                note = charged_note(owner, charge)
        moved = self._update_state(
            states.allowed_sources(states.FAILED),
            states.FAILED,
            {
                "error_type": error_type,
                "error_side": side,
                "error_code": error_code,
                "error_detail": detail,
                "attempt": max(self.attempt, attempt or 0),
                "credits_charged": charge,
                "is_warning": warning,
                "charge_note": note,
                "user_message": owner_text(owner, contracts.user_message(side)),
                "retry_suggestion": side == "system" and owner_text(owner, info.get("retry_suggestion")),
                "specific_guidance": side == "user" and owner_text(owner, info.get("specific_guidance")),
                "finished_at": fields.Datetime.now(),
            },
        )
        _logger.info("request %s failed: %s (%s side), charged %s", self.uuid, error_type, side, charge)
        moved._notify_owner(account)
        return moved

    def _set_cancelled(self, reason="not charged: cancelled by an administrator"):
        self.ensure_one()
        self._check_can_move(states.CANCELLED)
        hold = self._open_hold()
        if hold:
            self._account()._release(self, hold, reason)
        moved = self._update_state(
            states.allowed_sources(states.CANCELLED),
            states.CANCELLED,
            {
                "finished_at": fields.Datetime.now(),
                "user_message": owner_text(self.user_id, STATE_MESSAGES[states.CANCELLED]),
            },
        )
        moved._notify_owner()
        return moved

    def _check_can_move(self, target):
        """Before money moves: the transition must be allowed (the state write comes after)."""
        if not states.can_move(self.state, target):
            raise IllegalTransitionError(str(states.IllegalTransition(self.state, target)))

    # ------------------------------------------------------------------ credits
    def _account(self):
        """The owner's account; it exists whenever the request holds or was charged credits."""
        return self.env["ai.credit.account"].sudo()._open_for_user(self.user_id)

    def _open_hold_and_account(self):
        """CallbackReads (credits still held for this request, the owner's account) in one round trip,
        as a terminal change needs both (the account for its movements and for the owner's bus
        message), for a caller that did not read them with the request's lock."""
        self.ensure_one()
        self.env.flush_all()
        self.env.cr.execute(
            """
            SELECT (SELECT COALESCE(SUM(hold_amount), 0) FROM ai_credit_ledger_line WHERE request_id = %s),
                   a.id, a.balance, a.held
              FROM res_users u LEFT JOIN ai_credit_account a ON a.user_id = u.id
             WHERE u.id = %s
            """,
            (self.id, self.user_id.id),
        )
        return self._callback_reads(*self.env.cr.fetchone())

    def _callback_reads(self, hold, account_id, balance, held):
        """CallbackReads of the hold and the owner's account, as the caller's query read them (the
        account cached); an account is opened when credits are held and it is missing (it never is:
        the hold opened it)."""
        account = self.env["ai.credit.account"].sudo()._cached(account_id, balance, held, self.user_id)
        return CallbackReads(hold, account if account or not hold else self._account())

    def _open_hold(self):
        """Credits still held for this request (the sum of its lines' effect on held)."""
        self.ensure_one()
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT COALESCE(SUM(hold_amount), 0) FROM ai_credit_ledger_line WHERE request_id = %s",
            (self.id,),
        )
        return self.env.cr.fetchone()[0]

    def _prior_user_errors(self, window_hours):
        since = fields.Datetime.now() - timedelta(hours=window_hours)
        return self.search_count(
            [
                ("user_id", "=", self.user_id.id),
                ("state", "=", states.FAILED),
                ("error_side", "=", "user"),
                ("finished_at", ">=", since),
                ("id", "!=", self.id),
            ]
        )

    # ------------------------------------------------------------------ deadline reaper (cron)
    @api.model
    def _cron_fail_expired(self, limit=200):
        """Deadline reaper: no terminal callback in time is a system failure; the user pays nothing.

        Each request in a transaction of its own: one that cannot be failed is logged and skipped, and
        never holds back the others. Progress goes to Odoo 18's cron progress (more left: run again soon).
        """
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT uuid FROM ai_generation_request
                WHERE state IN ('queued', 'dispatched', 'running') AND deadline < %s
                ORDER BY deadline LIMIT %s""",
            (fields.Datetime.now(), limit),
        )
        uuids = [row[0] for row in self.env.cr.fetchall()]
        reaped_ids, skipped = [], 0
        for request_uuid in uuids:
            try:
                request_id = call_in_own_transaction(self.sudo(), "_reap_one", request_uuid)
            except Exception as exc:
                skipped += 1
                _logger.warning(
                    "deadline reaper skipped request %s: %s: %s", request_uuid, type(exc).__name__, exc
                )
                continue
            if request_id:
                reaped_ids.append(request_id)
        if uuids:
            _logger.info("deadline reaper: %d failed, %d skipped", len(reaped_ids), skipped)
        # a full batch may leave more behind: run again soon (skipped ones would only loop: not counted)
        remaining = 1 if len(uuids) == limit and reaped_ids else 0
        self.env["ir.cron"]._notify_progress(done=len(reaped_ids), remaining=remaining)
        self.invalidate_model()
        return self.browse(reaped_ids)

    @api.model
    def _reap_one(self, request_uuid):
        """Fail one expired request, unless a callback holds it right now or it finished meanwhile."""
        request = self._lock_by_uuid(request_uuid, skip_locked=True)
        if not request or states.is_terminal(request.state) or request.deadline >= fields.Datetime.now():
            return False
        request._set_failed(
            "model_timeout", "system", "deadline_exceeded", "No outcome from any worker before the deadline."
        )
        return request.id

    # ------------------------------------------------------------------ admin actions
    def _check_manager(self):
        if not self.env.su and not self.env.user.has_group("ai_generation.group_ai_generation_manager"):
            raise AccessError(_("Only AI Generation managers can change generation requests."))
        # the actions then work as superuser: the record rules (other companies) are checked here, first
        self.check_access("read")
        if not self.env.su:
            # and the credits they move are on the owner's account, which follows the owner's company
            # (a request stays in the one it was made in): as the credit wizard's grant checks it
            for owner in self.sudo().user_id:
                if owner.company_id not in self.env.companies:
                    raise AccessError(
                        _(
                            "%(user)s works for %(company)s: select that company to change their credits.",
                            user=owner.display_name,
                            company=owner.company_id.display_name,
                        )
                    )

    def action_cancel(self):
        """Cancel unfinished requests (managers): holds released, owners told."""
        self._check_manager()
        finished = self.sudo().filtered(lambda r: states.is_terminal(r.state))
        if finished:  # checked for all first: no half-cancelled selection (each is checked again locked)
            raise UserError(_("Already finished, nothing cancelled: %s", ", ".join(finished.mapped("uuid"))))
        for request in self.sudo():
            call_in_own_transaction(self.sudo(), "_cancel_one", request.uuid)
        self.invalidate_recordset()
        return True

    @api.model
    def _cancel_one(self, request_uuid):
        locked = self._lock_by_uuid(request_uuid)
        if states.is_terminal(locked.state):
            raise UserError(_("Request %(id)s is already %(state)s.", id=locked.uuid, state=locked.state))
        locked._set_cancelled()

    def _refund(self, credits, reason):
        """Give back up to what this request cost (managers, through the credit wizard); one refund
        per request, checked again under the request's lock. Returns the ledger line."""
        self.ensure_one()
        self._check_manager()
        if not isinstance(credits, int) or isinstance(credits, bool) or credits <= 0:
            raise UserError(_("A refund is a whole number of credits, at least 1."))
        line_id = call_in_own_transaction(self.sudo(), "_refund_one", self.uuid, credits, reason)
        self.invalidate_recordset()
        return self.env["ai.credit.ledger.line"].sudo().browse(line_id)

    @api.model
    def _refund_one(self, request_uuid, credits, reason):
        locked = self._lock_by_uuid(request_uuid)
        if locked.credits_refunded:
            raise UserError(
                _(
                    "Request %(id)s was already refunded (%(credits)s credits): one refund per request.",
                    id=locked.uuid,
                    credits=locked.credits_refunded,
                )
            )
        if credits > locked.credits_charged:
            raise UserError(
                _("A refund is a whole number between 1 and the %s credits charged.", locked.credits_charged)
            )
        return locked._account()._refund(locked, credits, reason or _("refund")).id
