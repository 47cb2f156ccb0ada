"""Under load: a full pool makes a request wait, or answers 503 with Retry-After, never 500.

The crowds here really arrive at once: a client of their own with no connection limit
(the shared client allows 600 connections), every request started before any answer.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from calendence.devstack.stack import LocalStack
from calendence.devstack.stores import start_redis

from tests.api import AROUND_THE_CLOCK, Answer, Api, new_tenant
from tests.hold_helpers import HOLD_PATH, Shop, open_shop
from tests.test_keys import replica

CROWD = 500
SPREAD = 1_000
_slots = itertools.count()


def next_slot() -> datetime:
    """A slot no other test of this module uses: half-hours from two days ahead on."""
    day = datetime.now(UTC).date() + timedelta(days=2)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(minutes=30 * next(_slots))


@pytest.fixture(scope="module")
async def crowd(stack: LocalStack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        yield session


@pytest.fixture(scope="module")
async def shop(api: Api, hub: dict[str, str]) -> Shop:
    """A business open around the clock with a 30-minute service and no staff."""
    tenant = await new_tenant(api, hub["key"])
    return await open_shop(tenant, location={"timezone": "UTC", "opening_hours": AROUND_THE_CLOCK})


@pytest.fixture(scope="module")
async def tokens(shop: Shop) -> list[str]:
    return await shop.sessions(CROWD)


async def hold(
    gateway: Api, shop: Shop, token: str, starts_at: datetime, idempotency_key: str | None = None
) -> Answer:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return await gateway.post(HOLD_PATH, token, shop.hold_body(starts_at), headers=headers)


def assert_no_5xx_but_503_with_retry_after(answers: list[Answer]) -> None:
    for answer in answers:
        assert answer.status < 500 or answer.status == 503, (answer.status, answer.body)
        if answer.status == 503:
            assert answer.content_type == "application/problem+json"
            assert int(answer.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("idempotency", [False, True], ids=["plain", "with-idempotency-keys"])
async def test_500_concurrent_holds_on_one_slot_give_one_201_and_499_409s_three_rounds_running(
    crowd: aiohttp.ClientSession,
    stack: LocalStack,
    shop: Shop,
    tokens: list[str],
    idempotency: bool,
) -> None:
    gateway = Api(crowd, stack.gateway_url)
    for _ in range(3):
        starts_at = next_slot()
        answers = await asyncio.gather(
            *(
                hold(gateway, shop, token, starts_at, uuid.uuid4().hex if idempotency else None)
                for token in tokens
            )
        )
        statuses = Counter(answer.status for answer in answers)
        assert statuses == {201: 1, 409: CROWD - 1}, statuses
        assert all(a.body["status"] == 409 for a in answers if a.status == 409)


async def test_1000_concurrent_requests_over_many_keys_get_no_5xx(
    crowd: aiohttp.ClientSession, stack: LocalStack, shop: Shop
) -> None:
    gateway = Api(crowd, stack.gateway_url)
    # Keys the gateway has never seen: each first use is a lookup in booking-service.
    fresh = await shop.sessions(250)
    day = next_slot().date()
    window = {
        "service_id": shop.service_id,
        "location_id": shop.location_id,
        "from": f"{day}T00:00:00+00:00",
        "to": f"{day}T23:59:00+00:00",
    }

    def request(index: int) -> Any:
        token = fresh[index % len(fresh)]
        kind = index % 4
        if kind == 0:
            return hold(gateway, shop, token, next_slot(), uuid.uuid4().hex)
        if kind == 1:
            return hold(gateway, shop, token, next_slot())
        if kind == 2:
            return gateway.get("/api/v1/availability", token, params=window)
        return gateway.get(f"/api/v1/bookings/{uuid.uuid4()}", token)

    answers = await asyncio.gather(*(request(index) for index in range(SPREAD)))
    by_kind = [Counter(a.status for a in answers[kind::4]) for kind in range(4)]
    # Every hold is on a slot of its own, so every one is placed.
    assert by_kind[0] == {201: SPREAD // 4}, by_kind[0]
    assert by_kind[1] == {201: SPREAD // 4}, by_kind[1]
    assert by_kind[2] == {200: SPREAD // 4}, by_kind[2]
    assert by_kind[3] == {404: SPREAD // 4}, by_kind[3]


async def test_a_full_gateway_redis_pool_answers_503_with_retry_after_and_holds_nothing(
    crowd: aiohttp.ClientSession, stack: LocalStack, shop: Shop, tokens: list[str], tmp_path: Path
) -> None:
    # One connection, hardly any wait: most of a crowd cannot get it in time.
    with replica(
        stack,
        tmp_path,
        GATEWAY_REDIS_POOL_MAX="1",
        GATEWAY_REDIS_POOL_TIMEOUT_SECONDS="0.005",
    ) as url:
        gateway = Api(crowd, url)
        slots = [next_slot() for _ in range(300)]
        answers = await asyncio.gather(
            *(
                hold(gateway, shop, token, starts_at, uuid.uuid4().hex)
                for token, starts_at in zip(tokens, slots, strict=False)
            )
        )
    assert_no_5xx_but_503_with_retry_after(answers)
    statuses = Counter(answer.status for answer in answers)
    assert set(statuses) <= {201, 503} and statuses[503] > 0, statuses
    # A slot whose answer was 503 is free: whatever was placed for it was given back.
    refused = [starts_at for starts_at, a in zip(slots, answers, strict=True) if a.status == 503]
    retried = await asyncio.gather(
        *(hold(Api(crowd, stack.gateway_url), shop, tokens[-1], s) for s in refused)
    )
    assert all(answer.status == 201 for answer in retried), Counter(a.status for a in retried)


async def test_a_full_hold_service_redis_pool_answers_503_with_retry_after(
    crowd: aiohttp.ClientSession, stack: LocalStack, shop: Shop, tokens: list[str], tmp_path: Path
) -> None:
    with (
        replica(
            stack,
            tmp_path,
            "hold-service",
            REDIS_POOL_MAX="1",
            REDIS_POOL_TIMEOUT_SECONDS="0.005",
        ) as holds,
        # A gateway that sends each hold in a call of its own (no batches), so the 300
        # holds reach hold-service together and want more connections than its pool has.
        replica(
            stack,
            tmp_path,
            HOLD_SERVICE_ADDR=holds,
            HOLD_BATCHES_IN_FLIGHT="100000",
            HOLD_BATCH_MAX="1",
        ) as url,
    ):
        gateway = Api(crowd, url)
        answers = await asyncio.gather(
            *(hold(gateway, shop, token, next_slot()) for token in tokens[:300])
        )
    assert_no_5xx_but_503_with_retry_after(answers)
    statuses = Counter(answer.status for answer in answers)
    assert set(statuses) <= {201, 503} and statuses[503] > 0, statuses


async def test_a_full_booking_service_database_pool_answers_503_with_retry_after(
    crowd: aiohttp.ClientSession, stack: LocalStack, shop: Shop, tmp_path: Path
) -> None:
    fresh = await shop.sessions(300)
    with (
        replica(
            stack,
            tmp_path,
            "booking-service",
            DB_POOL_MIN="1",
            DB_POOL_MAX="1",
            DB_POOL_ACQUIRE_TIMEOUT_SECONDS="0.005",
            OUTBOX_RELAY_ENABLED="false",
        ) as bookings,
        replica(stack, tmp_path, BOOKING_SERVICE_ADDR=bookings) as url,
    ):
        gateway = Api(crowd, url)
        # Keys this gateway has never seen: each is looked up in the database.
        answers = await asyncio.gather(
            *(gateway.get(f"/api/v1/bookings/{uuid.uuid4()}", token) for token in fresh)
        )
    assert_no_5xx_but_503_with_retry_after(answers)
    statuses = Counter(answer.status for answer in answers)
    assert set(statuses) <= {404, 503} and statuses[503] > 0, statuses


async def test_with_the_gateways_redis_down_idempotent_requests_get_503_and_others_go_through(
    api: Api, stack: LocalStack, shop: Shop, tokens: list[str], tmp_path: Path
) -> None:
    # This replica keeps Idempotency-Key records and rate limits in a Redis of its own.
    store = start_redis(tmp_path, persist=False)
    try:
        with replica(stack, tmp_path, REDIS_URL=store.url) as url:
            gateway = Api(api.session, url)
            store.process.stop()
            starts_at = next_slot()
            refused = await hold(gateway, shop, tokens[0], starts_at, uuid.uuid4().hex)
            assert_no_5xx_but_503_with_retry_after([refused])
            assert refused.status == 503
            # Without a key nothing needs that Redis: the hold is placed (rate-limited
            # by this replica alone meanwhile).
            placed = await hold(gateway, shop, tokens[0], starts_at)
            assert placed.status == 201, placed.body
            assert placed.headers["RateLimit-Limit"]
    finally:
        store.process.stop()
