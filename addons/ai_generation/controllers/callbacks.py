# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Worker callbacks (DESIGN.md § Contracts): server to server, open only to the workers.

A worker proves itself with the shared secret (``Authorization: Bearer <secret>``, compared in
constant time) or, alternatively, with an API key or session of a user in the worker group.
"""

import logging
import re

from odoo import api, http
from odoo.http import request

from ..models.json_http import error_response, json_response, read_body
from ..models.res_config_settings import SECRET_PARAM, get_setting
from ..models.transactions import call_in_own_transaction
from ..pure import contracts, result_limits, validation, worker_secret
from ..pure.errors import ApiError, Unauthorized, ValidationFailed
from .api_fallback import not_routed

_logger = logging.getLogger(__name__)

WORKER_GROUP = "ai_generation.group_ai_generation_worker"
# auth='none' routes are read-only by default in 18.0: callbacks write
ROUTE_OPTIONS = {
    "type": "http",
    "auth": "none",
    "methods": ["POST"],
    "csrf": False,
    "save_session": False,
    "readonly": False,
}
BEARER_RE = re.compile(r"^bearer\s+(.+)$", re.IGNORECASE)
SCHEMAS = {
    "failure": "callback_failure.json",
    "result": "callback_result.json",
    "progress": "callback_progress.json",
    "notify": "callback_notify.json",
}


def _authenticated_worker(env, httprequest):
    match = BEARER_RE.match(httprequest.headers.get("Authorization", ""))
    token = match.group(1).strip() if match else ""
    stored = env["ir.config_parameter"].sudo().get_param(SECRET_PARAM)
    if token and worker_secret.matches(token, stored):  # a digest, compared in constant time
        return True
    uid = None
    if token:
        uid = env["res.users.apikeys"]._check_credentials(scope="rpc", key=token)
    elif request.session.uid:
        uid = request.session.uid
    if uid:
        return env["res.users"].sudo().browse(uid).has_group(WORKER_GROUP)
    return False


def _payload(httprequest, kind):
    if httprequest.mimetype != "application/json":
        # as on the public API: a worker's session cookie must not let a cross-site form (text/plain,
        # which needs no CORS preflight) post a callback
        raise ValidationFailed(
            "Send the callback as JSON.",
            {"Content-Type": "Must be application/json."},
            status=415,
            code="unsupported_media_type",
        )
    # bounded before it is read: a worker relays what a provider wrote (pure/result_limits.py)
    limit = result_limits.callback_body_limit(get_setting(request.env, "ai_generation.max_result_bytes"))
    raw = read_body(httprequest, limit, what="callback")
    try:  # strict JSON, as on the public API: a NUL, a lone surrogate or deep nesting was a 500
        payload = validation.parse_json_object(raw)
    except validation.InvalidRequest as exc:
        raise ValidationFailed(str(exc), exc.fields) from None
    errors = {}
    for error in contracts.validator(SCHEMAS[kind]).iter_errors(payload):
        where = ".".join(str(p) for p in error.absolute_path) or "body"
        errors.setdefault(where, error.message[:300])
    if errors:
        raise ValidationFailed(f"The {kind} callback does not match {SCHEMAS[kind]}.", errors)
    return payload


class WorkerCallbacks(http.Controller):
    def _handle(self, kind):
        if request.httprequest.method != "POST":
            # Odoo's routing adds OPTIONS to every route that lists its methods: it must not run one
            return not_routed()
        env = api.Environment(request.env.cr, api.SUPERUSER_ID, {})
        try:
            if not _authenticated_worker(env, request.httprequest):
                raise Unauthorized("Callbacks are for workers: send 'Authorization: Bearer <worker secret>'.")
            payload = _payload(request.httprequest, kind)
            _logger.debug("callback %s: %s", kind, payload)
            # a READ COMMITTED transaction of its own: the request's row lock orders callbacks and the
            # dispatch mark without serialization failures (models/transactions.py)
            answer = call_in_own_transaction(env["ai.generation.request"], "_handle_callback", kind, payload)
        except ApiError as exc:
            _logger.info("callback %s refused: %s %s", kind, exc.status, exc.code)
            return error_response(exc)
        _logger.info(
            "callback %s for %s: status=%s duplicate=%s",
            kind,
            answer["generation_request_id"],
            answer["status"],
            answer["duplicate"],
        )
        return json_response(answer)

    @http.route("/ai/generation/failure", **ROUTE_OPTIONS)
    def failure(self, **_kwargs):
        return self._handle("failure")

    @http.route("/ai/generation/result", **ROUTE_OPTIONS)
    def result(self, **_kwargs):
        return self._handle("result")

    @http.route("/ai/generation/progress", **ROUTE_OPTIONS)
    def progress(self, **_kwargs):
        return self._handle("progress")

    @http.route("/notify/generation-error", **ROUTE_OPTIONS)
    def notify(self, **_kwargs):
        return self._handle("notify")
