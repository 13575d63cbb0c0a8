# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""Plain-JSON HTTP answers shared by the public API and the worker callbacks."""

import json

from odoo.http import Response

from ..pure.errors import PayloadTooLargeError
from ..pure.result_limits import DRAIN_LIMIT, BodyTooLarge, discard_rest, read_bounded


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


def read_body(httprequest, limit, what="request", drain_cap=DRAIN_LIMIT):
    """The body, or a 413 without reading past ``limit``, whether its length is declared or not.

    werkzeug reads a chunked body (no Content-Length) whole, however large; this one stops at the
    limit. What was read is kept where werkzeug's ``get_data`` keeps it, so that Odoo's replay of the
    request after a serialization failure reads the same body again. A refused body is read to its
    end up to ``drain_cap`` (so that the client reads the 413); a longer one is cut off."""
    # Odoo's HTTPRequest passes on a fixed list of werkzeug's attributes, and the input stream is not
    # one of them: the werkzeug request it wraps has it
    wrapped = getattr(httprequest, "_HTTPRequest__wrapped", httprequest)
    cached = getattr(wrapped, "_cached_data", None)
    if cached is not None:
        return cached
    try:
        data = read_bounded(wrapped.stream, wrapped.content_length, limit)
    except BodyTooLarge:
        discard_rest(wrapped.stream, wrapped.content_length, drain_cap)
        raise PayloadTooLargeError(f"The {what} body is larger than {limit} bytes.") from None
    wrapped._cached_data = data  # where werkzeug's get_data() looks first
    return data
