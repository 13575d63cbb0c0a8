# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""GET /api/v1/models: what a client may ask for and what it costs, with the caller's credits."""

from odoo import http
from odoo.http import request

from ..models.json_http import json_response
from .api import ROUTE_OPTIONS


class CatalogueApi(http.Controller):
    @http.route("/api/v1/models", methods=["GET"], **ROUTE_OPTIONS)
    def list_models(self, **_kwargs):
        account = request.env["ai.credit.account"].sudo()._find_for_user(request.env.user)
        available = account.balance - account.held
        offered = request.env["ai.generation.price"]._catalogue()
        for entry in offered:
            entry["affordable"] = entry["price"] <= available
        return json_response(
            {
                "models": offered,
                "credits": {"balance": account.balance, "held": account.held, "available": available},
            }
        )
