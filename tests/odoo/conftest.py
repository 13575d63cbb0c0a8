import pytest

from tests.odoo.api_stack import api_stack


@pytest.fixture(scope="session")
def stack():
    """One real Odoo + gateway for the API tests of this folder (installing the addon takes a while)."""
    with api_stack() as running:
        yield running
