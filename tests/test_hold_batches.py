"""Holds placed, consumed and confirmed in batches (PlaceHolds, what the gateway sends
for holds that arrive together; ConsumeAndConfirm, what booking-service sends for
bookings that do): each item decided on its own, in order, as if it came alone."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from calendence import rpc
from calendence.devstack.stack import LocalStack
from calendence.devstack.stores import start_redis
from calendence.hold.v1 import hold_pb2, hold_pb2_grpc
from calendence.timefmt import to_timestamp

from tests.api import Api, Tenant, new_tenant, tomorrow_at
from tests.hold_helpers import HOLD_PATH, Shop, open_shop
from tests.redis_helpers import stack_redis
from tests.test_keys import replica


@pytest.fixture
async def holds(stack: LocalStack) -> AsyncIterator[hold_pb2_grpc.HoldServiceStub]:
    channel = rpc.open_channel(stack.env["HOLD_SERVICE_ADDR"])
    try:
        yield hold_pb2_grpc.HoldServiceStub(channel)
    finally:
        await channel.close(None)


def wanted(
    shop: Shop, holder: str, starts_at: datetime, **fields: str
) -> hold_pb2.PlaceHoldRequest:
    return hold_pb2.PlaceHoldRequest(
        business_id=fields.pop("business_id", shop.tenant.business_id),
        holder_id=holder,
        service_id=fields.pop("service_id", shop.service_id),
        location_id=shop.location_id,
        starts_at=to_timestamp(starts_at),
    )


async def place(
    holds: hold_pb2_grpc.HoldServiceStub, batch: list[hold_pb2.PlaceHoldRequest]
) -> list[hold_pb2.PlaceHoldOutcome]:
    answer = await rpc.unary(holds.PlaceHolds, hold_pb2.PlaceHoldsRequest(holds=batch))
    assert len(answer.outcomes) == len(batch)
    return list(answer.outcomes)


async def test_of_holds_in_one_batch_on_overlapping_intervals_exactly_one_wins(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant
) -> None:
    shop = await open_shop(tenant, duration_minutes=30)
    ten = tomorrow_at(10)
    batch = [wanted(shop, f"holder-{i}", ten + timedelta(minutes=15 * (i % 2))) for i in range(20)]
    outcomes = await place(holds, batch)
    # The first in the batch wins; 10:15 overlaps 10:00-10:30, so every other is taken.
    assert outcomes[0].HasField("hold")
    assert [o.failure.kind for o in outcomes[1:]] == ["HoldConflict"] * 19
    assert (await shop.hold(await tenant.session_token(), ten)).status == 409


async def test_a_bad_hold_in_a_batch_fails_alone_and_the_others_are_placed(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    batch = [
        wanted(shop, "first", tomorrow_at(10)),
        wanted(shop, "no-such-service", tomorrow_at(11), service_id=str(uuid.uuid4())),
        wanted(shop, "not-an-id", tomorrow_at(12), business_id="not-a-uuid"),
        wanted(shop, "in-the-past", tomorrow_at(13) - timedelta(days=3)),
        wanted(shop, "last", tomorrow_at(14)),
    ]
    outcomes = await place(holds, batch)
    assert [o.WhichOneof("outcome") for o in outcomes] == [
        "hold",
        "failure",
        "failure",
        "failure",
        "hold",
    ]
    assert [o.failure.kind for o in outcomes[1:4]] == ["InvalidInput"] * 3
    assert outcomes[2].failure.fields["business_id"]
    assert outcomes[3].failure.fields["starts_at"]
    assert outcomes[4].hold.starts_at == to_timestamp(tomorrow_at(14))


async def test_the_same_holder_twice_in_one_batch_gets_the_same_hold_twice(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    first, again = await place(
        holds, [wanted(shop, "widget", tomorrow_at(10)), wanted(shop, "widget", tomorrow_at(10))]
    )
    assert first.hold.hold_id and again.hold.hold_id == first.hold.hold_id


async def test_a_batch_may_hold_for_several_businesses_at_once(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant, api: Api, hub: dict[str, str]
) -> None:
    shops = [await open_shop(tenant), await open_shop(await new_tenant(api, hub["key"]))]
    outcomes = await place(holds, [wanted(shop, "widget", tomorrow_at(10)) for shop in shops])
    assert [o.hold.business_id for o in outcomes] == [s.tenant.business_id for s in shops]


async def test_a_batch_bigger_than_one_redis_script_is_decided_hold_by_hold_in_order(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant
) -> None:
    # On one Redis server a script decides at most 64 holds: 90 take two scripts, and
    # the last item (a retry of the 70th) is decided after the hold it repeats.
    shop = await open_shop(tenant, duration_minutes=5)
    slots = [tomorrow_at(9) + timedelta(minutes=5 * i) for i in range(90)]
    batch = [wanted(shop, f"holder-{i}", slot) for i, slot in enumerate(slots)]
    outcomes = await place(holds, [*batch, wanted(shop, "holder-69", slots[69])])
    assert all(o.HasField("hold") for o in outcomes)
    assert len({o.hold.hold_id for o in outcomes}) == 90
    assert outcomes[90].hold.hold_id == outcomes[69].hold.hold_id
    taken = await place(holds, [wanted(shop, "someone-else", slot) for slot in slots])
    assert [o.failure.kind for o in taken] == ["HoldConflict"] * 90


async def test_holds_are_placed_after_redis_forgets_its_scripts(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant, stack: LocalStack
) -> None:
    shop = await open_shop(tenant)
    await placed_holds(holds, shop, 9)
    async with stack_redis(stack) as redis:
        await redis.script_flush()
    placed = await placed_holds(holds, shop, 10, 11)
    assert [hold.starts_at for hold in placed] == [
        to_timestamp(tomorrow_at(10)),
        to_timestamp(tomorrow_at(11)),
    ]


@pytest.fixture
async def crowd() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def test_holds_that_arrive_together_while_redis_is_gone_all_get_503_with_retry_after(
    stack: LocalStack, tenant: Tenant, crowd: aiohttp.ClientSession, tmp_path: Path
) -> None:
    shop = await open_shop(tenant)
    tokens = await shop.sessions(20)
    store = start_redis(tmp_path, persist=False)
    try:
        with (
            replica(stack, tmp_path, "hold-service", REDIS_URL=store.url) as hold_service,
            replica(stack, tmp_path, HOLD_SERVICE_ADDR=hold_service) as url,
        ):
            gateway = Api(crowd, url)
            store.process.stop()
            answers = await asyncio.gather(
                *(
                    gateway.post(
                        HOLD_PATH,
                        token,
                        shop.hold_body(tomorrow_at(10) + timedelta(minutes=15 * i)),
                    )
                    for i, token in enumerate(tokens)
                )
            )
    finally:
        store.process.stop()
    assert Counter(a.status for a in answers) == {503: len(tokens)}
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers)
    assert all(a.content_type == "application/problem+json" for a in answers)


def consuming(
    shop: Shop, hold_id: str, booking_id: str, **fields: str | int
) -> hold_pb2.ConsumeHoldRequest:
    return hold_pb2.ConsumeHoldRequest(
        business_id=str(fields.pop("business_id", shop.tenant.business_id)),
        hold_id=hold_id,
        booking_id=booking_id,
        pending_ms=int(fields.pop("pending_ms", 20_000)),
    )


async def consume_and_confirm(
    holds: hold_pb2_grpc.HoldServiceStub,
    consume: list[hold_pb2.ConsumeHoldRequest],
    confirm: list[hold_pb2.ConfirmClaimRequest] | None = None,
) -> hold_pb2.ConsumeAndConfirmResponse:
    answer = await rpc.unary(
        holds.ConsumeAndConfirm,
        hold_pb2.ConsumeAndConfirmRequest(consume=consume, confirm=confirm or []),
    )
    assert (len(answer.consumed), len(answer.confirmed)) == (len(consume), len(confirm or []))
    return answer


async def consume(
    holds: hold_pb2_grpc.HoldServiceStub, batch: list[hold_pb2.ConsumeHoldRequest]
) -> list[hold_pb2.PlaceHoldOutcome]:
    return list((await consume_and_confirm(holds, batch)).consumed)


def claim_of(hold: hold_pb2.PlacedHold, booking_id: str) -> hold_pb2.ConfirmClaimRequest:
    """Confirming the claim `booking_id` made by consuming `hold`."""
    return hold_pb2.ConfirmClaimRequest(
        booking_id=booking_id,
        hold_id=hold.hold_id,
        resource_id=hold.resource_id,
        starts_at=hold.starts_at,
        blocked_until=hold.blocked_until,
    )


async def placed_holds(
    holds: hold_pb2_grpc.HoldServiceStub, shop: Shop, *hours: int
) -> list[hold_pb2.PlacedHold]:
    outcomes = await place(holds, [wanted(shop, "widget", tomorrow_at(hour)) for hour in hours])
    return [o.hold for o in outcomes]


async def test_of_bookings_consuming_one_hold_in_one_batch_only_the_first_gets_it(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    [hold] = await placed_holds(holds, shop, 10)
    outcomes = await consume(
        holds, [consuming(shop, hold.hold_id, str(uuid.uuid4())) for _ in range(10)]
    )
    assert outcomes[0].hold.hold_id == hold.hold_id
    assert [o.failure.kind for o in outcomes[1:]] == ["NotFound"] * 9


async def test_a_bad_item_in_a_consume_batch_fails_alone_and_the_others_are_consumed(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    first, last = await placed_holds(holds, shop, 10, 11)
    outcomes = await consume(
        holds,
        [
            consuming(shop, first.hold_id, str(uuid.uuid4())),
            consuming(shop, last.hold_id, str(uuid.uuid4()), business_id="not-a-uuid"),
            consuming(shop, str(uuid.uuid4()), str(uuid.uuid4())),
            consuming(shop, last.hold_id, str(uuid.uuid4()), pending_ms=0),
            consuming(shop, last.hold_id, str(uuid.uuid4()), business_id=str(uuid.uuid4())),
            consuming(shop, last.hold_id, str(uuid.uuid4())),
        ],
    )
    assert [o.hold.hold_id for o in (outcomes[0], outcomes[5])] == [first.hold_id, last.hold_id]
    assert [o.failure.kind for o in outcomes[1:5]] == [
        "InvalidInput",
        "NotFound",
        "InvalidInput",
        "NotFound",
    ]


async def test_claims_confirmed_in_one_batch_each_answer_for_their_own_booking(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant
) -> None:
    shop = await open_shop(tenant)
    placed = await placed_holds(holds, shop, 10, 11, 12)
    bookings = [str(uuid.uuid4()) for _ in placed]
    await consume(
        holds,
        [consuming(shop, h.hold_id, b) for h, b in zip(placed[:2], bookings[:2], strict=True)],
    )
    claims = [
        claim_of(hold, booking_id)
        for hold, booking_id in zip(placed[:2], [bookings[0], str(uuid.uuid4())], strict=True)
    ]
    # The third hold is consumed in the same call as the first two claims are confirmed;
    # the second claim names a booking that never consumed its hold: nothing changes.
    answer = await consume_and_confirm(
        holds, [consuming(shop, placed[2].hold_id, bookings[2])], claims
    )
    assert answer.consumed[0].hold.hold_id == placed[2].hold_id
    assert [o.answer.confirmed for o in answer.confirmed] == [True, False]
    again = await consume(holds, [consuming(shop, placed[1].hold_id, bookings[1])])
    assert again[0].hold.hold_id == placed[1].hold_id


async def test_a_claim_freed_before_its_confirmation_arrives_stays_free(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant
) -> None:
    # A confirmation that arrives late (delayed in a batch, or sent again) after the
    # booking was cancelled and its interval freed must not take the slot back.
    shop = await open_shop(tenant)
    [hold] = await placed_holds(holds, shop, 10)
    booking_id = str(uuid.uuid4())
    await consume(holds, [consuming(shop, hold.hold_id, booking_id)])
    await rpc.unary(
        holds.FreeInterval,
        hold_pb2.FreeIntervalRequest(
            booking_id=booking_id,
            resource_id=hold.resource_id,
            starts_at=hold.starts_at,
            blocked_until=hold.blocked_until,
        ),
    )
    answer = await consume_and_confirm(holds, [], [claim_of(hold, booking_id)])
    assert [o.answer.confirmed for o in answer.confirmed] == [False]
    [again] = await place(holds, [wanted(shop, "another widget", tomorrow_at(10))])
    assert again.WhichOneof("outcome") == "hold"


async def test_holds_are_consumed_and_claims_confirmed_after_redis_forgets_its_scripts(
    holds: hold_pb2_grpc.HoldServiceStub, tenant: Tenant, stack: LocalStack
) -> None:
    shop = await open_shop(tenant)
    first, second = await placed_holds(holds, shop, 10, 11)
    booking_id = str(uuid.uuid4())
    await consume(holds, [consuming(shop, first.hold_id, booking_id)])
    async with stack_redis(stack) as redis:
        await redis.script_flush()
    claim = claim_of(first, booking_id)
    answer = await consume_and_confirm(
        holds, [consuming(shop, second.hold_id, str(uuid.uuid4()))], [claim]
    )
    assert answer.consumed[0].hold.hold_id == second.hold_id
    assert answer.confirmed[0].answer.confirmed
