# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
import werkzeug.exceptions
from odoo import models
from odoo.exceptions import AccessDenied
from odoo.http import SessionExpiredException, request

from ..pure.errors import Unauthorized
from .json_http import json_response


def _unauthorized(message):
    response = json_response(Unauthorized(message).body(), 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="ai_generation"'
    return werkzeug.exceptions.Unauthorized(response=response)


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _auth_method_ai_generation_api(cls):
        """Odoo's ``auth='bearer'`` (an API key in ``Authorization: Bearer``) with a JSON 401, and the
        web session as fallback for the PWA's fetch() calls.

        Odoo's own bearer method accepts a session only for top-level browser navigations (Sec-Fetch
        headers), which a fetch() never is; CSRF on the session path is prevented instead by requiring
        ``Content-Type: application/json`` on writes (a cross-site form cannot send it without CORS).
        """
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
