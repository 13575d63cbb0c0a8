# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Every other /api/v1/* request: a JSON 404 (or 405 when the path exists for other methods), never
Odoo's HTML page, and the CORS preflight of any API path. The workers' callback paths answer the same
way: a worker is an HTTP client too (an n8n node set to GET, a typo in a URL)."""

import re

import werkzeug.exceptions
from odoo import http
from odoo.http import request

from ..models.ir_http import CALLBACK_PREFIX, NOTIFY_PATH, preflight_response
from ..models.json_http import error_response
from ..pure.errors import ApiError, NotFound

API_FALLBACK_ROUTES = ["/api/v1", "/api/v1/<path:rest>"]
CALLBACK_FALLBACK_ROUTES = [CALLBACK_PREFIX, f"{CALLBACK_PREFIX}/<path:rest>"]
# /notify/* is not this addon's alone: only its one path there (NOTIFY_PATH), for the methods its
# route refuses
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FALLBACK_OPTIONS = {"type": "http", "auth": "none", "csrf": False, "save_session": False}


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


def _methods_of(path):
    """The methods another route accepts on ``path`` (empty: no route but these fallbacks has it)."""
    adapter = request.env["ir.http"].routing_map().bind_to_environ(request.httprequest.environ)
    found = []
    for method in METHODS:
        try:
            rule, _args = adapter.match(path, method=method, return_rule=True)
        except werkzeug.exceptions.HTTPException:
            continue
        if getattr(rule.endpoint, "__name__", None) not in ApiFallback.ENDPOINTS:
            found.append(method)
    return found


def not_routed():
    """405 with Allow when the path exists for other methods, else 404: as JSON."""
    httprequest = request.httprequest
    methods = _methods_of(httprequest.path)
    if methods:
        response = error_response(
            MethodNotAllowed(f"{httprequest.path} accepts {', '.join(methods)}, not {httprequest.method}.")
        )
        # werkzeug answers HEAD on every GET route (the GET's headers, no body)
        allowed = [m for method in methods for m in ((method, "HEAD") if method == "GET" else (method,))]
        response.headers["Allow"] = ", ".join(allowed)
        return response
    hint = ""
    if "//" in httprequest.path:
        hint = f" Did you mean {re.sub('/{2,}', '/', httprequest.path)}?"
    return error_response(
        NotFound(f"No route {httprequest.method} {httprequest.path} (docs/openapi.yaml lists them).{hint}")
    )


class ApiFallback(http.Controller):
    ENDPOINTS = ("unknown_api_path", "unknown_callback_path", "notify_other_method")

    @http.route(API_FALLBACK_ROUTES, **FALLBACK_OPTIONS)
    def unknown_api_path(self, **_kwargs):
        if request.httprequest.method == "OPTIONS":
            return preflight_response()
        return not_routed()

    @http.route(CALLBACK_FALLBACK_ROUTES, **FALLBACK_OPTIONS)
    def unknown_callback_path(self, **_kwargs):
        return not_routed()

    @http.route(NOTIFY_PATH, methods=[m for m in METHODS if m != "POST"], **FALLBACK_OPTIONS)
    def notify_other_method(self, **_kwargs):
        return not_routed()
