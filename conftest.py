"""Shared pytest set-up for tests/ and property_tests/."""

from __future__ import annotations

import os

import pykka
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _stop_all_actors():
    """Stop every Pykka actor a test started, so tests never leak threads."""
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
