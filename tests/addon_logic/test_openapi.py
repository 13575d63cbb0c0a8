"""docs/openapi.yaml is valid OpenAPI 3.1, its $refs exist, and its paths are the addon's routes."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO / "docs" / "openapi.yaml"
CONTROLLERS = REPO / "addons" / "ai_generation" / "controllers"
ROUTE_RE = re.compile(r'@http\.route\(\s*"([^"]+)"(?:,\s*methods=\["([A-Z]+)"\])?')


def spec():
    return yaml.safe_load(SPEC_PATH.read_text())


def controller_routes():
    """{(path in OpenAPI syntax, method)} declared by the addon's controllers."""
    routes = set()
    for source in CONTROLLERS.glob("*.py"):
        text = source.read_text()
        default = "POST" if '"methods": ["POST"]' in text else None
        for path, method in ROUTE_RE.findall(text):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)
            routes.add((path, (method or default or "GET").lower()))
    return routes


def test_is_valid_openapi_3_1():
    validator = pytest.importorskip("openapi_spec_validator")
    document = spec()
    assert document["openapi"].startswith("3.1")
    validator.validate(document, base_uri=SPEC_PATH.as_uri())


def test_every_schema_ref_points_to_a_repo_file():
    refs = set(re.findall(r"\$ref: '(\.\./schemas/[^'#]+)'", SPEC_PATH.read_text()))
    assert refs, "the spec references the repo's schemas"
    for ref in refs:
        assert (SPEC_PATH.parent / ref).is_file(), ref


def test_paths_match_the_controllers():
    documented = {(path, method) for path, ops in spec()["paths"].items() for method in ops}
    assert documented == controller_routes()
