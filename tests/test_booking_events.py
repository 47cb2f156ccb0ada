"""Every booking change is announced once, through the outbox and JetStream."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import nats
import orjson
import pytest
from calendence import rpc
from calendence.devstack.stack import LocalStack
from calendence.events import event_subject
from calendence.notify.v1 import notify_pb2, notify_pb2_grpc

from tests.api import created, new_tenant, tomorrow_at
from tests.booking_helpers import Salon, booking_service_run_with, open_salon
from tests.events import EventTap


async def test_each_change_publishes_its_event_with_the_full_booking(
    salon: Salon, tap: EventTap
) -> None:
    booking = await salon.booking(tomorrow_at(10), salon.deposit_service_id)
    path = f"/api/v1/bookings/{booking['id']}"
    key = salon.tenant.business_key
    for change in (
        {"status": "confirmed"},
        {"starts_at": tomorrow_at(12).isoformat()},
        {"notes": "Side entrance"},
        {"status": "in_progress"},
        {"status": "completed"},
    ):
        assert (await salon.tenant.api.patch(path, key, change)).status == 200
    expected = [
        "booking.created",
        "booking.confirmed",
        "booking.rescheduled",
        "booking.updated",
        "booking.updated",
        "booking.completed",
    ]
    last = await tap.wait_for(booking["id"], "booking.completed")
    assert tap.of(booking["id"]) == expected
    assert last["business_id"] == salon.tenant.business_id
    assert last["data"] == (await salon.tenant.api.get(path, key)).body
    assert {"id", "type", "timestamp", "business_id", "data", "business"} == last.keys()
    # What notify-service needs for client emails, as the business was at the change.
    assert last["business"]["client_emails"] == [
        "confirmation",
        "cancellation",
        "reschedule",
        "reminder",
    ]


async def test_a_new_bookings_event_carries_the_document_it_was_answered_with(
    salon: Salon, tap: EventTap
) -> None:
    tenant = salon.tenant
    await tenant.create("custom-fields", {"key": "allergies", "label": "Allergies", "type": "text"})
    member = await tenant.staff([salon.service_id], [salon.location_id])
    token = await tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(15), staff_id=member["id"]))
    booking = created(
        await salon.book(
            token,
            hold["hold_id"],
            custom_field_values=[{"key": "allergies", "value": "none"}],
            notes="Window seat",
        )
    )
    event = await tap.wait_for(booking["id"], "booking.created")
    assert event["data"] == booking
    assert booking["staff"]["id"] == member["id"]
    assert booking["manage_url"]
    shown = await tenant.api.get(f"/api/v1/bookings/{booking['id']}", tenant.business_key)
    assert shown.body == booking


async def test_each_changes_event_carries_the_document_it_was_answered_with(
    salon: Salon, tap: EventTap
) -> None:
    # A deposit left unpaid: cancelling expires it, which the event must say too.
    booking = await salon.booking(tomorrow_at(13), salon.deposit_service_id)
    path = f"/api/v1/bookings/{booking['id']}"
    key = salon.tenant.business_key
    noted = await salon.tenant.api.patch(path, key, {"notes": "Ring twice"})
    moved = await salon.tenant.api.patch(path, key, {"starts_at": tomorrow_at(14).isoformat()})
    cancelled = await salon.tenant.api.delete(path, key)
    assert cancelled.body["payment"]["status"] == "expired"
    assert (await tap.wait_for(booking["id"], "booking.updated"))["data"] == noted.body
    assert (await tap.wait_for(booking["id"], "booking.rescheduled"))["data"] == moved.body | {
        "actor": "business"
    }
    assert (await tap.wait_for(booking["id"], "booking.cancelled"))["data"] == cancelled.body | {
        "actor": "business"
    }


async def test_a_change_announcing_two_things_publishes_them_in_order(
    salon: Salon, tap: EventTap
) -> None:
    booking = await salon.booking(tomorrow_at(9), salon.deposit_service_id)
    changed = await salon.tenant.api.patch(
        f"/api/v1/bookings/{booking['id']}",
        salon.tenant.business_key,
        {"status": "confirmed", "starts_at": tomorrow_at(11).isoformat(), "notes": "Late"},
    )
    assert changed.status == 200
    await tap.wait_for(booking["id"], "booking.updated")
    assert tap.of(booking["id"]) == [
        "booking.created",
        "booking.confirmed",
        "booking.rescheduled",
        "booking.updated",
    ]
    assert len({e["id"] for e in tap.events if e["data"]["id"] == booking["id"]}) == 4


async def test_concurrent_deletes_of_one_booking_all_answer_it_cancelled_and_announce_it_once(
    salon: Salon, tap: EventTap
) -> None:
    booking = await salon.booking(tomorrow_at(10))
    path = f"/api/v1/bookings/{booking['id']}"
    answers = await asyncio.gather(
        *(salon.tenant.api.delete(path, salon.tenant.business_key) for _ in range(10))
    )
    assert {a.status for a in answers} == {200}
    assert {(a.body["status"], a.body["version"]) for a in answers} == {("cancelled", 2)}
    await tap.wait_for(booking["id"], "booking.cancelled")
    await asyncio.sleep(0.3)
    await tap.drain()
    assert tap.of(booking["id"]) == ["booking.created", "booking.cancelled"]
    token = await salon.tenant.session_token()
    assert (await salon.hold(token, tomorrow_at(10))).status == 201


async def test_a_delete_racing_a_reschedule_frees_whichever_time_the_booking_had_last(
    salon: Salon,
) -> None:
    key = salon.tenant.business_key
    for round_number in range(4):
        start = tomorrow_at(10 + round_number)
        moved_to = tomorrow_at(14 + round_number // 2, 30 * (round_number % 2))
        booking = await salon.booking(start)
        path = f"/api/v1/bookings/{booking['id']}"
        moved, cancelled = await asyncio.gather(
            salon.tenant.api.patch(path, key, {"starts_at": moved_to.isoformat()}),
            salon.tenant.api.delete(path, key),
        )
        assert cancelled.status == 200 and cancelled.body["status"] == "cancelled"
        # The reschedule either went first, or found the booking cancelled.
        assert moved.status in (200, 409), moved.body
        token = await salon.tenant.session_token()
        assert (await salon.hold(token, start)).status == 201
        assert (await salon.hold(token, moved_to)).status == 201


async def test_a_new_booking_wakes_the_outbox_relay_at_once(
    stack: LocalStack, salon: Salon, tap: EventTap
) -> None:
    # The relay looks for events on its own only every 60 s here: one sooner was
    # announced by the statement that wrote the booking.
    with booking_service_run_with(stack, {"OUTBOX_POLL_SECONDS": "60"}):
        booking = await salon.booking(tomorrow_at(16))
        await tap.wait_for(booking["id"], "booking.created", timeout=10)


async def test_a_cancellation_wakes_the_outbox_relay_at_once(
    stack: LocalStack, salon: Salon, tap: EventTap
) -> None:
    with booking_service_run_with(stack, {"OUTBOX_POLL_SECONDS": "60"}):
        booking = await salon.booking(tomorrow_at(15))
        await salon.tenant.api.delete(
            f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
        )
        await tap.wait_for(booking["id"], "booking.cancelled", timeout=10)


async def test_with_bookings_in_one_statement_off_the_outbox_holds_only_documents(
    stack: LocalStack, salon: Salon, tap: EventTap
) -> None:
    # As during a rolling upgrade, when a relay from before such events may publish.
    with booking_service_run_with(stack, {"BOOK_IN_ONE_STATEMENT": "false"}):
        booking = await salon.booking(tomorrow_at(16))
        cancelled = await salon.tenant.api.delete(
            f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key
        )
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        stored = await connection.fetch(
            "SELECT data_is_row, payload->'data' AS data FROM outbox "
            "WHERE payload->'data'->>'id' = $1 ORDER BY seq",
            booking["id"],
        )
    finally:
        await connection.close()
    assert [row["data_is_row"] for row in stored] == [False, False]
    assert [orjson.loads(row["data"]) for row in stored] == [
        booking,
        cancelled.body | {"actor": "business"},
    ]
    assert (await tap.wait_for(booking["id"], "booking.created"))["data"] == booking


async def test_cancelling_publishes_booking_cancelled(salon: Salon, tap: EventTap) -> None:
    booking = await salon.booking(tomorrow_at(11))
    await salon.tenant.api.delete(f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key)
    await salon.tenant.api.delete(f"/api/v1/bookings/{booking['id']}", salon.tenant.business_key)
    event = await tap.wait_for(booking["id"], "booking.cancelled")
    assert event["data"]["status"] == "cancelled"
    await asyncio.sleep(0.3)
    await tap.drain()
    assert tap.of(booking["id"]) == ["booking.created", "booking.cancelled"]


async def test_a_booking_event_travels_every_hop_to_notify_service(
    salon: Salon, stack: LocalStack
) -> None:
    """HTTP into the gateway, gRPC to hold- and booking-service, Redis, PostgreSQL,
    the outbox to JetStream, and notify-service's durable consumer into its own store."""
    booking = await salon.booking(tomorrow_at(13))
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        event_id = await connection.fetchval(
            "SELECT id FROM outbox WHERE payload->'data'->>'id' = $1", booking["id"]
        )
    finally:
        await connection.close()
    channel = rpc.open_channel(stack.env["NOTIFY_SERVICE_ADDR"])
    stub = notify_pb2_grpc.NotifyServiceStub(channel)
    try:
        for _ in range(100):
            try:
                receipt = await rpc.unary(
                    stub.GetEventReceipt, notify_pb2.GetEventReceiptRequest(event_id=str(event_id))
                )
                break
            except Exception:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("notify-service never received the event")
    finally:
        await channel.close(None)
    assert receipt.type == "booking.created"
    assert receipt.business_id == salon.tenant.business_id


async def test_outbox_survives_a_crash_between_commit_and_publish(
    salon: Salon, stack: LocalStack, tap: EventTap
) -> None:
    # A booking-service that commits bookings but never relays, killed like a crash.
    stack.services["booking-service"].stop()
    stack.start_service("booking-service", {"OUTBOX_RELAY_ENABLED": "false"})
    stack.wait_until_ready()
    try:
        stranded = await salon.booking(tomorrow_at(10))
        half_published = await salon.booking(tomorrow_at(11))
        await asyncio.sleep(0.5)
        await tap.drain()
        assert tap.of(stranded["id"]) == []
        connection = await asyncpg.connect(stack.env["DATABASE_URL"])
        try:
            event_id, payload = await connection.fetchrow(
                "SELECT id, payload FROM outbox WHERE payload->'data'->>'id' = $1",
                half_published["id"],
            )
        finally:
            await connection.close()
        # The other crash window: published to JetStream, but not yet marked in the outbox.
        nc = await nats.connect(stack.env["NATS_URL"])
        await nc.jetstream().publish(
            event_subject("booking.created"),
            # The row as stored (its data not rendered as the relay would: only the
            # Nats-Msg-Id counts for JetStream's deduplication).
            payload.encode(),
            headers={"Nats-Msg-Id": str(event_id)},
        )
        await nc.close()
        stack.services["booking-service"].kill()
    finally:
        # Whatever happened above, exactly one booking-service, with its relay, runs after.
        stack.services["booking-service"].stop()
        stack.start_service("booking-service")
        stack.wait_until_ready()
    await tap.wait_for(stranded["id"], "booking.created")
    await tap.wait_for(half_published["id"], "booking.created")
    await asyncio.sleep(1.0)
    await tap.drain()
    assert tap.of(stranded["id"]) == ["booking.created"]
    assert tap.of(half_published["id"]) == ["booking.created"]
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        unpublished = await connection.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL AND id = ANY($1::uuid[])",
            [UUID(str(event_id))],
        )
    finally:
        await connection.close()
    assert unpublished == 0


async def test_booking_with_the_same_idempotency_key_and_body_replays_the_answer(
    salon: Salon,
) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(14)))
    body = {
        "hold_id": hold["hold_id"],
        "client": {"first_name": "Jo", "last_name": "Roe", "email": "jo@example.com"},
    }
    headers = {"Idempotency-Key": "booking-attempt-1"}
    first = await salon.tenant.api.post("/api/v1/bookings", token, body, headers=headers)
    second = await salon.tenant.api.post("/api/v1/bookings", token, body, headers=headers)
    assert first.status == second.status == 201
    assert second.body == first.body
    assert second.headers["Idempotent-Replayed"] == "true"
    listed = await salon.tenant.api.get("/api/v1/bookings", salon.tenant.business_key)
    assert [b["id"] for b in listed.body["data"]] == [first.body["id"]]


async def test_the_same_idempotency_key_with_another_body_is_422(salon: Salon) -> None:
    token = await salon.tenant.session_token()
    hold = created(await salon.hold(token, tomorrow_at(15)))
    headers = {"Idempotency-Key": "booking-attempt-2"}
    body = {
        "hold_id": hold["hold_id"],
        "client": {"first_name": "Jo", "last_name": "Roe", "email": "jo@example.com"},
    }
    assert (
        await salon.tenant.api.post("/api/v1/bookings", token, body, headers=headers)
    ).status == 201
    other = await salon.tenant.api.post(
        "/api/v1/bookings", token, {**body, "notes": "changed"}, headers=headers
    )
    assert other.status == 422
    assert "Idempotency-Key" in other.body["errors"]


async def test_idempotency_keys_are_scoped_per_business(salon: Salon, hub: dict[str, str]) -> None:
    other = await open_salon(await new_tenant(salon.tenant.api, hub["key"]))
    headers = {"Idempotency-Key": "shared-key"}
    mine = await salon.hold(await salon.tenant.session_token(), tomorrow_at(10), headers=headers)
    theirs = await other.hold(await other.tenant.session_token(), tomorrow_at(10), headers=headers)
    assert mine.status == theirs.status == 201
    assert mine.body["hold_id"] != theirs.body["hold_id"]


async def test_a_hold_retried_with_its_idempotency_key_replays_the_same_hold(
    salon: Salon,
) -> None:
    token = await salon.tenant.session_token()
    headers = {"Idempotency-Key": "hold-attempt-1"}
    first = await salon.hold(token, tomorrow_at(11), headers=headers)
    second = await salon.hold(token, tomorrow_at(11), headers=headers)
    assert first.status == second.status == 201
    assert second.body == first.body
    assert second.headers["Idempotent-Replayed"] == "true"
    other = await salon.hold(token, tomorrow_at(12), headers=headers)
    assert other.status == 422
