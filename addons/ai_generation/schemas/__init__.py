"""The repo's contract files (JSON Schemas, error taxonomy), installed as the package ``aigen_contracts``.

The files live in the addon's folder (addons/ai_generation/schemas/), so the addon installed alone (another
addons path, a wheel, the OCA image) still has them; ``schemas`` at the repo root is a link to this
folder for the worker, n8n and the docs, and setup.cfg maps it to an importable package so the installed
worker finds them too. One copy: nothing can drift.
"""

import json
from functools import cache
from importlib import resources

SCHEMA_FILES = (  # JSON Schemas; the other .json files are contract data
    "job_requested.v1.json",
    "params.json",
    "callback_common.json",
    "callback_failure.json",
    "callback_result.json",
    "callback_progress.json",
    "callback_notify.json",
    "callback_response.json",
    "error_response.json",
    "api_generation_create.json",
    "api_generation_accepted.json",
    "api_generation.json",
    "api_generation_list.json",
    "api_credits.json",
    "api_models.json",
    "bus_update.json",
)


@cache
def load(name: str) -> dict:
    """The parsed JSON document ``name`` (e.g. ``"error_taxonomy.json"``)."""
    return json.loads(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))
