"""Rate limits per key: a token bucket per key in Redis, the same on every gateway,
and a bucket per replica when that Redis is down.

Gateway replicas of their own with small buckets (the shared stack's are too large
to empty): session tokens 5 requests, refilled at 1 per second; business and hub keys
20, refilled at 5 per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from calendence.devstack.stack import LocalStack
from calendence.devstack.stores import RunningStore, start_redis

from tests.api import Answer, Api, Tenant, created, tomorrow_at
from tests.booking_helpers import open_salon
from tests.test_keys import replica

LIMITS = {
    "RATE_LIMIT_SESSION_PER_SECOND": "1",
    "RATE_LIMIT_SESSION_BURST": "5",
    "RATE_LIMIT_PER_SECOND": "5",
    "RATE_LIMIT_BURST": "20",
}
SESSION_BURST, KEY_BURST = 5, 20
HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


@pytest.fixture(scope="module")
async def gateways(
    api: Api, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Api, Api]]:
    logs = tmp_path_factory.mktemp("rate-limited-gateways")
    with contextlib.ExitStack() as running:
        first = running.enter_context(replica(stack, logs / "a", **LIMITS))
        second = running.enter_context(replica(stack, logs / "b", **LIMITS))
        yield Api(api.session, first), Api(api.session, second)


@pytest.fixture
def limited(gateways: tuple[Api, Api]) -> Api:
    return gateways[0]


async def show_some_booking(gateway: Api, key: str) -> Answer:
    """A cheap authenticated request (404: no such booking)."""
    return await gateway.get(f"/api/v1/bookings/{uuid.uuid4()}", key)


async def drain(gateway: Api, key: str, burst: int) -> None:
    for _ in range(burst):
        assert (await show_some_booking(gateway, key)).status == 404


async def test_every_answer_to_a_key_carries_its_rate_limit_headers(
    limited: Api, tenant: Tenant
) -> None:
    answer = await limited.get("/api/v1/locations", tenant.business_key)
    assert answer.status == 200
    assert answer.headers["RateLimit-Limit"] == str(KEY_BURST)
    assert 0 <= int(answer.headers["RateLimit-Remaining"]) < KEY_BURST
    assert int(answer.headers["RateLimit-Reset"]) >= 0
    assert answer.headers["RateLimit-Policy"] == f"{KEY_BURST};w=4"


async def test_errors_carry_the_rate_limit_headers_too(limited: Api, tenant: Tenant) -> None:
    answer = await show_some_booking(limited, tenant.business_key)
    assert answer.status == 404
    assert all(name in answer.headers for name in HEADERS)


async def test_remaining_counts_down_by_one_per_request(limited: Api, tenant: Tenant) -> None:
    token = await tenant.session_token()
    seen = [int((await show_some_booking(limited, token)).headers["RateLimit-Remaining"])]
    seen.append(int((await show_some_booking(limited, token)).headers["RateLimit-Remaining"]))
    assert seen == [SESSION_BURST - 1, SESSION_BURST - 2]


async def test_session_tokens_get_a_smaller_bucket_than_business_keys(
    limited: Api, tenant: Tenant
) -> None:
    token = await tenant.session_token()
    session = await show_some_booking(limited, token)
    business = await show_some_booking(limited, tenant.business_key)
    assert int(session.headers["RateLimit-Limit"]) < int(business.headers["RateLimit-Limit"])


async def test_session_token_over_its_limit_gets_429_with_retry_after(
    limited: Api, tenant: Tenant
) -> None:
    token = await tenant.session_token()
    await drain(limited, token, SESSION_BURST)
    refused = await show_some_booking(limited, token)
    assert refused.status == 429
    assert refused.content_type == "application/problem+json"
    assert refused.body["status"] == 429
    assert refused.body["type"].endswith("/rate-limited")
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["X-Request-Id"]


async def test_a_business_key_over_its_limit_gets_429(limited: Api, tenant: Tenant) -> None:
    await drain(limited, tenant.business_key, KEY_BURST)
    assert (await show_some_booking(limited, tenant.business_key)).status == 429


async def test_each_key_has_a_bucket_of_its_own(limited: Api, tenant: Tenant) -> None:
    spent, fresh = await tenant.session_token(), await tenant.session_token()
    await drain(limited, spent, SESSION_BURST)
    assert (await show_some_booking(limited, spent)).status == 429
    assert (await show_some_booking(limited, fresh)).status == 404


async def test_the_bucket_is_shared_by_every_gateway_replica(
    gateways: tuple[Api, Api], tenant: Tenant
) -> None:
    first, second = gateways
    token = await tenant.session_token()
    await drain(first, token, SESSION_BURST)
    assert (await show_some_booking(second, token)).status == 429


async def test_the_bucket_refills_at_its_rate(limited: Api, tenant: Tenant) -> None:
    token = await tenant.session_token()
    await drain(limited, token, SESSION_BURST)
    refused = await show_some_booking(limited, token)
    assert refused.status == 429
    await asyncio.sleep(int(refused.headers["Retry-After"]))
    assert (await show_some_booking(limited, token)).status == 404


async def test_a_concurrent_burst_gets_exactly_the_bucket(limited: Api, tenant: Tenant) -> None:
    token = await tenant.session_token()
    answers = await asyncio.gather(*(show_some_booking(limited, token) for _ in range(25)))
    let_through = sum(answer.status == 404 for answer in answers)
    # One more may have refilled (1 per second) while the burst was under way.
    assert SESSION_BURST <= let_through <= SESSION_BURST + 1
    assert all(answer.status in (404, 429) for answer in answers)


async def test_a_refused_hold_is_not_placed(limited: Api, tenant: Tenant) -> None:
    salon = await open_salon(tenant)
    token = await tenant.session_token()
    await drain(limited, token, SESSION_BURST)
    body = {
        "service_id": salon.service_id,
        "location_id": salon.location_id,
        "starts_at": tomorrow_at(10).isoformat(),
    }
    assert (await limited.post("/api/v1/bookings/hold", token, body)).status == 429
    # The slot is still free: another session holds it.
    other = await tenant.session_token()
    created(await limited.post("/api/v1/bookings/hold", other, body))


async def test_a_hub_key_naming_a_business_it_may_not_act_for_still_pays(
    limited: Api, stack: LocalStack, hub: dict[str, str]
) -> None:
    # A hub key of its own: the shared one must never run low for the other tests.
    key = (
        await asyncio.to_thread(stack.admin, "create-key", "--kind", "hub", "--hub-id", hub["id"])
    )["token"]
    elsewhere = {"Calendence-Business": str(uuid.uuid4())}
    answers = [await limited.get("/api/v1/locations", key, headers=elsewhere) for _ in range(2)]
    assert [a.status for a in answers] == [404, 404]
    remaining = [int(a.headers["RateLimit-Remaining"]) for a in answers]
    assert remaining[1] < remaining[0]


def assert_within_the_bucket(
    answers: list[Answer], burst: int, per_second: float, seconds: float
) -> None:
    """At most burst + rate x elapsed let through; every other answer a 429."""
    let_through = sum(answer.status == 404 for answer in answers)
    assert let_through <= burst + math.ceil(per_second * seconds), (let_through, seconds)
    assert all(answer.status in (404, 429) for answer in answers)
    assert all(answer.headers["RateLimit-Limit"] for answer in answers)


async def test_300_concurrent_requests_on_one_session_token_get_only_its_bucket(
    limited: Api, tenant: Tenant
) -> None:
    token = await tenant.session_token()
    started = time.monotonic()
    answers = await asyncio.gather(*(show_some_booking(limited, token) for _ in range(300)))
    assert_within_the_bucket(answers, SESSION_BURST, 1, time.monotonic() - started)
    assert sum(answer.status == 404 for answer in answers) >= SESSION_BURST


async def test_a_burst_reaching_two_replicas_at_once_gets_at_most_a_bucket_on_each(
    gateways: tuple[Api, Api], tenant: Tenant
) -> None:
    # Each replica decides from its own copy of the bucket (the documented tolerance):
    # what the other let through reaches it one Redis round trip later, so together
    # they let through at most a bucket each, never more.
    token = await tenant.session_token()
    for gateway in gateways:  # each replica has heard of the key from Redis
        assert (await show_some_booking(gateway, token)).status == 404
    started = time.monotonic()
    answers = await asyncio.gather(
        *(show_some_booking(gateway, token) for gateway in gateways for _ in range(50))
    )
    assert_within_the_bucket(answers, 2 * SESSION_BURST, 1, time.monotonic() - started)


async def test_what_one_replica_let_through_leaves_the_other_nothing_to_give(
    gateways: tuple[Api, Api], tenant: Tenant
) -> None:
    first, second = gateways
    token = await tenant.session_token()
    started = time.monotonic()
    assert (await show_some_booking(second, token)).status == 404  # second's copy: 4 left
    await drain(first, token, SESSION_BURST - 1)
    await asyncio.sleep(0.2)  # first's tokens reach Redis; second hears on its next one
    answers = [await show_some_booking(second, token) for _ in range(SESSION_BURST)]
    # Its copy may still give what it thought was left once, then knows better (and a
    # token comes back each second).
    refilled = math.floor(time.monotonic() - started)
    assert sum(a.status == 404 for a in answers) <= 1 + refilled


async def test_what_a_replica_let_through_for_many_keys_at_once_lands_in_each_keys_bucket(
    api: Api, stack: LocalStack, gateways: tuple[Api, Api], tenant: Tenant, tmp_path: Path
) -> None:
    # Many keys' tokens reach Redis together (on a single server one script counts them
    # all in): a replica that never saw these keys asks Redis, and finds each emptied.
    first = gateways[0]
    tokens = [await tenant.session_token() for _ in range(30)]
    with replica(stack, tmp_path, **LIMITS) as url:
        fresh = Api(api.session, url)
        started = time.monotonic()
        await asyncio.gather(*(drain(first, token, SESSION_BURST) for token in tokens))
        await asyncio.sleep(0.3)  # what first let through reaches Redis
        answers = await asyncio.gather(*(show_some_booking(fresh, token) for token in tokens))
        refilled = math.floor(time.monotonic() - started)
    assert sum(a.status == 404 for a in answers) <= refilled * len(tokens)
    assert all(a.status in (404, 429) for a in answers)


@pytest.fixture
async def limiter_store(
    api: Api, stack: LocalStack, tmp_path: Path
) -> AsyncIterator[tuple[Api, RunningStore]]:
    """A gateway replica whose rate limits live in a Redis of their own, to be stopped."""
    store = start_redis(tmp_path, persist=False)
    try:
        with replica(stack, tmp_path, RATE_LIMIT_REDIS_URL=store.url, **LIMITS) as url:
            yield Api(api.session, url), store
    finally:
        store.process.stop()


async def test_with_the_limiters_redis_down_300_concurrent_requests_still_get_only_the_bucket(
    limiter_store: tuple[Api, RunningStore], tenant: Tenant
) -> None:
    gateway, store = limiter_store
    token = await tenant.session_token()
    store.process.stop()
    started = time.monotonic()
    answers = await asyncio.gather(*(show_some_booking(gateway, token) for _ in range(300)))
    # This replica limits on its own: one replica's share (all of it by default).
    assert_within_the_bucket(answers, SESSION_BURST, 1, time.monotonic() - started)
    assert sum(answer.status == 404 for answer in answers) >= 1


async def test_when_the_limiters_redis_goes_down_a_spent_bucket_stays_spent(
    limiter_store: tuple[Api, RunningStore], tenant: Tenant
) -> None:
    gateway, store = limiter_store
    token = await tenant.session_token()
    await drain(gateway, token, SESSION_BURST)
    store.process.stop()
    # No fresh burst for a key because the shared store went away.
    refused = await show_some_booking(gateway, token)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
