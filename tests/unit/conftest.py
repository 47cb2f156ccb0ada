"""The unit layer starts no servers: a unit test that asks for the live stack fails
instead of quietly starting PostgreSQL, Redis, NATS and four services."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def stack() -> None:
    pytest.fail("tests/unit runs without servers: live-stack tests belong in tests/")
