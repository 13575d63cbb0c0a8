# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""A generation request: the state Odoo owns, its credit hold and every outcome the workers report."""

import logging
import uuid
from datetime import datetime, timedelta, timezone

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..pure import amqp, contracts, states
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
from .res_config_settings import get_setting

_logger = logging.getLogger(__name__)

BUS_TYPE = "ai_generation/update"
STATE_SELECTION = [
    (states.QUEUED, "Queued"),
    (states.DISPATCHED, "Dispatched"),
    (states.RUNNING, "Running"),
    (states.SUCCEEDED, "Succeeded"),
    (states.FAILED, "Failed"),
    (states.CANCELLED, "Cancelled"),
]
# What the user reads for the states that are not failures (failures use the taxonomy's messages)
STATE_MESSAGES = {
    states.QUEUED: "Your request was accepted and is waiting for a worker.",
    states.DISPATCHED: "Your request was accepted and is waiting for a worker.",
    states.RUNNING: "Your request is being processed.",
    states.SUCCEEDED: "Your generation is ready.",
    states.CANCELLED: "Your request was cancelled; you were not charged.",
}


class AiGenerationRequest(models.Model):
    _name = "ai.generation.request"
    _description = "AI Generation Request"
    _order = "id desc"
    _rec_name = "uuid"

    uuid = fields.Char(
        "Request ID",
        required=True,
        readonly=True,
        index=True,
        copy=False,
        default=lambda _s: str(uuid.uuid4()),
    )
    user_id = fields.Many2one(
        "res.users", "Owner", required=True, readonly=True, index=True, default=lambda s: s.env.user
    )
    company_id = fields.Many2one(related="user_id.company_id", store=True)
    backend = fields.Selection(BACKENDS, required=True, readonly=True)
    ai_model = fields.Char("Model", required=True, readonly=True)
    task = fields.Selection(
        [("text", "Text"), ("image", "Image")], required=True, default="text", readonly=True
    )
    prompt = fields.Text(required=True, readonly=True)
    params = fields.Json(readonly=True)
    state = fields.Selection(STATE_SELECTION, required=True, default=states.QUEUED, readonly=True, index=True)
    attempt = fields.Integer(readonly=True, default=0, help="Worker attempt last reported.")
    deadline = fields.Datetime(required=True, readonly=True, index=True)
    price = fields.Integer("Credits reserved", readonly=True, default=0)
    credits_charged = fields.Integer(readonly=True, default=0)
    is_warning = fields.Boolean("Free warning", readonly=True)
    error_type = fields.Selection(error_type_selection, readonly=True, index=True)
    error_side = fields.Selection([("system", "System"), ("user", "User input")], readonly=True, index=True)
    error_code = fields.Char(readonly=True)
    error_detail = fields.Text(readonly=True, groups="ai_generation.group_ai_generation_manager")
    user_message = fields.Char(readonly=True)
    retry_suggestion = fields.Char(readonly=True)
    specific_guidance = fields.Char(readonly=True)
    charge_note = fields.Char(readonly=True)
    result_output = fields.Text("Output", readonly=True)
    result_url = fields.Char("Output URL", readonly=True)
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

    _sql_constraints = [
        ("uuid_unique", "UNIQUE(uuid)", "The request id must be unique."),
        ("price_not_negative", "CHECK(price >= 0)", "A price cannot be negative."),
        (
            "error_needs_failure",
            "CHECK(error_type IS NULL OR state = 'failed')",
            "Only a failed request has an error type.",
        ),
    ]

    @api.depends("ledger_line_ids.amount", "ledger_line_ids.kind")
    def _compute_credits_refunded(self):
        for request in self:
            lines = request.sudo().ledger_line_ids.filtered(lambda line: line.kind == "refund")
            request.credits_refunded = sum(lines.mapped("amount"))

    # ------------------------------------------------------------------ creation (public API)
    @api.model
    def _api_create(self, user, gen, idempotency_key=None, body_hash=None):
        """Validate the price, hold the credits and create the request, all in this transaction.

        Returns (status, body, replayed). The account row lock serialises a user's concurrent creates,
        so the credit check, the rate limit and the idempotency lookup are exact.
        """
        unit = self.env["ai.generation.price"]._unit_price(gen.backend, gen.model)
        if unit is None:
            raise ValidationFailed(
                "The request has invalid fields: model",
                fields={"model": f"The model '{gen.model}' is not offered on the {gen.backend} backend."},
            )
        price = request_price(unit, gen.task, gen.params)
        account = self.env["ai.credit.account"].sudo()._for_user(user, lock=True)
        Idempotency = self.env["ai.generation.idempotency"].sudo()
        if idempotency_key:
            previous = Idempotency.search([("user_id", "=", user.id), ("key", "=", idempotency_key)], limit=1)
            if previous:
                if previous.body_hash != body_hash:
                    raise IdempotencyKeyReused(
                        "This Idempotency-Key was already used with another request body; use a new key."
                    )
                return previous.status_code, previous.response, True
        self._check_rate_limit(user)
        if account.balance - account.held < price:
            raise InsufficientCredits(
                f"Not enough credits: this request costs {price}, you have {account.balance - account.held}.",
                fields={"credits": f"needed={price} available={account.balance - account.held}"},
            )
        now = fields.Datetime.now()
        request = self.sudo().create(
            {
                "user_id": user.id,
                "backend": gen.backend,
                "ai_model": gen.model,
                "task": gen.task,
                "prompt": gen.prompt,
                "params": gen.params,
                "price": price,
                "deadline": now + timedelta(seconds=get_setting(self.env, "ai_generation.deadline_seconds")),
                "user_message": STATE_MESSAGES[states.QUEUED],
            }
        )
        if price:
            account._post_movement("hold", 0, price, f"hold for {gen.backend}/{gen.model}", request)
        request._schedule_dispatch()
        body = request._api_accepted_body()
        if idempotency_key:
            Idempotency.create(
                {
                    "user_id": user.id,
                    "key": idempotency_key,
                    "body_hash": body_hash,
                    "status_code": 202,
                    "response": body,
                    "request_id": request.id,
                }
            )
        _logger.info(
            "request %s accepted: user=%s %s/%s price=%s",
            request.uuid,
            user.id,
            gen.backend,
            gen.model,
            price,
        )
        return 202, body, False

    def _check_rate_limit(self, user):
        limit = get_setting(self.env, "ai_generation.rate_limit_per_minute")
        if limit <= 0:
            return
        since = fields.Datetime.now() - timedelta(seconds=60)
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT count(*), min(create_date) FROM ai_generation_request"
            " WHERE user_id = %s AND create_date > %s",
            (user.id, since),
        )
        count, oldest = self.env.cr.fetchone()
        if count >= limit:
            retry_after = max(1, int((oldest - since).total_seconds()) + 1)
            raise RateLimited(
                f"Too many requests: at most {limit} per minute. Try again in {retry_after} s.", retry_after
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

    def _api_body(self):
        """The request as the owner sees it through GET /api/v1/generations[/<id>]."""
        self.ensure_one()

        def iso(value):
            return amqp.iso(value) if value else None

        result = None
        if self.state == states.SUCCEEDED:
            result = {"output": self.result_output or None, "output_url": self.result_url or None}
            result["usage"] = self.usage or {}
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
            "message": self.user_message or STATE_MESSAGES.get(self.state, ""),
            "retry_suggestion": self.retry_suggestion or None,
            "specific_guidance": self.specific_guidance or None,
            "charge_note": self.charge_note or None,
            "error_type": self.error_type or None,
            "is_system_error": self.error_side == "system",
            "is_user_error": self.error_side == "user",
            "warning": self.is_warning,
            "result": result,
            "created_at": iso(self.create_date),
            "updated_at": iso(self.write_date),
            "deadline": iso(self.deadline),
            "finished_at": iso(self.finished_at),
            "status_url": self._status_url(),
        }

    def _bus_payload(self):
        self.ensure_one()
        return {
            "request_id": self.uuid,
            "status": self.state,
            "message": self.user_message or STATE_MESSAGES.get(self.state, ""),
            "retry_suggestion": self.retry_suggestion or None,
            "specific_guidance": self.specific_guidance or None,
            "charge_note": self.charge_note or None,
            "error_type": self.error_type or None,
            "is_system_error": self.error_side == "system",
            "is_user_error": self.error_side == "user",
            "warning": self.is_warning,
            "credits_reserved": self.price,
            "credits_charged": self.credits_charged,
            "result_available": self.state == states.SUCCEEDED,
        }

    def _notify_owner(self):
        """Tell the owner on the bus (type ai_generation/update); the same text stays on the request."""
        for request in self:
            request.user_id._bus_send(BUS_TYPE, request._bus_payload())

    # ------------------------------------------------------------------ dispatch (outbox)
    def _schedule_dispatch(self):
        """Publish these requests once (and only if) the current transaction commits."""
        cr = self.env.cr
        pending = cr.postcommit.data.setdefault("ai_generation.dispatch_ids", [])
        if not pending:
            registry, ids = self.env.registry, pending

            def publish_after_commit():
                try:
                    with registry.cursor() as new_cr:
                        env = api.Environment(new_cr, api.SUPERUSER_ID, {})
                        env["ai.generation.request"].browse(ids)._publish_and_mark()
                except Exception:
                    # the request stays in the outbox; the cron publishes it later
                    _logger.exception("dispatch after commit failed; the outbox cron will retry")

            cr.postcommit.add(publish_after_commit)
        pending.extend(self.ids)

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

    def _publish_and_mark(self):
        """Publish the still-undispatched requests of self; mark the confirmed ones in this cursor."""
        todo = self.filtered(lambda r: r.dispatch_state == "pending" and not states.is_terminal(r.state))
        if not todo:
            return self.browse()
        url = get_setting(self.env, "ai_generation.amqp_url")
        try:
            confirmed = set(amqp.publish_messages(url, [r._job_message() for r in todo]))
            error = "" if len(confirmed) == len(todo) else "not confirmed by the broker"
        except amqp.PublishError as exc:
            confirmed, error = set(), str(exc)[:250]
        done = todo.filtered(lambda r: r.uuid in confirmed)
        now = fields.Datetime.now()
        if done:
            self.env.cr.execute(
                """UPDATE ai_generation_request
                      SET dispatch_state = 'sent', dispatched_at = %s, dispatch_error = NULL,
                          dispatch_attempts = COALESCE(dispatch_attempts, 0) + 1,
                          state = CASE WHEN state = 'queued' THEN 'dispatched' ELSE state END
                    WHERE id IN %s""",
                (now, tuple(done.ids)),
            )
        failed = todo - done
        if failed:
            _logger.warning("%d request(s) left in the outbox: %s", len(failed), error)
            self.env.cr.execute(
                "UPDATE ai_generation_request"
                " SET dispatch_attempts = COALESCE(dispatch_attempts, 0) + 1, dispatch_error = %s"
                " WHERE id IN %s",
                (error, tuple(failed.ids)),
            )
        self.invalidate_recordset(
            ["dispatch_state", "dispatched_at", "dispatch_error", "dispatch_attempts", "state"]
        )
        return done

    @api.model
    def _cron_dispatch_pending(self, min_age_seconds=None, limit=200):
        """Outbox: publish what a broker outage (or a crash after commit) left undispatched."""
        grace = (
            get_setting(self.env, "ai_generation.dispatch_grace_seconds")
            if min_age_seconds is None
            else min_age_seconds
        )
        self.env.cr.execute(
            """SELECT id FROM ai_generation_request
                WHERE dispatch_state = 'pending' AND state = 'queued' AND create_date <= %s
                ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""",
            # full precision: fields.Datetime.now() drops the microseconds create_date keeps
            (datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=grace), limit),
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        return self.browse(ids)._publish_and_mark()

    # ------------------------------------------------------------------ worker callbacks
    @api.model
    def _lock_by_uuid(self, request_uuid):
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT id FROM ai_generation_request WHERE uuid = %s FOR UPDATE", (request_uuid,)
        )
        row = self.env.cr.fetchone()
        if not row:
            raise NotFound(f"No generation request {request_uuid}.")
        request = self.browse(row[0])
        request.invalidate_recordset()
        return request

    @api.model
    def _handle_callback(self, kind, payload):
        """Apply one worker callback; idempotent on event_id and on the request's terminal state.

        Returns the callback answer (schemas/callback_response.json). Raises NotFound, Conflict,
        IllegalTransitionError or ValidationFailed.
        """
        request = self._lock_by_uuid(payload["generation_request_id"])
        Event = self.env["ai.generation.event"]
        event_id = payload.get("event_id")
        if event_id:
            seen = Event.search([("event_id", "=", event_id)], limit=1)
            if seen:
                if seen.request_id != request or seen.kind != kind:
                    raise Conflict(
                        f"event_id {event_id} was already used for a {seen.kind} callback of another request."
                    )
                return request._callback_answer(duplicate=True)
        changed = getattr(request, f"_on_{kind}")(payload)
        if event_id and changed:
            Event.create(
                {"event_id": event_id, "request_id": request.id, "kind": kind, "state_after": request.state}
            )
        return request._callback_answer(duplicate=not changed)

    def _callback_answer(self, duplicate):
        return {
            "generation_request_id": self.uuid,
            "status": self.state,
            "duplicate": duplicate,
            "credits_charged": self.credits_charged,
        }

    def _check_move(self, target):
        try:
            states.check_transition(self.state, target)
        except states.IllegalTransition as exc:
            raise IllegalTransitionError(str(exc)) from exc

    def _move(self, target, vals):
        self._check_move(target)
        self.write(dict(vals, state=target))

    def _on_progress(self, payload):
        if states.is_terminal(self.state):
            return False
        attempt = max(self.attempt, payload.get("attempt", 1))
        if self.state == states.RUNNING:
            if attempt != self.attempt:
                self.write({"attempt": attempt})
            return True
        self._move(
            states.RUNNING,
            {
                "attempt": attempt,
                "started_at": fields.Datetime.now(),
                "user_message": STATE_MESSAGES[states.RUNNING],
            },
        )
        self._notify_owner()
        return True

    def _on_result(self, payload):
        if states.is_terminal(self.state):
            return False
        self._check_move(states.SUCCEEDED)
        hold = self._open_hold()
        if hold:
            self._account()._post_movement(
                "capture", -hold, -hold, "generation succeeded: the held credits are captured", self
            )
        self._move(
            states.SUCCEEDED,
            {
                "result_output": payload.get("output") or False,
                "result_url": payload.get("output_url") or False,
                "usage": payload.get("usage") or {},
                "attempt": max(self.attempt, payload.get("attempt", 1)),
                "credits_charged": hold,
                "finished_at": fields.Datetime.now(),
                "user_message": STATE_MESSAGES[states.SUCCEEDED],
            },
        )
        self._notify_owner()
        return True

    def _on_failure(self, payload):
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
        self._fail(
            error_type,
            side,
            payload.get("error_code") or "",
            payload.get("detail") or "",
            attempt=payload.get("attempt", 1),
        )
        return True

    def _on_notify(self, payload):
        if self.state != states.FAILED:
            raise IllegalTransitionError(
                f"Only a failed request can carry an error message; request {self.uuid} is {self.state}."
            )
        vals = {"user_message": payload["user_message"]}
        if payload.get("retry_suggestion"):
            vals.update(retry_suggestion=payload["retry_suggestion"], specific_guidance=False)
        if payload.get("specific_guidance"):
            vals.update(specific_guidance=payload["specific_guidance"], retry_suggestion=False)
        self.write(vals)
        self._notify_owner()
        return True

    # ------------------------------------------------------------------ outcomes and credits
    def _account(self):
        return self.env["ai.credit.account"].sudo()._for_user(self.user_id)

    def _open_hold(self):
        """Credits still held for this request (the sum of its lines' effect on held)."""
        self.ensure_one()
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT COALESCE(SUM(hold_amount), 0) FROM ai_credit_ledger_line WHERE request_id = %s",
            (self.id,),
        )
        return self.env.cr.fetchone()[0]

    def _fail(self, error_type, side, error_code, detail, attempt=None):
        """Terminal failure: release (system side) or apply the invalid-input policy (user side)."""
        self.ensure_one()
        self._check_move(states.FAILED)
        info = contracts.error_type_info(error_type)
        hold = self._open_hold()
        account = self._account()
        charge, warning, note = 0, False, "You were not charged."
        if side == "system":
            if hold:
                account._post_movement(
                    "release",
                    0,
                    -hold,
                    f"not charged: system-side failure {error_type} ({error_code or '-'})",
                    self,
                )
        else:
            policy = self.user_id.company_id._ai_invalid_input_policy()
            decision = decide_charge(policy, self.price, hold, self._prior_user_errors(policy.window_hours))
            charge, warning = decision.charge, decision.warning
            if charge:
                account._post_movement("user_error_charge", -charge, -charge, decision.reason, self)
            if hold - charge:
                account._post_movement(
                    "release",
                    0,
                    -(hold - charge),
                    f"rest of the hold released after: {decision.reason}",
                    self,
                )
            if warning:
                note = (
                    f"You were not charged this time (warning {decision.warning_number} of "
                    f"{policy.free_warnings}); further invalid requests may cost credits."
                )
            elif charge:
                note = f"{charge} credit(s) were charged for invalid input."
        self._move(
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
                "user_message": contracts.user_message(side),
                "retry_suggestion": info.get("retry_suggestion") if side == "system" else False,
                "specific_guidance": info.get("specific_guidance") if side == "user" else False,
                "finished_at": fields.Datetime.now(),
            },
        )
        _logger.info("request %s failed: %s (%s side), charged %s", self.uuid, error_type, side, charge)
        self._notify_owner()

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

    # ------------------------------------------------------------------ crons and admin actions
    @api.model
    def _cron_fail_expired(self, limit=200):
        """Deadline reaper: no terminal callback in time is a system failure; the user pays nothing."""
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT id FROM ai_generation_request
                WHERE state IN ('queued', 'dispatched', 'running') AND deadline < %s
                ORDER BY deadline LIMIT %s FOR UPDATE SKIP LOCKED""",
            (fields.Datetime.now(), limit),
        )
        expired = self.browse([row[0] for row in self.env.cr.fetchall()])
        for request in expired:
            request._fail(
                "model_timeout",
                "system",
                "deadline_exceeded",
                "No outcome from any worker before the deadline.",
            )
        return expired

    def action_cancel(self):
        """Cancel unfinished requests (managers): holds released, owners told."""
        if not self.env.su and not self.env.user.has_group("ai_generation.group_ai_generation_manager"):
            raise UserError(_("Only AI Generation managers can cancel requests."))
        for request in self.sudo():
            locked = request._lock_by_uuid(request.uuid)
            if states.is_terminal(locked.state):
                raise UserError(_("Request %(id)s is already %(state)s.", id=locked.uuid, state=locked.state))
            hold = locked._open_hold()
            if hold:
                locked._account()._post_movement(
                    "release", 0, -hold, "not charged: cancelled by an administrator", locked
                )
            locked._move(
                states.CANCELLED,
                {"finished_at": fields.Datetime.now(), "user_message": STATE_MESSAGES[states.CANCELLED]},
            )
            locked._notify_owner()
        return True

    def action_refund(self, credits, reason):
        """Give back up to what this request cost (managers); one refund per request."""
        self.ensure_one()
        if not self.env.su and not self.env.user.has_group("ai_generation.group_ai_generation_manager"):
            raise UserError(_("Only AI Generation managers can refund."))
        if not isinstance(credits, int) or credits <= 0 or credits > self.credits_charged:
            raise UserError(
                _("A refund is a whole number between 1 and the %s credits charged.", self.credits_charged)
            )
        return self._account()._post_movement("refund", credits, 0, reason or _("refund"), self.sudo())
