# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Plain-JSON HTTP answers shared by the public API and the worker callbacks."""

import json

from odoo.http import Response


def json_response(body, status=200, headers=None):
    response = Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type="application/json; charset=utf-8",
    )
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error):
    """The JSON answer of an ApiError (schemas/error_response.json)."""
    headers = {}
    if getattr(error, "retry_after", None):
        headers["Retry-After"] = str(error.retry_after)
    return json_response(error.body(), error.status, headers)
