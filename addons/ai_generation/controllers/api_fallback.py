# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Every other /api/v1/* request: a JSON 404 (or 405 when the path exists for other methods), never
Odoo's HTML page, and the CORS preflight of any API path."""

import werkzeug.exceptions
from odoo import http
from odoo.http import request

from ..models.ir_http import preflight_response
from ..models.json_http import error_response
from ..pure.errors import ApiError, NotFound

FALLBACK_ROUTES = ("/api/v1", "/api/v1/<path:rest>")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


def _methods_of(path):
    """The methods another API route accepts on ``path`` (empty: no route has it)."""
    adapter = request.env["ir.http"].routing_map().bind_to_environ(request.httprequest.environ)
    found = []
    for method in METHODS:
        try:
            rule, _args = adapter.match(path, method=method, return_rule=True)
        except werkzeug.exceptions.HTTPException:
            continue
        if rule.rule not in FALLBACK_ROUTES:
            found.append(method)
    return found


class ApiFallback(http.Controller):
    @http.route(list(FALLBACK_ROUTES), type="http", auth="none", csrf=False, save_session=False)
    def unknown_api_path(self, **_kwargs):
        httprequest = request.httprequest
        if httprequest.method == "OPTIONS":
            return preflight_response()
        methods = _methods_of(httprequest.path)
        if methods:
            response = error_response(
                MethodNotAllowed(
                    f"{httprequest.path} accepts {', '.join(methods)}, not {httprequest.method}."
                )
            )
            response.headers["Allow"] = ", ".join(methods)
            return response
        return error_response(
            NotFound(f"No API route {httprequest.method} {httprequest.path} (docs/openapi.yaml lists them).")
        )
