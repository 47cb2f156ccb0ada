"""A hold whose answer never reached its client is given back at once.

Two gateway replicas of their own inject a fault after a hold is placed
(GATEWAY_FAULT_AFTER_HOLD_PLACED): one fails before answering, the other pauses long
enough for a client to hang up. The slot is watched through the shared gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import orjson
import pytest
from calendence.devstack.stack import LocalStack

from tests.api import AROUND_THE_CLOCK, Api, Tenant, created
from tests.hold_helpers import HOLD_PATH, Shop, open_shop
from tests.test_keys import replica

PAUSE_SECONDS = 2.0


@pytest.fixture(scope="module")
async def faulty(
    api: Api, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Api, Api]]:
    """(a gateway that fails after placing a hold, one that pauses before answering)"""
    logs = tmp_path_factory.mktemp("faulty-gateways")
    with contextlib.ExitStack() as running:
        failing = running.enter_context(
            replica(stack, logs / "fail", GATEWAY_FAULT_AFTER_HOLD_PLACED="fail")
        )
        pausing = running.enter_context(
            replica(
                stack,
                logs / "pause",
                GATEWAY_FAULT_AFTER_HOLD_PLACED="pause",
                GATEWAY_FAULT_PAUSE_SECONDS=str(PAUSE_SECONDS),
            )
        )
        yield Api(api.session, failing), Api(api.session, pausing)


@pytest.fixture
async def shop(tenant: Tenant) -> Shop:
    return await open_shop(tenant, location={"timezone": "UTC", "opening_hours": AROUND_THE_CLOCK})


def a_slot() -> datetime:
    day = datetime.now(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, tzinfo=UTC)


async def is_free(shop: Shop, key: str, starts_at: datetime) -> bool:
    """Whether availability (net of live holds) offers `starts_at`."""
    answer = await shop.tenant.api.get(
        "/api/v1/availability",
        key,
        params={
            "service_id": shop.service_id,
            "location_id": shop.location_id,
            "from": starts_at.isoformat(),
            "to": (starts_at + timedelta(minutes=30)).isoformat(),
        },
    )
    assert answer.status == 200, answer.body
    offered = {datetime.fromisoformat(slot["starts_at"]) for slot in answer.body["slots"]}
    return starts_at in offered


async def wait_until(condition: bool, check: Callable[[], Awaitable[bool]], within: float) -> None:
    """Return once `await check()` returns `condition`; fail after `within` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await check() is condition:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {condition} within {within} s")


async def hold_and_hang_up(
    gateway: Api, shop: Shop, token: str, starts_at: datetime, headers: dict[str, str]
) -> None:
    """Send a hold request on a connection of its own and close it once the slot is held."""
    address = urlsplit(gateway.base_url)
    assert address.hostname is not None and address.port is not None
    body = orjson.dumps(shop.hold_body(starts_at))
    head = {
        "Host": f"{address.hostname}:{address.port}",
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **headers,
    }
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    writer.write(f"POST {HOLD_PATH} HTTP/1.1\r\n{lines}\r\n".encode() + body)
    await writer.drain()
    # The gateway placed the hold and is still pausing: the client goes away unanswered.
    await wait_until(False, lambda: is_free(shop, shop.tenant.business_key, starts_at), 2)
    assert not reader.at_eof()
    writer.close()
    await writer.wait_closed()


async def test_a_hold_whose_answer_failed_is_released_before_the_error_goes_out(
    faulty: tuple[Api, Api], shop: Shop
) -> None:
    failing, _ = faulty
    token, other = await shop.sessions(2)
    starts_at = a_slot()
    failed = await failing.post(HOLD_PATH, token, shop.hold_body(starts_at))
    assert failed.status == 500
    assert failed.content_type == "application/problem+json"
    # At once, not after the hold's 10 minutes: another client holds the slot.
    created(await shop.hold(other, starts_at))


async def test_a_hold_whose_client_hung_up_is_released_when_the_answer_cannot_go_out(
    faulty: tuple[Api, Api], shop: Shop
) -> None:
    _, pausing = faulty
    token, other = await shop.sessions(2)
    starts_at = a_slot()
    await hold_and_hang_up(pausing, shop, token, starts_at, {})
    # Free again as soon as the gateway finds its client gone (after its pause), not
    # after the hold's 10 minutes.
    await wait_until(
        True, lambda: is_free(shop, shop.tenant.business_key, starts_at), PAUSE_SECONDS + 2
    )
    created(await shop.hold(other, starts_at))


async def test_a_retry_of_an_undelivered_hold_places_it_again_instead_of_replaying(
    faulty: tuple[Api, Api], shop: Shop
) -> None:
    _, pausing = faulty
    token = (await shop.sessions(1))[0]
    starts_at = a_slot()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    await hold_and_hang_up(pausing, shop, token, starts_at, key)
    await wait_until(
        True, lambda: is_free(shop, shop.tenant.business_key, starts_at), PAUSE_SECONDS + 3
    )
    retried = await shop.tenant.api.post(HOLD_PATH, token, shop.hold_body(starts_at), headers=key)
    assert retried.status == 201, retried.body
    assert "Idempotent-Replayed" not in retried.headers
    # The retry's hold is live: the slot is taken.
    assert not await is_free(shop, shop.tenant.business_key, starts_at)


async def test_a_hold_whose_slow_answer_reaches_its_client_is_kept(
    faulty: tuple[Api, Api], shop: Shop
) -> None:
    _, pausing = faulty
    token = (await shop.sessions(1))[0]
    starts_at = a_slot()
    held = created(await pausing.post(HOLD_PATH, token, shop.hold_body(starts_at)))
    assert not await is_free(shop, shop.tenant.business_key, starts_at)
    assert (await shop.release(token, held["hold_id"])).status == 204
