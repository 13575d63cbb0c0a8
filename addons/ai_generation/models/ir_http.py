# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
import re
from urllib.parse import urlsplit

import werkzeug.exceptions
import werkzeug.routing
from odoo import models
from odoo.exceptions import AccessDenied
from odoo.http import Response, SessionExpiredException, request

from ..pure import cors
from ..pure.errors import ApiError, Unauthorized
from .json_http import json_response
from .res_config_settings import get_setting

API_PREFIX = "/api/v1/"


CALLBACK_PREFIX = "/ai/generation"
NOTIFY_PATH = "/notify/generation-error"
APP_PREFIX = "/ai_generation/app"  # the PWA's shell (controllers/app.py)


def is_api_path(path):
    return path == API_PREFIX.rstrip("/") or path.startswith(API_PREFIX)


def is_own_path(path):
    """The paths this addon answers (API and callbacks), once werkzeug merged doubled slashes."""
    merged = re.sub("/{2,}", "/", path)
    return is_api_path(merged) or merged.split("/")[:3] == ["", "ai", "generation"] or merged == NOTIFY_PATH


def is_own_redirect(path_info, new_url):
    """Whether werkzeug's redirect of ``path_info`` to ``new_url`` leads to one of this addon's paths.

    Decided on the target too: with http_routing installed, ``/fr/ai/generation//progress`` is matched
    again without its language prefix, and the redirect goes to ``/ai/generation/progress``."""
    return is_own_path(path_info) or is_own_path(urlsplit(new_url).path)


def _allowed_origin():
    """The request's Origin when an administrator allowed it (settings: Allowed origins), else None."""
    origin = request.httprequest.headers.get("Origin")
    if not origin:
        return None
    allowed = cors.allowed_origins(get_setting(request.env, "ai_generation.cors_origins"))
    return origin if cors.is_allowed(origin, allowed) else None


def add_cors_headers(response):
    """CORS headers on an API answer to an allowed origin; nothing for any other origin."""
    origin = _allowed_origin()
    if origin:
        for name, value in cors.response_headers(origin).items():
            response.headers[name] = value
    return response


def _no_content():
    """A 204 claims no type for the body it does not have (Odoo's default says text/html)."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def preflight_response():
    """The answer to OPTIONS on /api/v1/*, before any authentication (a browser sends no credentials
    with a preflight): the CORS headers for an allowed origin, a JSON 403 for any other origin."""
    # answered before the route's save_session=False applies: no session cookie on a preflight
    request.session.can_save = False
    origin = request.httprequest.headers.get("Origin")
    if not origin:  # not a browser's preflight: what the path accepts
        response = _no_content()
        response.headers["Allow"] = cors.ALLOW_METHODS
        return response
    allowed = _allowed_origin()
    if not allowed:
        error = ApiError(
            f"The origin {origin} may not call this API from a browser; an administrator lists the origins"
            " allowed (AI Generation settings: Allowed origins).",
            status=403,
            code="origin_not_allowed",
        )
        return json_response(error.body(), 403)
    response = _no_content()
    for name, value in cors.preflight_headers(allowed).items():
        response.headers[name] = value
    return response


def _unauthorized(message):
    response = json_response(Unauthorized(message).body(), 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="ai_generation"'
    return werkzeug.exceptions.Unauthorized(response=add_cors_headers(response))


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _auth_method_ai_generation_api(cls):
        """Odoo's ``auth='bearer'`` (an API key in ``Authorization: Bearer``) with a JSON 401, and the
        web session as fallback for the PWA's fetch() calls.

        Odoo's own bearer method accepts a session only for top-level browser navigations (Sec-Fetch
        headers), which a fetch() never is; CSRF on the session path is prevented instead by requiring
        ``Content-Type: application/json`` on writes (a cross-site form cannot send it without CORS,
        and the CORS answers never allow credentials). A CORS preflight is answered here, unauthenticated.
        """
        if request.httprequest.method == "OPTIONS":
            raise werkzeug.exceptions.HTTPException(response=preflight_response())
        if request.httprequest.headers.get("Authorization"):
            try:
                cls._auth_method_bearer()
            except (AccessDenied, werkzeug.exceptions.HTTPException, SessionExpiredException):
                raise _unauthorized("The API key is invalid, expired or belongs to another user.") from None
            return
        try:
            cls._auth_method_user()
        except SessionExpiredException:
            raise _unauthorized("Log in, or send an Odoo API key as 'Authorization: Bearer <key>'.") from None

    @classmethod
    def _match(cls, path_info):
        """A doubled slash in one of this addon's paths is a JSON 404, not werkzeug's 308 to the merged
        path with an HTML body (a client sent a POST there: following it would be a guess)."""
        try:
            return super()._match(path_info)
        except werkzeug.routing.RequestRedirect as redirect:
            if not is_own_redirect(path_info, redirect.new_url):
                raise
            from ..controllers.api_fallback import not_routed  # the controllers import this module

            request.session.can_save = False
            response = not_routed()
            if is_api_path(re.sub("/{2,}", "/", path_info)):
                add_cors_headers(response)
            raise werkzeug.exceptions.HTTPException(response=response) from None

    @classmethod
    def _pre_dispatch(cls, rule, args):
        """The addon's routes get their path's arguments only: they read the query string and the JSON
        body themselves. Odoo's dispatcher passes every query and form field as a keyword argument, so
        ``?self=1`` made a TypeError, and it parses a form body first, which raised in werkzeug for a
        multipart type with an empty boundary: both an HTML 500 for anyone, before any credential."""
        result = super()._pre_dispatch(rule, args)
        path = request.httprequest.path
        if is_own_path(path) or path == APP_PREFIX or path.startswith(f"{APP_PREFIX}/"):
            request.get_http_params = dict  # this request's only: the dispatcher adds ``args`` to it
        return result

    @classmethod
    def _post_dispatch(cls, response):
        result = super()._post_dispatch(response)
        if is_api_path(request.httprequest.path):
            add_cors_headers(response)
        return result
