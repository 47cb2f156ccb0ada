"""A hold lives in its resource's hash slot; its locator (how a booking finds it by id)
in another, maybe on another node. When the locator's node refuses the write, the hold
must not be answered 201: nobody could book it. It is answered 503 and its slot freed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from calendence.devstack.redis_cluster import LocalRedisCluster, RedisClusterNode
from calendence.devstack.stack import LocalStack

from tests.api import Api, iso
from tests.booking_helpers import JANE
from tests.cluster.load import open_shops, resource_key
from tests.hold_helpers import Shop

ATTEMPTS = 24


@pytest.fixture
def cluster(stack: LocalStack) -> LocalRedisCluster:
    assert stack.redis_nodes is not None
    return stack.redis_nodes


@pytest.fixture
async def shop(api: Api, hub: dict[str, str]) -> Shop:
    [opened] = await open_shops(api, hub["key"], 1)
    return opened


@pytest.fixture
def other_primaries_refuse_writes(
    cluster: LocalRedisCluster, shop: Shop
) -> Iterator[list[RedisClusterNode]]:
    """Every primary but the one of the shop's holds answers writes NOREPLICAS (as a
    primary does that has fewer replicas than `min-replicas-to-write`)."""
    home = cluster.primary_of_key(resource_key(shop))
    others = [node for node in cluster.primaries() if node.name != home.name]
    for node in others:
        node.command("CONFIG", "SET", "min-replicas-to-write", "5")
    try:
        yield others
    finally:
        for node in others:
            node.command("CONFIG", "SET", "min-replicas-to-write", "0")


def slot(number: int) -> str:
    day = datetime.now(UTC).date() + timedelta(days=5)
    return iso(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=number))


async def test_a_hold_whose_locator_was_refused_answers_503_and_leaves_its_slot_free(
    cluster: LocalRedisCluster, shop: Shop, other_primaries_refuse_writes: list[RedisClusterNode]
) -> None:
    token = await shop.tenant.session_token()
    answers = [await shop.hold(token, slot(number)) for number in range(ATTEMPTS)]
    for node in other_primaries_refuse_writes:
        node.command("CONFIG", "SET", "min-replicas-to-write", "0")
    refused = [number for number, answer in enumerate(answers) if answer.status == 503]
    placed = [(number, a) for number, a in enumerate(answers) if a.status == 201]
    # Each hold id lands in one of three primaries' slots: two of them refuse.
    assert refused, [a.status for a in answers]
    assert all(answers[number].headers.get("Retry-After") for number in refused)
    assert len(refused) + len(placed) == ATTEMPTS, [a.status for a in answers]
    for _, answer in placed:  # a hold answered 201 can be found and booked
        booked = await shop.tenant.api.post(
            "/api/v1/bookings", token, {"hold_id": answer.body["hold_id"], "client": JANE}
        )
        assert booked.status == 201, booked.body
    again = await shop.tenant.session_token()
    for number in refused:  # nothing holds a slot whose hold was refused
        retried = await shop.hold(again, slot(number))
        assert retried.status == 201, retried.body
