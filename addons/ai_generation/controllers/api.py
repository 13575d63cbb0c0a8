# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Public API (DESIGN.md § Contracts; docs/openapi.yaml): plain JSON, API key or session."""

import hashlib
import json
import logging
import re

from odoo import http
from odoo.http import request

from ..models.ai_generation_request import LIST_RESULT_LIMIT
from ..models.json_http import error_response, json_response, read_body
from ..models.res_config_settings import get_setting
from ..models.transactions import call_in_own_transaction
from ..pure import validation
from ..pure.errors import ApiError, NotFound, PayloadTooLargeError, ValidationFailed

_logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
RECENT_LINES = 20  # ledger lines in GET /api/v1/credits
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ROUTE_OPTIONS = {"type": "http", "auth": "ai_generation_api", "csrf": False, "save_session": False}


def _is_json(httprequest):
    return httprequest.mimetype == "application/json"


def _body_hash(body):
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _query_arg(parse, name, *args):
    """A query argument through one of validation's parsers; a 400 with the field otherwise."""
    try:
        return parse(name, request.httprequest.args.getlist(name), *args)
    except validation.InvalidRequest as exc:
        raise ValidationFailed(str(exc), exc.fields) from None


class GenerationApi(http.Controller):
    @http.route("/api/v1/generations", methods=["POST"], **ROUTE_OPTIONS)
    def create_generation(self, **_kwargs):
        try:
            return self._create(request.httprequest)
        except ApiError as exc:
            return error_response(exc)

    def _create(self, httprequest):
        if not _is_json(httprequest):
            raise ValidationFailed(
                "Send the request as JSON.",
                {"Content-Type": "Must be application/json."},
                status=415,
                code="unsupported_media_type",
            )
        # a refused body is drained up to 4 MiB only: any API key may send one, where the callbacks'
        # senders are the workers (whose results may be large)
        raw = read_body(httprequest, MAX_BODY_BYTES, drain_cap=4 * MAX_BODY_BYTES)
        try:
            key = validation.idempotency_key(httprequest.headers.getlist("Idempotency-Key"))
            body = validation.parse_json_object(raw)
        except validation.InvalidRequest as exc:
            raise ValidationFailed(str(exc), exc.fields) from None
        limits = validation.Limits(
            max_prompt_chars=get_setting(request.env, "ai_generation.max_prompt_chars"),
            max_params_bytes=get_setting(request.env, "ai_generation.max_params_bytes"),
        )
        try:
            gen = validation.validate_generation(body, limits)
        except validation.PayloadTooLarge as exc:
            raise PayloadTooLargeError(str(exc)) from None
        except validation.InvalidRequest as exc:
            raise ValidationFailed(str(exc), exc.fields) from None
        # a READ COMMITTED transaction of its own: one user's concurrent creates wait for each other's
        # advisory lock instead of failing to serialize (models/transactions.py)
        status, answer, replayed = call_in_own_transaction(
            request.env["ai.generation.request"], "_api_create", request.env.user, gen, key, _body_hash(body)
        )
        headers = {"Location": answer["status_url"]}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return json_response(answer, status, headers)

    @http.route("/api/v1/generations/<string:request_id>", methods=["GET"], **ROUTE_OPTIONS)
    def read_generation(self, request_id, **_kwargs):
        try:
            found = (
                self._own_requests([("uuid", "=", request_id)], limit=1)
                if UUID_RE.match(request_id)
                else None
            )
            if not found:
                raise NotFound(f"No generation request {request_id} for you.")
            return json_response(found._api_body())
        except ApiError as exc:
            return error_response(exc)

    @http.route("/api/v1/generations", methods=["GET"], **ROUTE_OPTIONS)
    def list_generations(self, **_kwargs):
        try:
            limit = _query_arg(validation.query_integer, "limit", 20, 1, 100)
            offset = _query_arg(validation.query_integer, "offset", 0, 0, 10**9)
            domain = []
            known = [s for s, _label in request.env["ai.generation.request"]._fields["state"].selection]
            status = _query_arg(validation.query_choice, "status", known)
            if status:
                domain.append(("state", "=", status))
            items = self._own_requests(domain, limit=limit, offset=offset)
            count = self._own_requests(domain, count=True)
            return json_response(
                {
                    "items": items._api_list_bodies(LIST_RESULT_LIMIT),
                    "count": count,
                    "limit": limit,
                    "offset": offset,
                }
            )
        except ApiError as exc:
            return error_response(exc)

    @http.route("/api/v1/credits", methods=["GET"], **ROUTE_OPTIONS)
    def read_credits(self, **_kwargs):
        # a read: a user without an account yet has zero credits, and nothing is written
        account = request.env["ai.credit.account"].sudo()._find_for_user(request.env.user)
        Lines = request.env["ai.credit.ledger.line"].sudo()
        # the newest lines only, read with their search: line_ids read the whole ledger, a cost growing
        # with its history
        lines = (
            Lines.search_fetch(
                [("account_id", "=", account.id)],
                ["kind", "amount", "hold_amount", "reason", "request_id", "date"],
                order="id desc",
                limit=RECENT_LINES,
            )
            if account
            else Lines
        )
        return json_response(
            {
                "balance": account.balance,
                "held": account.held,
                "available": account.balance - account.held,
                "recent_lines": [
                    {
                        "kind": line.kind,
                        "amount": line.amount,
                        "hold_amount": line.hold_amount,
                        "reason": line.reason,
                        "request_id": line.request_id.uuid or None,
                        "date": line.date.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                    for line in lines
                ],
            }
        )

    def _own_requests(self, domain, count=False, **kwargs):
        """The caller's own requests only, even for managers: the API is not an admin tool. All of them:
        a request stays in the company it was made in (the multi-company rule is for the back office),
        and its owner sees it from whichever company they are in now."""
        Request = request.env["ai.generation.request"].sudo()
        domain = [("user_id", "=", request.env.uid), *domain]
        return Request.search_count(domain) if count else Request.search(domain, **kwargs)
