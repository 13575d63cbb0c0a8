"""Finds and loads the contract files: JSON Schemas and the error taxonomy.

They live in the addon's own ``schemas/`` folder, the one copy the worker (as ``aigen_contracts``) and
n8n read too (the repo root's ``schemas`` links to it), so the addon installed alone still has them.
``AIGEN_SCHEMAS_DIR`` points elsewhere when a deployment wants to.
"""

import json
import os
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker, validators
from referencing import Registry, Resource

ADDON_DIR = Path(__file__).resolve().parent.parent


class ContractsNotFound(RuntimeError):
    pass


def candidate_dirs():
    env = os.environ.get("AIGEN_SCHEMAS_DIR")
    if env:
        yield Path(env)
    yield ADDON_DIR / "schemas"


@cache
def schemas_dir():
    for path in candidate_dirs():
        if (path / "error_taxonomy.json").is_file():
            return path
    tried = ", ".join(str(p) for p in candidate_dirs())
    raise ContractsNotFound(f"schemas/ not found (tried {tried}); set AIGEN_SCHEMAS_DIR")


@cache
def load(name):
    return json.loads((schemas_dir() / name).read_text(encoding="utf-8"))


@cache
def _registry():
    resources = []
    for path in sorted(schemas_dir().glob("*.json")):
        doc = load(path.name)
        if "$schema" in doc:
            resource = Resource.from_contents(doc)
            resources.append((path.name, resource))
            if "$id" in doc:
                resources.append((doc["$id"], resource))
    return Registry().with_resources(resources)


def _is_integer(_checker, value):
    # JSON Schema counts 1.0 and 1e3 as integers: the columns, the worker and the AI providers do not
    # (a max_tokens of 1000.0 would reach the provider as a float)
    return isinstance(value, int) and not isinstance(value, bool)


StrictIntegerValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@cache
def validator(name):
    """A Draft 2020-12 validator for ``name`` that resolves the sibling files it references; an
    integer is a JSON number written without a fraction or an exponent."""
    return StrictIntegerValidator(load(name), registry=_registry(), format_checker=FormatChecker())


def taxonomy():
    return load("error_taxonomy.json")


def error_type_info(error_type):
    """The taxonomy row of ``error_type`` (unknown types get the 'unknown' row)."""
    types = taxonomy()["error_types"]
    return types.get(error_type) or types["unknown"]


def user_message(side):
    return taxonomy()["messages"][side]
