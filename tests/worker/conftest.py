"""Fixtures for the worker tests: a throwaway RabbitMQ vhost per module, a fresh fake Odoo and a clean
publishing channel per test."""

import pytest

from tests.support.alertmanager import alertmanager  # noqa: F401 - a fixture
from tests.support.fake_odoo import FakeOdoo
from tests.support.fake_openai import fake_openai  # noqa: F401 - a fixture
from tests.support.rabbit import throwaway_vhost
from tests.worker.helpers import SECRET, clean_channel


@pytest.fixture(scope="module")
def vhost():
    with throwaway_vhost("aigen-worker-test") as vh:
        yield vh


@pytest.fixture
def odoo():
    with FakeOdoo(SECRET) as fake:
        yield fake


@pytest.fixture
def channel(vhost):
    with clean_channel(vhost) as ch:
        yield ch
