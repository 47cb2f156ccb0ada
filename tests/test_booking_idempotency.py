"""A retried booking with the same Idempotency-Key is replayed from PostgreSQL, where
the key is recorded with the booking, even when Redis has forgotten everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from calendence.devstack.stack import LocalStack
from calendence.storage import RedisClient

from tests.api import Answer, created, tomorrow_at
from tests.booking_helpers import JANE, Salon
from tests.redis_helpers import stack_redis


@pytest.fixture
async def redis(stack: LocalStack) -> AsyncIterator[RedisClient]:
    async with stack_redis(stack) as client:
        yield client


async def _book(salon: Salon, token: str, body: dict[str, Any], key: str) -> Answer:
    return await salon.tenant.api.post(
        "/api/v1/bookings", token, body, headers={"Idempotency-Key": key}
    )


async def test_a_retry_after_redis_lost_everything_replays_the_booking(
    salon: Salon, redis: RedisClient
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(10)))
    body = {"hold_id": hold["hold_id"], "client": JANE}
    first = await _book(salon, token, body, "widget-attempt-1")
    assert first.status == 201, first.body
    await redis.flushall()
    retry = await _book(salon, token, body, "widget-attempt-1")
    assert retry.status == 201, retry.body
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.body == first.body
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    assert [b["id"] for b in listed.body["data"]] == [first.body["id"]]


async def test_after_redis_lost_everything_the_key_with_another_body_is_422(
    salon: Salon, redis: RedisClient
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(11)))
    body = {"hold_id": hold["hold_id"], "client": JANE}
    assert (await _book(salon, token, body, "widget-attempt-2")).status == 201
    await redis.flushall()
    other = await _book(salon, token, {**body, "notes": "changed"}, "widget-attempt-2")
    assert other.status == 422, other.body
    assert "Idempotency-Key" in other.body["errors"]
