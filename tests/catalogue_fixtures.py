"""Fixtures for the key and catalogue tests (loaded through their `pytest_plugins`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from calendence.devstack.stack import LocalStack

from tests.catalogue_helpers import database


@pytest.fixture
async def db(stack: LocalStack) -> AsyncIterator[asyncpg.Connection]:
    """booking-service's database, for what the API does not show."""
    async with database(stack) as connection:
        yield connection
