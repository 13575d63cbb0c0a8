"""Loads the addon's Odoo-free package (addons/ai_generation/pure) without Odoo, as ``aigen_pure``."""

import importlib.util
import sys
from pathlib import Path

import pytest

PURE_DIR = Path(__file__).resolve().parents[2] / "addons" / "ai_generation" / "pure"


def _load():
    if "aigen_pure" in sys.modules:
        return sys.modules["aigen_pure"]
    spec = importlib.util.spec_from_file_location(
        "aigen_pure", PURE_DIR / "__init__.py", submodule_search_locations=[str(PURE_DIR)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["aigen_pure"] = module
    spec.loader.exec_module(module)
    return module


_load()


@pytest.fixture
def pure():
    return sys.modules["aigen_pure"]
