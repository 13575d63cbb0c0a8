# License AGPL-3.0 or later (https://www.gnu.org/licenses/agpl).
"""18.0.1.2.0 indexes a request's owner with its create_date (the model's init) instead of alone, and
leaves the request id to its UNIQUE constraint's index: Odoo keeps an index a field no longer asks for,
so the two that became redundant are dropped here (every create wrote them)."""

import logging

from odoo.tools.sql import drop_index

_logger = logging.getLogger(__name__)

REDUNDANT = ("ai_generation_request__user_id_index", "ai_generation_request__uuid_index")


def migrate(cr, version):
    for name in REDUNDANT:
        drop_index(cr, name, "ai_generation_request")
    _logger.info("ai_generation: dropped the request indexes %s", ", ".join(REDUNDANT))
