"""A Redis Cluster node fails while clients hold and book through two gateways.

Killed (kill -9) or frozen (SIGSTOP, a node that hangs without closing its
connections) for longer than the cluster's node timeout: its replica takes over its
slots, clients give up on the silent node within REDIS_SOCKET_TIMEOUT_SECONDS and move
on, and the platform answers success, 4xx or 503 with Retry-After throughout, never 500
and never nothing. Afterwards every hold answered 201 can still be booked (or was),
every booking answered 201 is there, and no slot has two live bookings.

Redis replicates asynchronously, so a hold acknowledged while its slot's primary fails
over may not survive it: it is lost, its booking answers 404 (the hold no longer
exists; the slot can be held again), and the test counts such holds and bounds them.
Bookings live in PostgreSQL: none is ever lost. The window is the one Redis Cluster
documents for a primary cut off from the others: from its last moment until its
replica takes over, and for a frozen primary until it runs again, because a client
that has not yet learnt of the promotion still sends to it, and on SIGCONT the old
primary runs those writes (and answers them) before it learns it was replaced.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from calendence.devstack.redis_cluster import LocalRedisCluster, RedisClusterNode
from calendence.devstack.stack import LocalStack
from gateway.idempotency import CLAIM_SECONDS

from tests.api import Answer, Api
from tests.booking_helpers import JANE
from tests.cluster.load import BookingLoad, PlacedHold, open_shops, resource_key, retry_later
from tests.hold_helpers import Shop
from tests.test_keys import replica

# Holds answer again (201 or 409, no more 503) within this long of a node failing.
RECOVERY_SECONDS = 10.0
# How long the load runs after the failure: past RECOVERY_SECONDS, to show recovery.
LOAD_AFTER_FAILURE_SECONDS = 14.0
# A frozen node stays frozen this long: well past the cluster's node timeout (1.5 s).
FREEZE_SECONDS = 6.0
# Longest a booking's retry may be told its first attempt is still being processed:
# the gateway's claim on an Idempotency-Key lapses after this even when Redis could
# not take it back (gateway.idempotency.CLAIM_SECONDS, and a margin).
BOOKING_SETTLES_SECONDS = CLAIM_SECONDS + 10.0
# Only a hold asked for from this shortly before the failure until the failed primary
# could take no more writes (its replica promoted, or a frozen one running again) may be
# lost with it ...
REPLICATION_WINDOW_SECONDS = 1.0
# ... and only this many of them.
MOST_HOLDS_LOST = 10
# A hold's record (with its granules) and its locator (how a booking finds it by id)
# live in two hash slots, often on two nodes: a booking of a hold lost with its primary
# answers 404 either way, worded by which of the two was lost.
LOST_HOLD_DETAILS = {
    "the hold has expired or does not exist",  # its locator
    "the hold has expired, was used, or does not exist",  # its record
}


@pytest.fixture(scope="module")
async def gateways(
    api: Api, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[Api]]:
    """The stack's gateway and a second replica of it."""
    with replica(stack, tmp_path_factory.mktemp("second-gateway")) as url:
        yield [api, Api(api.session, url)]


@pytest.fixture
def cluster(stack: LocalStack) -> LocalRedisCluster:
    assert stack.redis_nodes is not None
    return stack.redis_nodes


async def wait_until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check` (run off the event loop) holds; fails after `timeout`."""
    started = time.monotonic()
    while not await asyncio.to_thread(check):
        assert time.monotonic() - started < timeout, f"not so after {timeout}s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def serves(cluster: LocalRedisCluster, node: RedisClusterNode) -> Callable[[], bool]:
    return lambda: node.name in {primary.name for primary in cluster.primaries()}


def follows(
    cluster: LocalRedisCluster, node: RedisClusterNode, primary: RedisClusterNode
) -> Callable[[], bool]:
    return lambda: node.name in {n.name for n in cluster.replicas_of(primary)}


def report(what: str, load: BookingLoad, failed_at: float) -> None:
    during = Counter(c.status for c in load.calls if c.started >= failed_at)
    print(
        f"\n{what}: {len(load.calls)} requests, {len(load.holds)} holds placed, "
        f"{sum(1 for h in load.holds if h.booking)} booked; after the failure: {dict(during)}; "
        f"503 answers: {load.count(503)}"
    )


def asked_during_failover(asked_at: float | None, failure: Failure) -> bool:
    """Whether a hold asked for then may have been lost with the failed primary: from
    just before the failure until a moment after it could take no more writes."""
    took_writes_until = failure.took_writes_until or failure.failed_at
    return (
        asked_at is not None
        and failure.failed_at - REPLICATION_WINDOW_SECONDS
        <= asked_at
        <= took_writes_until + REPLICATION_WINDOW_SECONDS
    )


def assert_answers_were_success_4xx_or_503(failure: Failure) -> None:
    for call in failure.load.calls:
        assert call.status != 0, f"a {call.kind} got no answer within the client's timeout"
        if call.kind == "hold":
            assert call.status in (201, 409, 503), (call.status, call.body)
        elif call.status == 404 and asked_during_failover(call.hold_asked_at, failure):
            assert call.body["detail"] in LOST_HOLD_DETAILS, call.body  # lost with its primary
        else:  # a booking of a placed hold: booked, or told to retry
            assert call.status in (201, 409, 503), (call.status, call.body)
            assert call.status != 409 or "still being processed" in call.body["detail"]
        if call.status == 503:
            assert int(str(call.retry_after)) >= 1, call.body


def assert_holds_work_again_within(load: BookingLoad, failed_at: float, seconds: float) -> None:
    later = [c for c in load.calls if c.started >= failed_at + seconds]
    assert later, "the load ended before the platform could show it recovered"
    assert not [c for c in later if c.status == 503], Counter(c.status for c in later)
    assert any(c.kind == "hold" and c.status == 201 for c in later)


async def assert_nothing_acknowledged_was_lost(failure: Failure) -> None:
    """Every 201 hold is booked now (its booking retried with the same key, as its
    client would) but the few lost with the failed primary, every 201 booking is there
    and live, no slot is booked twice."""
    load, shops = failure.load, failure.shops
    lost: list[PlacedHold] = []
    for placed in load.holds:
        if placed.booking is None:
            answer = await book_again(placed, shops[placed.shop])
            if answer.status == 404 and asked_during_failover(placed.asked_at, failure):
                assert answer.body["detail"] in LOST_HOLD_DETAILS, answer.body
                lost.append(placed)
                continue
            assert answer.status == 201, ("a 201 hold was lost", answer.status, answer.body)
            placed.booking = answer.body
    asked = ", ".join(f"{placed.asked_at - failure.failed_at:+.1f}s" for placed in lost)
    print(
        f"holds lost with the failed primary: {len(lost)} of {len(load.holds)}"
        + (f" (asked at {asked} from the failure)" if lost else "")
    )
    assert len(lost) <= MOST_HOLDS_LOST
    for placed in load.holds:
        if placed in lost:
            continue
        assert placed.booking is not None
        shop = shops[placed.shop]
        shown = await shop.tenant.api.get(
            f"/api/v1/bookings/{placed.booking['id']}", shop.tenant.business_key
        )
        assert shown.status == 200, (shown.status, shown.body)
        assert shown.body["status"] == "confirmed"
        assert shown.body["starts_at"] == placed.starts_at
    for shop in shops:
        starts = [b["starts_at"] for b in await live_bookings(shop)]
        assert len(starts) == len(set(starts)), Counter(starts).most_common(3)


async def book_again(placed: PlacedHold, shop: Shop) -> Answer:
    """Book a placed hold as its client would after the failure: the same key, again
    while the platform says to (an earlier attempt may still be finishing)."""
    deadline = time.monotonic() + BOOKING_SETTLES_SECONDS
    while True:
        answer = await shop.tenant.api.post(
            "/api/v1/bookings",
            placed.token,
            {"hold_id": placed.hold_id, "client": JANE},
            headers={"Idempotency-Key": placed.idempotency_key},
        )
        if not retry_later(answer) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    return answer


async def live_bookings(shop: Shop) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    cursor = ""
    while True:
        params = {"limit": "100", "status": "confirmed", **({"cursor": cursor} if cursor else {})}
        page = await shop.tenant.api.get(
            "/api/v1/bookings", shop.tenant.business_key, params=params
        )
        assert page.status == 200, page.body
        found += page.body["data"]
        if not page.body["has_more"]:
            return found
        cursor = page.body["next_cursor"]


@dataclass
class Failure:
    """Load running over fresh businesses, and the primary of the first one's slot
    failed (by `fail`) two seconds in."""

    shops: list[Shop]
    load: BookingLoad
    running: asyncio.Task[None]
    victim: RedisClusterNode
    successor: RedisClusterNode
    failed_at: float
    # When the failed primary could take no more writes: its successor seen serving
    # (killed), or it seen as its replica (frozen: it ran what was sent meanwhile).
    took_writes_until: float | None = None


async def fail_under_load(
    api: Api,
    hub: dict[str, str],
    gateways: list[Api],
    cluster: LocalRedisCluster,
    fail: Callable[[RedisClusterNode], None],
) -> Failure:
    shops = await open_shops(api, hub["key"], 3)
    victim = await asyncio.to_thread(cluster.primary_of_key, resource_key(shops[0]))
    [successor] = await asyncio.to_thread(cluster.replicas_of, victim)
    load = BookingLoad(gateways, shops)
    running = asyncio.create_task(load.run(2 + LOAD_AFTER_FAILURE_SECONDS))
    await asyncio.sleep(2)
    failed_at = time.monotonic()
    fail(victim)
    return Failure(shops, load, running, victim, successor, failed_at)


async def assert_it_was_survived(failure: Failure) -> None:
    assert_answers_were_success_4xx_or_503(failure)
    assert_holds_work_again_within(failure.load, failure.failed_at, RECOVERY_SECONDS)
    await assert_nothing_acknowledged_was_lost(failure)


async def test_killing_a_redis_primary_under_load_promotes_its_replica_and_loses_nothing(
    api: Api, hub: dict[str, str], gateways: list[Api], cluster: LocalRedisCluster
) -> None:
    failure = await fail_under_load(api, hub, gateways, cluster, RedisClusterNode.kill)
    victim, successor = failure.victim, failure.successor
    try:
        promoted_after = await wait_until(serves(cluster, successor), RECOVERY_SECONDS)
        failure.took_writes_until = time.monotonic()
        await failure.running
        report(
            f"kill -9 {victim.name}; {successor.name} promoted after {promoted_after:.1f}s",
            failure.load,
            failure.failed_at,
        )
        await assert_it_was_survived(failure)
    finally:
        await asyncio.to_thread(victim.restart)
        await wait_until(follows(cluster, victim, successor), 30)
        await asyncio.to_thread(cluster.wait_until_healthy)


async def test_a_frozen_redis_primary_is_replaced_rejoins_as_a_replica_and_loses_nothing(
    api: Api, hub: dict[str, str], gateways: list[Api], cluster: LocalRedisCluster
) -> None:
    failure = await fail_under_load(api, hub, gateways, cluster, RedisClusterNode.freeze)
    victim, successor = failure.victim, failure.successor
    try:
        promoted_after = await wait_until(serves(cluster, successor), RECOVERY_SECONDS)
        await asyncio.sleep(max(0.0, failure.failed_at + FREEZE_SECONDS - time.monotonic()))
    finally:
        victim.thaw()
    rejoined_after = await wait_until(follows(cluster, victim, successor), 30)
    failure.took_writes_until = time.monotonic()
    await failure.running
    report(
        f"SIGSTOP {victim.name} for {FREEZE_SECONDS:.0f}s; {successor.name} promoted after "
        f"{promoted_after:.1f}s; {victim.name} a replica again {rejoined_after:.1f}s after SIGCONT",
        failure.load,
        failure.failed_at,
    )
    await assert_it_was_survived(failure)
    await asyncio.to_thread(cluster.wait_until_healthy)
