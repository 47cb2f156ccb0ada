"""hold-service learns catalogues from the NATS key-value bucket booking-service writes,
never from booking-service: holds go on while booking-service is down, a change
committed but never written to the bucket still reaches holds, and a hold-service cut
off from NATS answers "unavailable" (503 with Retry-After at the gateway)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import orjson
import pytest
from calendence import events, rpc
from calendence.devstack.stack import LocalStack
from calendence.devstack.stores import start_nats
from calendence.errors import Unavailable
from calendence.hold.v1 import hold_pb2, hold_pb2_grpc
from calendence.timefmt import to_timestamp

from tests.api import Tenant, created, iso, tomorrow_at
from tests.catalogue_helpers import status_within
from tests.hold_helpers import assert_problem, field_errors, open_shop
from tests.test_keys import replica

# The `db` fixture.
pytest_plugins = ("tests.catalogue_fixtures",)


async def bucket_snapshot(nats_url: str, business_id: str) -> dict[str, object]:
    client = await events.connect(nats_url, "test-catalogue-bucket")
    try:
        bucket = await client.jetstream().key_value(events.CATALOGUE_BUCKET)
        entry = await bucket.get(business_id)
        snapshot: dict[str, object] = orjson.loads(entry.value or b"")
        return snapshot
    finally:
        await client.close()


async def test_holds_and_availability_are_served_while_booking_service_is_down(
    stack: LocalStack, tenant: Tenant
) -> None:
    shop = await open_shop(tenant, staff=1)
    token = await tenant.session_token()
    # The gateway knows the token now (its key cache); releasing nothing reads no catalogue.
    assert_problem(await shop.release(token, str(uuid.uuid4())), 404)
    stack.services["booking-service"].stop()
    try:
        # hold-service has never read this business's catalogue: it must read it now.
        hold = await shop.hold(token, tomorrow_at(10))
        availability = await tenant.api.get(
            "/api/v1/availability",
            token,
            params={
                "service_id": shop.service_id,
                "location_id": shop.location_id,
                "from": iso(tomorrow_at(9)),
                "to": iso(tomorrow_at(17)),
            },
        )
    finally:
        stack.start_service("booking-service")
        stack.wait_until_ready()
    assert hold.status == 201, hold.body
    assert availability.status == 200, availability.body
    assert iso(tomorrow_at(10)) not in [s["starts_at"] for s in availability.body["slots"]]


async def test_a_change_committed_but_never_written_to_the_bucket_reaches_holds(
    tenant: Tenant, db: asyncpg.Connection
) -> None:
    """As after a crash between the commit and the bucket write: the repair writes it."""
    shop = await open_shop(tenant)
    token = await tenant.session_token()
    warm = created(await shop.hold(token, tomorrow_at(12)))
    assert (await shop.release(token, warm["hold_id"])).status == 204
    # A closure written to PostgreSQL alone, as a booking-service that died after its
    # commit leaves it.
    await db.execute(
        "INSERT INTO time_off (id, business_id, location_id, starts_at, ends_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        uuid.uuid4(),
        uuid.UUID(tenant.business_id),
        uuid.UUID(shop.location_id),
        tomorrow_at(9),
        tomorrow_at(17),
    )
    status, elapsed = await status_within(lambda: shop.hold(token, tomorrow_at(12)), 422, 15)
    assert status == 422, elapsed
    assert "closed" in field_errors(await shop.hold(token, tomorrow_at(12)))["starts_at"]


async def test_racing_changes_leave_the_newest_snapshot_in_the_bucket(
    stack: LocalStack, tenant: Tenant
) -> None:
    shop = await open_shop(tenant, staff=1)
    member = shop.staff[0]["id"]
    day = tomorrow_at(0)
    answers = await asyncio.gather(
        *(
            tenant.api.post(
                "/api/v1/time-off",
                tenant.business_key,
                {
                    "staff_id": member,
                    "starts_at": iso(day.replace(hour=hour)),
                    "ends_at": iso(day.replace(hour=hour, minute=30)),
                },
            )
            for hour in range(24)
        )
    )
    assert [a.status for a in answers] == [201] * 24
    # Every change had answered, so the bucket must hold all of them now.
    snapshot = await bucket_snapshot(stack.env["NATS_URL"], tenant.business_id)
    assert isinstance(snapshot["time_off"], list)
    assert len(snapshot["time_off"]) == 24


async def test_a_hold_service_cut_off_from_nats_answers_unavailable_never_internal(
    stack: LocalStack, tenant: Tenant, tmp_path: Path
) -> None:
    """Unavailable is what the gateway answers 503 with Retry-After (tests/test_platform.py)."""
    shop = await open_shop(tenant)
    # A hold-service replica on a NATS of its own, holding a copy of the snapshot.
    own_nats = start_nats(tmp_path)
    try:
        copy = await bucket_snapshot(stack.env["NATS_URL"], tenant.business_id)
        client = await events.connect(own_nats.url, "test-catalogue-copy")
        try:
            bucket = await events.ensure_catalogue_bucket(client.jetstream())
            await bucket.put(tenant.business_id, orjson.dumps(copy))
        finally:
            await client.close()
        with replica(stack, tmp_path, "hold-service", NATS_URL=own_nats.url) as address:
            channel = rpc.open_channel(address)
            try:
                hold_service = hold_pb2_grpc.HoldServiceStub(channel)

                def hold_at(hour: int) -> hold_pb2.PlaceHoldRequest:
                    return hold_pb2.PlaceHoldRequest(
                        business_id=tenant.business_id,
                        holder_id="cut-off-holder",
                        service_id=shop.service_id,
                        location_id=shop.location_id,
                        starts_at=to_timestamp(tomorrow_at(hour)),
                    )

                placed = await rpc.unary(hold_service.PlaceHold, hold_at(10))
                own_nats.process.stop()
                with pytest.raises(Unavailable):
                    await rpc.unary(hold_service.PlaceHold, hold_at(12))
            finally:
                await channel.close(None)
    finally:
        own_nats.process.stop()
    assert placed.staff_id == "" and placed.location_id == shop.location_id
