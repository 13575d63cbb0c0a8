"""Fixtures of the shared test harness (tests/support), exposed to this directory's tests."""

from tests.support.fake_openai import fake_openai  # noqa: F401
