"""Every booking change is announced once, through the outbox and JetStream."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg
import orjson
from calendence.devstack.stack import LocalStack

from tests.api import created, tomorrow_at
from tests.booking_helpers import Salon
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


async def test_a_new_booking_wakes_the_outbox_relay_at_once(
    stack: LocalStack, salon: Salon, tap: EventTap
) -> None:
    # The relay looks for events on its own only every 60 s here: one sooner was
    # announced by the statement that wrote the booking.
    with booking_service_run_with(stack, {"OUTBOX_POLL_SECONDS": "60"}):
        booking = await salon.booking(tomorrow_at(16))
        await tap.wait_for(booking["id"], "booking.created", timeout=10)


async def test_with_bookings_in_one_statement_off_the_outbox_holds_only_documents(
    stack: LocalStack, salon: Salon, tap: EventTap
) -> None:
    # As during a rolling upgrade, when a relay from before such events may publish.
    with booking_service_run_with(stack, {"BOOK_IN_ONE_STATEMENT": "false"}):
        booking = await salon.booking(tomorrow_at(16))
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        stored = await connection.fetchrow(
            "SELECT data_is_row, payload->'data' AS data FROM outbox "
            "WHERE payload->'data'->>'id' = $1",
            booking["id"],
        )
    finally:
        await connection.close()
    assert not stored["data_is_row"]
    assert orjson.loads(stored["data"]) == booking
    assert (await tap.wait_for(booking["id"], "booking.created"))["data"] == booking


@contextlib.contextmanager
def booking_service_run_with(stack: LocalStack, env: dict[str, str]) -> Iterator[None]:
    """booking-service restarted with `env` set, then again as it was."""
    _restart_booking_service(stack, env)
    try:
        yield
    finally:
        _restart_booking_service(stack, {})


def _restart_booking_service(stack: LocalStack, env: dict[str, str]) -> None:
    stack.services["booking-service"].stop()
    stack.start_service("booking-service", env)
    stack.wait_until_ready()
