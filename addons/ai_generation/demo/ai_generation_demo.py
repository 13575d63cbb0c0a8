# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Demo requests in every state, made through the addon's own API so the ledger holds its invariants.

Each scenario goes through what production does: ``_api_create`` (price, hold), then the worker
callbacks (``_handle_callback``, payloads checked against the contract schemas), the manager
actions (cancel, refund) or the deadline reaper. Afterwards the dates are spread over the last weeks
so the reports show a history; only dates are moved, never credits.
"""

import uuid
from datetime import timedelta

from odoo import api, fields, models

from ..models.res_config_settings import get_setting
from ..pure import contracts
from ..pure.validation import GenerationInput

# the request model's post-commit outbox list (see AiGenerationRequest._schedule_dispatch)
DISPATCH_KEY = "ai_generation.dispatch_ids"

TEXT, IMAGE = "text", "image"
# (name, user, backend, model, task, prompt, params, days ago, outcome)
SCENARIOS = [
    ("grant_admin", "admin", None, None, None, None, None, 20.0, ("grant", 200)),
    ("grant_marc", "marc", None, None, None, None, None, 20.0, ("grant", 100)),
    ("grant_jane", "jane", None, None, None, None, None, 20.0, ("grant", 150)),
    (
        "failed_connection",
        "admin",
        "external",
        "gpt-4o-mini",
        TEXT,
        "Summarise the attached meeting notes in five bullet points.",
        {"max_tokens": 400},
        11.2,
        ("fail", "provider_connection", "connection_refused", 3),
    ),
    (
        "succeeded_text",
        "marc",
        "external",
        "gpt-4o-mini",
        TEXT,
        "Write a product description for a bamboo toothbrush.",
        {"max_tokens": 300, "temperature": 0.7},
        10.4,
        ("succeed", "Meet the bamboo toothbrush: a handle that grows back, bristles that do the job.", None),
    ),
    (
        "failed_system",
        "marc",
        "external",
        "gpt-4o-mini",
        TEXT,
        "Translate our onboarding e-mail into Spanish.",
        {"max_tokens": 800},
        10.3,
        ("fail", "provider_unavailable", "http_503", 3),
    ),
    (
        "failed_unknown",
        "admin",
        "internal",
        "llama-3.1-8b",
        TEXT,
        "Draft a polite reminder for an unpaid invoice.",
        {},
        8.1,
        ("fail", "unknown", "exit_code_3", 2),
    ),
    (
        "succeeded_image",
        "marc",
        "internal",
        "sdxl-turbo",
        IMAGE,
        "A watercolour lighthouse at dawn.",
        {"n": 2, "size": "1024x1024"},
        7.6,
        ("succeed", None, "https://cdn.example.com/ai/demo/lighthouse.png"),
    ),
    (
        "failed_pod",
        "marc",
        "internal",
        "sdxl-turbo",
        IMAGE,
        "A poster of a mountain bike race, very detailed.",
        {"n": 4, "size": "1792x1024", "quality": "hd"},
        7.5,
        ("fail", "pod_error", "OOMKilled", 2),
    ),
    (
        "succeeded_internal",
        "admin",
        "internal",
        "llama-3.1-8b",
        TEXT,
        "List ten names for a coffee shop near the station.",
        {"temperature": 1.1},
        6.9,
        ("succeed", "1. Platform Nine\n2. The Daily Grind\n3. Last Call Espresso", None),
    ),
    (
        "failed_rate_limited",
        "marc",
        "external",
        "gpt-4o-mini",
        TEXT,
        "Suggest three subject lines for our newsletter.",
        {},
        5.8,
        ("fail", "rate_limited", "http_429", 3),
    ),
    (
        "failed_timeout",
        "marc",
        "external",
        "gpt-4o",
        TEXT,
        "Write a 2,000-word story about a lost robot.",
        {"max_tokens": 4000},
        5.7,
        ("fail", "provider_timeout", "timeout", 3),
    ),
    (
        "succeeded_image_external",
        "jane",
        "external",
        "gpt-image-1",
        IMAGE,
        "A flat illustration of a team planning on a whiteboard.",
        {"n": 1, "size": "1024x1024"},
        4.9,
        ("succeed", None, "https://cdn.example.com/ai/demo/whiteboard.png"),
    ),
    (
        "failed_user_warning",
        "jane",
        "external",
        "gpt-image-1",
        IMAGE,
        "A photo-realistic picture of a real, named politician in a fight.",
        {"n": 1},
        4.2,
        ("fail", "content_policy", "content_policy_violation", 1),
    ),
    (
        "failed_user_warning_2",
        "jane",
        "external",
        "gpt-4o",
        TEXT,
        "Rewrite this whole book chapter by chapter (pasted below) ...",
        {"max_tokens": 16000},
        4.15,
        ("fail", "context_length_exceeded", "context_length_exceeded", 1),
    ),
    (
        "failed_user_charged",
        "jane",
        "external",
        "gpt-4o",
        TEXT,
        "Rewrite this whole book again, in the same request.",
        {"max_tokens": 16000},
        4.1,
        ("fail", "invalid_input", "http_400", 1),
    ),
    (
        "succeeded_refunded",
        "marc",
        "external",
        "gpt-4o",
        TEXT,
        "Explain our refund policy in plain words.",
        {"max_tokens": 600},
        3.2,
        ("succeed_refund", "Our refund policy, in short: ...", 2),
    ),
    (
        "failed_quota",
        "marc",
        "external",
        "gpt-4o",
        TEXT,
        "Write alt texts for the twelve product photos.",
        {},
        2.3,
        ("fail", "quota_exhausted", "insufficient_quota", 1),
    ),
    (
        "adjustment_marc",
        "marc",
        None,
        None,
        None,
        None,
        None,
        2.0,
        ("adjust", 10, "goodwill after the provider outage"),
    ),
    (
        "failed_deadline",
        "admin",
        "internal",
        "llama-3.1-8b",
        TEXT,
        "Classify these 500 support tickets by topic.",
        {},
        1.4,
        ("expire",),
    ),
    (
        "cancelled",
        "jane",
        "internal",
        "sdxl-turbo",
        IMAGE,
        "Twelve variations of our logo in autumn colours.",
        {"n": 4},
        1.1,
        ("cancel",),
    ),
    (
        "dispatched",
        "jane",
        "external",
        "gpt-4o-mini",
        TEXT,
        "Write a short thank-you note to our volunteers.",
        {},
        0.003,
        ("dispatch",),
    ),
    (
        "running",
        "marc",
        "external",
        "gpt-4o",
        TEXT,
        "Outline a five-day training plan for new support agents.",
        {"max_tokens": 1200},
        0.002,
        ("run",),
    ),
    (
        "queued",
        "marc",
        "internal",
        "sdxl-turbo",
        IMAGE,
        "A cosy reading nook, isometric style.",
        {"n": 1, "size": "512x512"},
        0.001,
        ("queue",),
    ),
]


class AiGenerationDemo(models.AbstractModel):
    _name = "ai.generation.demo"
    _description = "AI Generation demo data builder"

    @api.model
    def _load_demo(self, users):
        """Play SCENARIOS for ``users`` ({'admin': id, 'marc': id, 'jane': id}).

        The requests and lines get no xml ids: uninstalling would then delete them one by one, which
        the ledger's restrict foreign keys refuse, instead of dropping the tables.
        """
        Request = self.env["ai.generation.request"].sudo()
        Account = self.env["ai.credit.account"].sudo()
        now = fields.Datetime.now()
        in_flight, history = Request.browse(), []
        for _name, who, backend, model, task, prompt, params, days_ago, outcome in SCENARIOS:
            user = self.env["res.users"].browse(users[who])
            when = now - timedelta(days=days_ago)
            if outcome[0] == "grant":
                line = Account._open_for_user(user)._grant(outcome[1], "welcome credits (demo)")
                self._date_lines(line, when)
                continue
            if outcome[0] == "adjust":
                line = Account._open_for_user(user)._adjust(outcome[1], outcome[2])
                self._date_lines(line, when)
                continue
            gen = GenerationInput(backend=backend, model=model, task=task, prompt=prompt, params=params)
            status, body, _replayed = Request._api_create(user, gen)
            assert status == 202, body
            request = Request.search([("uuid", "=", body["request_id"])])
            self._keep_off_the_broker(request)
            self._play(request, outcome)
            history.append((request, when))
            if request.state in ("queued", "dispatched", "running"):
                in_flight |= request
        # dated once all are played: the invalid-input policy counts the user's recent failures
        for request, when in history:
            self._date_request(request, when)
        # the demo's unfinished requests stay unfinished for a week instead of the real deadline
        in_flight._write_protected({"deadline": now + timedelta(days=7)})
        return True

    # ------------------------------------------------------------------ the lifecycle, as workers drive it
    def _play(self, request, outcome):
        kind = outcome[0]
        if kind == "queue":
            # stays queued: the outbox cron must not send a demo prompt to the configured provider
            request._write_protected({"dispatch_state": "held"})
            return
        self._mark_dispatched(request)
        if kind == "dispatch":
            return
        if kind == "cancel":
            request.action_cancel()
            return
        self._callback("progress", request, state="running", attempt=1)
        if kind == "run":
            return
        if kind == "expire":
            request._write_protected({"deadline": fields.Datetime.now() - timedelta(seconds=1)})
            request._cron_fail_expired()
        elif kind in ("succeed", "succeed_refund"):
            usage = {"prompt_tokens": 42, "completion_tokens": 180, "total_tokens": 222}
            url = outcome[2] if kind == "succeed" else None
            self._callback("result", request, output=outcome[1] or "", output_url=url, usage=usage)
            if kind == "succeed_refund":
                request._refund(outcome[2], "goodwill: the answer was cut short")
        elif kind == "fail":
            _fail, error_type, code, attempt = outcome
            if attempt > 1:
                self._callback("progress", request, state="running", attempt=attempt)
            info = contracts.error_type_info(error_type)
            self._callback(
                "failure",
                request,
                error_type=error_type,
                is_system_error=info["side"] == "system",
                is_user_error=info["side"] == "user",
                error_code=code,
                detail=f"demo: {code} from the {request.backend} backend",
                backend=request.backend,
                attempt=attempt,
                occurred_at=fields.Datetime.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            hint = "retry_suggestion" if info["side"] == "system" else "specific_guidance"
            self._callback(
                "notify",
                request,
                error_type=error_type,
                user_message=contracts.user_message(info["side"]),
                **{hint: info[hint]},
            )

    def _callback(self, kind, request, **payload):
        payload = {k: v for k, v in payload.items() if v is not None}
        payload["generation_request_id"] = request.uuid
        if kind != "notify":
            payload["event_id"] = f"demo-{uuid.uuid4()}"
        schema = {"progress": "callback_progress.json", "result": "callback_result.json"}.get(
            kind, f"callback_{kind}.json"
        )
        contracts.validator(schema).validate(payload)
        return request._handle_callback(kind, payload)

    def _mark_dispatched(self, request):
        """What a broker confirm does (``_publish_and_mark``), without a broker."""
        request._write_protected(
            {"dispatch_state": "sent", "dispatched_at": fields.Datetime.now(), "dispatch_attempts": 1}
        )
        request._set_dispatched()

    def _keep_off_the_broker(self, request):
        """Loading demo data must not publish to whatever broker the settings name."""
        pending = self.env.cr.postcommit.data.get(DISPATCH_KEY)
        if pending is not None and request.id in pending:
            pending.remove(request.id)

    # ------------------------------------------------------------------ history: dates only
    def _date_request(self, request, created):
        """Move the request's timestamps (and its lines' and events') to ``created`` onwards."""
        deadline = created + timedelta(seconds=get_setting(self.env, "ai_generation.deadline_seconds"))
        finished = None
        if request.finished_at:
            # the reaper fails a request once its deadline has passed; workers answer within a minute
            expired = request.error_code == "deadline_exceeded"
            finished = deadline + timedelta(seconds=30) if expired else created + timedelta(seconds=40)
        later = (finished or created) + timedelta(hours=2)
        values = {
            "id": request.id,
            "created": created,
            "finished": finished,
            "deadline": deadline,
            "later": later,
        }
        cr = self.env.cr
        self.env.flush_all()
        cr.execute(
            """UPDATE ai_generation_request
                  SET create_date = %(created)s, write_date = COALESCE(%(finished)s, %(created)s),
                      dispatched_at = CASE WHEN dispatched_at IS NULL THEN NULL
                                           ELSE %(created)s + interval '2 seconds' END,
                      started_at = CASE WHEN started_at IS NULL THEN NULL
                                        ELSE %(created)s + interval '5 seconds' END,
                      finished_at = %(finished)s,
                      deadline = %(deadline)s
                WHERE id = %(id)s""",
            values,
        )
        cr.execute(
            """UPDATE ai_credit_ledger_line
                  SET date = CASE WHEN kind = 'hold' THEN %(created)s
                                  WHEN kind IN ('refund', 'adjustment') THEN %(later)s
                                  ELSE COALESCE(%(finished)s, %(created)s) END
                WHERE request_id = %(id)s""",
            values,
        )
        cr.execute(
            """UPDATE ai_generation_event
                  SET create_date = CASE WHEN kind = 'progress' THEN %(created)s + interval '5 seconds'
                                         ELSE COALESCE(%(finished)s, %(created)s) END
                WHERE request_id = %(id)s""",
            values,
        )
        self.env.invalidate_all()

    def _date_lines(self, lines, when):
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE ai_credit_ledger_line SET date = %s WHERE id IN %s", (when, tuple(lines.ids))
        )
        self.env.invalidate_all()
