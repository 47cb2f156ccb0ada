"""The test session runs the real platform: PostgreSQL, Redis and NATS from pip
packages on free ports, and the four services as processes, exactly as `make run` does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from calendence.devstack.stack import LocalStack

from tests.api import Api, Tenant, new_tenant
from tests.booking_helpers import Salon, open_salon
from tests.events import EventTap

# What every test stack sets for its services.
TEST_SERVICE_ENV = {
    # Every request and RPC gets its access line (in production a sample does):
    # tests follow a request id through the services' logs.
    "ACCESS_LOG_SAMPLE_RATE": "1",
    # The sweeper looks for expired checkouts every second instead of every 30.
    "PAYMENT_SWEEP_SECONDS": "1",
    # Test receivers listen on 127.0.0.1, as they may in development only.
    "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    # Tests race and loop far faster than any client may: buckets large enough
    # never to refuse one (still asked on every request). The limits themselves
    # are tested on a gateway replica of their own (tests/test_rate_limits.py).
    "RATE_LIMIT_SESSION_PER_SECOND": "10000",
    "RATE_LIMIT_SESSION_BURST": "10000",
    "RATE_LIMIT_PER_SECOND": "10000",
    "RATE_LIMIT_BURST": "10000",
    # A reminder's "minute" lasts a second, so that a reminder test waits
    # seconds, not hours; due reminders are looked for five times a second.
    "REMINDER_MINUTE_SECONDS": "1",
    "REMINDER_POLL_SECONDS": "0.2",
}


def run_stack(state_dir: Path, **options: Any) -> Iterator[LocalStack]:
    """A test stack (LocalStack's `options`, e.g. a Redis Cluster), stopped at the end."""
    extra_env = options.pop("service_env", {})
    running = LocalStack(
        state_dir, persist=False, service_env={**TEST_SERVICE_ENV, **extra_env}, **options
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


async def open_api(stack: LocalStack) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=600), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield Api(session, stack.gateway_url)


def make_hub(stack: LocalStack) -> dict[str, str]:
    """A hub and its key, made with the admin CLI as an operator would."""
    made = stack.admin("create-hub", "--name", "Test Hub")
    key = stack.admin("create-key", "--kind", "hub", "--hub-id", made["id"])
    return {"id": made["id"], "key": key["token"]}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    yield from run_stack(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
async def api(stack: LocalStack) -> AsyncIterator[Api]:
    async for running in open_api(stack):
        yield running


@pytest.fixture(scope="session")
def hub(stack: LocalStack) -> dict[str, str]:
    return make_hub(stack)


@pytest.fixture
async def tenant(api: Api, hub: dict[str, str]) -> Tenant:
    """A fresh business for each test, so tests never see each other's data."""
    return await new_tenant(api, hub["key"])


@pytest.fixture
async def salon(tenant: Tenant) -> Salon:
    """A business ready to book: see tests/booking_helpers.py."""
    return await open_salon(tenant)


@pytest.fixture
async def tap(stack: LocalStack) -> AsyncIterator[EventTap]:
    """Every domain event published from now on, read as a durable consumer would."""
    async with EventTap(stack.env["NATS_URL"]) as running:
        yield running
