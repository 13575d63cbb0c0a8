"""Fixtures of the shared test harness (tests/support), exposed to this directory's tests."""

from tests.support.alertmanager import alertmanager  # noqa: F401
from tests.support.fake_k8s import fake_k8s, fake_k8s_auto  # noqa: F401
from tests.support.fake_openai import fake_openai  # noqa: F401
